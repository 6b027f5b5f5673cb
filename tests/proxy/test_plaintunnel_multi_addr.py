"""A name with several addresses: the proxy tries the next one after a refused connect (upstream.py's
one connect loop, for a tunnel's protocol and for a fault's bare socket alike)."""

import asyncio

from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.resolver import SystemResolver
from tests.proxy.proxy_testkit import closed_port, eventually, upstream_server


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


def test_the_connect_loop_reuses_the_protocol_after_a_refused_address(loop_factory):
    from proxy_lab.proxy.faults.base import Ctx
    from proxy_lab.proxy.upstream import Upstream

    class Heard(asyncio.Protocol):
        def __init__(self) -> None:
            self.transport: asyncio.Transport | None = None
            self.data = b""

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.data += data

    async def main():
        srv, port = await upstream_server(say_hi)
        dead = closed_port()
        upstream = Upstream(SystemResolver(), connect_timeout_s=5)
        ctx = Ctx(client=("127.0.0.1", 1), proxy=("127.0.0.1", 2), host="x", port=port)
        heard = Heard()
        await upstream.connect(ctx, [("127.0.0.1", dead), ("127.0.0.1", port)], heard)
        assert heard.transport is not None
        assert heard.transport.get_extra_info("peername")[1] == port  # the live one
        await eventually(lambda: heard.data == b"hi", "the live upstream's greeting")
        heard.transport.abort()
        upstream.close()
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)
