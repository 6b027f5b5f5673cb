"""`proxy-lab proxy` on every core: `run_proxy`, and the worker processes that share one listening address.

One asyncio process relays on one core; a C proxy such as tinyproxy (a thread per client) or haproxy
(a thread per core) uses them all. `run_proxy` serves from `worker_count(config)` processes: one
runs `serve_forever` (serve.py) itself; more are started by `run_workers`, which binds the
listening sockets, forks the workers (before any event loop exists), and has each worker run
`serve_forever` on its own socket.

On Linux each worker has a socket of its own bound to the same address with SO_REUSEPORT (as
nginx's `reuseport` and haproxy's per-thread listeners): the kernel hashes each new connection to
one of them and wakes that worker alone. One socket shared by all workers woke every worker for
every connection while the plain path's epoll set sat inside the event loop's, where
EPOLLEXCLUSIVE cannot pick a single waker (6% of the sequential setup rate on 2 cores), and the
CPU-local steering below needs a socket per worker. Where SO_REUSEPORT is missing, the workers share one
socket. A worker that dies takes its socket out of the group, and the others get its share. With
`ProxyConfig.cpu_affinity` (the default) each worker runs on a CPU of its own, and while the workers
are lightly loaded a new connection goes to the worker on the CPU that received it (steering.py).

The parent only supervises: it forwards SIGINT and SIGTERM to the workers, waits for all of them and
exits 0 after a clean stop (2 when the socket cannot be bound, else the first failing worker's
code). Each worker is a whole lab proxy with its own counters and log lines. By default there are
several workers only without faults (`ProxyConfig.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

from proxy_lab.errors import ConfigError
from proxy_lab.proxy.config import ProxyConfig
from proxy_lab.proxy.listener import listening_socket
from proxy_lab.proxy.serve import run_in_loop, serve_forever
from proxy_lab.proxy.server import LabProxy
from proxy_lab.proxy.steering import Steering
from proxy_lab.resolver import Resolver, is_ip

log = logging.getLogger("proxy_lab.proxy")


def run_proxy(config: ProxyConfig, resolver: Resolver, stop_event: asyncio.Event | None = None) -> int:
    """`serve_forever` on a fresh event loop, uvloop when it is installed (for the CLI only).

    With more than one worker (`ProxyConfig.workers`) the listening socket is bound here and served
    by that many processes (`run_workers`); a `stop_event` keeps it in this process.
    """
    workers = worker_count(config)
    if workers > 1 and stop_event is None:
        return run_workers(config, resolver, workers)
    return run_in_loop(serve_forever(config, resolver, stop_event))


def worker_count(config: ProxyConfig) -> int:
    """How many processes `run_proxy` starts for `config` (see ProxyConfig.workers)."""
    if config.workers:
        return config.workers
    if config.faults or config.watcher is not None:  # a fault may keep state; the record has one writer
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def run_workers(config: ProxyConfig, resolver: Resolver, workers: int) -> int:
    """Serve `config.listen` from `workers` processes until SIGINT/SIGTERM; the exit code of run_proxy."""
    if not is_ip(config.listen[0]):  # a name may stand for several addresses: one process binds them all
        return run_in_loop(serve_forever(config, resolver))
    children: list[int] = []
    # The parent forwards SIGINT/SIGTERM from before it binds: the port accepts connections (into
    # the kernel's queue) from then on, so whoever waits for it may signal at once, and the signal
    # must stop the workers, not kill the parent before or while it forks them.
    stopping: list[bool] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(True)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _start(config, resolver, workers, children, stopping, previous)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(
    config: ProxyConfig, resolver: Resolver, workers: int, children: list[int], stopping: list[bool],
    previous: dict[signal.Signals, Any],
) -> int:  # fmt: skip
    """Bind, fork the workers (listed in `children` as they start) and supervise them."""
    host, port = config.listen
    try:
        config.check_exposure()
        socks = listening_sockets(host, port, workers)
    except (OSError, ConfigError) as exc:
        log.error("lab proxy cannot start on %s:%s: %s", host, port, exc)
        return 2
    steering = Steering.start(socks) if config.cpu_affinity else None
    bound = socks[0].getsockname()
    log.info("lab proxy: %d worker processes serve %s:%s", workers, bound[0], bound[1])
    mask = {signal.SIGINT, signal.SIGTERM}
    for n in range(workers):
        if stopping:
            break
        # Signals wait while forking, so none lands between fork() and the worker being listed
        # (a forwarded one would miss it) or in the child before its handlers are reset.
        signal.pthread_sigmask(signal.SIG_BLOCK, mask)
        pid = os.fork()
        if pid == 0:  # a worker: serve, then leave without running the parent's cleanup
            for sig, handler in previous.items():
                signal.signal(sig, handler)  # the worker's loop installs its own handlers
            signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)
            sock = socks[n % len(socks)]
            for other in socks:  # a socket left open here would keep a dead worker's share queued
                if other is not sock:
                    other.close()
            code = 1
            try:
                follow = None
                if steering is not None:
                    steering.pin(n)
                    follow = _follower(steering, n, sock)
                code = run_in_loop(serve_forever(config, resolver, listen_socket=sock, follow=follow))
            except BaseException:  # a worker must never return into the parent's code
                log.exception("lab proxy worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        children.append(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)  # a signal that waited is forwarded now
    for sock in socks:
        sock.close()  # the workers hold them: once they close theirs, the port refuses connections
    return _supervise(children, stopping)


def listening_sockets(host: str, port: int, workers: int) -> list[socket.socket]:
    """A socket per worker bound to one address with SO_REUSEPORT, or one socket for all where the
    option is missing (the first socket's port is the others' when `port` is 0)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return [listening_socket(host, port)]
    socks: list[socket.socket] = []
    try:
        for _ in range(workers):
            socks.append(listening_socket(host, port, reuse_port=True))
            port = socks[0].getsockname()[1]
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _follower(steering: Steering, index: int, sock: socket.socket) -> Callable[[LabProxy], Callable[[], None]]:
    """What worker `index` runs once its proxy listens: its part of the steering, stopped with it."""

    def follow(proxy: LabProxy) -> Callable[[], None]:
        part = steering.worker(index, sock, proxy.connections_open)
        part.follow()
        return part.close

    return follow


def _supervise(children: list[int], stopping: list[bool]) -> int:
    """Wait for every worker (the caller forwards SIGINT/SIGTERM to them meanwhile)."""
    codes: list[int] = []
    for pid in children:
        _, status = os.waitpid(pid, 0)
        codes.append(os.waitstatus_to_exitcode(status))
    failed = [c for c in codes if c > 0]
    if failed:
        return failed[0]
    if any(c < 0 for c in codes) and not stopping:
        return 1  # a worker was killed by a signal nobody sent through us
    return 0
