"""relay.py: the general path's tunnel between two real loopback sockets, driven directly.

Each test builds a `Tunnel`, connects its upstream side to one end of a loopback TCP connection
and hands it one end of another as the client's transport, as the server does after its 200.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from proxy_lab.proxy.faults.base import Ctx, Direction, Stage
from proxy_lab.proxy.records import ProxyStats
from proxy_lab.proxy.relay import Tunnel
from tests.proxy.proxy_testkit import TIMEOUT_S, eventually, run

CTX = Ctx(client=("127.0.0.1", 1), proxy=("127.0.0.1", 2), host="up.test", port=443)


@dataclass
class Ends:
    """The far ends of a tunnel: what the client and the upstream hold."""

    tunnel: Tunnel
    stats: ProxyStats
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter]


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Both ends of one loopback TCP connection (a reset is a real RST, unlike a Unix socket pair's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        far = socket.create_connection(listener.getsockname(), timeout=TIMEOUT_S)
        near, _ = listener.accept()
    return far, near


class _Accepting(asyncio.Protocol):
    """Stands for the server's ClientProtocol until the tunnel takes the transport over."""


@asynccontextmanager
async def tunnel_between(
    stages: list[Stage] | None = None, *, leftover: bytes = b"", upstream_first: bytes = b""
) -> AsyncIterator[Ends]:
    loop = asyncio.get_running_loop()
    stats = ProxyStats()
    tunnel = Tunnel(CTX, stats, stages or [])
    client_far, client_near = tcp_pair()
    upstream_far, upstream_near = tcp_pair()
    for sock in (client_near, upstream_near):
        sock.setblocking(False)
    await loop.create_connection(lambda: tunnel.upstream, sock=upstream_near)
    client = await asyncio.open_connection(sock=client_far)
    upstream = await asyncio.open_connection(sock=upstream_far)
    if upstream_first:  # sent by the upstream before the tunnel is announced: held until start()
        upstream[1].write(upstream_first)
        await upstream[1].drain()
        await asyncio.sleep(0.05)
    transport, _ = await loop.connect_accepted_socket(_Accepting, client_near)
    tunnel.attach_client(transport, leftover, False)  # type: ignore[arg-type]
    tunnel.start()
    try:
        yield Ends(tunnel, stats, client, upstream)
    finally:
        tunnel.abort()
        for _, writer in (client, upstream):
            writer.close()


async def read_exactly(ends: tuple[asyncio.StreamReader, asyncio.StreamWriter], n: int) -> bytes:
    return await asyncio.wait_for(ends[0].readexactly(n), TIMEOUT_S)


async def read_to_eof(ends: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bytes:
    return await asyncio.wait_for(ends[0].read(), TIMEOUT_S)


def test_bytes_flow_both_ways_and_are_counted_on_the_tunnel_and_the_proxy() -> None:
    async def scenario() -> None:
        async with tunnel_between() as t:
            t.client[1].write(b"hello")
            assert await read_exactly(t.upstream, 5) == b"hello"
            t.upstream[1].write(b"world!")
            assert await read_exactly(t.client, 6) == b"world!"
            assert (t.tunnel.bytes_client_to_upstream, t.tunnel.bytes_upstream_to_client) == (5, 6)
            assert (t.stats.bytes_client_to_upstream, t.stats.bytes_upstream_to_client) == (5, 6)

    run(scenario())


def test_a_half_close_is_passed_on_and_the_other_direction_keeps_flowing_until_both_end() -> None:
    async def scenario() -> None:
        async with tunnel_between() as t:
            t.client[1].write(b"last words")
            t.client[1].write_eof()
            assert await read_to_eof(t.upstream) == b"last words"  # FIN passed on as a half-close
            assert not t.tunnel.closed
            t.upstream[1].write(b"still answering")
            assert await read_exactly(t.client, 15) == b"still answering"
            t.upstream[1].write_eof()
            assert await read_to_eof(t.client) == b""
            await asyncio.wait_for(t.tunnel.done, TIMEOUT_S)
            assert t.tunnel.why_closed == "both sides closed"

    run(scenario())


def test_pipelined_bytes_go_first_and_what_the_upstream_said_early_is_delivered_after_the_start() -> None:
    async def scenario() -> None:
        async with tunnel_between(leftover=b"early ", upstream_first=b"banner\n") as t:
            t.client[1].write(b"late")
            assert await read_exactly(t.upstream, 10) == b"early late"
            assert await read_exactly(t.client, 7) == b"banner\n"

    run(scenario())


class Shout(Stage):
    directions: tuple[Direction, ...] = ("upstream_to_client",)

    async def upstream_to_client(self, data: bytes) -> bytes:
        return data.upper()

    async def at_eof(self, direction: Direction) -> bytes:
        return b"<eof>"


def test_a_stage_changes_its_direction_only_and_adds_its_bytes_before_the_eof() -> None:
    async def scenario() -> None:
        async with tunnel_between([Shout()]) as t:
            t.client[1].write(b"quiet")
            assert await read_exactly(t.upstream, 5) == b"quiet"  # the other direction is untouched
            t.upstream[1].write(b"loud")
            t.upstream[1].write_eof()
            assert await read_to_eof(t.client) == b"LOUD<eof>"

    run(scenario())


class FirstChunkOnly(Stage):
    """Upper-cases the first chunk toward the client, then is finished with that direction."""

    def __init__(self) -> None:
        self.seen = 0

    async def upstream_to_client(self, data: bytes) -> bytes:
        self.seen += 1
        return data.upper()

    async def at_eof(self, direction: Direction) -> bytes:
        return b"<eof>"  # never sent: the stage finished with its direction before the end

    def finished(self, direction: Direction) -> bool:
        return self.seen >= 1


def test_a_stage_finished_with_its_direction_leaves_the_rest_to_the_fast_path() -> None:
    async def scenario() -> None:
        stage = FirstChunkOnly()
        async with tunnel_between([stage]) as t:
            t.upstream[1].write(b"first")
            assert await read_exactly(t.client, 5) == b"FIRST"
            await eventually(lambda: t.tunnel.down.fast, "the flow goes fast once its stage is finished")
            assert t.tunnel.down.task is None
            bulk = bytes(range(256)) * 4096  # 1 MiB after the switch: in order, unchanged, counted
            t.upstream[1].write(b"second" + bulk)
            t.upstream[1].write_eof()
            assert await read_to_eof(t.client) == b"second" + bulk
            assert stage.seen == 1 and t.tunnel.bytes_upstream_to_client == 5 + 6 + len(bulk)
            assert t.tunnel.first_end == "upstream_to_client"

    run(scenario())


def test_a_reset_on_one_side_closes_the_other_and_names_the_side() -> None:
    async def scenario() -> None:
        async with tunnel_between() as t:
            t.client[1].write(b"x")
            assert await read_exactly(t.upstream, 1) == b"x"
            sock = t.upstream[1].get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t.upstream[1].transport.abort()  # RST from the upstream
            await asyncio.wait_for(t.tunnel.done, TIMEOUT_S)
            try:
                rest = await read_to_eof(t.client)
            except ConnectionError:
                rest = b""
            assert rest == b""
            assert t.tunnel.why_closed.startswith("upstream connection lost")
            await eventually(lambda: t.tunnel.closed, "the tunnel closed")

    run(scenario())
