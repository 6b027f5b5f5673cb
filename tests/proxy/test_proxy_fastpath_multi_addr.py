"""A name with several addresses: the proxy tries the next one after a refused connect, on both paths."""

import asyncio

from proxy_testkit import closed_port, upstream_server

from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.resolver import SystemResolver


class DeadThenLive:
    """A resolver that answers a name with a refusing address first, then the live one."""

    def __init__(self, dead: int, live: int) -> None:
        self.dead, self.live = dead, live
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        self.asked.append(host)
        return [("127.0.0.1", self.dead), ("127.0.0.1", self.live)]


async def say_hi(r, w):
    w.write(b"hi")
    await w.drain()
    w.close()


def test_second_address_after_a_refused_first(loop_factory):
    async def main():
        srv, port = await upstream_server(say_hi)
        dead = closed_port()
        resolver = DeadThenLive(dead, port)
        async with LabProxy(ProxyConfig(), resolver) as proxy:
            r, w = await asyncio.open_connection(*proxy.address)
            w.write(f"CONNECT two.lab.test:{port} HTTP/1.1\r\n\r\n".encode())
            head = await r.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            assert await r.read() == b"hi"
            w.close()
        assert resolver.asked == ["two.lab.test"]
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)


def test_connect_any_reuses_the_protocol_after_a_refused_address(loop_factory):
    from proxy_lab.proxy.faults.base import Ctx
    from proxy_lab.proxy.relay import Tunnel

    async def main():
        srv, port = await upstream_server(say_hi)
        dead = closed_port()
        async with LabProxy(ProxyConfig(), SystemResolver()) as proxy:
            ctx = Ctx(client=("127.0.0.1", 1), proxy=proxy.address, host="x", port=port)
            tunnel = Tunnel(ctx, proxy.stats, [])
            await proxy._connect_any(ctx, [("127.0.0.1", dead), ("127.0.0.1", port)], tunnel.upstream)
            assert tunnel.upstream.transport is not None and not tunnel.upstream.lost
            assert tunnel.upstream.transport.get_extra_info("peername")[1] == port  # the live one
            await asyncio.sleep(0.05)
            assert tunnel.upstream.held == [b"hi"]
            tunnel.abort()
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)
