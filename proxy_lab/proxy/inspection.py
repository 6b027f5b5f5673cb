"""The inspection stage: an embedded mitmproxy 12 that terminates TLS with the lab's corporate CA.

    async with InspectionStage(pki, resolver, bypass=["*.pb.com"]) as stage:
        sock = await stage.open_tunnel("pb-ota.redbend.com", 443)   # speak TLS on it: re-signed

The engine
    One mitmproxy engine per process: a `Master` with only the addons it needs (proxy server,
    next-layer, TLS; no DNS resolver, no onboarding app, no script loader, no flow store; it writes
    nothing but its DH parameters file into the confdir, and contacts nothing but the relay). It runs on its own event loop in a daemon
    thread: `Master.run` installs an eager task factory and an exception handler on the loop it
    runs on, and mitmproxy keeps its options in process-global state (`mitmproxy.ctx`), so it gets a
    loop of its own instead of changing the lab's. It listens on 127.0.0.1:<ephemeral>, mints leaf
    certificates with the corporate inspection CA (`confdir = pki.corp_ca_combined()`), and verifies
    the cloud's certificates against the PB root (`ssl_verify_upstream_trusted_ca`), as a corporate
    proxy trusts the public web.

No name ever reaches the system resolver
    mitmproxy runs in upstream mode (`upstream:http://127.0.0.1:<relay>`): for every tunnel it opens
    one connection to the *address of the upstream proxy* and sends `CONNECT host:port` there
    (mitmproxy/proxy/layers/http/_upstream_proxy.py `HttpUpstreamProxy.start_handshake`; the only
    `asyncio.open_connection` is on `connection.address`, the relay's IP, in proxy/server.py). The
    relay is ours: it hands mitmproxy the socket the lab proxy already opened through its Resolver
    (or opens another one through it). mitmproxy's `DnsResolver` addon is not loaded and no DNS
    mode is configured.

Per-stage options on one engine
    Every tunnel is opened with `CONNECT host:port` + `X-Proxy-Lab-Tunnel: <token>`; the token names
    the stage (its `bypass` patterns and `send_root`) and the upstream socket waiting for it.
    mitmproxy copies it onto its own upstream CONNECT (`http_connect_upstream` hook), so the relay
    pairs each upstream request with its tunnel exactly. A CONNECT without a known token gets 403:
    the engine serves only tunnels a stage opened.

What mitmproxy does with the bytes
    TLS (ClientHello) is intercepted: mitmproxy connects upstream first (`connection_strategy`
    eager, `upstream_cert`), then serves a leaf for the same names signed by the corporate CA.
    A host matching `bypass` (fnmatch patterns turned into `ignore_hosts`-style regexes over
    `host:port`, matched against the CONNECT target and the SNI as `NextLayer._ignore_connection`
    does) is spliced: relayed untouched, genuine certificate and all. Anything that does not start
    like a TLS record (TeamViewer's 5938 protocol, mtalk, plain HTTP on port 80) is relayed as raw
    TCP, as mitmproxy does for `tcp_hosts`; otherwise a line protocol that looks like HTTP
    (`MTALK HELLO`) would be read as an HTTP request line, and mitmproxy would wait for the rest of
    a head that never comes. The lab's inspection engine inspects TLS;
    web filtering of plain HTTP is the `block_page` and `tamper` faults' business.

`send_root`
    mitmproxy sends the leaf alone when its CA file holds one certificate (certs.py
    `CertStore.from_files`: `chain_file = None`, and `tls_start_client` adds extra chain
    certificates only for a longer chain), so a client that does not trust the CA fails with
    "unable to get local issuer certificate". With `send_root` the stage gives the certificate entry
    a `chain_file` (the corporate CA certificate), the same path mitmproxy takes for a CA file that
    holds a chain: the file becomes the context's verify locations and OpenSSL's automatic chain
    building sends leaf + CA, so the client's error is "self-signed certificate in certificate
    chain".

Lifecycle
    The first stage to `start()` starts the engine (≈0.3 s once mitmproxy is imported; `warm_up()`
    does the import, ≈0.5-1.5 s, in the background beforehand); the last to `stop()` stops it and its
    thread. An engine still running at interpreter exit is stopped by an atexit hook.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import fnmatch
import importlib
import itertools
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.http1 import parse_head
from proxy_lab.pki import PKI
from proxy_lab.resolver import Address, Resolver

log = logging.getLogger("proxy_lab.proxy.inspection")

TUNNEL_HEADER = "X-Proxy-Lab-Tunnel"
START_TIMEOUT_S = 10.0  # engine start, thread to listening socket
STOP_TIMEOUT_S = 5.0
HEAD_TIMEOUT_S = 10.0  # a CONNECT answer from mitmproxy, or a CONNECT head at the relay
REOPEN_TIMEOUT_S = 15.0  # a second upstream connection opened through the owner's pipeline
STREAM_LARGE_BODIES = "256k"  # intercepted bodies above this are streamed, not buffered

OpenFn = Callable[[str, int], Awaitable[socket.socket]]


class InspectionError(RuntimeError):
    """The inspection engine could not start, or could not give a tunnel; the message says which."""


def ignore_hosts_regex(pattern: str) -> str:
    """An fnmatch host pattern as a mitmproxy `ignore_hosts` regex over `host:port`.

    `*.pb.com` -> a regex matching `dlsdlp1.pb.com:443` but not `pb.com:443` or `xpb.com:443`;
    case-insensitive matching is the caller's (mitmproxy compiles with re.IGNORECASE).
    """
    core = fnmatch.translate(pattern.lower())  # '(?s:...)\\Z'
    if not core.endswith("\\Z"):  # pragma: no cover - fnmatch's format since Python 3.6
        raise ValueError(f"unexpected fnmatch translation {core!r}")
    return "^" + core[: -len("\\Z")] + r":\d+\Z"


@dataclass(frozen=True)
class _Profile:
    """One stage's options as the engine applies them per tunnel."""

    bypass: tuple[re.Pattern[str], ...]
    send_root: bool

    def bypasses(self, names: Sequence[str]) -> bool:
        return any(rx.search(n) for rx in self.bypass for n in names)


@dataclass
class _Pending:
    """A tunnel announced by a stage: where it goes and the upstream socket waiting for it."""

    profile: int
    host: str
    port: int
    loop: asyncio.AbstractEventLoop  # the owner's loop, where `reopen` runs
    sock: socket.socket | None
    reopen: OpenFn | None
    created: float = dataclasses.field(default_factory=time.monotonic)


class _Latch:
    """A one-shot event set from any thread and awaited from any event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._error: BaseException | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def is_set(self) -> bool:
        return self._set

    def set(self, error: BaseException | None = None) -> None:
        with self._lock:
            if self._set:
                return
            self._set, self._error = True, error
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(self._wake, fut, error)

    @staticmethod
    def _wake(fut: asyncio.Future[None], error: BaseException | None) -> None:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    async def wait(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._set:
                self._wake(fut, self._error)
            else:
                self._waiters.append((loop, fut))
        await asyncio.wait_for(fut, timeout_s)


class _Engine:
    """The process's mitmproxy: its thread, loop, master, relay and the tunnels it knows."""

    def __init__(self, pki: PKI) -> None:
        self.confdir = pki.corp_ca_combined()
        self.upstream_ca = pki.pb_root.cert
        self.corp_ca_cert = pki.corp_ca.cert
        self.key = (str(self.confdir), str(self.upstream_ca))
        self.users = 0
        self.stopping = False
        self.address: Address | None = None
        self.ready = _Latch()
        self.done = _Latch()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._profiles: dict[int, _Profile] = {}
        self._tunnels: dict[str, _Pending] = {}
        self._clients: dict[str, str] = {}  # mitmproxy client connection id -> token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: Any = None
        self._thread = threading.Thread(target=self._run, name="proxy-lab-inspection", daemon=True)

    # -- lifecycle (any thread) -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        """Ask the engine to stop (thread-safe); `done` is set once its thread has finished."""
        self.stopping = True
        master, loop = self._master, self._loop
        if master is not None:
            master.shutdown()
        elif loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lambda: None)

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    # -- profiles and tunnels (any thread) --------------------------------------------------------
    def add_profile(self, profile: _Profile) -> int:
        with self._lock:
            pid = next(self._ids)
            self._profiles[pid] = profile
            return pid

    def remove_profile(self, pid: int) -> None:
        with self._lock:
            self._profiles.pop(pid, None)
            gone = [t for t, p in self._tunnels.items() if p.profile == pid]
            socks = [self._tunnels.pop(t).sock for t in gone]
        for sock in socks:
            if sock is not None:
                sock.close()

    def announce(self, pending: _Pending) -> str:
        token = f"{pending.profile}.{secrets.token_hex(8)}"
        with self._lock:
            self._tunnels[token] = pending
        return token

    def forget(self, token: str) -> None:
        with self._lock:
            pending = self._tunnels.pop(token, None)
        if pending is not None and pending.sock is not None:
            pending.sock.close()

    def bind_client(self, client_id: str, token: str) -> bool:
        with self._lock:
            if token not in self._tunnels:
                return False
            self._clients[client_id] = token
            return True

    def unbind_client(self, client_id: str) -> None:
        with self._lock:
            token = self._clients.pop(client_id, None)
        if token is not None:
            self.forget(token)

    def token_of(self, client_id: str) -> str | None:
        with self._lock:
            return self._clients.get(client_id)

    def profile_of(self, client_id: str) -> _Profile | None:
        with self._lock:
            token = self._clients.get(client_id)
            pending = self._tunnels.get(token) if token is not None else None
            return self._profiles.get(pending.profile) if pending is not None else None

    def counts(self) -> tuple[int, int]:
        """(tunnels announced and not closed, mitmproxy client connections bound): for tests."""
        with self._lock:
            return len(self._tunnels), len(self._clients)

    # -- the engine thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            _wait_for_warm_up()
            asyncio.run(self._main())
        except BaseException as exc:  # reported to whoever waits for the start
            self.ready.set(InspectionError(f"inspection engine failed: {exc!r}"))
        finally:
            self.ready.set(InspectionError("inspection engine stopped before it was ready"))
            self.done.set()

    async def _main(self) -> None:
        from mitmproxy import options
        from mitmproxy.master import Master

        self._loop = asyncio.get_running_loop()
        quiet = logging.getLogger("mitmproxy")
        if quiet.level == logging.NOTSET:  # its per-connection INFO lines would drown the lab's log
            quiet.setLevel(logging.WARNING)
        relay = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        relay_port = relay.sockets[0].getsockname()[1]
        master: Any = None
        try:
            opts = options.Options(
                mode=[f"upstream:http://127.0.0.1:{relay_port}"],
                listen_host="127.0.0.1",
                listen_port=0,
                confdir=str(self.confdir),
                ssl_verify_upstream_trusted_ca=str(self.upstream_ca),
            )
            master = Master(opts, with_termlog=False)
            tunnels, nextlayer, tlsconfig, proxyserver = _addons(self)
            master.addons.add(tunnels, nextlayer, tlsconfig, proxyserver)
            opts.update(connection_strategy="eager", stream_large_bodies=STREAM_LARGE_BODIES)
            self._master = master
            if self.stopping:
                return
            run = asyncio.ensure_future(master.run())
            started = asyncio.ensure_future(tunnels.running_event.wait())
            await asyncio.wait({run, started}, return_when=asyncio.FIRST_COMPLETED)
            addresses = proxyserver.listen_addrs()
            if not started.done() or not addresses:
                started.cancel()
                master.shutdown()
                with contextlib.suppress(Exception):
                    await run
                raise InspectionError("mitmproxy did not start listening (see the mitmproxy log above)")
            if self.stopping:  # a shutdown that came before Master.run cleared should_exit is not lost
                master.shutdown()
            host, port = addresses[0][:2]
            self.address = (str(host), int(port))
            log.info("inspection engine (mitmproxy) listening on %s:%s", host, port)
            self.ready.set()
            await run
        finally:
            # Master.__init__ puts a handler on the root logger that calls into this loop; Master.run
            # removes it only when it got as far as running. Remove it always (removeHandler is idempotent).
            legacy = getattr(master, "_legacy_log_events", None)
            if legacy is not None:
                legacy.uninstall()
            relay.close()
            close_clients = getattr(relay, "close_clients", None)  # Python 3.13+
            if close_clients is not None:
                close_clients()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(relay.wait_closed(), 1.0)

    # -- the relay mitmproxy uses as its upstream proxy (engine loop) ------------------------------
    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
                head = parse_head(raw)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, RemoteProtocolError):
                return
            if head is None:
                return
            token = head.get(TUNNEL_HEADER) or ""
            try:
                sock = await self._upstream_for(token)
            except InspectionError as exc:
                log.warning("inspection relay: %s (%s)", exc, head.start_line)
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(sock=sock)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()

    async def _upstream_for(self, token: str) -> socket.socket:
        with self._lock:
            pending = self._tunnels.get(token)
            sock = pending.sock if pending is not None else None
            if pending is not None:
                pending.sock = None
        if pending is None:
            raise InspectionError(f"upstream CONNECT with unknown tunnel token {token[:40]!r}")
        if sock is not None:
            return sock
        if pending.reopen is None:
            raise InspectionError(f"no second upstream connection for {pending.host}:{pending.port}")
        # mitmproxy reconnects after the server closed a connection the client keeps using: the
        # new connection goes through the owner's pipeline again, on the owner's loop.
        try:
            fut = asyncio.run_coroutine_threadsafe(_call(pending.reopen, pending.host, pending.port), pending.loop)
            return await asyncio.wait_for(asyncio.wrap_future(fut), REOPEN_TIMEOUT_S)
        except Exception as exc:
            raise InspectionError(f"reopening {pending.host}:{pending.port} failed: {exc}") from exc


async def _call(fn: OpenFn, host: str, port: int) -> socket.socket:
    return await fn(host, port)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the EOF on as a half-close."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


def _addons(engine: _Engine) -> tuple[Any, Any, Any, Any]:
    """The engine's four addons (imported here: mitmproxy loads only when inspection is used)."""
    from mitmproxy import http
    from mitmproxy.addons.next_layer import NeedsMoreData, NextLayer
    from mitmproxy.addons.proxyserver import Proxyserver
    from mitmproxy.addons.tlsconfig import TlsConfig
    from mitmproxy.net.tls import starts_like_tls_record
    from mitmproxy.proxy import layers

    class Tunnels:
        """Pairs mitmproxy's connections with the stages' tunnels via the token header."""

        name = "prxlab_tunnels"

        def __init__(self) -> None:
            self.running_event = asyncio.Event()

        def running(self) -> None:
            self.running_event.set()

        def http_connect(self, flow: Any) -> None:
            token = flow.request.headers.get(TUNNEL_HEADER)
            if token is None or not engine.bind_client(flow.client_conn.id, token):
                flow.response = http.Response.make(
                    403, b"proxy-lab inspection engine: only tunnels opened by an InspectionStage are served\n"
                )

        def http_connect_upstream(self, flow: Any) -> None:
            token = engine.token_of(flow.client_conn.id)
            if token is not None:
                flow.request.headers[TUNNEL_HEADER] = token

        def client_disconnected(self, client: Any) -> None:
            engine.unbind_client(client.id)

    class LabNextLayer(NextLayer):  # type: ignore[misc]
        """mitmproxy's layer choice, plus per-stage bypass and raw TCP for anything not TLS."""

        name = "nextlayer"

        def _next_layer(self, context: Any, data_client: bytes, data_server: bytes) -> Any:
            profile = engine.profile_of(context.client.id)
            # The first choice inside a lab tunnel: the CONNECT target is known, TLS not started.
            if profile is not None and context.server.address is not None and not context.client.tls:
                if len(data_client) < 3 and not data_server:
                    raise NeedsMoreData
                if not starts_like_tls_record(data_client):
                    return layers.TCPLayer(context, ignore=True)
                if profile.bypass:
                    host, port = context.server.address[:2]
                    names = [f"{host}:{port}"]
                    hello = self._get_client_hello(context, data_client)  # NeedsMoreData until complete
                    if hello is not None and hello.sni:
                        names.append(f"{hello.sni}:{port}")
                    if profile.bypasses(names):
                        return layers.TCPLayer(context, ignore=True)
            return super()._next_layer(context, data_client, data_server)

    class LabTlsConfig(TlsConfig):  # type: ignore[misc]
        """mitmproxy's TLS addon; with `send_root`, the served chain ends with the corporate CA."""

        name = "tlsconfig"

        def get_cert(self, conn_context: Any) -> Any:
            entry = super().get_cert(conn_context)
            profile = engine.profile_of(conn_context.client.id)
            if profile is not None and profile.send_root:
                return dataclasses.replace(entry, chain_file=engine.corp_ca_cert)
            return entry

    return Tunnels(), LabNextLayer(), LabTlsConfig(), Proxyserver()


# -- one engine per process -----------------------------------------------------------------------
_warm_up_started = threading.Event()
_warm_up_thread: threading.Thread | None = None


def warm_up() -> None:
    """Import mitmproxy in a short-lived background thread (once), ahead of the first engine start.

    Importing `mitmproxy.master` imports every mitmproxy addon module: about 0.5 s on an idle machine
    and over 1.5 s on a busy one, paid once per process. The engine itself then starts in about 0.3 s.
    """
    global _warm_up_thread
    if _warm_up_started.is_set():
        return
    _warm_up_started.set()

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module("mitmproxy.master")  # imports mitmproxy.addons and all its modules

    _warm_up_thread = threading.Thread(target=load, name="proxy-lab-mitmproxy-import", daemon=True)
    _warm_up_thread.start()


def _wait_for_warm_up() -> None:
    """Two threads importing mitmproxy's cyclic modules at once can see half-initialised modules."""
    thread = _warm_up_thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


_engines_lock = threading.Lock()
_current: _Engine | None = None


async def _acquire(pki: PKI) -> _Engine:
    """The running engine for `pki` (started when needed), counted as used until `_release`."""
    global _current
    key = (str(pki.corp_ca_combined()), str(pki.pb_root.cert))
    while True:
        with _engines_lock:
            engine = _current
            if engine is None:
                engine = _Engine(pki)
                engine.users = 1
                _current = engine
                engine.start()
                break
            if not engine.stopping:
                if engine.key != key:
                    raise InspectionError(
                        f"one inspection engine per process: it runs with confdir {engine.key[0]}, "
                        f"a stage asked for {key[0]} (stop the other stages first)"
                    )
                engine.users += 1
                break
            stopping = engine
        try:
            await stopping.done.wait(STOP_TIMEOUT_S)  # a stopping engine finishes before a new one starts
        except TimeoutError as exc:
            raise InspectionError(f"the previous inspection engine did not stop within {STOP_TIMEOUT_S:g} s") from exc
        with _engines_lock:
            if _current is stopping:
                _current = None
    try:
        await engine.ready.wait(START_TIMEOUT_S)
    except BaseException as exc:
        await _release(engine)
        if isinstance(exc, TimeoutError):
            raise InspectionError(f"the inspection engine did not start within {START_TIMEOUT_S:g} s") from exc
        raise
    return engine


async def _release(engine: _Engine) -> None:
    """One user less; the last one stops the engine and waits for its thread to end."""
    with _engines_lock:
        engine.users -= 1
        if engine.users > 0:
            return
        engine.stopping = True
    engine.shutdown()
    with contextlib.suppress(TimeoutError):
        await engine.done.wait(STOP_TIMEOUT_S)
    engine.join(1.0)
    global _current
    with _engines_lock:
        if _current is engine:
            _current = None


@atexit.register
def _stop_at_exit() -> None:
    engine = _current
    if engine is not None:
        engine.shutdown()
        engine.join(STOP_TIMEOUT_S)


# -- the public stage -----------------------------------------------------------------------------
class InspectionStage:
    """TLS interception by the process's embedded mitmproxy, with this stage's bypass list and chain.

    `start()` starts the engine (or joins the running one) and `stop()` leaves it; the last stage
    to leave stops it and its thread. `open_tunnel(host, port)` returns a connected socket that
    stands for `host:port` as seen through the inspecting proxy.
    """

    def __init__(
        self,
        pki: PKI,
        resolver: Resolver | None = None,
        *,
        bypass: Sequence[str] = (),
        send_root: bool = False,
    ) -> None:
        self.pki = pki
        self.resolver = resolver
        self.bypass = tuple(bypass)
        self.send_root = send_root
        self._profile = _Profile(tuple(re.compile(ignore_hosts_regex(p), re.IGNORECASE) for p in self.bypass), send_root)
        self._engine: _Engine | None = None
        self._pid = 0

    @property
    def running(self) -> bool:
        return self._engine is not None

    @property
    def address(self) -> Address:
        """Where mitmproxy listens (it serves only tunnels opened by `open_tunnel`)."""
        if self._engine is None or self._engine.address is None:
            raise RuntimeError("InspectionStage.address read before start()")
        return self._engine.address

    def bypasses(self, host: str, port: int) -> bool:
        """Whether a tunnel to host:port is spliced (by its CONNECT name; mitmproxy also checks SNI)."""
        return self._profile.bypasses([f"{host.lower()}:{port}"])

    async def start(self) -> None:
        if self._engine is not None:
            return
        engine = await _acquire(self.pki)
        self._pid = engine.add_profile(self._profile)
        self._engine = engine

    async def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is None:
            return
        engine.remove_profile(self._pid)
        await _release(engine)

    async def __aenter__(self) -> InspectionStage:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def open_tunnel(
        self,
        host: str,
        port: int,
        *,
        upstream: socket.socket | None = None,
        reopen: OpenFn | None = None,
        timeout_s: float = HEAD_TIMEOUT_S,
    ) -> socket.socket:
        """A socket to mitmproxy, tunnelled to host:port; the bytes written to it are inspected.

        `upstream` is an already connected socket to the real target (the lab proxy opens it through
        its pipeline, so refusals such as dns_fail happen before the tunnel); `reopen` opens another
        one when mitmproxy reconnects. Without either, the stage's Resolver is used. The socket is
        non-blocking; it belongs to the caller. Raises InspectionError.
        """
        engine = self._engine
        if engine is None or engine.address is None:
            raise InspectionError("InspectionStage.open_tunnel called before start()")
        if upstream is None and reopen is None:
            reopen = self._connect_resolved
        loop = asyncio.get_running_loop()
        token = engine.announce(_Pending(self._pid, host, port, loop, upstream, reopen))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, engine.address), timeout_s)
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{TUNNEL_HEADER}: {token}\r\n\r\n"
            await loop.sock_sendall(sock, request.encode("ascii"))
            status = await asyncio.wait_for(_read_status(loop, sock), timeout_s)
        except BaseException as exc:
            sock.close()
            engine.forget(token)
            if isinstance(exc, OSError | TimeoutError | RemoteProtocolError):
                raise InspectionError(f"mitmproxy at {engine.address[0]}:{engine.address[1]}: {exc!r}") from exc
            raise
        if not 200 <= status[0] < 300:
            sock.close()
            engine.forget(token)
            raise InspectionError(f"mitmproxy refused CONNECT {authority}: {status[0]} {status[1]}")
        return sock

    async def _connect_resolved(self, host: str, port: int) -> socket.socket:
        if self.resolver is None:
            raise InspectionError(f"no Resolver to reach {host}:{port}")
        loop = asyncio.get_running_loop()
        failure: Exception = InspectionError(f"{host}:{port} resolved to nothing")
        for address in await self.resolver.resolve(host, port):
            sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                failure = exc
                continue
            return sock
        raise failure


async def _read_status(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> tuple[int, str]:
    """Read mitmproxy's answer head byte by byte, so no tunnel byte after it is consumed."""
    buf = bytearray()
    while True:
        byte = await loop.sock_recv(sock, 1)
        if not byte:
            raise ConnectionResetError(f"mitmproxy closed after {len(buf)} bytes of its answer")
        buf += byte
        if buf.endswith(b"\r\n\r\n") or buf.endswith(b"\n\n"):
            head = parse_head(buf, request=False)
            if head is not None:
                break
        if len(buf) > 16384:
            raise RemoteProtocolError("mitmproxy's answer head is larger than 16 KiB")
    version, _, rest = head.start_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit():
        raise RemoteProtocolError(f"mitmproxy answered {head.start_line[:60]!r}")
    return int(code), reason


def engine_counts() -> tuple[int, int] | None:
    """(tunnels announced and open, mitmproxy connections bound) of the running engine, or None."""
    engine = _current
    return engine.counts() if engine is not None else None


__all__ = ["InspectionError", "InspectionStage", "ignore_hosts_regex", "warm_up"]
