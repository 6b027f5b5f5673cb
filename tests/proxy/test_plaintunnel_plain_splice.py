"""The plain path (plainpath.py, plaintunnel.py) and its splice relay: the answers, half-closes and
counts of the general path."""

import asyncio
import hashlib
import os
import socket
import struct
import time

import pytest

from proxy_lab.proxy import LabProxy, ProxyConfig, splice
from proxy_lab.resolver import MapResolver, SystemResolver
from tests.proxy.proxy_testkit import closed_port, eventually, settled, upstream_server

BIG = 8 << 20
PLAIN = ProxyConfig(plain_path=True)


async def open_tunnel(proxy, target, extra=b""):
    r, w = await asyncio.open_connection(*proxy.address)
    w.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode() + extra)
    head = await r.readuntil(b"\r\n\r\n")
    return r, w, head


@pytest.mark.parametrize("resolver_kind", ["system", "map"])
@pytest.mark.parametrize("size", [10, BIG])
def test_half_close_both_ways(resolver_kind, size, loop_factory):
    async def main():
        got = {}

        async def handler(r, w):
            data = await r.read()  # until the client's FIN, passed on as a half-close
            got["up"] = len(data)
            w.write(hashlib.sha256(data).digest() + b"z" * size)
            await w.drain()
            w.close()

        srv, port = await upstream_server(handler)
        resolver = (
            SystemResolver()
            if resolver_kind == "system"
            else MapResolver({("up.test", None): ("127.0.0.1", port)})
        )
        target = f"127.0.0.1:{port}" if resolver_kind == "system" else f"up.test:{port}"
        async with LabProxy(PLAIN, resolver) as proxy:
            r, w, head = await open_tunnel(proxy, target)
            assert head.startswith(b"HTTP/1.1 200")
            payload = os.urandom(size)
            w.write(payload)
            await w.drain()
            w.write_eof()
            back = await r.read()
            assert back[:32] == hashlib.sha256(payload).digest()
            assert len(back) == 32 + size
            w.close()
            await settled(proxy)
            assert proxy.stats.tunnels_open == 0
            closed = [r for r in proxy.log if r.event == "tunnel_closed"][-1]
            assert f"{size} B up, {size + 32} B down" in closed.message, closed.message
            assert proxy.stats.bytes_client_to_upstream == size
            assert proxy.stats.bytes_upstream_to_client == size + 32
            assert proxy.stats.connections_open == 0
            assert proxy.plain is not None and proxy.plain.stats.tunnels == 1  # the plain path carried it
        srv.close()
        assert got["up"] == size

    asyncio.run(main(), loop_factory=loop_factory)


def test_server_speaks_first_and_pipelined_bytes(loop_factory):
    async def main():
        async def handler(r, w):
            w.write(b"BANNER\n")
            await w.drain()
            line = await r.readline()
            w.write(b"echo " + line)
            await w.drain()
            w.close()

        srv, port = await upstream_server(handler)
        async with LabProxy(PLAIN, SystemResolver()) as proxy:
            r, w, head = await open_tunnel(proxy, f"127.0.0.1:{port}", extra=b"hello\n")
            assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
            assert await r.readline() == b"BANNER\n"
            assert await r.readline() == b"echo hello\n"
            assert await r.read() == b""
            w.close()
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)


def test_refused_connect_is_503_and_counts(loop_factory):
    async def main():
        port = closed_port()
        async with LabProxy(PLAIN, SystemResolver()) as proxy:
            _r, w, head = await open_tunnel(proxy, f"127.0.0.1:{port}")
            assert head.startswith(b"HTTP/1.1 503"), head
            assert b"ERR_CONNECT_FAIL 111" in head
            w.close()
            await settled(proxy)
            assert proxy.stats.refusals[503] == 1 and proxy.stats.connections_open == 0
            assert proxy.plain is not None and proxy.plain.stats.requests == 1  # tried on the plain path

    asyncio.run(main(), loop_factory=loop_factory)


def test_stop_aborts_spliced_tunnel_after_grace(loop_factory):
    async def main():
        async def handler(r, w):
            while await r.read(1 << 16):
                w.write(b"y" * (1 << 16))
                await w.drain()

        srv, port = await upstream_server(handler)
        proxy = LabProxy(PLAIN, SystemResolver())
        await proxy.start()
        r, w, _head = await open_tunnel(proxy, f"127.0.0.1:{port}")
        w.write(b"x" * (4 << 20))
        await w.drain()
        n = 0
        while n < (4 << 20):
            n += len(await r.read(1 << 20))
        assert splice.active() == 1, splice.active()
        t0 = time.monotonic()
        await proxy.stop(grace_s=0.5)
        assert 0.4 < time.monotonic() - t0 < 3
        assert splice.active() == 0
        assert proxy.stats.tunnels_open == 0
        rest = b"x"
        try:
            while rest:
                rest = await asyncio.wait_for(r.read(1 << 20), 2)
        except ConnectionError:
            pass
        w.close()
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)


def test_reset_from_upstream_closes_client_in_splice(loop_factory):
    async def main():
        client_has_ok = asyncio.Event()

        async def handler(r, w):
            await r.readexactly(2 << 20)  # 2 MiB up: the tunnel is spliced by now
            w.write(b"ok")
            await w.drain()
            await asyncio.wait_for(client_has_ok.wait(), 5)  # the bytes named below arrived first
            sock = w.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()  # RST

        srv, port = await upstream_server(handler)
        async with LabProxy(PLAIN, SystemResolver()) as proxy:
            r, w, _head = await open_tunnel(proxy, f"127.0.0.1:{port}")
            w.write(b"x" * (2 << 20))
            await w.drain()
            assert await asyncio.wait_for(r.readexactly(2), 5) == b"ok"
            await eventually(lambda: splice.active() == 1, "the tunnel relayed by splice threads")
            client_has_ok.set()
            rest = b"x"
            try:  # the proxy closes the client once the upstream's reset ends the tunnel
                rest = await asyncio.wait_for(r.read(100), 5)
            except ConnectionError:
                rest = b""
            assert rest == b""
            w.close()
            await settled(proxy)
            assert proxy.stats.tunnels_open == 0 and splice.active() == 0
            rec = [r for r in proxy.log if r.event == "tunnel_closed"][-1]
            assert f"{2 << 20} B up, 2 B down" in rec.message and "upstream connection lost" in rec.message, rec.message
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)
