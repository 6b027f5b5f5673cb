"""The lab proxy server: accepts connections, answers CONNECT, runs the faults' hooks, relays tunnels.

Pipeline for one client connection (the hooks are described in `proxy_lab.proxy.faults`):
handle_client -> read the CONNECT head (sans-IO `parse_connect`; 400/405/408/414/431/505) ->
Basic auth + on_auth (407, keep-alive retry) -> on_connect -> resolve (503 ERR_DNS_FAIL) ->
loop check (403) -> connect (503 ERR_CONNECT_FAIL 111 / 504 on timeout) -> established_response
(`HTTP/1.1 200 Connection established`) -> relay with the faults' stages until both sides close.

A request that no fault, refusal or slow resolver concerns takes the plain path instead
(`proxy_lab.proxy.fastpath`, chosen by `_plain_target` from the parsed head): the proxy accepts on
its own (`proxy_lab.proxy.listener`), and a head that arrives whole is tunnelled on the bare
sockets within the accept callback, watched by the proxy's own epoll set (`proxy_lab.proxy.poller`);
anything else goes to a `ClientProtocol` with the bytes read so far. The same steps and answers as
the general path with a fraction of the work per setup, and bulk tunnels relayed by splice(2)
(`proxy_lab.proxy.splice`). `run_proxy` (the CLI) serves from one process per core when no fault is
configured (`proxy_lab.proxy.workers`).

Every refusal is one log line naming client, target, status and reason, in `LabProxy.log` and on
the `proxy_lab.proxy` logger at INFO; tunnels opening and closing are records in `LabProxy.log` and
DEBUG lines (two INFO lines per tunnel on stderr cost more than the rest of a setup). Credentials
never reach either.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import dataclasses
import errno as errno_mod
import functools
import ipaddress
import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, cast, get_args

from proxy_lab.errors import ConfigError, RemoteProtocolError
from proxy_lab.proxy import poller
from proxy_lab.proxy.auth import BasicAuth
from proxy_lab.proxy.chain import Refused, UpstreamProxy, open_via_upstream
from proxy_lab.proxy.conn import ClientProtocol
from proxy_lab.proxy.deadlines import Deadlines, Timeouts
from proxy_lab.proxy.events import ConnectRequest, Refusal
from proxy_lab.proxy.fastpath import (
    DONTWAIT,
    ESTABLISHED,
    PlainTunnel,
    refuse_connect,
    relay_chained,
    serve_plain,
)
from proxy_lab.proxy.faults.base import AnswerFn, Ctx, Fault, OpenNext, Refuse, ResolveNext, Stage
from proxy_lab.proxy.listener import BACKLOG, Listener, as_socket, listening_socket
from proxy_lab.proxy.parse import parse_connect
from proxy_lab.proxy.records import Event, ProxyLogRecord, ProxyStats
from proxy_lab.proxy.relay import Tunnel
from proxy_lab.proxy.responses import lab_error, squid_connect_fail, squid_dns_fail
from proxy_lab.proxy.watch import TunnelWatcher
from proxy_lab.resolver import Address, MapResolver, ResolveError, Resolver, SystemResolver, address_of, is_ip
from proxy_lab.tasks import create_task

logger = logging.getLogger("proxy_lab.proxy")

MAX_ADDRESSES = 16  # upstream addresses tried per request
_MEMO_HEADS = 512  # request heads remembered by _parse_head
_MEMO_HEAD_BYTES = 1024  # longer heads are parsed every time
FIRST_READ = 65536  # bytes read on accept by the plain path: more than the largest head allowed by default
_Hook = Literal["on_auth", "on_connect", "resolve", "open_upstream", "established_response", "stream"]


@dataclass
class ProxyConfig:
    """Everything the lab proxy is told; validated when made (ConfigError names the field)."""

    listen: tuple[str, int] = ("127.0.0.1", 0)
    users: dict[str, str] = field(default_factory=dict)  # name -> password; empty = no auth
    realm: str = "proxy-lab"
    username_case_sensitive: bool = True
    accept_lowercase_basic: bool = True  # False: only `Basic` (some proxies reject `basic`)
    close_after_407: bool = False  # True: 407 carries Connection: close and the proxy closes
    faults: list[Fault] = field(default_factory=list)
    max_request_line: int = 8192  # bytes; longer -> 414
    max_header_bytes: int = 32768  # bytes; larger head -> 431
    header_timeout_s: float = 10.0  # no complete head in time -> 408 and close (slowloris)
    connect_timeout_s: float = 10.0  # per upstream address; then 504 (Squid ERR_CONNECT_FAIL)
    max_connections: int = 4096  # open client connections; beyond -> 503
    max_requests_per_connection: int = 100  # bounds the 407 retry loop on one connection
    allow_open: bool = False  # a non-loopback listen address without users refuses to start unless True
    # Processes serving the listening socket under `run_proxy` (the CLI; embedded proxies are one
    # asyncio server). 0 = automatic: one per CPU core, at most 4, when no fault is configured (a
    # fault may keep state across connections), else 1.
    workers: int = 0
    # Linux: accept a connection only once its first bytes are in (TCP_DEFER_ACCEPT, as Squid's
    # `accept_filter data` and nginx's `listen ... deferred`): one wake-up per setup instead of two.
    # A client that connects and stays silent is then held by the kernel, not the proxy, for a
    # second or so before it is accepted, counted against max_connections and timed for its head.
    defer_accept: bool = True
    # Linux, `run_proxy` with several workers: each worker runs on a CPU of its own, and while they
    # are lightly loaded a new connection goes to the worker on the CPU that received it
    # (proxy_lab/proxy/steering.py). False: workers float, and the kernel's hash spreads connections.
    cpu_affinity: bool = True
    # -- chaining and recording (proxy_lab/proxy/chain.py, proxy_lab/record/) --
    upstream: UpstreamProxy | None = None  # every tunnel opened through this proxy; no name resolved here
    watcher: TunnelWatcher | None = None  # sees every tunnel and refusal (the recorder); one worker then

    def __post_init__(self) -> None:
        if isinstance(self.listen, list):  # from TOML or JSON
            self.listen = tuple(self.listen)  # type: ignore[assignment]
        if not (isinstance(self.listen, tuple) and len(self.listen) == 2 and isinstance(self.listen[1], int)):
            raise ConfigError(f"proxy listen: {self.listen!r}: expected (host, port)")
        if not 0 <= self.listen[1] < 65536:
            raise ConfigError(f"proxy listen: port {self.listen[1]} outside 0-65535")
        for name in self.users:
            if not name or ":" in name:
                raise ConfigError(
                    f"proxy users: user name {name!r} must be non-empty and contain no ':' (RFC 7617)"
                )
        if any(ord(c) < 0x20 or c == "\x7f" for c in self.realm):
            raise ConfigError(f"proxy realm {self.realm!r}: control characters are not allowed")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"proxy workers: {self.workers!r}: expected 0 (automatic) or a number of processes")
        for key in ("max_request_line", "max_header_bytes", "max_connections", "max_requests_per_connection"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"proxy {key}: {getattr(self, key)!r}: expected a positive number")
        for key in ("header_timeout_s", "connect_timeout_s"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"proxy {key}: {getattr(self, key)!r}: expected seconds > 0")
        for f in self.faults:
            if not isinstance(f, Fault):
                raise ConfigError(f"proxy faults: {f!r} is not a Fault (build faults with make_fault)")

    def check_exposure(self) -> None:
        """Refuse to become an open proxy: a non-loopback listen address needs users or allow_open."""
        host = self.listen[0]
        if _is_loopback(host) or self.users or self.allow_open:
            return
        raise ConfigError(
            f"proxy listen {host}:{self.listen[1]} is not a loopback address and no users are configured: "
            "that is an open proxy; add users or set allow_open"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LabProxy:
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
        self.stats = ProxyStats()
        self._log: deque[ProxyLogRecord | _PlainEntry] = deque(maxlen=2000)  # see `log`
        self._log_lazy = False  # _log may hold _PlainEntry items
        self._log_lock = threading.Lock()  # between the plain path's thread appending them and `log`
        self._server: asyncio.Server | Listener | None = None
        self._address: Address | None = None
        self._conns: set[ClientProtocol] = set()
        self._tunnels: set[Tunnel | PlainTunnel] = set()
        self._ids = itertools.count(1)
        self._client_hooks = [f for f in config.faults if f.overrides("handle_client")]
        # The faults that override each hook, found once: with none, a hook costs one dict lookup.
        self._hooked: dict[str, list[Fault]] = {
            hook: [f for f in config.faults if f.overrides(hook)] for hook in get_args(_Hook)
        }
        # Exactly these classes: a subclass may resolve differently, and goes through resolve().
        self._system_resolver = type(resolver) is SystemResolver
        self._max_buffer = config.max_request_line + config.max_header_bytes + 65536
        self._heads: dict[bytes, tuple[ConnectRequest, int]] = {}  # see _parse_head
        # Without a handle_client fault the connection parses its first head itself and starts the
        # handler only once the head is in (ClientProtocol's docstring says why).
        self._head_parser = None if self._client_hooks else self._parse_head
        # The header and connect timeouts: fixed lengths, so each kind shares one timer handle.
        self._head_deadlines = Deadlines(config.header_timeout_s, ClientProtocol.start_handler)
        self._connect_timeouts = Timeouts(config.connect_timeout_s)
        # The plain path (fastpath.py) needs the head parsed by the connection, and knows how to
        # resolve without waiting only with these resolvers.
        self._plain_possible = (
            poller.AVAILABLE and self._head_parser is not None and type(resolver) in (SystemResolver, MapResolver)
            and config.watcher is None  # recorded: the general path (chained: see _chain_plain)
        )
        self._poller: poller.Poller | None = None  # the plain path's sockets (made in start())
        self._request_hooks = [
            hook for hook in ("on_auth", "on_connect", "resolve", "open_upstream", "established_response", "stream")
            if self._hooked[hook]
        ]  # fmt: skip
        self._own_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.config.check_exposure()
        loop = asyncio.get_running_loop()
        host, port = self.config.listen
        if self._plain_possible:
            self._poller = poller.Poller(loop)
        if self._poller is not None and (self._listen_socket is not None or is_ip(host)):
            # The plain path accepts on its own (fastpath.py), on the poller's thread: one handler
            # from accept to the 200.
            sock = self._listen_socket or listening_socket(host, port)
            self._server = Listener(self._poller, sock, self._accept_plain, defer=self.config.defer_accept)
        elif self._listen_socket is not None:
            self._server = await loop.create_server(self._accept, sock=self._listen_socket, backlog=BACKLOG)
        else:
            self._server = await loop.create_server(self._accept, host, port, reuse_address=True, backlog=BACKLOG)
        sock = self._server.sockets[0]
        self._address = address_of(sock.getsockname())
        with contextlib.suppress(ValueError):
            self._own_ip = ipaddress.ip_address(self._address[0])
        self._record("listening", f"lab proxy listening on {self.url} ({self._describe()})")
        for fault in self.config.faults:  # faults with an engine of their own (tls_inspect) start here
            await fault.start()

    def _accept(self) -> ClientProtocol:
        """The protocol for one accepted connection (create_server's factory)."""
        stats = self.stats
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
            router=self._plain_route if self._plain_possible else None,
        )
        self._conns.add(conn)  # known to stop() even before its handler first runs
        conn.over_limit = self.stats.connections_open > self.config.max_connections
        conn.tunnel_opener = self._tunnel
        conn.ctx_factory = self._new_ctx
        if self.auth.enabled:
            conn.auth_required = True
            conn.check_credentials = self.auth.check
        return conn

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
        tasks: set[asyncio.Future[None]] = {c.task for c in self._conns if c.task is not None and not c.task.done()}
        # A snapshot: the plain path's thread adds and removes its tunnels meanwhile.
        tasks |= {t.wait_closed() for t in list(self._tunnels) if isinstance(t, PlainTunnel)}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
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
        self._connect_timeouts.close()
        if self._poller is not None:
            # A tunnel the plain path's thread set up after the snapshot above: aborted there,
            # before the thread ends (its calls run in order, then it stops).
            self._abort_tunnels()
            self._poller.close()
            self._poller = None
        for fault in self.config.faults:
            await fault.stop()
        self._record("stopped", f"lab proxy {self.url} stopped")

    def _abort_tunnels(self) -> None:
        """Drop every tunnel still open; a plain tunnel on the poller's thread, which owns it."""
        for tunnel in list(self._tunnels):  # a snapshot: the poller's thread changes the set
            if isinstance(tunnel, PlainTunnel):
                tunnel.poller.call(tunnel.abort)
            else:
                tunnel.abort()

    async def __aenter__(self) -> LabProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _describe(self) -> str:
        auth = f"Basic auth, {len(self.config.users)} user(s)" if self.config.users else "no auth"
        faults = ", ".join(f.name for f in self.config.faults) or "no faults"
        return f"{auth}; {faults}"

    # -- logging ------------------------------------------------------------------------------------
    @property
    def log(self) -> deque[ProxyLogRecord]:
        """Recent records, oldest first (at most 2000).

        A plain tunnel's two records are kept as bare tuples until someone reads them: formatting
        two messages and building two records per tunnel would cost a tenth of a setup.
        """
        log = self._log
        if self._log_lazy:
            with self._log_lock:  # the plain path's thread appends meanwhile
                self._log_lazy = False
                for i, entry in enumerate(log):
                    if type(entry) is tuple:
                        log[i] = _plain_record(entry)
        return cast(deque[ProxyLogRecord], log)

    def _record(
        self,
        event: Event,
        message: str,
        *,
        client: str = "",
        target: str = "",
        status: int | None = None,
        reason: str = "",
        level: int = logging.INFO,
    ) -> None:
        self._log.append(ProxyLogRecord.now(event, message, client, target, status, reason))
        if logger.isEnabledFor(level):
            logger.log(level, "%s", message)

    # -- one connection -----------------------------------------------------------------------------
    def _new_ctx(self, conn: ClientProtocol, host: str, port: int) -> Ctx:
        return Ctx(
            client=conn.peer, proxy=self.address, host=host, port=port, conn_id=conn.conn_id,
            password_of=self.auth.password_of if self.auth.enabled else None,
        )  # fmt: skip

    def _faults(self, ctx: Ctx, hook: _Hook) -> list[Fault]:
        return self._faults_for(ctx.host, ctx.port, hook)

    def _faults_for(self, host: str, port: int, hook: str) -> list[Fault]:
        """The faults in scope for (host, port) that override `hook`, in configured order."""
        hooked = self._hooked[hook]
        if not hooked:
            return hooked
        return [f for f in hooked if f.applies(host, port)]

    def _parse_head(self, buf: bytes | bytearray) -> tuple[ConnectRequest, int] | None:
        """parse_connect with this proxy's limits, remembered for heads seen before.

        A client sends the same head byte for byte each time it opens a tunnel to the same target
        (same host, same User-Agent, same credentials), and parse_connect is a pure function of
        the bytes, so a buffer that is exactly one complete head maps to the same (immutable)
        request; the table is small and starts over when full. Errors and partial heads are never
        remembered.
        """
        if len(buf) > _MEMO_HEAD_BYTES:
            return parse_connect(
                buf, max_request_line=self.config.max_request_line, max_header_bytes=self.config.max_header_bytes
            )
        key = bytes(buf)
        parsed = self._heads.get(key)
        if parsed is None:
            parsed = parse_connect(
                key, max_request_line=self.config.max_request_line, max_header_bytes=self.config.max_header_bytes
            )
            if parsed is not None and parsed[1] == len(key):
                if len(self._heads) >= _MEMO_HEADS:
                    self._heads.clear()
                self._heads[key] = parsed
        return parsed

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
        self.stats.connections_open -= 1

    # -- the plain path (fastpath.py) ---------------------------------------------------------------
    def _plain_target(self, request: ConnectRequest) -> tuple[Address, str | None] | None:
        """Where a first request goes and for which user, when no fault, refusal or slow resolver
        concerns it; else None. Decided from the parsed head alone, without side effects: None
        leaves everything to `_serve`, which then decides (and answers) as it always does."""
        user: str | None = None
        if self.config.upstream is not None:  # chained: the general path opens it (then _chain_plain)
            return None
        if self.auth.enabled:
            result = self.auth.verify(request.get("Proxy-Authorization"))
            if not result.ok:
                return None
            user = result.user
        host, port = request.host, request.port
        for hook in self._request_hooks:
            if self._faults_for(host, port, hook):
                return None
        if self._system_resolver:
            if not _is_canonical_ip(host):
                return None
            address = (host, port)
        else:
            try:
                address = cast(MapResolver, self.resolver).lookup(host, port)
            except ResolveError:
                return None
            if not is_ip(address[0]):
                return None
        if self._is_self(address):
            return None
        return address, user

    def _plain_route(self, conn: ClientProtocol) -> Coroutine[Any, Any, None] | None:
        """`serve_plain` for a connection whose first head (parsed by the connection) `_plain_target` takes."""
        request, size = conn.parsed
        if conn.over_limit:
            return None
        target = self._plain_target(request)
        if target is None:
            return None
        conn.parsed = None
        conn.consume(size)
        conn.phase = "upstream"
        self.stats.requests += 1
        return serve_plain(self, conn, request, target[1], target[0])

    def _accept_plain(self, sock: _socket.socket, peer: Address) -> None:
        """One accepted connection (Listener's callback): the plain path when its first read holds a
        head that `_plain_target` takes, else a `ClientProtocol` with what was read, as create_server
        would have made it. On the poller's thread."""
        poller = self._poller
        assert poller is not None
        stats = self.stats
        stats.connections += 1
        stats.connections_open += 1
        try:
            data = sock.recv(FIRST_READ, DONTWAIT)
        except OSError:  # nothing yet (no TCP_DEFER_ACCEPT), or a reset: the general path waits or records it
            data = b""
        if data and stats.connections_open <= self.config.max_connections:
            try:
                parsed = self._parse_head(data)
            except Exception:  # the general path answers it (400, 405, ...)
                parsed = None
            if parsed is not None:
                request, size = parsed
                target = self._plain_target(request)
                if target is not None:
                    stats.requests += 1
                    address, user = target
                    tunnel = PlainTunnel(self, poller, request, user, peer)
                    tunnel.connect(address, (sock, data[size:]), self._plain_refused)
                    return
        poller.to_loop(self._adopt, sock, data)  # the general path, on the event loop's thread

    def _plain_refused(self, tunnel: PlainTunnel, code: int, message: str, timed_out: bool) -> None:
        """An accepted plain connection whose upstream did not answer: 503/504 from the general path."""
        assert tunnel.waiting is not None
        sock, _ = tunnel.waiting
        assert tunnel.address is not None
        refuser = self._refuser(tunnel.request, tunnel.address, code, message, timed_out)
        tunnel.poller.to_loop(self._adopt, sock, b"", refuser)

    def _refuser(
        self, request: ConnectRequest, address: Address, code: int, message: str, timed_out: bool
    ) -> Callable[[ClientProtocol], Coroutine[Any, Any, None]]:
        """The handler of a plain connection whose upstream did not answer: 503/504, then done."""

        async def refuse(conn: ClientProtocol) -> None:
            conn.phase = "upstream"
            try:
                await refuse_connect(self, conn, request, address, code, message, timed_out=timed_out)
            except Exception:
                self._handler_failed(conn)
            finally:
                self._conn_done(conn)

        return refuse

    def _adopt(
        self,
        sock: _socket.socket,
        data: bytes,
        handler: Callable[[ClientProtocol], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """Give an accepted socket and the bytes already read from it to a ClientProtocol (the
        general path, or `handler`); counted as accepted already."""
        sock = as_socket(sock)
        conn = self._client_protocol()
        if handler is not None:
            conn.handler = handler
            conn.head_parser = None  # the handler starts at once, with no head to wait for
        conn.primed = data
        create_task(self._attach(conn, sock), name=f"proxy-adopt-{conn.conn_id}")

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

    def _plain_opened(self, tunnel: PlainTunnel) -> None:
        stats = self.stats
        stats.tunnels += 1
        stats.tunnels_open += 1
        self._plain_record(tunnel, "tunnel_open", (0, 0))

    def _plain_closed(self, tunnel: PlainTunnel) -> None:
        self._tunnels.discard(tunnel)
        stats = self.stats
        stats.tunnels_open -= 1
        stats.connections_open -= 1  # the client connection ends with its tunnel
        self._plain_record(tunnel, "tunnel_closed", tunnel.moved)

    def _plain_record(self, tunnel: PlainTunnel, event: Event, moved: tuple[int, int]) -> None:
        """The record `_tunnel` makes for the same event, kept as a tuple until `log` is read."""
        entry: _PlainEntry = (
            time.time(), event, tunnel.request, tunnel.peer, tunnel.user, moved[0], moved[1], tunnel.why_closed,
        )  # fmt: skip
        with self._log_lock:
            self._log.append(entry)
            self._log_lazy = True
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", _plain_record(entry).message)

    def _conn_done(self, conn: ClientProtocol) -> None:
        """A client connection's handling ended (the end of `_serve`)."""
        self._conns.discard(conn)
        self.stats.connections_open -= 1
        if not conn.detached and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()

    def _handler_failed(self, conn: ClientProtocol) -> None:
        logger.exception("lab proxy: connection from %s failed", _client_of(conn))
        conn.abort()

    # -- the general path ---------------------------------------------------------------------------
    async def _serve(self, conn: ClientProtocol) -> None:
        over_limit = conn.over_limit
        try:
            for fault in self._client_hooks:
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
                self.stats.requests += 1
                ctx = self._new_ctx(conn, request.host, request.port)
                ctx.request = request
                if over_limit:
                    refusal = lab_error(
                        503,
                        f"the proxy has {self.config.max_connections} connections open; try again later",
                        why=f"more than max_connections={self.config.max_connections} open connections",
                    )
                    await self._refuse(conn, ctx, refusal)
                    return
                answer = self._authenticate(ctx)
                if answer is not None and answer.keep_alive and not _persistent(request):
                    answer = _closing(answer)
                if answer is not None:
                    await self._refuse(conn, ctx, answer)
                    if answer.action == "respond" and answer.keep_alive:
                        continue  # RFC 9110 §11.7.1: the client MAY repeat the request
                    return
                await self._tunnel(conn, ctx, self._answer_for(ctx))
                return
            await conn.close()
        except Exception:
            self._handler_failed(conn)
        finally:
            self._conn_done(conn)

    async def _read_request(self, conn: ClientProtocol, *, first: bool) -> ConnectRequest | None:
        """The next CONNECT head, or None when the client left (after answering any error)."""
        loop = asyncio.get_running_loop()
        if first and conn.head_deadline is not None:
            deadline = conn.head_deadline  # counted from the accept (the handler may start later)
        else:
            deadline = loop.time() + self.config.header_timeout_s
        conn.phase = "head"
        while True:
            try:
                parsed, error = conn.take_parsed()  # what the connection parsed before the handler ran
                if error is not None:
                    raise error
                if parsed is None:
                    parsed = self._parse_head(conn.buffer)
            except RemoteProtocolError as exc:
                status = exc.error_status_hint
                headers: tuple[tuple[str, str], ...] = (("Allow", "CONNECT"),) if status == 405 else ()
                refusal = lab_error(status, f"{exc}", why=str(exc), headers=headers)
                await self._refuse(conn, None, refusal, target=_target_hint(conn.buffer))
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
                        f"no complete CONNECT request within {self.config.header_timeout_s:g} s",
                        why=f"request head incomplete after {self.config.header_timeout_s:g} s ({len(conn.buffer)} bytes received)",
                    )
                    await self._refuse(conn, None, refusal, target=_target_hint(conn.buffer))
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
        for fault in self._faults(ctx, "on_auth"):
            answer = fault.on_auth(ctx, answer)
        return answer

    async def _refuse(
        self,
        conn: ClientProtocol,
        ctx: Ctx | None,
        refusal: Refusal,
        answer: AnswerFn | None = None,
        *,
        target: str = "",
    ) -> None:
        client = _client_of(conn)
        target = ctx.authority if ctx is not None else target
        status = refusal.status if refusal.action == "respond" else 0
        self.stats.refusals[status] += 1
        if self.config.watcher is not None and ctx is not None:
            self.config.watcher.refused(ctx, refusal)
        what = f"CONNECT {target}" if target else "request"
        self._record(
            "refused",
            f"refused {what} from {client}: {refusal.describe()} - {refusal.why or 'no reason given'}",
            client=client,
            target=target,
            status=status,
            reason=refusal.why,
        )
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

    # -- upstream -----------------------------------------------------------------------------------
    async def _tunnel(self, conn: ClientProtocol, ctx: Ctx, answer: AnswerFn) -> None:
        """on_connect, resolve, connect, announce, relay (ClientConn.tunnel for handle_client faults).

        When no resolve or open_upstream fault is in scope, the upstream is connected straight into
        the tunnel's transport (`create_connection` to the resolved address), which saves the
        socket hand-over that a fault's `open_upstream` needs; the steps and answers are the same.
        """
        conn.phase = "upstream"
        for fault in self._faults(ctx, "on_connect"):
            refusal = await fault.on_connect(ctx)
            if refusal is not None:
                await self._refuse(conn, ctx, refusal, answer)
                return
        if self._chain_plain(ctx):
            await self._open_chained_plain(conn, ctx, answer)
            return
        if self._faults(ctx, "resolve") or self._faults(ctx, "open_upstream") or self.config.upstream is not None:
            tunnel = await self._open_via_hooks(conn, ctx, answer)
        else:
            tunnel = Tunnel(ctx, self.stats, self._stages(ctx))
            try:
                addresses = await self._resolve(ctx, ctx.host, ctx.port)
                self._check_loop(ctx, addresses)
                await self._connect_any(ctx, addresses[:MAX_ADDRESSES], tunnel.upstream)
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
        self.stats.tunnels += 1
        self.stats.tunnels_open += 1
        client = f"{ctx.client[0]}:{ctx.client[1]}"
        # Tunnels are logged at DEBUG (refusals at INFO): two lines per tunnel on stderr would cost
        # more than the rest of a setup. LabProxy.log keeps both records either way.
        self._record(
            "tunnel_open",
            f"tunnel {ctx.authority} for {client} open" + (f" (user {ctx.user!r})" if ctx.user else ""),
            client=client,
            target=ctx.authority,
            status=200,
            level=logging.DEBUG,
        )
        tunnel.start()
        try:
            await tunnel.done
        finally:
            self._tunnels.discard(tunnel)
            self.stats.tunnels_open -= 1
            if self.config.watcher is not None:
                self.config.watcher.closed(ctx, tunnel, tunnel.why_closed)
            self._record(
                "tunnel_closed",
                f"tunnel {ctx.authority} for {client} closed: {tunnel.bytes_client_to_upstream} B up, "
                f"{tunnel.bytes_upstream_to_client} B down"
                + (f" ({tunnel.why_closed})" if tunnel.why_closed else ""),
                client=client,
                target=ctx.authority,
                reason=tunnel.why_closed,
                level=logging.DEBUG,
            )

    def _chain_plain(self, ctx: Ctx) -> bool:
        """A chained request that nothing on the lab side watches or rewrites once open: relayed by
        the plain path (fastpath.py, with splice for bulk) after the upstream said 200."""
        return (
            self.config.upstream is not None and self._poller is not None and ctx.request is not None
            and not self._faults(ctx, "stream") and not self._faults(ctx, "established_response")
        )  # fmt: skip

    async def _open_chained_plain(self, conn: ClientProtocol, ctx: Ctx, answer: AnswerFn) -> None:
        try:
            sock = await self._open_chain(ctx)(ctx.host, ctx.port)
        except Refuse as exc:
            await self._refuse(conn, ctx, exc.refusal, answer)
            return
        if conn.lost or conn.transport is None or conn.transport.is_closing():
            sock.close()
            return
        assert ctx.request is not None
        relay_chained(self, conn, ctx.request, ctx.user, sock)

    async def _open_via_hooks(self, conn: ClientProtocol, ctx: Ctx, answer: AnswerFn) -> Tunnel | None:
        """The upstream socket from the resolve/open_upstream chain, wrapped in a Tunnel (None: answered)."""
        try:
            sock = await self._open_chain(ctx)(ctx.host, ctx.port)
        except Refuse as exc:
            await self._refuse(conn, ctx, exc.refusal, answer)
            return None
        if conn.lost:
            sock.close()
            return None
        tunnel = Tunnel(ctx, self.stats, self._stages(ctx))
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: tunnel.upstream, sock=sock)
        except OSError as exc:
            sock.close()
            refusal = lab_error(
                502, f"upstream {ctx.authority} failed: {exc}", why=f"upstream socket failed: {exc!r}"
            )
            await self._refuse(conn, ctx, refusal, answer)
            return None
        return tunnel

    def _stages(self, ctx: Ctx) -> list[Stage]:
        stages: list[Stage] = []
        watching = self.config.watcher.stage(ctx) if self.config.watcher is not None else None
        if watching is not None:  # first: it sees the bytes as they came from either side
            stages.append(watching)
        for fault in self._faults(ctx, "stream"):
            stage = fault.stream(ctx)
            if stage is not None:
                stages.append(stage)
        return stages

    def _answer_for(self, ctx: Ctx) -> AnswerFn:
        """How an HTTP client is answered: the refusal's bytes, or the `established_response` chain."""
        return _http_answer(self, ctx) if self._hooked["established_response"] else _plain_answer

    def _established(self, ctx: Ctx) -> bytes:
        head = ESTABLISHED
        for fault in self._faults(ctx, "established_response"):
            head = fault.established_response(ctx, head)
        return head

    def _open_chain(self, ctx: Ctx) -> OpenNext:
        resolve: ResolveNext = functools.partial(self._resolve, ctx)
        for fault in reversed(self._faults(ctx, "resolve")):
            resolve = _wrap_resolve(fault, ctx, resolve)
        opener: OpenNext = self._base_open(ctx, resolve)
        for fault in reversed(self._faults(ctx, "open_upstream")):
            opener = _wrap_open(fault, ctx, opener)
        return opener

    async def _resolve(self, ctx: Ctx, host: str, port: int) -> list[Address]:
        """The resolver's addresses for (host, port); Refuse (503 ERR_DNS_FAIL) when there are none."""
        if self._system_resolver and _is_canonical_ip(host):
            return [(host, port)]  # what getaddrinfo answers for an IP literal, without a thread hop
        try:
            addresses = await self.resolver.resolve(host, port)
        except ResolveError as exc:
            raise Refuse(
                squid_dns_fail(ctx.authority, host, exc.reason, why=f"DNS: {exc}", server="proxy-lab")
            ) from exc
        if not addresses:
            raise Refuse(squid_dns_fail(ctx.authority, host, "no addresses", server="proxy-lab"))
        return addresses

    def _base_open(self, ctx: Ctx, resolve: ResolveNext) -> OpenNext:
        upstream = self.config.upstream
        if upstream is not None:  # chained: the upstream proxy resolves and connects (chain.py)
            self._check_loop(ctx, [(upstream.host, upstream.port)])
            client_auth = None if self.auth.enabled or ctx.request is None else ctx.request.get("Proxy-Authorization")

            async def open_chained(host: str, port: int) -> socket.socket:
                try:
                    return await open_via_upstream(upstream, ctx, self.resolver, (host, port), client_credentials=client_auth)
                except Refused as exc:
                    raise Refuse(exc.refusal) from exc

            return open_chained

        async def open_upstream(host: str, port: int) -> socket.socket:
            addresses = await resolve(host, port)
            self._check_loop(ctx, addresses)
            return await self._connect_any_socket(ctx, addresses[:MAX_ADDRESSES])

        return open_upstream

    def _check_loop(self, ctx: Ctx, addresses: list[Address]) -> None:
        for address in addresses:
            if self._is_self(address):
                why = f"loop: {ctx.authority} resolves to {address[0]}:{address[1]}, the proxy's own listening address"
                raise Refuse(lab_error(403, f"Request refused: forwarding loop. {why}", why=why))

    def _is_self(self, address: Address) -> bool:
        if self._address is None or address[1] != self._address[1] or self._own_ip is None:
            return False
        try:
            ip = ipaddress.ip_address(address[0])
        except ValueError:
            return False
        own = self._own_ip
        return ip == own or (own.is_unspecified and (ip.is_loopback or ip.is_unspecified))

    async def _connect_any(self, ctx: Ctx, addresses: list[Address], protocol: asyncio.Protocol) -> None:
        """Connect `protocol` to each address in turn, each bounded by connect_timeout_s (as OkHttp and
        old Squid do); Refuse (503 ERR_CONNECT_FAIL, or 504 on a timeout) when none answers."""
        loop = asyncio.get_running_loop()
        timeout = self.config.connect_timeout_s
        failure: tuple[str, int, str, bool] = ("", 0, "no address", False)
        for host, port in addresses:
            try:
                await self._connect_timeouts.within(loop.create_connection(lambda: protocol, host, port))
            except TimeoutError:
                failure = (_shown(host, port), errno_mod.ETIMEDOUT, f"Connection timed out after {timeout:g} s", True)
            except OSError as exc:
                code = exc.errno or 0
                failure = (_shown(host, port), code, exc.strerror or (os.strerror(code) if code > 0 else str(exc)), False)
            else:
                return
        self._connect_failed(ctx, failure)

    async def _connect_any_socket(self, ctx: Ctx, addresses: list[Address]) -> socket.socket:
        """As `_connect_any`, for the open_upstream chain: a connected non-blocking socket."""
        loop = asyncio.get_running_loop()
        timeout = self.config.connect_timeout_s
        failure: tuple[str, int, str, bool] = ("", 0, "no address", False)
        for host, port in addresses:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
            except TimeoutError:
                sock.close()
                failure = (_shown(host, port), errno_mod.ETIMEDOUT, f"Connection timed out after {timeout:g} s", True)
            except OSError as exc:
                sock.close()
                code = exc.errno or 0
                failure = (_shown(host, port), code, exc.strerror or (os.strerror(code) if code > 0 else str(exc)), False)
            except BaseException:
                sock.close()
                raise
            else:
                return sock
        self._connect_failed(ctx, failure)

    def _connect_failed(self, ctx: Ctx, failure: tuple[str, int, str, bool]) -> NoReturn:
        shown, code, message, timed_out = failure
        raise Refuse(
            squid_connect_fail(
                ctx.authority, shown, errno=code, message=message, timeout=timed_out, server="proxy-lab"
            )
        )


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _client_of(conn: ClientProtocol) -> str:
    peer = conn.peer
    return f"{peer[0]}:{peer[1]}"


# A plain tunnel's log record before it is made: (time, event, request, client address, user,
# bytes up, bytes down, why closed).
_PlainEntry = tuple[float, Event, ConnectRequest, Address, str | None, int, int, str]


def _plain_record(entry: _PlainEntry) -> ProxyLogRecord:
    """The record `_tunnel` writes for a tunnel_open or tunnel_closed event, word for word."""
    at, event, request, peer, user, up, down, why = entry
    authority, client = request.authority, f"{peer[0]}:{peer[1]}"
    if event == "tunnel_open":
        message = f"tunnel {authority} for {client} open" + (f" (user {user!r})" if user else "")
        return ProxyLogRecord(event, message, client, authority, 200, "", at)
    message = f"tunnel {authority} for {client} closed: {up} B up, {down} B down" + (f" ({why})" if why else "")
    return ProxyLogRecord(event, message, client, authority, None, why, at)


def _plain_answer(refusal: Refusal | None) -> bytes:
    return refusal.to_bytes() if refusal is not None else ESTABLISHED


@functools.lru_cache(maxsize=4096)
def _is_canonical_ip(host: str) -> bool:
    """True when `host` is an IP address written as getaddrinfo would give it back (so resolving it
    would return it unchanged): `127.0.0.1`, `::1`; not `127.1` or `0::1`, which go to the resolver."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, host)) == host
    except (OSError, ValueError):
        return False


def _persistent(request: ConnectRequest) -> bool:
    """RFC 9112 §9.3: the client keeps the connection unless it says `close` (HTTP/1.1) or did not
    ask for `keep-alive` (HTTP/1.0). `Proxy-Connection` is the legacy spelling clients still send."""
    tokens = {
        t.strip().lower()
        for v in request.get_all("Connection") + request.get_all("Proxy-Connection")
        for t in v.split(",")
    }
    if "close" in tokens:
        return False
    return request.version == "HTTP/1.1" or "keep-alive" in tokens


def _closing(refusal: Refusal) -> Refusal:
    """The same answer, ending the connection (its Connection field says so)."""
    headers = tuple((k, "close") if k.lower() == "connection" else (k, v) for k, v in refusal.headers)
    return dataclasses.replace(refusal, headers=headers, keep_alive=False)


def _http_answer(proxy: LabProxy, ctx: Ctx) -> AnswerFn:
    def answer(refusal: Refusal | None) -> bytes:
        return refusal.to_bytes() if refusal is not None else proxy._established(ctx)

    return answer


def _wrap_resolve(fault: Fault, ctx: Ctx, nxt: ResolveNext) -> ResolveNext:
    def call(host: str, port: int) -> Awaitable[list[Address]]:
        return fault.resolve(ctx, host, port, nxt)

    return call


def _wrap_open(fault: Fault, ctx: Ctx, nxt: OpenNext) -> OpenNext:
    def call(host: str, port: int) -> Awaitable[socket.socket]:
        return fault.open_upstream(ctx, host, port, nxt)

    return call


def _target_hint(buf: bytes | bytearray) -> str:
    """The request-target of a request line we refused, for the log (printable, at most 80 chars)."""
    line = bytes(buf[:200]).split(b"\n", 1)[0].strip()
    parts = line.split(b" ")
    if len(parts) >= 2 and parts[1].isascii():
        text = parts[1].decode("ascii", "replace")
        return text[:80] if text.isprintable() else ""
    return ""


async def serve_forever(
    config: ProxyConfig,
    resolver: Resolver,
    stop_event: asyncio.Event | None = None,
    *,
    listen_socket: socket.socket | None = None,
    follow: Callable[[LabProxy], Callable[[], None]] | None = None,
) -> int:
    """Run the proxy until `stop_event` is set or SIGINT/SIGTERM arrives; 0 on a clean stop, 2 when it
    cannot start. `follow(proxy)` runs once it listens, and what it returns when it stops."""
    proxy = LabProxy(config, resolver, listen_socket=listen_socket)
    try:
        await proxy.start()
    except (OSError, ConfigError) as exc:
        logger.error("lab proxy cannot start on %s:%s: %s", config.listen[0], config.listen[1], exc)
        return 2
    unfollow = follow(proxy) if follow is not None else None
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if unfollow is not None:
            unfollow()
        await proxy.stop()
    return 0


def run_proxy(config: ProxyConfig, resolver: Resolver, stop_event: asyncio.Event | None = None) -> int:
    """`serve_forever` on a fresh event loop, uvloop when it is installed (for the CLI only).

    With more than one worker (`ProxyConfig.workers`) the listening socket is bound here and served
    by that many processes (`proxy_lab.proxy.workers`); a `stop_event` keeps it in this process.
    """
    workers = worker_count(config)
    if workers > 1 and stop_event is None:
        from proxy_lab.proxy.workers import run_workers

        return run_workers(config, resolver, workers)
    return run_in_loop(serve_forever(config, resolver, stop_event))


def worker_count(config: ProxyConfig) -> int:
    """How many processes `run_proxy` starts for `config` (see ProxyConfig.workers)."""
    if config.workers:
        return config.workers
    if config.faults or config.watcher is not None:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def run_in_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run `main` on a fresh event loop: uvloop when it is installed, else asyncio's."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
