"""Helpers for the lab proxy's real-socket tests: loopback upstreams, a CONNECT client, a runner.

Everything listens on 127.0.0.1 (or ::1) and every wait has a timeout. Names are resolved by a
MapResolver only; nothing reaches the machine's resolver.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from proxy_lab.http1 import Head, parse_head
from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.resolver import MapResolver

TIMEOUT_S = 5.0


def run[T](coro: Coroutine[Any, Any, T], timeout_s: float = 15.0) -> T:
    """Run one test coroutine on a fresh loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    if os.environ.get("PROXY_LAB_TEST_UVLOOP"):  # the CLI runs the proxy on uvloop: same tests, other loop
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(bounded())
    return asyncio.run(bounded())


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every chunk; at EOF say how many bytes came, then close (proves half-close reached us)."""
    total = 0
    try:
        while data := await asyncio.wait_for(reader.read(65536), TIMEOUT_S):
            total += len(data)
            writer.write(data)
            await writer.drain()
        writer.write(f"[eof after {total} bytes]".encode())
        await writer.drain()
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()


@dataclass
class Upstream:
    host: str
    port: int
    server: asyncio.Server

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


@asynccontextmanager
async def upstream(handler: Handler = echo, host: str = "127.0.0.1") -> AsyncIterator[Upstream]:
    server = await asyncio.start_server(handler, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Upstream(host, port, server)
    finally:
        server.close()
        close_clients = getattr(server, "close_clients", None)  # Python 3.13+
        if close_clients is not None:
            close_clients()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT_S)


@asynccontextmanager
async def lab_proxy(
    config: ProxyConfig | None = None, resolver: MapResolver | None = None
) -> AsyncIterator[LabProxy]:
    proxy = LabProxy(config or ProxyConfig(), resolver or MapResolver())
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop(grace_s=0.5)


@dataclass
class Response:
    status: int
    reason: str
    head: Head
    raw_head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        return self.head.get(name)


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    responses: list[Response] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def connect(
        self, target: str, *, auth: tuple[str, str] | None = None, headers: str = "", extra: bytes = b""
    ) -> Response:
        """Send `CONNECT target` (with Basic credentials when given) and read the answer's head (and body if framed)."""
        lines = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            lines += f"Proxy-Authorization: Basic {token}\r\n"
        self.writer.write((lines + headers + "\r\n").encode() + extra)
        return await self.read_response()

    async def read_response(self) -> Response:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
        head = parse_head(raw, request=False)
        assert head is not None, raw
        _version, status, *reason = head.start_line.split(" ", 2)
        code = int(status)
        body = b""
        length = head.get("Content-Length")
        if not 200 <= code < 300 and length is not None:
            body = await asyncio.wait_for(self.reader.readexactly(int(length)), TIMEOUT_S)
        response = Response(code, reason[0] if reason else "", head, raw, body)
        self.responses.append(response)
        return response

    async def read(self, n: int = 65536) -> bytes:
        return await asyncio.wait_for(self.reader.read(n), TIMEOUT_S)

    async def read_exactly(self, n: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), TIMEOUT_S)

    async def read_to_eof(self) -> bytes:
        return await asyncio.wait_for(self.reader.read(), TIMEOUT_S)

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT_S)
        except (ConnectionError, TimeoutError):
            pass


async def client(proxy: LabProxy) -> Client:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*proxy.address), TIMEOUT_S)
    return Client(reader, writer)


async def upstream_server(handler: Handler) -> tuple[asyncio.Server, int]:
    """A loopback server running `handler`, and its port (the caller closes it)."""
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    return srv, int(srv.sockets[0].getsockname()[1])


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    """Wait until `check()` is true (bounded); AssertionError naming `what` if it never is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.02)


async def settled(proxy: LabProxy, timeout_s: float = 5.0) -> None:
    """Wait until the proxy counts no open connection and no open tunnel (bounded)."""

    def idle() -> bool:
        stats = proxy.stats
        return stats.connections_open == 0 and stats.tunnels_open == 0

    await eventually(idle, f"the proxy idle ({proxy.stats})", timeout_s)


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


class Blackhole:
    """A loopback listener whose accept queue is full: new SYNs are dropped, so connects hang."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.address = self.listener.getsockname()
        self.fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(self.address)
            except BlockingIOError:
                pass
            self.fillers.append(s)

    def close(self) -> None:
        for s in [*self.fillers, self.listener]:
            s.close()


async def echo_round_trip(c: Client, payload: bytes, timeout_s: float = 30.0) -> None:
    """Send `payload` then EOF into an open tunnel to `echo`, and check it all comes back, then its count."""

    async def send() -> None:
        c.send(payload)
        await c.writer.drain()
        c.writer.write_eof()

    sender = asyncio.create_task(send())
    back = await asyncio.wait_for(c.reader.readexactly(len(payload)), timeout_s)
    await sender
    assert back == payload
    assert await c.read_to_eof() == f"[eof after {len(payload)} bytes]".encode()


def open_tunnel(proxy_port: int, target_port: int, timeout_s: float = 5.0) -> tuple[socket.socket, bytes]:
    """A blocking socket tunnelled through the proxy on 127.0.0.1:`proxy_port` to 127.0.0.1:`target_port`
    (the 200 asserted), and the bytes that arrived after the answer's head."""
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout_s)
    s.sendall(f"CONNECT 127.0.0.1:{target_port} HTTP/1.1\r\nHost: 127.0.0.1:{target_port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1024)
        assert chunk, head
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return s, rest
