"""The plain fast path of the lab proxy (fastpath.py, splice.py): same answers and half-close behaviour as the general path."""

import asyncio
import socket

import pytest
import uvloop

from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.resolver import SystemResolver


@pytest.mark.parametrize("uv", [False, True])
def test_second_address_after_a_refused_first(uv):
    async def main():
        async def handler(r, w):
            w.write(b"hi")
            await w.drain()
            w.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        infos = socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
        print([i[4][0] for i in infos])
        async with LabProxy(ProxyConfig(), SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address)
            w.write(f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
            head = await r.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            assert await r.read() == b"hi"
            w.close()
        srv.close()

    asyncio.run(main(), loop_factory=uvloop.new_event_loop if uv else None)


@pytest.mark.parametrize("uv", [False, True])
def test_connect_any_reuses_the_protocol_after_a_refused_address(uv):
    from proxy_lab.proxy.faults.base import Ctx
    from proxy_lab.proxy.relay import Tunnel

    async def main():
        async def handler(r, w):
            w.write(b"hi")
            await w.drain()
            w.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        s.close()
        async with LabProxy(ProxyConfig(), SystemResolver()) as proxy:
            ctx = Ctx(client=("127.0.0.1", 1), proxy=proxy.address, host="x", port=port)
            tunnel = Tunnel(ctx, proxy.stats, [])
            await proxy._connect_any(ctx, [("127.0.0.1", dead), ("127.0.0.1", port)], tunnel.upstream)
            assert tunnel.upstream.transport is not None and not tunnel.upstream.lost
            assert tunnel.upstream.held == [] or tunnel.upstream.held is not None
            await asyncio.sleep(0.05)
            assert tunnel.upstream.held == [b"hi"]
            tunnel.abort()
        srv.close()

    asyncio.run(main(), loop_factory=uvloop.new_event_loop if uv else None)
