"""Small in-test servers for the Device's real-socket tests: scripted proxies, a CONNECT relay, origins.

Everything listens on 127.0.0.1 with an ephemeral port; every read has a timeout; every server
counts the connections it accepted and keeps the request heads it read, so tests can assert what
the device sent (the 407 retry on the same connection or a new one). A handler that fails (an
assertion about what the device sent, a bug of the script) fails the test that started the server:
leaving `async with Server(...)` raises `HandlerError` from the first such failure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy_lab.catalog import Endpoint
from proxy_lab.device import Device, DeviceSettings, ProxySettings
from proxy_lab.outcomes import Result
from proxy_lab.pki import PKI
from proxy_lab.resolver import MapResolver

IO_TIMEOUT_S = 5.0
Handler = Callable[["Conn"], Awaitable[None]]


def run[T](coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a coroutine on a fresh loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@dataclass
class Conn:
    """One accepted connection, as a scripted handler sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: Server
    index: int

    async def head(self) -> bytes:
        """Read one request head (through the blank line); b"" at EOF."""
        try:
            data = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT_S)
        except asyncio.IncompleteReadError:
            return b""
        self.server.heads.append((self.index, data))
        return data

    async def body(self, head: bytes) -> bytes:
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return await asyncio.wait_for(self.reader.readexactly(int(value)), IO_TIMEOUT_S)
        return b""

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        """Close with SO_LINGER 0: the peer gets a TCP RST (Squid's `deny_info TCP_RESET`)."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            import socket
            import struct

            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class HandlerError(AssertionError):
    """A scripted server's handler failed while the test ran; the failure is its `__cause__`."""


@dataclass
class Server:
    handler: Handler
    ssl_context: ssl.SSLContext | None = None
    connections: int = 0
    heads: list[tuple[int, bytes]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.ssl_context)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)
        if self.errors and exc_type is None:  # an error of the test itself is reported first
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise HandlerError(
                f"a handler of this server failed{more} ({self.connections} connection(s) accepted): "
                f"{type(first).__name__}: {first}"
            ) from first

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = Conn(reader, writer, self, self.connections)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self.handler(conn)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # re-raised when the test leaves `async with Server(...)`
            self.errors.append(exc)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)


def connect_target(head: bytes) -> tuple[str, int]:
    line = head.split(b"\r\n", 1)[0].decode()
    method, authority, _ = line.split(" ")
    assert method == "CONNECT", line
    host, _, port = authority.rpartition(":")
    return host.strip("[]"), int(port)


def header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        k, sep, v = line.partition(b":")
        if sep and k.strip().lower() == name.lower().encode():
            return v.strip().decode("latin-1")
    return None


async def pipe(
    a: Conn | tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Relay bytes both ways until either side closes (bounded by IO_TIMEOUT_S of silence)."""
    ar, aw = (a.reader, a.writer) if isinstance(a, Conn) else a
    br, bw = b

    async def one(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100_000):
                data = await asyncio.wait_for(r.read(65536), IO_TIMEOUT_S)
                if not data:
                    break
                w.write(data)
                await w.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(Exception):
                w.write_eof()

    await asyncio.gather(one(ar, bw), one(br, aw))
    with contextlib.suppress(Exception):
        bw.close()


def relay(
    resolver: MapResolver,
    *,
    credentials: tuple[str, str] | None = None,
    challenges: tuple[str, ...] = ('Basic realm="lab"',),
    close_after_407: bool = False,
    answer_200: bytes = b"HTTP/1.1 200 Connection established\r\n\r\n",
    delay_s: float = 0.0,
) -> Handler:
    """A trivial CONNECT relay (optionally demanding Basic credentials), keep-alive across 407s."""

    async def handle(conn: Conn) -> None:
        for _ in range(5):
            head = await conn.head()
            if not head:
                return
            host, port = connect_target(head)
            if credentials is not None:
                expected = "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
                if header(head, "Proxy-Authorization") != expected:
                    body = b"<html><title>407 auth</title></html>"
                    extra = b"Connection: close\r\n" if close_after_407 else b""
                    await conn.send(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        + "".join(f"Proxy-Authenticate: {c}\r\n" for c in challenges).encode()
                        + extra
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    if close_after_407:
                        return
                    continue
            upstream = await asyncio.wait_for(
                asyncio.open_connection(*resolver.lookup(host, port)), IO_TIMEOUT_S
            )
            try:
                await asyncio.sleep(delay_s)
                await conn.send(answer_200)
                await pipe(conn, upstream)
            finally:
                upstream[1].close()
            return

    return handle


def scripted(answer: bytes, *, then: str = "close", read_connect: bool = True) -> Handler:
    """Read the CONNECT head, write `answer`, then `close`, `reset` or `hold` (stay silent)."""

    async def handle(conn: Conn) -> None:
        if read_connect:
            await conn.head()
        if answer:
            await conn.send(answer)
        if then == "reset":
            conn.reset()
        elif then == "hold":
            await asyncio.sleep(IO_TIMEOUT_S)

    return handle


Route = Callable[[bytes, bytes], Awaitable[bytes | None]]


def http_origin(route: Route) -> Handler:
    """An origin: reads one request (head and Content-Length body), writes what `route` returns
    (`None`: close without answering, as a back end that lost the receipt)."""

    async def handle(conn: Conn) -> None:
        head = await conn.head()
        if not head:
            return
        body = await conn.body(head)
        answer = await route(head, body)
        if answer is not None:
            await conn.send(answer)

    return handle


def response(status: str, body: bytes = b"", content_type: str = "text/plain", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode() + body


def ep(exchange: str, url: str, service: str = "test") -> Endpoint:
    """An Endpoint from a URL, for tests that probe one endpoint."""
    u = urlsplit(url)
    default = {"http": 80, "https": 443, "dns+udp": 53, "dns+tcp": 53}.get(u.scheme, 0)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    assert u.hostname
    return Endpoint(service, u.scheme, u.hostname, u.port or default, path, exchange)


def make_device(
    pki: PKI,
    resolver: MapResolver,
    tmp_path: Path,
    proxy: tuple[str, int] | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    lines: list[str] | None = None,
    **settings: Any,
) -> Device:
    proxy_settings = ProxySettings(proxy[0], proxy[1], username, password) if proxy else None
    base: dict[str, Any] = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0, "teamviewer_hold_s": 0.05}
    base.update(settings)
    return Device(
        DeviceSettings(proxy=proxy_settings, **base),
        pki,
        resolver,
        journal_path=tmp_path / "journal.sqlite",
        on_event=lines.append if lines is not None else None,
    )


async def probe_through_relay(
    pki: PKI,
    tmp_path: Path,
    endpoint: Endpoint,
    origin: Handler,
    *,
    device: Callable[[Device], Awaitable[Any]] | None = None,
    **settings: Any,
) -> Result:
    """Probe `endpoint` through a trivial relay to `origin` (TLS with a PB-signed certificate for https)."""
    resolver = MapResolver()
    ctx = pki.server_context(endpoint.host) if endpoint.transport == "tls" else None
    async with Server(origin, ctx) as o:
        resolver.add(endpoint.host, endpoint.port, o.address)
        async with Server(relay(resolver)) as proxy:
            with make_device(pki, resolver, tmp_path, proxy.address, **settings) as d:
                if device is not None:
                    await device(d)
                return await d.probe(endpoint)
