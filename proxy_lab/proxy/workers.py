"""`proxy-lab proxy` on every core: worker processes that share one listening socket.

One asyncio process relays on one core; a C proxy such as tinyproxy (a thread per client) or haproxy
(a thread per core) uses them all. `run_workers` binds the listening socket once, forks the workers
(before any event loop exists), and each worker runs `serve_forever` on its inherited copy of the
socket: the kernel hands every new connection to one worker that is waiting in accept, so a busy
worker does not get more (unlike SO_REUSEPORT, which hashes connections to workers blindly).

The parent only supervises: it forwards SIGINT and SIGTERM to the workers, waits for all of them and
exits 0 after a clean stop (2 when the socket cannot be bound, else the first failing worker's
code). Each worker is a whole lab proxy with its own counters and log lines. Only `run_proxy` uses
this, and by default only without faults (`ProxyConfig.workers`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING

from proxy_lab.errors import ConfigError
from proxy_lab.resolver import Resolver, is_ip

if TYPE_CHECKING:
    from proxy_lab.proxy.server import ProxyConfig

log = logging.getLogger("proxy_lab.proxy")

BACKLOG = 1024


def run_workers(config: ProxyConfig, resolver: Resolver, workers: int) -> int:
    """Serve `config.listen` from `workers` processes until SIGINT/SIGTERM; the exit code of run_proxy."""
    from proxy_lab.proxy.server import run_in_loop, serve_forever  # server imports this module lazily

    host, port = config.listen
    if not is_ip(host):  # a name may stand for several addresses: one process binds them all
        return run_in_loop(serve_forever(config, resolver))
    try:
        config.check_exposure()
        sock = listening_socket(host, port)
    except (OSError, ConfigError) as exc:
        log.error("lab proxy cannot start on %s:%s: %s", host, port, exc)
        return 2
    bound = sock.getsockname()
    log.info("lab proxy: %d worker processes share %s:%s", workers, bound[0], bound[1])
    children: list[int] = []
    # The parent forwards SIGINT/SIGTERM from before the first fork: a signal that arrives while the
    # workers start must stop them, not kill the parent with the workers orphaned.
    stopping: list[bool] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(True)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    mask = {signal.SIGINT, signal.SIGTERM}
    for _ in range(workers):
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
            code = 1
            try:
                code = run_in_loop(serve_forever(config, resolver, listen_socket=sock))
            except BaseException:  # a worker must never return into the parent's code
                log.exception("lab proxy worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        children.append(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)  # a signal that waited is forwarded now
    sock.close()  # the workers hold it: once they close theirs, the port refuses connections
    try:
        return _supervise(children, stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket bound to (host, port) and listening, as asyncio's create_server binds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


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
