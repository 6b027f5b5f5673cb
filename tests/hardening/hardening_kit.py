"""Helpers for the hardening tests: a loopback echo upstream, a lab proxy, a raw client, bounded runs.

Everything listens on 127.0.0.1 and every wait has a timeout. Names are resolved by a MapResolver
only; nothing reaches the machine's resolver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from proxy_lab.http1 import Head, parse_head
from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.resolver import MapResolver

TIMEOUT_S = 5.0
ECHO_HOST = "echo.lab.test"


def run[T](coro: Coroutine[Any, Any, T], timeout_s: float = 20.0) -> T:
    """Run one test coroutine on a fresh loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await asyncio.wait_for(reader.read(65536), TIMEOUT_S):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def echo_upstream() -> AsyncIterator[int]:
    """An echo server on 127.0.0.1; yields its port."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        server.close_clients()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT_S)


@asynccontextmanager
async def proxy_to_echo(config: ProxyConfig | None = None) -> AsyncIterator[LabProxy]:
    """A lab proxy whose resolver maps echo.lab.test (any port) to a fresh echo upstream."""
    async with echo_upstream() as port:
        proxy = LabProxy(config or ProxyConfig(), MapResolver({(ECHO_HOST, None): ("127.0.0.1", port)}))
        await proxy.start()
        try:
            yield proxy
        finally:
            await proxy.stop(grace_s=0.5)


class Raw:
    """A raw client connection to the proxy: send bytes, read an answer head, read to EOF."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, proxy: LabProxy) -> Raw:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*proxy.address), TIMEOUT_S)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT_S)

    async def head(self) -> tuple[int, Head]:
        """The answer's status and head (the body, if any, stays in the reader)."""
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
        head = parse_head(raw, request=False)
        assert head is not None, raw
        return int(head.start_line.split(" ")[1]), head

    async def rest(self) -> bytes:
        """Everything until the proxy closes (EOF or reset)."""
        chunks = []
        try:
            while data := await asyncio.wait_for(self.reader.read(65536), TIMEOUT_S):
                chunks.append(data)
        except ConnectionError:
            pass
        return b"".join(chunks)

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT_S)
        except (ConnectionError, TimeoutError):
            pass


class Captured(logging.Handler):
    """Every record of the `proxy_lab.proxy` logger (and its children), formatted with tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)

    @property
    def tracebacks(self) -> list[str]:
        return [self.format(r) for r in self.records if r.exc_info or r.levelno >= logging.ERROR]


async def until_idle(proxy: LabProxy, timeout_s: float = 4.0) -> None:
    """Wait, bounded, until the proxy has noticed that its clients left: no connection, no tunnel
    open. A close reaches the proxy some time after the client made it (a tunnel also waits for
    its upstream's FIN), so a test that counts capacity waits for this first; it asserts after."""
    for _ in range(int(timeout_s / 0.02)):
        if proxy.stats.connections_open == 0 and proxy.stats.tunnels_open == 0:
            return
        await asyncio.sleep(0.02)


@asynccontextmanager
async def captured_proxy_log() -> AsyncIterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("proxy_lab.proxy")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
