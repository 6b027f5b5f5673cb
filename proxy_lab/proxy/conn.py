"""One client connection before its tunnel: an asyncio Protocol that buffers bytes for the head parser.

`ClientProtocol` implements the `ClientConn` interface that `Fault.handle_client` receives. It
spawns the server's handler for the connection, lets it wait for bytes with a timeout, answer,
close gracefully (FIN, then drain what the client still sends, so the answer is not lost to a
reset) or reset, and hands its transport to a `Tunnel` when the tunnel is established.

Setup cost matters (CONNECT setups per second, measured against tinyproxy in docs/performance.md),
so when no fault takes over whole connections the handler is not started on accept: `data_received` runs the sans-IO head
parser itself and starts the handler (eagerly, so it runs up to its first real wait inside this
callback) once the head is complete or refused, at EOF, or when the header timeout fires. A
client that sends its CONNECT in one segment thus costs one task and no wait for bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from proxy_lab.proxy.deadlines import Deadlines
from proxy_lab.proxy.faults.base import AnswerFn, ClientConn, Ctx
from proxy_lab.proxy.relay import set_linger_reset
from proxy_lab.resolver import Address, address_of
from proxy_lab.tasks import create_task

Handler = Callable[["ClientProtocol"], Coroutine[Any, Any, None]]
# The sans-IO head parser (parse_connect with the proxy's limits): a parsed head, None, or raises.
HeadParser = Callable[[bytearray], Any]


class ClientProtocol(asyncio.Protocol):
    """The client side of the proxy until a tunnel takes it over."""

    # Per-connection state starts as these class-level defaults: an accept assigns only what differs.
    transport: asyncio.Transport | None = None
    _peer: Address | None = None
    _sockname: Address | None = None
    eof = False
    lost = False
    detached = False
    phase = "head"  # head | upstream | tunnel
    task: asyncio.Task[None] | None = None
    head_deadline: float | None = None  # loop time by which the first head must be complete
    parsed: Any = None  # what head_parser returned, for the handler to take (None: nothing yet)
    parse_error: Exception | None = None  # what head_parser raised, for the handler to answer
    _paused = False
    _waiter: asyncio.Future[None] | None = None
    _drain_waiter: asyncio.Future[None] | None = None
    _write_paused = False
    # Set by the server before the handler runs (see ClientConn.tunnel / new_ctx).
    tunnel_opener: Callable[[ClientProtocol, Ctx, AnswerFn], Awaitable[None]] | None = None
    ctx_factory: Callable[[ClientProtocol, str, int], Ctx] | None = None
    # Set by the server when the proxy has users: SOCKS5 user/password auth (RFC 1929) uses it.
    auth_required = False
    check_credentials: Callable[[str, str], Any] | None = None
    over_limit = False  # set by the server: accepted beyond max_connections (answered 503)
    primed = b""  # bytes read from the socket before it had this protocol (the server's own accept)

    def __init__(
        self,
        handler: Handler,
        *,
        conn_id: int,
        max_buffer: int,
        head_parser: HeadParser | None = None,
        head_deadlines: Deadlines | None = None,
        on_lost_early: Callable[[ClientProtocol], None] | None = None,
        router: Callable[[ClientProtocol], Coroutine[Any, Any, None] | None] | None = None,
    ) -> None:
        self.handler = handler
        self.conn_id = conn_id
        self.max_buffer = max_buffer
        # With a head parser the handler starts once the first head is in (see the module docstring),
        # or when `head_deadlines` (the header timeout, whose callback is `start_handler`) expires.
        self.head_parser = head_parser
        self.head_deadlines = head_deadlines
        self.on_lost_early = on_lost_early  # lost before the handler started: the server's cleanup
        # Given the parsed first head, the handler for a request that needs no fault (the server's
        # plain path), or None for the general `handler`.
        self.router = router
        self.buffer = bytearray()

    # The addresses are read on first use (getpeername/getsockname), not on every accept.
    @property
    def peer(self) -> Address:
        if self._peer is None:
            self._peer = address_of(self.transport.get_extra_info("peername")) if self.transport else ("?", 0)
        return self._peer

    @peer.setter
    def peer(self, value: Address) -> None:
        self._peer = value

    @property
    def sockname(self) -> Address:
        if self._sockname is None:
            self._sockname = address_of(self.transport.get_extra_info("sockname")) if self.transport else ("?", 0)
        return self._sockname

    @sockname.setter
    def sockname(self, value: Address) -> None:
        self._sockname = value

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.head_parser is None or self.head_deadlines is None:
            self.task = create_task(self.handler(self), name=f"proxy-conn-{self.conn_id}")
        else:
            self.head_deadline = self.head_deadlines.set(self)
        if self.primed:  # before any byte the transport reads: it starts reading after this returns
            data, self.primed = self.primed, b""
            self.data_received(data)

    def start_handler(self) -> None:
        """Start the handler now, running it eagerly up to its first wait (see the module docstring)."""
        if self.task is not None:
            return
        if self.head_deadlines is not None:
            self.head_deadlines.clear(self)
        # Eager: on a complete head the handler parses, authenticates and starts connecting upstream
        # inside this callback instead of one loop iteration later.
        coro = self.router(self) if self.router is not None and self.parsed is not None else None
        self.task = create_task(coro or self.handler(self), name=f"proxy-conn-{self.conn_id}", eager=True)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > self.max_buffer and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        if self.task is None and self.head_parser is not None:
            try:
                self.parsed = self.head_parser(self.buffer)
            except Exception as exc:  # the handler answers it (400, 405, 414, 431, 505)
                self.parse_error = exc
            if self.parsed is not None or self.parse_error is not None:
                self.start_handler()
            return
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        if self.task is None and self.head_parser is not None:
            self.start_handler()
        self._wake()
        return True  # keep the socket open to answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        if self.task is None and self.head_parser is not None:
            if self.head_deadlines is not None:
                self.head_deadlines.clear(self)
            if self.on_lost_early is not None:
                self.on_lost_early(self)
            return
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- ClientConn ---------------------------------------------------------------------------------
    def buffered(self) -> bytes:
        return bytes(self.buffer)

    def take_parsed(self) -> tuple[Any, Exception | None]:
        """What the head parser made of the buffer before the handler started (taken once)."""
        parsed, error = self.parsed, self.parse_error
        self.parsed = self.parse_error = None
        return parsed, error

    def consume(self, n: int) -> None:
        del self.buffer[:n]
        if self._paused and len(self.buffer) <= self.max_buffer and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    async def read_more(self, timeout_s: float) -> bool:
        """Wait until more bytes arrive (True) or the client sends EOF without more (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        before = len(self.buffer)
        while len(self.buffer) == before and not self.eof:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no bytes from {self.peer[0]}:{self.peer[1]} within {timeout_s:.1f} s")
            self._waiter = loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, remaining)
            finally:
                self._waiter = None
        return len(self.buffer) > before

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing() and data:
            self.transport.write(data)

    async def drain(self, timeout_s: float = 10.0) -> None:
        if not self._write_paused or self.lost:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._drain_waiter, timeout_s)
        finally:
            self._drain_waiter = None

    async def close(self, linger_s: float = 1.0) -> None:
        """FIN after the answer, then read and drop what the client still sends, up to `linger_s`.

        Closing a socket with unread input sends a reset, which can destroy the answer before the
        client reads it; lingering for the client's own close avoids that (Apache's lingering close).
        """
        transport = self.transport
        if transport is None or self.detached or transport.is_closing():
            return
        if transport.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                transport.write_eof()
        if self._paused:
            self._paused = False
            transport.resume_reading()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + linger_s
        while not self.eof and loop.time() < deadline:
            self.buffer.clear()
            with contextlib.suppress(TimeoutError):
                await self.read_more(deadline - loop.time())
        self.buffer.clear()
        transport.close()

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), as Squid's `deny_info TCP_RESET` does."""
        if self.transport is not None and not self.detached and not self.transport.is_closing():
            set_linger_reset(self.transport)
            self.transport.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.detached:
            self.transport.abort()

    def new_ctx(self, host: str, port: int) -> Ctx:
        assert self.ctx_factory is not None, "ClientProtocol used before the server set ctx_factory"
        return self.ctx_factory(self, host, port)

    async def tunnel(self, ctx: Ctx, answer: AnswerFn) -> None:
        assert self.tunnel_opener is not None, "ClientProtocol used before the server set tunnel_opener"
        await self.tunnel_opener(self, ctx, answer)

    def take_socket(self) -> tuple[socket.socket, bytes]:
        """The connection's socket, out of its transport (a duplicate; the transport is dropped),
        and the bytes the client sent after its head: for the plain path, which relays on sockets."""
        transport, leftover, _eof = self.detach()  # a FIN already read is read again from the socket
        fd = os.dup(transport.get_extra_info("socket").fileno())
        transport.abort()  # closes its descriptor only: the connection lives on in the duplicate
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        return sock, leftover

    def detach(self) -> tuple[asyncio.Transport, bytes, bool]:
        """Give up the transport to a tunnel: returns it, the bytes not consumed, and whether EOF was seen."""
        assert self.transport is not None
        self.detached = True
        self.phase = "tunnel"
        leftover = bytes(self.buffer)
        self.buffer.clear()
        return self.transport, leftover, self.eof


if TYPE_CHECKING:  # ClientProtocol is what Fault.handle_client receives

    def _conforms(conn: ClientProtocol) -> ClientConn:
        return conn
