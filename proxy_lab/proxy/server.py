"""The lab proxy: `LabProxy` accepts connections, answers CONNECT, runs the faults' hooks, relays tunnels.

The general path, for one client connection (the hooks are described in `proxy_lab.proxy.faults`;
hooks.py chains them): read the CONNECT head (sans-IO `parse_connect`; 400/405/408/414/431/505) ->
Basic auth + on_auth (407, keep-alive retry) -> on_connect -> resolve (503 ERR_DNS_FAIL) -> loop
check (403) -> connect (503 ERR_CONNECT_FAIL 111 / 504 on timeout; upstream.py) ->
`HTTP/1.1 200 Connection established` (or what established_response makes of it) -> relay with
the faults' stages (relay.py) until both sides close. Chained (`ProxyConfig.upstream`), resolve and
connect are a CONNECT to the upstream proxy (upstream.py, chain.py); a `ProxyConfig.watcher` (the
recorder) sees each tunnel through its first stage, each refusal and each tunnel's end.

With `ProxyConfig.plain_path` on (`proxy-lab proxy`, the bench), requests that no fault, refusal
or slow resolver concerns are tunnelled by the plain path instead (plainpath.py), which asks this
class what it needs through the `PlainHost` protocol (`plain_target`, `adopt`, ...). It answers
only with a 200; every refusal, and every record of one, is made here, and its tunnel records come
from the same builders as this path's (records.py), so the log reads the same on either path.

Every refusal is one log line naming client, target, status and reason, in `LabProxy.log` and on
the `proxy_lab.proxy` logger at INFO; tunnels opening and closing are records in `LabProxy.log` and
DEBUG lines (two INFO lines per tunnel on stderr cost more than the rest of a setup). Credentials
never reach either.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import functools
import itertools
import logging
import socket
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.proxy.auth import BasicAuth
from proxy_lab.proxy.config import ProxyConfig
from proxy_lab.proxy.conn import ClientProtocol
from proxy_lab.proxy.deadlines import Deadlines
from proxy_lab.proxy.events import ConnectRequest, Refusal
from proxy_lab.proxy.faults.base import AnswerFn, Ctx, Refuse
from proxy_lab.proxy.hooks import Hooks
from proxy_lab.proxy.listener import BACKLOG, Listener, as_socket, listening_socket
from proxy_lab.proxy.parse import parse_connect, target_hint
from proxy_lab.proxy.plainpath import PlainPath
from proxy_lab.proxy.poller import AVAILABLE as EPOLL_AVAILABLE
from proxy_lab.proxy.records import (
    Event,
    ProxyLog,
    ProxyLogRecord,
    ProxyStats,
    refused,
    tunnel_closed,
    tunnel_opened,
)
from proxy_lab.proxy.relay import Tunnel
from proxy_lab.proxy.responses import lab_error
from proxy_lab.proxy.upstream import ConnectFailure, Upstream
from proxy_lab.resolver import Address, Resolver, address_of, is_ip
from proxy_lab.tasks import Service, create_task

logger = logging.getLogger("proxy_lab.proxy")

_MEMO_HEADS = 512  # request heads remembered by parse_head
_MEMO_HEAD_BYTES = 1024  # longer heads are parsed every time

Handler = Callable[[ClientProtocol], Coroutine[Any, Any, None]]


class LabProxy(Service):
    """An asyncio HTTP CONNECT proxy with Basic auth and faults. Use `async with LabProxy(...)`."""

    def __init__(self, config: ProxyConfig, resolver: Resolver, *, listen_socket: socket.socket | None = None) -> None:
        self.config = config
        self.resolver = resolver
        self._listen_socket = listen_socket  # already bound and listening (run_proxy's workers share one)
        self.auth = BasicAuth(
            config.users,
            config.realm,
            username_case_sensitive=config.username_case_sensitive,
            accept_lowercase_scheme=config.accept_lowercase_basic,
            close_after_407=config.close_after_407,
        )
        self.hooks = Hooks(config.faults, config.watcher)
        self.upstream = Upstream(
            resolver, config.connect_timeout_s, via=config.upstream, pass_credentials=not self.auth.enabled
        )
        self.plain: PlainPath | None = None  # the plain path, when on (made in start())
        self._stats = ProxyStats()  # counted on the event loop's thread (the plain path counts its own)
        self._log = ProxyLog(logger)
        self._server: asyncio.Server | Listener | None = None
        self._address: Address | None = None
        self._conns: set[ClientProtocol] = set()
        self._tunnels: set[Tunnel] = set()
        self._ids = itertools.count(1)
        self._max_buffer = config.max_request_line + config.max_header_bytes + 65536
        self._heads: dict[bytes, tuple[ConnectRequest, int]] = {}  # see parse_head
        # Without a handle_client fault the connection parses its first head itself and starts the
        # handler only once the head is in (ClientProtocol's docstring says why).
        self._head_parser = None if self.hooks.client else self.parse_head
        # The header timeout: one length for every connection, so they share one timer handle.
        self._head_deadlines = Deadlines(config.header_timeout_s, ClientProtocol.start_handler)
        # The plain path needs the head parsed by the connection, and a resolver that can answer
        # without waiting (or an upstream proxy to chain to); a watcher sees every tunnel itself.
        self._plain_wanted = (
            config.plain_path and EPOLL_AVAILABLE and self._head_parser is not None and self.upstream.answers_at_once
            and config.watcher is None
        )  # fmt: skip

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.config.check_exposure()
        loop = asyncio.get_running_loop()
        host, port = self.config.listen
        if self._plain_wanted:
            self.plain = PlainPath(
                self, loop, max_connections=self.config.max_connections, connect_timeout_s=self.config.connect_timeout_s
            )
            self._log.follow(self.plain.take_records)
        if self.plain is not None and (self._listen_socket is not None or is_ip(host)):
            # The plain path accepts on its own, on its thread: one handler from accept to the 200.
            sock = self._listen_socket or listening_socket(host, port)
            self._server = self.plain.listen(sock, defer=self.config.defer_accept)
        elif self._listen_socket is not None:
            self._server = await loop.create_server(self._accept, sock=self._listen_socket, backlog=BACKLOG)
        else:
            self._server = await loop.create_server(self._accept, host, port, reuse_address=True, backlog=BACKLOG)
        self._address = address_of(self._server.sockets[0].getsockname())
        self.upstream.listening_on(self._address)
        self._record("listening", f"lab proxy listening on {self.url} ({self._describe()})")
        for fault in self.config.faults:  # faults with an engine of their own (tls_inspect) start here
            await fault.start()

    @property
    def address(self) -> Address:
        if self._address is None:
            raise RuntimeError("LabProxy.address read before start()")
        return self._address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop listening, give open tunnels `grace_s` to finish, then abort what is left; no task remains."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for conn in list(self._conns):
            if conn.phase == "head":
                conn.abort()  # idle or mid-head: nothing to preserve
        waits: set[asyncio.Future[None]] = {c.task for c in self._conns if c.task is not None and not c.task.done()}
        if self.plain is not None:
            waits.add(self.plain.idle())
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace_s)
            if pending:
                self._abort_tunnels()
                for conn in list(self._conns):
                    conn.abort()
                _, pending = await asyncio.wait(pending, timeout=1.0)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)
        self._head_deadlines.close()
        self.upstream.close()
        if self.plain is not None:
            self.plain.close()  # aborts a tunnel it set up after the wait above, then ends its thread
        for fault in self.config.faults:
            await fault.stop()
        self._record("stopped", f"lab proxy {self.url} stopped")

    def _abort_tunnels(self) -> None:
        for tunnel in list(self._tunnels):
            tunnel.abort()
        if self.plain is not None:
            self.plain.abort_all()


    def _describe(self) -> str:
        auth = f"Basic auth, {len(self.config.users)} user(s)" if self.config.users else "no auth"
        faults = ", ".join(f.name for f in self.config.faults) or "no faults"
        plain = "; plain path on" if self.plain is not None else ""
        return f"{auth}; {faults}{plain}"

    # -- what it remembers --------------------------------------------------------------------------
    @property
    def stats(self) -> ProxyStats:
        """Counters since the proxy started (with the plain path on, a sum of both paths' counters)."""
        if self.plain is None:
            return self._stats
        return self._stats.merged(self.plain.stats)

    @property
    def log(self) -> deque[ProxyLogRecord]:
        """Recent records, oldest first (at most 2000)."""
        return self._log.records()

    def _record(
        self, event: Event, message: str, *, client: str = "", target: str = "", level: int = logging.INFO
    ) -> None:
        self._log.add(ProxyLogRecord.now(event, message, client, target), level)

    # -- one connection -----------------------------------------------------------------------------
    def _accept(self) -> ClientProtocol:
        """The protocol for one accepted connection (create_server's factory)."""
        stats = self._stats
        stats.connections += 1
        stats.connections_open += 1
        return self._client_protocol()

    def _client_protocol(self) -> ClientProtocol:
        """A ClientProtocol for a connection already counted as accepted."""
        conn = ClientProtocol(
            self._serve,
            conn_id=next(self._ids),
            max_buffer=self._max_buffer,
            head_parser=self._head_parser,
            head_deadlines=self._head_deadlines,
            on_lost_early=self._lost_early,
            router=self._plain_route if self.plain is not None else None,
        )
        self._conns.add(conn)  # known to stop() even before its handler first runs
        conn.over_limit = self.connections_open() > self.config.max_connections
        conn.tunnel_opener = self._tunnel
        conn.ctx_factory = self._new_ctx
        if self.auth.enabled:
            conn.auth_required = True
            conn.check_credentials = self.auth.check
        return conn

    def _new_ctx(self, conn: ClientProtocol, host: str, port: int) -> Ctx:
        return Ctx(
            client=conn.peer, proxy=self.address, host=host, port=port, conn_id=conn.conn_id,
            password_of=self.auth.password_of if self.auth.enabled else None,
        )  # fmt: skip

    def parse_head(self, buf: bytes | bytearray) -> tuple[ConnectRequest, int] | None:
        """parse_connect with this proxy's limits, remembered for heads seen before.

        A client sends the same head byte for byte each time it opens a tunnel to the same target
        (same host, same User-Agent, same credentials), and parse_connect is a pure function of
        the bytes, so a buffer that is exactly one complete head maps to the same (immutable)
        request; the table is small and starts over when full. Errors and partial heads are never
        remembered.
        """
        limits = self.config.max_request_line, self.config.max_header_bytes
        if len(buf) > _MEMO_HEAD_BYTES:
            return parse_connect(buf, max_request_line=limits[0], max_header_bytes=limits[1])
        key = bytes(buf)
        parsed = self._heads.get(key)
        if parsed is None:
            parsed = parse_connect(key, max_request_line=limits[0], max_header_bytes=limits[1])
            if parsed is not None and parsed[1] == len(key):
                if len(self._heads) >= _MEMO_HEADS:
                    self._heads.clear()
                self._heads[key] = parsed
        return parsed

    def connections_open(self) -> int:
        """Client connections open now, on both paths."""
        open_here = self._stats.connections_open
        return open_here if self.plain is None else open_here + self.plain.stats.connections_open

    def _record_incomplete_head(self, conn: ClientProtocol) -> None:
        if conn.buffer.strip():
            client = _client_of(conn)
            self._record(
                "client_error",
                f"client {client} closed after sending an incomplete request head ({len(conn.buffer)} bytes)",
                client=client,
            )

    def _lost_early(self, conn: ClientProtocol) -> None:
        """A connection lost before its handler started (reset, or stop() while it sent nothing)."""
        self._record_incomplete_head(conn)
        conn.buffer.clear()
        self._conns.discard(conn)
        self._stats.connections_open -= 1

    def _conn_done(self, conn: ClientProtocol) -> None:
        """A client connection's handling ended (the end of `_serve`)."""
        self._conns.discard(conn)
        self._stats.connections_open -= 1
        if not conn.detached and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()

    def _handler_failed(self, conn: ClientProtocol) -> None:
        logger.exception("lab proxy: connection from %s failed", _client_of(conn))
        conn.abort()

    # -- PlainHost: what the plain path asks of this proxy ------------------------------------------
    def plain_target(self, request: ConnectRequest) -> tuple[Address, str | None] | None:
        """Where a first request goes and for which user, when no fault, refusal or slow resolver
        concerns it; else None. Decided from the parsed head alone, without side effects: None
        leaves everything to `_serve`, which then decides (and answers) as it always does."""
        user: str | None = None
        if self.auth.enabled:
            result = self.auth.verify(request.get("Proxy-Authorization"))
            if not result.ok:
                return None
            user = result.user
        host, port = request.host, request.port
        if self.hooks.any_in_scope(host, port):
            return None
        address = self.upstream.address_now(host, port)
        if address is None or self.upstream.is_self(address):
            return None
        return address, user

    def adopt(self, sock: _socket.socket, data: bytes, handler: Handler | None = None) -> None:
        """Give an accepted socket and the bytes already read from it to a ClientProtocol (the
        general path, or `handler`); counted as accepted already. On the event loop's thread."""
        conn = self._client_protocol()
        if handler is not None:
            conn.handler = handler
            conn.head_parser = None  # the handler starts at once, with no head to wait for
        conn.primed = data
        create_task(self._attach(conn, as_socket(sock)), name=f"proxy-adopt-{conn.conn_id}")

    def answer_connect_failure(self, sock: _socket.socket, request: ConnectRequest, failure: ConnectFailure) -> None:
        """A plain connection whose upstream did not answer: the refusal the general path gives."""
        self.adopt(sock, b"", functools.partial(self._refuse_failed_connect, request, failure))

    async def _refuse_failed_connect(self, request: ConnectRequest, failure: ConnectFailure, conn: ClientProtocol) -> None:
        conn.phase = "upstream"
        try:
            ctx = self._new_ctx(conn, request.host, request.port)
            ctx.request = request
            await self._refuse(conn, ctx, failure.refusal(ctx.authority))
        except Exception:
            self._handler_failed(conn)
        finally:
            self._conn_done(conn)

    async def _attach(self, conn: ClientProtocol, sock: socket.socket) -> None:
        try:
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, sock)
            if self._server is None:  # stop() ran meanwhile and could not see this connection's transport
                transport.abort()
        except Exception as exc:  # the socket failed before it had a transport: as if lost at once
            logger.debug("lab proxy: connection %d lost on accept: %r", conn.conn_id, exc)
            sock.close()
            if conn.task is None and conn.head_parser is not None:
                conn.connection_lost(exc)
            else:
                self._conn_done(conn)

    def _plain_route(self, conn: ClientProtocol) -> Coroutine[Any, Any, None] | None:
        """The plain path for a connection whose first head, parsed by the connection, it may take."""
        request, size = conn.parsed
        if conn.over_limit:
            return None
        target = self.plain_target(request)
        if target is None:
            return None
        conn.parsed = None
        conn.consume(size)
        conn.phase = "upstream"
        self._stats.requests += 1
        return self._to_plain(conn, request, *target)

    async def _to_plain(self, conn: ClientProtocol, request: ConnectRequest, address: Address, user: str | None) -> None:
        """Hand the connection's socket to the plain path, which answers it from now on."""
        assert self.plain is not None
        try:
            if conn.lost or conn.transport is None or conn.transport.is_closing():
                self._conn_done(conn)
                return
            client = conn.take_socket()
        except Exception:
            self._handler_failed(conn)
            self._conn_done(conn)
            return
        self._conns.discard(conn)  # the plain path counts the connection's end from here on
        self.plain.take(client, request, user, address, conn.peer)

    # -- the general path ---------------------------------------------------------------------------
    async def _serve(self, conn: ClientProtocol) -> None:
        over_limit = conn.over_limit
        try:
            for fault in self.hooks.client:
                if await fault.handle_client(conn):
                    return
            for n in range(self.config.max_requests_per_connection):
                if n == 0 and conn.parsed is not None:  # parsed by the connection before this started
                    request, size = conn.parsed
                    conn.parsed = None
                    conn.consume(size)
                    conn.phase = "upstream"
                else:
                    request = await self._read_request(conn, first=n == 0)
                    if request is None:
                        return
                self._stats.requests += 1
                ctx = self._new_ctx(conn, request.host, request.port)
                ctx.request = request
                if over_limit:
                    limit = self.config.max_connections
                    refusal = lab_error(
                        503,
                        f"the proxy has {limit} connections open; try again later",
                        why=f"more than max_connections={limit} open connections",
                    )
                    await self._refuse(conn, ctx, refusal)
                    return
                answer = self._authenticate(ctx)
                if answer is not None and answer.keep_alive and not request.persistent:
                    answer = answer.closing()
                if answer is not None:
                    await self._refuse(conn, ctx, answer)
                    if answer.action == "respond" and answer.keep_alive:
                        continue  # RFC 9110 §11.7.1: the client MAY repeat the request
                    return
                await self._tunnel(conn, ctx, self.hooks.answer_for(ctx))
                return
            await conn.close()
        except Exception:
            self._handler_failed(conn)
        finally:
            self._conn_done(conn)

    async def _read_request(self, conn: ClientProtocol, *, first: bool) -> ConnectRequest | None:
        """The next CONNECT head, or None when the client left (after answering any error)."""
        loop = asyncio.get_running_loop()
        timeout_s = self.config.header_timeout_s
        if first and conn.head_deadline is not None:
            deadline = conn.head_deadline  # counted from the accept (the handler may start later)
        else:
            deadline = loop.time() + timeout_s
        conn.phase = "head"
        while True:
            try:
                parsed, error = conn.take_parsed()  # what the connection parsed before the handler ran
                if error is not None:
                    raise error
                if parsed is None:
                    parsed = self.parse_head(conn.buffer)
            except RemoteProtocolError as exc:
                status = exc.error_status_hint
                headers: tuple[tuple[str, str], ...] = (("Allow", "CONNECT"),) if status == 405 else ()
                refusal = lab_error(status, f"{exc}", why=str(exc), headers=headers)
                await self._refuse(conn, None, refusal, target=target_hint(conn.buffer))
                return None
            if parsed is not None:
                request, size = parsed
                conn.consume(size)
                conn.phase = "upstream"
                return request
            try:
                more = await conn.read_more(deadline - loop.time())
            except TimeoutError:
                if first or conn.buffer:
                    # RFC 9110 §15.5.9 408: "the server did not receive a complete request message
                    # within the time that it was prepared to wait."
                    refusal = lab_error(
                        408,
                        f"no complete CONNECT request within {timeout_s:g} s",
                        why=f"request head incomplete after {timeout_s:g} s ({len(conn.buffer)} bytes received)",
                    )
                    await self._refuse(conn, None, refusal, target=target_hint(conn.buffer))
                else:
                    await conn.close(linger_s=0.1)
                return None
            if not more:
                self._record_incomplete_head(conn)
                await conn.close(linger_s=0.1)
                return None

    def _authenticate(self, ctx: Ctx) -> Refusal | None:
        answer: Refusal | None = None
        if not self.auth.enabled:
            ctx.auth_why = "no authentication configured"
        elif ctx.request is not None:
            result = self.auth.verify(ctx.request.get("Proxy-Authorization"))
            ctx.user, ctx.auth_why = result.user, result.why
            if not result.ok:
                answer = self.auth.challenge(result.why)
        return self.hooks.on_auth(ctx, answer)

    async def _refuse(
        self, conn: ClientProtocol, ctx: Ctx | None, refusal: Refusal, answer: AnswerFn | None = None, *, target: str = ""
    ) -> None:
        """Answer `refusal` (or close or reset as it says), after recording it."""
        record = refused(_client_of(conn), ctx.authority if ctx is not None else target, refusal)
        self._stats.refusals[record.status or 0] += 1
        self._log.add(record)
        if self.config.watcher is not None and ctx is not None:
            self.config.watcher.refused(ctx, refusal)
        if refusal.action == "reset":
            conn.reset()
            return
        if refusal.action == "close":
            await conn.close(linger_s=0.2)
            return
        conn.write(answer(refusal) if answer is not None else refusal.to_bytes())
        if not refusal.keep_alive:
            await conn.close()
        else:
            with contextlib.suppress(TimeoutError):
                await conn.drain()

    # -- the tunnel ---------------------------------------------------------------------------------
    async def _tunnel(self, conn: ClientProtocol, ctx: Ctx, answer: AnswerFn) -> None:
        """on_connect, resolve, connect, announce, relay (ClientConn.tunnel for handle_client faults).

        When no resolve or open_upstream fault is in scope, the upstream is connected straight into
        the tunnel's transport (`create_connection` to the resolved address), which saves the
        socket hand-over that a fault's `open_upstream` needs; the steps and answers are the same.
        """
        conn.phase = "upstream"
        refusal = await self.hooks.on_connect(ctx)
        if refusal is not None:
            await self._refuse(conn, ctx, refusal, answer)
            return
        if self.hooks.wrap_upstream(ctx) or self.upstream.chained:
            tunnel = await self._open_via_hooks(conn, ctx, answer)
        else:
            tunnel = Tunnel(ctx, self._stats, self.hooks.stages(ctx))
            try:
                addresses = await self.upstream.resolve(ctx, ctx.host, ctx.port)
                self.upstream.check_loop(ctx, addresses)
                await self.upstream.connect(ctx, addresses, tunnel.upstream)
            except Refuse as exc:
                await self._refuse(conn, ctx, exc.refusal, answer)
                return
        if tunnel is None:
            return
        if conn.lost or conn.transport is None:
            tunnel.abort()
            return
        conn.write(answer(None))
        transport, leftover, eof = conn.detach()
        tunnel.attach_client(transport, leftover, eof)
        self._tunnels.add(tunnel)
        self._stats.tunnels += 1
        self._stats.tunnels_open += 1
        client = _client_of(conn)
        # Tunnels are logged at DEBUG (refusals at INFO): two lines per tunnel on stderr would cost
        # more than the rest of a setup. LabProxy.log keeps both records either way.
        self._log.add(tunnel_opened(ctx.authority, client, ctx.user), logging.DEBUG)
        tunnel.start()
        try:
            await tunnel.done
        finally:
            self._tunnels.discard(tunnel)
            self._stats.tunnels_open -= 1
            up, down = tunnel.bytes_client_to_upstream, tunnel.bytes_upstream_to_client
            self._log.add(tunnel_closed(ctx.authority, client, up, down, tunnel.why_closed), logging.DEBUG)
            if self.config.watcher is not None:
                self.config.watcher.closed(ctx, tunnel, tunnel.why_closed)

    async def _open_via_hooks(self, conn: ClientProtocol, ctx: Ctx, answer: AnswerFn) -> Tunnel | None:
        """The upstream socket from the resolve/open_upstream chain (chained: through the upstream
        proxy), wrapped in a Tunnel (None: answered, or handed open to the plain path)."""
        resolve = functools.partial(self.upstream.resolve, ctx)
        try:
            sock = await self.hooks.open_chain(ctx, resolve, functools.partial(self.upstream.opener, ctx))(
                ctx.host, ctx.port
            )
        except Refuse as exc:
            await self._refuse(conn, ctx, exc.refusal, answer)
            return None
        if conn.lost or conn.transport is None or conn.transport.is_closing():
            sock.close()
            return None
        if self.plain is not None and self.upstream.chained and ctx.request and self.hooks.relays_unchanged(ctx):
            # Chained, and nothing on the lab side watches the tunnel: the plain path relays it (splice for bulk).
            self.plain.take_open(conn.take_socket(), sock, ctx.request, ctx.user, conn.peer)
            return None
        tunnel = Tunnel(ctx, self._stats, self.hooks.stages(ctx))
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: tunnel.upstream, sock=sock)
        except OSError as exc:
            sock.close()
            refusal = lab_error(502, f"upstream {ctx.authority} failed: {exc}", why=f"upstream socket failed: {exc!r}")
            await self._refuse(conn, ctx, refusal, answer)
            return None
        return tunnel


def _client_of(conn: ClientProtocol) -> str:
    peer = conn.peer
    return f"{peer[0]}:{peer[1]}"
