"""The lab proxy's listening socket, and the accept loop of the plain path.

`listening_socket` binds as asyncio's create_server does (run_proxy's workers share one).
`Listener` stands in for asyncio.Server when the plain path is on (plainpath.py): it accepts
on the poller's thread (poller.py) and hands each socket to the proxy, which may set its tunnel up
within that same handler. On Linux the socket has TCP_DEFER_ACCEPT, so a connection is accepted once its
first bytes (the CONNECT head, for any HTTP client) are in: one wake-up per setup instead of two.
A client that connects and sends nothing is accepted after a second or so all the same, and then
meets the header timeout.
"""

from __future__ import annotations

import _socket
import contextlib
import errno as errno_mod
import logging
import os
import socket
from collections.abc import Callable

from proxy_lab.proxy.poller import IN, Poller, Timer
from proxy_lab.resolver import Address, address_of

log = logging.getLogger("proxy_lab.proxy")

BACKLOG = 1024
DEFER_ACCEPT_S = 1  # TCP_DEFER_ACCEPT: how long the kernel holds a silent connection back (seconds)
# accept() errors that mean "out of descriptors or memory": pause accepting instead of spinning.
_EXHAUSTED = {errno_mod.EMFILE, errno_mod.ENFILE, errno_mod.ENOBUFS, errno_mod.ENOMEM}
PAUSE_ON_EXHAUSTION_S = 1.0  # as asyncio's selector event loop does


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking TCP socket bound to (host, port) and listening, as asyncio's create_server binds;
    with `reuse_port`, one of a group that the kernel spreads connections over (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Listener:
    """Accepts on `sock` and calls `on_accept(socket, peer)` for each connection (non-blocking,
    TCP_NODELAY). Quacks like the part of asyncio.Server that LabProxy uses.

    The accepted sockets are `_socket.socket`s, the C type that `socket.socket` extends: the socket
    module's Python layer (`accept` converting family and type to enums, `__init__`, `close` through
    two Python calls) was a tenth of the plain path's interpreter time per setup. They stay in
    blocking mode, which saves a system call per setup: the plain path reads and writes them with
    MSG_DONTWAIT (plaintunnel.py). Code that needs a non-blocking `socket.socket` (asyncio's transports)
    gets one from `as_socket`.
    """

    def __init__(
        self, poller: Poller, sock: socket.socket, on_accept: Callable[[_socket.socket, Address], None], *, defer: bool = True
    ) -> None:
        self.sockets = [sock]
        self._poller = poller
        self._sock = sock
        self._fd = sock.fileno()
        self._family = int(sock.family)
        # (descriptor, peer address); the descriptor is blocking (accept4 with SOCK_CLOEXEC only)
        self._accept = sock._accept  # type: ignore[attr-defined]
        self._on_accept = on_accept
        self._closed = False
        self._resume: Timer | None = None
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if defer:
            with contextlib.suppress(AttributeError, OSError):  # Linux only; elsewhere accept() wakes early
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
        poller.call(poller.register, self._fd, IN, self._ready)  # accepting runs on the poller's thread

    def _ready(self, events: int) -> None:
        """Accept one connection. The poller is level-triggered: with more waiting it calls again on
        the next iteration, so a lone connection costs no accept() that fails with EAGAIN, and a
        flood is taken in turns with the relays' events."""
        try:
            fd, peer = self._accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # taken by another worker, or gone before we took it
        except OSError as exc:
            if exc.errno in _EXHAUSTED:
                log.error("lab proxy: cannot accept (%s); pausing for %g s", exc, PAUSE_ON_EXHAUSTION_S)
                self._poller.unregister(self._fd)
                self._resume = self._poller.call_later(PAUSE_ON_EXHAUSTION_S, self._resume_accepting)
            else:
                log.error("lab proxy: accept failed: %s", exc)
            return
        try:
            conn = _socket.socket(self._family, socket.SOCK_STREAM, 0, fd)
        except OSError as exc:  # not seen: the descriptor is a fresh TCP socket
            log.error("lab proxy: accepted connection from %s unusable: %s", peer, exc)
            os.close(fd)
            return
        try:  # TCP_NODELAY it inherits from the listening socket (Linux)
            self._on_accept(conn, peer if self._family == socket.AF_INET else address_of(peer))
        except Exception:
            log.exception("lab proxy: connection from %s failed on accept", peer)
            conn.close()

    def _resume_accepting(self) -> None:
        self._resume = None
        if not self._closed:
            self._poller.register(self._fd, IN, self._ready)

    def close(self) -> None:
        """Stop accepting; the socket is closed on the poller's thread, which may be accepting on it."""
        if self._closed:
            return
        self._closed = True
        self._poller.call(self._close)

    def _close(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
        self._poller.unregister(self._fd)
        self._sock.close()

    async def wait_closed(self) -> None:
        return None


def as_socket(sock: _socket.socket) -> socket.socket:
    """`sock` as a non-blocking `socket.socket` (the same connection; `sock` is left detached)."""
    if not isinstance(sock, socket.socket):
        sock = socket.socket(sock.family, sock.type, sock.proto, sock.detach())
    sock.setblocking(False)
    return sock
