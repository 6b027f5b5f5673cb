"""The relay: the upstream proxy that the inspection engine's mitmproxy sends every tunnel to.

mitmproxy runs in upstream mode (`upstream:http://127.0.0.1:<relay>`): for each tunnel it opens one
connection to the relay and sends `CONNECT host:port` there, with the tunnel's token header copied
from the stage's own CONNECT (addons.py). The relay answers with the upstream socket the stage's
owner already opened through its Resolver and its pipeline (tunnels.py), or with one it opens
again through the same pipeline when mitmproxy reconnects. So no name ever reaches the system
resolver from here. Bytes are copied both ways; an EOF is passed on as a half-close.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.http1 import parse_head
from proxy_lab.proxy.inspection.tunnels import TUNNEL_HEADER, InspectionError, OpenFn, Tunnels

log = logging.getLogger("proxy_lab.proxy.inspection")

HEAD_TIMEOUT_S = 10.0  # a CONNECT head from mitmproxy
REOPEN_TIMEOUT_S = 15.0  # a second upstream connection opened through the owner's pipeline
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


class Relay:
    """Serves mitmproxy's upstream CONNECTs from the tunnels the stages announced (on the engine's loop)."""

    def __init__(self, tunnels: Tunnels) -> None:
        self.tunnels = tunnels

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection from mitmproxy (`asyncio.start_server`'s callback)."""
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
                head = parse_head(raw)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, RemoteProtocolError):
                return
            if head is None:
                return
            try:
                sock = await self._upstream_for(head.get(TUNNEL_HEADER) or "")
            except InspectionError as exc:
                log.warning("inspection relay: %s (%s)", exc, head.start_line)
                writer.write(_BAD_GATEWAY)
                await writer.drain()
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(sock=sock)
            writer.write(_ESTABLISHED)
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()

    async def _upstream_for(self, token: str) -> socket.socket:
        pending = self.tunnels.take(token)
        if pending is None:
            raise InspectionError(f"upstream CONNECT with unknown tunnel token {token[:40]!r}")
        if pending.sock is not None:
            return pending.sock
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
