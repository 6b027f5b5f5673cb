"""reset_after: the tunnel is cut with a TCP reset once N bytes have passed (the stage path of the relay)."""

from __future__ import annotations

import asyncio

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx, Direction
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, client, lab_proxy, run, upstream

CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "dlsdlp1.pb.com", 443)


class FakeTunnel:
    """A TunnelControl that records what the stage asked for (a socket-free playbook)."""

    def __init__(self) -> None:
        self.ctx = CTX
        self.calls: list[tuple[str, object]] = []
        self.bytes_client_to_upstream = 0
        self.bytes_upstream_to_client = 0
        self.closed = False

    def send(self, direction: Direction, data: bytes) -> None:
        self.calls.append(("send", (direction, data)))

    async def flush(self, timeout_s: float = 2.0) -> None:
        self.calls.append(("flush", None))

    def close(self, why: str) -> None:
        self.calls.append(("close", why))

    def reset(self, why: str) -> None:
        self.calls.append(("reset", why))


def test_the_stage_passes_bytes_until_the_limit_then_sends_the_rest_of_the_limit_and_resets() -> None:
    stage = make_fault("reset_after", {"after_bytes": 10}).stream(CTX)
    assert stage is not None
    tunnel = FakeTunnel()
    stage.bind(tunnel)

    async def script() -> None:
        assert await stage.upstream_to_client(b"12345") == b"12345"  # 5 of 10
        assert await stage.upstream_to_client(b"6789abcdef") == b""  # 9 more: 5 go out, then the reset
        assert tunnel.calls == [
            ("send", ("upstream_to_client", b"6789a")),
            ("flush", None),
            ("reset", "reset_after: 10 bytes (upstream_to_client)"),
        ]

    asyncio.run(script())


def test_only_the_chosen_direction_is_inspected_the_other_stays_on_the_fast_path() -> None:
    stage = make_fault("reset_after", {"after_bytes": 1, "direction": "upstream_to_client"}).stream(CTX)
    assert stage is not None
    assert stage.inspects("upstream_to_client") and not stage.inspects("client_to_upstream")
    both = make_fault("reset_after", {"after_bytes": 1, "direction": "both"}).stream(CTX)
    assert both is not None and both.inspects("client_to_upstream") and both.inspects("upstream_to_client")


async def _download(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.readexactly(3), TIMEOUT_S)  # "GET"
        writer.write(b"x" * 200_000)
        await writer.drain()
        await asyncio.wait_for(reader.read(), TIMEOUT_S)
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        pass
    finally:
        writer.close()


async def _fetch(after_bytes: int) -> tuple[bytes, BaseException | None]:
    async with upstream(_download) as up:
        resolver = MapResolver({("dlsdlp1.pb.com", None): ("127.0.0.1", up.port)})
        fault = make_fault("reset_after", {"after_bytes": after_bytes})
        async with lab_proxy(ProxyConfig(faults=[fault]), resolver) as proxy:
            c = await client(proxy)
            assert (await c.connect("dlsdlp1.pb.com:443")).status == 200
            c.send(b"GET")
            got = b""
            error: BaseException | None = None
            try:
                while len(got) < 200_000 and (chunk := await c.read()):
                    got += chunk
            except ConnectionResetError as exc:
                error = exc
            await c.close()
            await asyncio.sleep(0.05)
            return got, error


def test_through_the_proxy_a_download_is_reset_after_the_limit() -> None:
    got, error = run(_fetch(after_bytes=1000))
    assert got == b"x" * 1000  # the bytes before the limit are delivered (flushed), then the RST
    assert isinstance(error, ConnectionResetError)


def test_through_the_proxy_a_limit_above_the_size_lets_the_download_complete() -> None:
    got, error = run(_fetch(after_bytes=300_000))  # negative control
    assert len(got) == 200_000 and error is None
