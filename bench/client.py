"""Opening tunnels to the target servers: through an HTTP CONNECT proxy, a TCP forwarder, or directly.

A `Route` says where the client connects and, for a CONNECT proxy, which IP-literal target it asks
for (`CONNECT 127.0.0.1:PORT`), so no proxy ever consults DNS. Blocking sockets serve the
sequential and bulk measurements; `setups_in_flight` (an epoll loop) serves the concurrent ones.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from dataclasses import dataclass

from bench.procs import LOOPBACK

MAX_HEAD = 16 * 1024
TIMEOUT_S = 10.0
# give up on a batch once failures pile up: a broken proxy should cost seconds, not minutes
MAX_ERRORS = 50


class TunnelError(Exception):
    """The proxy did not give us a working tunnel; the message says what it did instead."""


@dataclass(frozen=True)
class Route:
    port: int  # where the client connects on 127.0.0.1
    connect_to: str | None = None  # "127.0.0.1:PORT" for a CONNECT proxy; None for a forwarder or direct
    then_connect: str | None = None  # a second CONNECT sent through the first tunnel (a proxy behind it)

    def describe(self) -> str:
        via = "".join(f" CONNECT {t}" for t in self.connects)
        return f"{LOOPBACK}:{self.port}{via}"

    @property
    def connects(self) -> list[str]:
        return [t for t in (self.connect_to, self.then_connect) if t is not None]


def connect_request(target: str) -> bytes:
    return f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode("ascii")


def check_connect_head(head: bytes, target: str) -> None:
    """Raise TunnelError unless `head` (the response head without its blank line) is a 200.

    Only 200 counts, as CPython's http.client and Android require; a 2xx CONNECT answer has no
    body, so any byte after the head would belong to the tunnel, and we have sent none yet.
    """
    status_line = head.split(b"\r\n", 1)[0]
    parts = status_line.split(None, 2)
    if len(parts) < 2 or parts[1] != b"200":
        raise TunnelError(f"proxy answered CONNECT {target} with {status_line[:120]!r}")


def open_tunnel(route: Route, timeout_s: float = TIMEOUT_S) -> socket.socket:
    """A connected blocking socket whose next byte reaches the target (CONNECT done if needed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((LOOPBACK, route.port))
        for target in route.connects:
            sock.sendall(connect_request(target))
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk:
                    raise TunnelError(f"proxy closed the connection before answering CONNECT {target}")
                buf += chunk
                if len(buf) > MAX_HEAD:
                    raise TunnelError(f"CONNECT response head longer than {MAX_HEAD} bytes")
            head, _, rest = buf.partition(b"\r\n\r\n")
            check_connect_head(head, target)
            if rest:
                raise TunnelError(f"{len(rest)} unexpected bytes after the CONNECT response head")
        return sock
    except BaseException:
        sock.close()
        raise


def echo_once(sock: socket.socket) -> None:
    """One byte to the echo server and back."""
    sock.sendall(b"x")
    if sock.recv(1) != b"x":
        raise TunnelError("the echo server's byte did not come back through the tunnel")


def read_line(sock: socket.socket, limit: int = 256) -> bytes:
    """One line (without its newline) from a blocking socket, reading no further than the newline."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise TunnelError(f"connection closed after {buf[:80]!r} (expected a line)")
        buf += chunk
        if len(buf) > limit:
            raise TunnelError(f"line longer than {limit} bytes: {buf[:80]!r}")
    return buf[:-1]


@dataclass
class _Pending:
    sock: socket.socket
    started: float
    state: int  # CONNECTING, HEAD or ECHO
    head: bytes = b""


CONNECTING, HEAD, ECHO = range(3)


@dataclass
class SetupBatch:
    latencies: list[float]  # seconds from connect() to the echo's return, per completed setup
    errors: list[str]
    elapsed_s: float
    kept: list[socket.socket]  # open tunnels, when asked to keep them


def setups_in_flight(route: Route, concurrency: int, max_count: int, max_seconds: float, *,
                     keep: bool = False, timeout_s: float = TIMEOUT_S) -> SetupBatch:  # fmt: skip
    """Setups (connect, CONNECT, 200, one echo byte) with `concurrency` of them in flight at once.

    A hand-written epoll loop rather than asyncio: it costs the client about a third of the CPU
    per setup, which on a small machine is CPU left to the proxy under test. New setups start
    until `max_count` have started or `max_seconds` have passed; each has `timeout_s`. With
    `keep`, finished tunnels stay open and are returned (the idle-memory figure); otherwise each
    is closed as soon as its echo is back.
    """
    poller = select.epoll()
    pending: dict[int, _Pending] = {}
    latencies: list[float] = []
    errors: list[str] = []
    kept: list[socket.socket] = []
    request = connect_request(route.connect_to) if route.connect_to else None
    started_count = 0
    to_start = 0
    t_start = time.perf_counter()
    deadline = t_start + max_seconds
    hard_stop = deadline + timeout_s + 1.0
    next_sweep = t_start + 0.5

    def start_one() -> None:
        nonlocal started_count, to_start
        started_count += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        code = sock.connect_ex((LOOPBACK, route.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            errors.append(f"connect: {os.strerror(code)}")
            to_start += 1  # refill() retries, bounded by MAX_ERRORS
            return
        pending[sock.fileno()] = _Pending(sock, t0, CONNECTING)
        poller.register(sock.fileno(), select.EPOLLOUT)

    def finish(fd: int, error: str | None) -> None:
        nonlocal to_start
        item = pending.pop(fd)
        poller.unregister(fd)
        if error is None:
            latencies.append(time.perf_counter() - item.started)
            if keep:
                kept.append(item.sock)
            else:
                item.sock.close()
        else:
            errors.append(error)
            item.sock.close()
        to_start += 1

    def refill() -> None:
        # only between poll batches: a new socket may reuse a closed one's fd number, and a stale
        # event still queued in this batch for that number must not be applied to it
        nonlocal to_start
        while to_start and started_count < max_count and time.perf_counter() < deadline and len(errors) < MAX_ERRORS:
            to_start -= 1
            start_one()
        to_start = 0

    def step(fd: int, item: _Pending) -> str | None:
        """Advance one connection; None while it is fine, "" when done, else the error."""
        sock = item.sock
        if item.state == CONNECTING:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                return f"connect: {os.strerror(code)}"
            sock.send(request or b"x")  # a few bytes into an empty send buffer: never partial
            item.state = HEAD if request else ECHO
            poller.modify(fd, select.EPOLLIN)
            return None
        data = sock.recv(4096)
        if not data:
            return "connection closed before the echo came back" if item.state == ECHO else \
                f"proxy closed the connection before answering CONNECT {route.connect_to}"  # fmt: skip
        if item.state == HEAD:
            item.head += data
            if b"\r\n\r\n" not in item.head:
                return f"CONNECT response head longer than {MAX_HEAD} bytes" if len(item.head) > MAX_HEAD else None
            head, _, rest = item.head.partition(b"\r\n\r\n")
            check_connect_head(head, route.connect_to or "")
            if rest:
                return f"{len(rest)} unexpected bytes after the CONNECT response head"
            sock.send(b"x")
            item.state = ECHO
            return None
        return "" if data == b"x" else f"echo returned {data[:20]!r}, expected b'x'"

    try:
        for _ in range(min(concurrency, max_count)):
            start_one()
        while pending and time.perf_counter() < hard_stop:
            for fd, _events in poller.poll(0.5):
                item = pending.get(fd)
                if item is None:
                    continue
                try:
                    outcome = step(fd, item)
                except TunnelError as exc:
                    outcome = str(exc)
                except OSError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                if outcome is not None:
                    finish(fd, outcome or None)
            now = time.perf_counter()
            if now >= next_sweep:
                next_sweep = now + 0.5
                for fd in [fd for fd, item in pending.items() if now - item.started > timeout_s]:
                    finish(fd, f"no echo within {timeout_s:g} s")
            refill()
        elapsed = time.perf_counter() - t_start
    finally:
        for item in pending.values():
            item.sock.close()
            errors.append("still pending at the hard stop")
        pending.clear()
        poller.close()
    return SetupBatch(latencies, errors, elapsed, kept)
