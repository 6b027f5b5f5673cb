"""The fault hooks as later faults will use them: stages, resolve/open middleware, taking over a client.

The faults here are test-only subclasses without a `name=`, so they are not registered.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults import ClientConn, Ctx, Direction, Fault, OpenNext, ResolveNext, Stage
from proxy_lab.resolver import Address, MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, client, eventually, lab_proxy, run, upstream


class Upper(Stage):
    directions: tuple[Direction, ...] = ("upstream_to_client",)

    async def upstream_to_client(self, data: bytes) -> bytes:
        await asyncio.sleep(0)  # a transform may await (timing faults do)
        return data.upper()

    async def at_eof(self, direction: Direction) -> bytes:
        return b"!"


@dataclass(kw_only=True)
class UpperFault(Fault):
    """Upper-cases what the upstream sends (test only)."""

    def stream(self, ctx: Ctx) -> Stage | None:
        return Upper()


def test_a_stage_transforms_one_direction_and_adds_bytes_before_the_eof() -> None:
    async def scenario() -> None:
        async with (
            upstream() as up,
            lab_proxy(
                ProxyConfig(faults=[UpperFault()]), MapResolver({("e.test", None): ("127.0.0.1", up.port)})
            ) as proxy,
        ):
            c = await client(proxy)
            assert (await c.connect("e.test:443")).status == 200
            c.send(b"abc")
            assert await c.read_exactly(3) == b"ABC"
            c.writer.write_eof()
            assert await c.read_to_eof() == b"[EOF AFTER 3 BYTES]!"
            await c.close()

    stage = Upper()
    assert stage.inspects("upstream_to_client") and not stage.inspects("client_to_upstream")
    run(scenario())


class CloseSoon(Stage):
    async def run(self) -> None:
        await asyncio.sleep(0.1)
        self.tunnel.close("idle for 0.1 s")


@dataclass(kw_only=True)
class CloseSoonFault(Fault):
    """Closes every tunnel after 0.1 s (test only)."""

    def stream(self, ctx: Ctx) -> Stage | None:
        return CloseSoon()


def test_a_stage_background_task_can_close_the_tunnel() -> None:
    async def scenario() -> None:
        async with (
            upstream() as up,
            lab_proxy(
                ProxyConfig(faults=[CloseSoonFault()]),
                MapResolver({("e.test", None): ("127.0.0.1", up.port)}),
            ) as proxy,
        ):
            c = await client(proxy)
            assert (await c.connect("e.test:443")).status == 200
            assert await c.read_to_eof() == b""
            await c.close()
            await eventually(lambda: "idle for 0.1 s" in proxy.log[-1].message, "the tunnel's close recorded")

    run(scenario())


@dataclass(kw_only=True)
class Recorder(Fault):
    """Records the resolve and open_upstream calls it sees, then delegates (test only)."""

    label: str = "r"
    calls: list[str] = field(default_factory=list)
    reroute: Address | None = None

    async def resolve(self, ctx: Ctx, host: str, port: int, next: ResolveNext) -> list[Address]:
        self.calls.append(f"{self.label}.resolve {host}:{port}")
        if self.reroute is not None:
            return [self.reroute]
        return await next(host, port)

    async def open_upstream(self, ctx: Ctx, host: str, port: int, next: OpenNext) -> socket.socket:
        self.calls.append(f"{self.label}.open {host}:{port}")
        return await next(host, port)


def test_resolve_and_open_upstream_hooks_chain_in_the_configured_order() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            shared: list[str] = []
            first = Recorder(label="a", calls=shared)
            second = Recorder(label="b", calls=shared, reroute=("127.0.0.1", up.port))
            async with lab_proxy(ProxyConfig(faults=[first, second]), MapResolver()) as proxy:
                c = await client(proxy)
                # the MapResolver knows nothing: only b's reroute lets the tunnel open
                assert (await c.connect("anything.test:443")).status == 200
                await c.close()
            assert shared == [
                "a.open anything.test:443",
                "b.open anything.test:443",
                "a.resolve anything.test:443",
                "b.resolve anything.test:443",
            ]

    run(scenario())


@dataclass(kw_only=True)
class LineProtocol(Fault):
    """Takes over connections that start with 'TUNNEL host port\\n' (test only, the shape of socks_only)."""

    async def handle_client(self, conn: ClientConn) -> bool:
        while b"\n" not in conn.buffered():
            if not await conn.read_more(TIMEOUT_S):
                return False
            if not conn.buffered().startswith(b"TUNNEL"[: len(conn.buffered())]):
                return False  # not ours: let the HTTP CONNECT path parse it
        line = conn.buffered().split(b"\n", 1)[0]
        conn.consume(len(line) + 1)
        _, host, port = line.decode().split()

        def answer(refusal: Refusal | None) -> bytes:
            return b"OK\n" if refusal is None else f"NO {refusal.status}\n".encode()

        await conn.tunnel(conn.new_ctx(host, int(port)), answer)
        return True


def test_handle_client_can_take_over_a_connection_and_still_use_the_pipeline() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            resolver = MapResolver({("e.test", None): ("127.0.0.1", up.port)})
            faults = [LineProtocol(), make_fault("allow_ports", {"preset": "ssl_ports_only"})]
            async with lab_proxy(ProxyConfig(faults=faults), resolver) as proxy:
                c = await client(proxy)
                c.send(b"TUNNEL e.test 443\nhi")
                assert await asyncio.wait_for(c.reader.readexactly(5), TIMEOUT_S) == b"OK\nhi"
                await c.close()
                c = await client(proxy)  # the pipeline's refusal hooks still apply
                c.send(b"TUNNEL e.test 5938\n")
                assert await c.read_to_eof() == b"NO 403\n"
                await c.close()
                c = await client(proxy)  # negative control: plain CONNECT is untouched
                assert (await c.connect("e.test:443")).status == 200
                await c.close()

    run(scenario())
