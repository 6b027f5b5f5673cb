"""latency: a delay line each way (arrival + delay, in order, never multiplied), on a virtual clock and
through the proxy, alone and in front of a throttle."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from proxy_lab.cloud import Cloud
from proxy_lab.device.device import Device
from proxy_lab.device.settings import DeviceSettings, ProxySettings
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome
from proxy_lab.pki import PKI
from proxy_lab.proxy import Fault, ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx, Direction
from proxy_lab.proxy.faults.latency import Latency
from proxy_lab.proxy.shaping import DelayLine
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, client, echo, lab_proxy, run, upstream

CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "distservp1.pb.com", 443)


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay_s: float) -> None:
        self.now += delay_s


class RecordingTunnel:
    def __init__(self, vt: VirtualTime) -> None:
        self.ctx = CTX
        self.vt = vt
        self.sent: list[tuple[float, Direction, bytes]] = []
        self.bytes_client_to_upstream = self.bytes_upstream_to_client = 0
        self.closed = False

    def send(self, direction: Direction, data: bytes) -> None:
        self.sent.append((round(self.vt.now, 9), direction, data))

    async def flush(self, timeout_s: float = 2.0) -> None: ...
    def close(self, why: str) -> None: ...
    def reset(self, why: str) -> None: ...


def test_each_chunk_leaves_at_its_arrival_plus_the_delay_not_after_the_previous_chunks_delay() -> None:
    vt = VirtualTime()
    fault = make_fault("latency", {"delay_ms": 100})
    assert isinstance(fault, Latency)
    stage = fault.stream(CTX, clock=vt.clock, sleep=vt.sleep)
    assert stage is not None
    tunnel = RecordingTunnel(vt)
    stage.bind(tunnel)

    async def script() -> None:
        for at, data in ((0.0, b"A"), (0.01, b"B"), (0.02, b"C")):
            vt.now = at
            assert await stage.upstream_to_client(data) == b""  # held, released by run()
        releaser = asyncio.create_task(stage.run())
        await asyncio.wait_for(stage.at_eof("upstream_to_client"), TIMEOUT_S)  # the FIN waits its turn
        assert vt.now == pytest.approx(0.12)
        releaser.cancel()

    asyncio.run(script())
    assert tunnel.sent == [
        (0.1, "upstream_to_client", b"A"),
        (0.11, "upstream_to_client", b"B"),
        (0.12, "upstream_to_client", b"C"),
    ]


def test_jitter_never_reorders_and_the_same_seed_gives_the_same_delays() -> None:
    def schedule(seed: int) -> list[float]:
        line = DelayLine(0.05, 0.04, random.Random(seed))
        return [line.due(now=i * 0.001) for i in range(200)]  # a chunk every ms, jitter ±40 ms

    first = schedule(7)
    assert first == sorted(first)  # TCP delivers in order: a chunk never overtakes the one ahead
    assert all(d >= i * 0.001 + 0.01 for i, d in enumerate(first))  # never less than delay - jitter
    assert schedule(7) == first and schedule(8) != first


def test_without_jitter_every_chunk_gets_exactly_the_delay() -> None:
    line = DelayLine(0.25, 0.0, random.Random(0))
    assert [line.due(t) for t in (0.0, 1.0, 1.5)] == [0.25, 1.25, 1.75]


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"delay_ms": -1}, "expected 0-600000"),
        ({"delay_ms": 1.5}, "expected int"),  # whole milliseconds
        ({"jitter_ms": 700_000}, "expected 0-600000"),
    ],
)
def test_bad_settings_are_rejected(settings: dict[str, object], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        make_fault("latency", settings)


def _proxy(faults: list[Fault], port: int):  # type: ignore[no-untyped-def]
    return lab_proxy(ProxyConfig(faults=faults), MapResolver({("e.test", None): ("127.0.0.1", port)}))


async def _echo_times(faults: list[Fault]) -> tuple[float, list[float], bytes]:
    """Connect time, then each of five chunks' echo delay; and the stream up to EOF."""
    async with upstream(echo) as up, _proxy(faults, up.port) as proxy:
        c = await client(proxy)
        start = time.monotonic()
        assert (await c.connect("e.test:443")).status == 200
        connect_s = time.monotonic() - start
        delays = []
        for i in range(5):  # one byte every 20 ms, each echoed back (through the delay line both ways)
            sent = time.monotonic()
            c.send(bytes([65 + i]))
            assert await c.read_exactly(1) == bytes([65 + i])
            delays.append(time.monotonic() - sent)
        c.send(b"xyz" * 1000)
        c.writer.write_eof()
        rest = await c.read_to_eof()
        await c.close()
        return connect_s, delays, rest


def test_through_the_proxy_each_echo_takes_one_round_trip_of_the_delay_line() -> None:
    connect_s, delays, rest = run(_echo_times([make_fault("latency", {"delay_ms": 60})]))
    assert connect_s >= 0.115  # the upstream handshake crossed the link: 2 x 60 ms
    assert all(d >= 0.115 for d in delays)  # 60 ms up, 60 ms down
    assert max(delays) < 1.0  # generous: delays do not pile up from chunk to chunk
    assert rest == b"xyz" * 1000 + b"[eof after 3005 bytes]"  # the FIN came behind the last byte


def test_through_the_proxy_without_latency_the_echo_is_immediate() -> None:
    connect_s, delays, rest = run(_echo_times([]))  # negative control
    assert connect_s < 0.1 and max(delays) < 0.1
    assert rest == b"xyz" * 1000 + b"[eof after 3005 bytes]"


def test_through_the_proxy_jittered_bytes_arrive_complete_and_in_order() -> None:
    async def scenario() -> bytes:
        fault = make_fault("latency", {"delay_ms": 20, "jitter_ms": 15, "seed": 3, "delay_connect": False})
        async with upstream(echo) as up, _proxy([fault], up.port) as proxy:
            c = await client(proxy)
            assert (await c.connect("e.test:443")).status == 200
            for i in range(40):
                c.send(f"{i:03d},".encode())
                await asyncio.sleep(0.002)
            c.writer.write_eof()
            got = await c.read_to_eof()
            await c.close()
            return got

    expected = "".join(f"{i:03d}," for i in range(40)).encode()
    assert run(scenario()) == expected + b"[eof after 160 bytes]"


async def _download(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.readexactly(3), TIMEOUT_S)
        writer.write(b"d" * 30_000)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        pass
    finally:
        writer.close()


def test_bytes_the_delay_line_releases_still_go_through_a_throttle_configured_after_it() -> None:
    async def scenario() -> tuple[bytes, float]:
        faults = [
            make_fault("latency", {"delay_ms": 50, "delay_connect": False}),
            make_fault("throttle", {"rate_kbps": 800}),  # 100 kB/s
        ]
        async with upstream(_download) as up, _proxy(faults, up.port) as proxy:
            c = await client(proxy)
            assert (await c.connect("e.test:443")).status == 200
            start = time.monotonic()
            c.send(b"GET")
            got = await c.read_to_eof()
            elapsed = time.monotonic() - start
            await c.close()
            return got, elapsed

    got, elapsed = run(scenario())
    assert got == b"d" * 30_000
    assert elapsed >= 0.1 + (30_000 - 1460) / 100_000 * 0.98  # both delays, then the shaped bytes


async def _device_sees(pki: PKI, journal: Path, delay_ms: int) -> Outcome:
    faults = [make_fault("latency", {"delay_ms": delay_ms})] if delay_ms else []
    async with Cloud(pki) as cloud, lab_proxy(ProxyConfig(faults=faults), cloud.resolver) as proxy:
        settings = DeviceSettings(proxy=ProxySettings(*proxy.address), read_timeout_s=1.0)
        with Device(settings, pki, cloud.resolver, journal_path=journal) as device:
            results = await device.run(["distributor"])
    return max((r.outcome for r in results), key=lambda o: o.severity)


def test_the_device_times_out_when_the_delay_exceeds_its_read_timeout(pki: PKI, tmp_path: Path) -> None:
    assert run(_device_sees(pki, tmp_path / "j", delay_ms=700), timeout_s=30) == Outcome.TIMEOUT


def test_the_device_passes_with_a_delay_inside_its_read_timeout(pki: PKI, tmp_path: Path) -> None:
    assert run(_device_sees(pki, tmp_path / "j", delay_ms=100), timeout_s=30) == Outcome.PASS
    assert (
        run(_device_sees(pki, tmp_path / "j2", delay_ms=0), timeout_s=30) == Outcome.PASS
    )  # negative control
