"""Zero-copy relaying for busy plain tunnels: os.splice through a pipe, one thread per direction (Linux).

Relaying in Python copies every byte twice in the proxy (kernel to the read buffer, buffer to the
kernel). `splice(2)` moves socket pages into a pipe and from the pipe to the other socket without
copying them to user space: on loopback it halves the CPU a bulk transfer costs and lifts
throughput to haproxy's (haproxy's `option splice-*` does the same).

A plain tunnel (plaintunnel.py) hands itself over once it has carried `SPLICE_AFTER_BYTES` in one
direction, at a moment when no bytes wait in the proxy for either side: the sockets leave the
proxy's epoll set, their descriptors are handed over, and a thread per live direction loops on
blocking splices. The GIL is released in each splice, so the proxy's other threads carry on
meanwhile.

The rules stay those of the other relays (RFC 9110 §9.3.6): EOF on one side is passed on as a
half-close (shutdown SHUT_WR) while the other direction keeps flowing; an error on one side ends
both directions after the bytes already written; when both threads are done the last one closes the
sockets, and the tunnel's bookkeeping runs on the thread that owns the tunnel (the plain path's).
Interactive tunnels never get here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

SPLICE_AFTER_BYTES = 1 << 20  # a direction that carried this much is a bulk transfer
PIPE_BYTES = 1 << 20  # pipe capacity asked for (F_SETPIPE_SZ); Linux caps it at /proc/sys/fs/pipe-max-size
MAX_SPLICED = 64  # tunnels relayed by threads at once; beyond, they stay on the poller's relay
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

AVAILABLE = hasattr(os, "splice")
_active = 0  # pairs relayed by threads now, in the whole process (several proxies may splice)
_active_lock = threading.Lock()


def can_splice() -> bool:
    return AVAILABLE and _active < MAX_SPLICED


def active() -> int:
    """How many tunnels splice threads relay now, in this process."""
    return _active


def _count(delta: int) -> None:
    global _active
    with _active_lock:
        _active += delta


class SplicedPair:
    """The two sockets of one tunnel, relayed by threads once `start`ed. When both directions are
    over, `call_soon(on_done, up, down, why)` hands the result to the tunnel's owner on its thread."""

    def __init__(
        self,
        client_fd: int,
        upstream_fd: int,
        directions: tuple[bool, bool],
        call_soon: Callable[..., Any],
        on_done: Callable[[int, int, str], None],
    ) -> None:
        _count(+1)
        self.call_soon = call_soon
        self.client = socket.socket(fileno=client_fd)
        self.upstream = socket.socket(fileno=upstream_fd)
        self.on_done = on_done
        self.moved = [0, 0]  # client_to_upstream, upstream_to_client
        self.why = ""
        self._lock = threading.Lock()
        self._running = 0
        live = [
            (0, self.client, self.upstream, "client"),
            (1, self.upstream, self.client, "upstream"),
        ]
        self._threads = [
            threading.Thread(target=self._pump, args=spec, name=f"proxy-splice-{spec[3]}", daemon=True)
            for spec, on in zip(live, directions, strict=True)
            if on
        ]
        self._running = len(self._threads)

    def start(self) -> None:
        """Relay; call once the owner has let go of the sockets (blocking mode is shared)."""
        for sock in (self.client, self.upstream):
            sock.setblocking(True)
        if not self._threads:
            self._finish()
        for thread in self._threads:
            thread.start()

    def abort(self) -> None:
        """End both directions now (proxy shutdown): the blocked splices return."""
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _pump(self, index: int, src: socket.socket, dst: socket.socket, name: str) -> None:
        moved = 0
        why = ""
        r, w = os.pipe()
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_BYTES)
            src_fd, dst_fd = src.fileno(), dst.fileno()
            while True:
                n = os.splice(src_fd, w, PIPE_BYTES, flags=os.SPLICE_F_MOVE)
                if n == 0:
                    break  # EOF from src: pass it on as a half-close below
                while n:
                    # no SPLICE_F_MORE: it corks the socket, and the last bytes of a reply would wait
                    k = os.splice(r, dst_fd, n, flags=os.SPLICE_F_MOVE)
                    moved += k
                    n -= k
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        except OSError as exc:
            why = f"{name} connection lost: {exc!r}"
            # an error on one side ends the tunnel: both directions stop, after what was written
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        finally:
            os.close(r)
            os.close(w)
        with self._lock:
            self.moved[index] += moved
            self.why = self.why or why
            self._running -= 1
            last = self._running == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        """Both directions are over: close the sockets here, then tell the owner on its thread (if
        the owner has stopped meanwhile, only the telling is lost)."""
        for sock in (self.client, self.upstream):
            sock.close()
        _count(-1)
        self.call_soon(self.on_done, self.moved[0], self.moved[1], self.why)
