"""CPU-local connections for `run_proxy`'s workers while they are lightly loaded (Linux).

Each worker process runs on a CPU of its own, and a classic BPF program on the SO_REUSEPORT group
(`SO_ATTACH_REUSEPORT_CBPF`) hands each new connection to the socket of the worker on the CPU that
received it. For a client on the same machine that is the CPU the client runs on, so a client that
waits for the proxy wakes a worker on its own CPU: no wake-up across CPUs, warm caches (nginx's
`reuseport` with `worker_cpu_affinity`, and the "one listener per CPU" servers, do the same). It
matters most for a client that opens one tunnel after the other, as the meter does: on 2 cores, 8%
more sequential setups per second than the kernel's hash gives (docs/performance.md).

The same rule sends every connection of one busy client process to one worker, since they all
arrive on its CPU; 100 setups in flight from one process set up 12% fewer tunnels per second that
way. So steering is on only while the workers are lightly loaded: a worker with more than
`HEAVY` connections open detaches the program, and the kernel's hash spreads new connections over
every worker again; the first worker attaches it again once no worker has been heavy for
`SETTLE_S`. The workers share their state through a few bytes of shared memory made before they
are forked. Each worker checks its load every `CHECK_S`.

Anywhere the program cannot be attached (no classic BPF for SO_REUSEPORT, fewer allowed CPUs than
workers), nothing is pinned or steered and the kernel's hash spreads connections as before. When a
worker dies the kernel moves the group's last socket into its slot, so one CPU's connections may
then go to a worker on another CPU: still a live worker, only not the local one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import mmap
import os
import socket
import struct
import time
from collections.abc import Callable

log = logging.getLogger("proxy_lab.proxy")

HEAVY = 8  # connections open in one worker beyond which connections are spread again
SETTLE_S = 1.0  # every worker at or under HEAVY this long: steer again
CHECK_S = 0.1  # how often each worker looks at its load

SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)
SO_DETACH_REUSEPORT_BPF = getattr(socket, "SO_DETACH_REUSEPORT_BPF", 68)
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06  # struct sock_filter op codes
_SKF_AD_CPU = (-0x1000 + 36) & 0xFFFFFFFF  # ancillary load: the CPU running the program
NO_SOCKET = 0xFFFFFFFF  # an index past the group's sockets: the kernel falls back to its hash


def cpu_program(cpus: list[int]) -> bytes:
    """Classic BPF that answers socket i for a connection received on CPU cpus[i], else NO_SOCKET:
    `ld #cpu`, then per worker `jeq #cpu_i` -> `ret #i`, and `ret #NO_SOCKET`."""
    code = [(_BPF_LD_W_ABS, 0, 0, _SKF_AD_CPU)]
    for index, cpu in enumerate(cpus):
        code.append((_BPF_JEQ_K, 0, 1, cpu))  # equal: the next instruction; else skip it
        code.append((_BPF_RET_K, 0, 0, index))
    code.append((_BPF_RET_K, 0, 0, NO_SOCKET))
    return b"".join(struct.pack("HBBI", *insn) for insn in code)


def attach(sock: socket.socket, program: bytes) -> None:
    """Attach `program` (cpu_program) to the SO_REUSEPORT group of `sock`; the kernel copies it."""
    instructions = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(instructions))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def detach(sock: socket.socket) -> None:
    """Take the group's program off: the kernel's hash picks the socket again."""
    with contextlib.suppress(OSError):  # ENOENT: none attached
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)


class Steering:
    """The workers' shared steering state, made in the parent before the workers are forked."""

    def __init__(self, cpus: list[int], program: bytes) -> None:
        self.cpus = cpus  # worker i runs on cpus[i] and listens on the group's socket i
        self.program = program
        # One byte per worker (1: heavy), then one for the group (1: program attached).
        self.shared = mmap.mmap(-1, len(cpus) + 1)
        self.shared[len(cpus)] = 1

    @classmethod
    def start(cls, socks: list[socket.socket]) -> Steering | None:
        """Steer connections to the CPU-local socket of `socks` (one per worker, in the group's
        order), or None where that cannot be done."""
        if len(socks) < 2 or not hasattr(os, "sched_getaffinity"):
            return None
        cpus = sorted(os.sched_getaffinity(0))[: len(socks)]
        if len(cpus) < len(socks):
            return None
        program = cpu_program(cpus)
        try:
            attach(socks[0], program)
        except OSError as exc:
            log.debug("lab proxy: connections not steered to CPU-local workers: %s", exc)
            return None
        return cls(cpus, program)

    def pin(self, index: int) -> None:
        """In worker `index`, right after the fork: run on its CPU from now on."""
        os.sched_setaffinity(0, {self.cpus[index]})

    def worker(self, index: int, sock: socket.socket, connections_open: Callable[[], int]) -> WorkerSteering:
        """Worker `index`'s part, which follows its load (`connections_open`)."""
        return WorkerSteering(self, index, sock, connections_open)


class WorkerSteering:
    """One worker's part: looks at its load every CHECK_S and attaches or detaches the program."""

    def __init__(self, steering: Steering, index: int, sock: socket.socket, connections_open: Callable[[], int]) -> None:
        self.steering = steering
        self.index = index
        self.sock = sock
        self.connections_open = connections_open
        self.calm_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def follow(self) -> None:
        """Start the periodic check on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(CHECK_S, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self.check()
        assert self._loop is not None
        self._timer = self._loop.call_later(CHECK_S, self._tick)

    def check(self, now: float | None = None) -> None:
        """Record this worker's load; detach the program when heavy, attach it again (first worker
        only, so that two workers never race) once every worker has been light for SETTLE_S."""
        shared, n = self.steering.shared, len(self.steering.cpus)
        open_now = self.connections_open()
        heavy = open_now > HEAVY
        shared[self.index] = heavy
        if heavy:
            self.calm_since = None
            if shared[n]:
                detach(self.sock)
                shared[n] = 0
                log.debug("lab proxy worker %d: %d connections open; new ones spread by hash", self.index, open_now)
            return
        if self.index != 0 or shared[n]:
            return
        if any(shared[:n]):
            self.calm_since = None
            return
        now = time.monotonic() if now is None else now
        if self.calm_since is None:
            self.calm_since = now
        elif now - self.calm_since >= SETTLE_S:
            with contextlib.suppress(OSError):
                attach(self.sock, self.steering.program)
                shared[n] = 1
                log.debug("lab proxy: workers light again, connections steered to CPU-local workers")
