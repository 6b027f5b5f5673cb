"""throttle: the token bucket's schedule on a virtual clock, and a shaped download through the proxy.

Accuracy over 10 s at 384 and 1000 kbit/s is measured by `make bench`, not asserted here: the
timed tests below only check bounds that shaping guarantees (never faster than the schedule).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from proxy_lab.cloud import Cloud
from proxy_lab.device.device import Device
from proxy_lab.device.settings import DeviceSettings, ProxySettings
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome
from proxy_lab.pki import PKI
from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx, Direction, Stage
from proxy_lab.proxy.faults.throttle import Throttle
from proxy_lab.proxy.shaping import TokenBucket
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, client, lab_proxy, run, upstream

CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "pbdlsp1.pb.com", 443)


class VirtualTime:
    """A clock that only moves when the code under test sleeps; each sleep wakes `late_s` late."""

    def __init__(self, late_s: float = 0.0) -> None:
        self.now = 0.0
        self.late_s = late_s

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay_s: float) -> None:
        self.now += delay_s + self.late_s


class RecordingTunnel:
    """A TunnelControl that records when each byte left (a socket-free playbook)."""

    def __init__(self, vt: VirtualTime, stages: list[Stage] | None = None) -> None:
        self.ctx = CTX
        self.vt = vt
        self.stages = stages or []
        self.sent: list[tuple[float, Direction, bytes]] = []
        self.bytes_client_to_upstream = self.bytes_upstream_to_client = 0
        self.closed = False

    def send(self, direction: Direction, data: bytes) -> None:
        self.sent.append((self.vt.now, direction, data))

    async def flush(self, timeout_s: float = 2.0) -> None: ...
    def close(self, why: str) -> None: ...
    def reset(self, why: str) -> None: ...


def _shaped(settings: dict[str, object], vt: VirtualTime) -> tuple[Stage, RecordingTunnel]:
    fault = make_fault("throttle", settings)
    assert isinstance(fault, Throttle)
    stage = fault.stream(CTX, clock=vt.clock, sleep=vt.sleep)
    assert stage is not None
    tunnel = RecordingTunnel(vt, [stage])
    stage.bind(tunnel)
    return stage, tunnel


async def _feed(stage: Stage, tunnel: RecordingTunnel, direction: Direction, data: bytes, chunk: int) -> None:
    """As the relay's pump does: each chunk through the transform, what it returns written at once."""
    transform = stage.transform(direction)
    assert transform is not None
    for i in range(0, len(data), chunk):
        out = await transform(data[i : i + chunk])
        if out:
            tunnel.send(direction, out)


@pytest.mark.parametrize("rate_kbps", [384, 1000])
def test_ten_seconds_of_payload_take_ten_seconds_on_a_virtual_clock_although_every_wakeup_is_late(
    rate_kbps: int,
) -> None:
    vt = VirtualTime(late_s=0.001)  # each sleep overshoots by 1 ms: a sleep-after-write shaper would drift
    stage, tunnel = _shaped({"rate_kbps": rate_kbps}, vt)
    rate_bytes_per_s = rate_kbps * 1000 / 8
    total = int(rate_bytes_per_s * 10)
    asyncio.run(_feed(stage, tunnel, "upstream_to_client", bytes(total), chunk=65536))
    assert sum(len(d) for _, _, d in tunnel.sent) == total
    assert max(len(d) for _, _, d in tunnel.sent) == 1460  # sliced to the bucket: no burst above one MSS
    # a slice leaves once the bytes up to its end, less one bucket, have had their time at the rate
    # (+ the 1 ms of its own late wakeup): the overshoots do not add up
    n = len(tunnel.sent)
    last_time = tunnel.sent[-1][0]
    assert last_time == pytest.approx((total - 1460) / rate_bytes_per_s + 0.001, abs=1e-6)
    goodput = (total - len(tunnel.sent[0][2])) / (last_time - tunnel.sent[0][0])
    assert goodput == pytest.approx(rate_bytes_per_s, rel=0.003)
    assert n >= total / 1460


def test_an_idle_bucket_refills_to_one_segment_only_so_a_pause_buys_no_burst() -> None:
    bucket = TokenBucket(48_000)  # 384 kbit/s
    assert bucket.reserve(1460, now=0.0) == 0.0  # a full bucket: the first segment goes at once
    assert bucket.reserve(1460, now=0.0) == pytest.approx(1460 / 48_000)
    times = [bucket.reserve(1460, now=100.0) for _ in range(3)]  # after 100 s idle
    assert times == pytest.approx([100.0, 100.0 + 1460 / 48_000, 100.0 + 2 * 1460 / 48_000])


def test_a_late_sender_loses_nothing_while_it_is_less_than_one_segment_late() -> None:
    bucket = TokenBucket(48_000)
    assert bucket.reserve(1460, now=0.0) == 0.0
    due = bucket.reserve(1460, now=0.0)
    # woken 20 ms late (less than 1460 B at 48 kB/s = 30.4 ms): the next deadline is still on the grid
    assert bucket.reserve(1460, now=due + 0.020) == pytest.approx(2 * 1460 / 48_000)


def test_overhead_is_charged_per_slice_as_tbf_overhead() -> None:
    bucket = TokenBucket(1500, bucket_bytes=1460, overhead_bytes=40)  # 1500 B/s: one full slice per s
    assert bucket.reserve(1460, 0.0) == 0.0
    assert bucket.reserve(1460, 0.0) == pytest.approx(1.0)


def test_each_direction_has_its_own_rate_and_zero_leaves_a_direction_alone() -> None:
    vt = VirtualTime()
    stage, tunnel = _shaped({"rate_kbps": 384, "up_kbps": 96}, vt)
    asyncio.run(_feed(stage, tunnel, "client_to_upstream", bytes(12_000 + 1460), chunk=4096))
    assert tunnel.sent[-1][0] == pytest.approx(1.0)  # 12,000 B after the first slice at 12,000 B/s
    only_down = make_fault("throttle", {"rate_kbps": 384, "up_kbps": 0}).stream(CTX)
    assert only_down is not None
    assert only_down.inspects("upstream_to_client") and not only_down.inspects("client_to_upstream")
    assert make_fault("throttle", {"down_kbps": 0, "up_kbps": 0}).stream(CTX) is None


class Marker(Stage):
    """A stage after the throttle: every byte the throttle releases must still pass through it."""

    async def upstream_to_client(self, data: bytes) -> bytes:
        return data.upper()


def test_slices_released_by_the_throttle_still_pass_through_the_stages_configured_after_it() -> None:
    vt = VirtualTime()
    fault = make_fault("throttle", {"rate_kbps": 384})
    assert isinstance(fault, Throttle)
    stage = fault.stream(CTX, clock=vt.clock, sleep=vt.sleep)
    assert stage is not None
    marker = Marker()
    tunnel = RecordingTunnel(vt, [stage, marker])
    stage.bind(tunnel)
    marker.bind(tunnel)

    async def pump() -> None:  # as the relay: the throttle's return value goes on through the marker
        out = await stage.upstream_to_client(b"ab" * 2000)
        tunnel.send("upstream_to_client", await marker.upstream_to_client(out))

    asyncio.run(pump())
    assert b"".join(d for _, _, d in tunnel.sent) == b"AB" * 2000


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"rate_kbps": 0}, "rate_kbps: 0.0 must be > 0"),
        ({"up_kbps": -1}, "up_kbps: -1 is negative"),
        ({"bucket_bytes": 0}, "bucket_bytes: 0 outside"),
        ({"rate_kbps": "384k"}, "expected float"),  # a unit suffix is not a number
    ],
)
def test_bad_settings_are_rejected(settings: dict[str, object], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        make_fault("throttle", settings)


async def _download(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.readexactly(3), TIMEOUT_S)  # "GET"
        writer.write(b"x" * 60_000)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        pass
    finally:
        writer.close()


async def _timed_download(faults: list[object]) -> tuple[int, float]:
    async with upstream(_download) as up:
        resolver = MapResolver({("pbdlsp1.pb.com", None): ("127.0.0.1", up.port)})
        async with lab_proxy(ProxyConfig(faults=faults), resolver) as proxy:  # type: ignore[arg-type]
            c = await client(proxy)
            assert (await c.connect("pbdlsp1.pb.com:443")).status == 200
            start = time.monotonic()
            c.send(b"GET")
            got = 0
            while got < 60_000 and (chunk := await c.read()):
                got += len(chunk)
            elapsed = time.monotonic() - start
            await c.close()
            return got, elapsed


def test_through_the_proxy_a_download_at_800_kbps_is_never_faster_than_the_rate() -> None:
    got, elapsed = run(_timed_download([make_fault("throttle", {"rate_kbps": 800})]))
    assert got == 60_000
    assert elapsed >= (60_000 - 1460) / 100_000 * 0.98  # 100 kB/s after the first segment


def test_through_the_proxy_without_the_throttle_the_same_download_is_fast() -> None:
    got, elapsed = run(_timed_download([]))  # negative control
    assert got == 60_000 and elapsed < 0.4


async def _device_sees(pki: PKI, journal: Path, rate_kbps: float) -> dict[str, Outcome]:
    faults = [make_fault("throttle", {"rate_kbps": rate_kbps})]
    async with (
        Cloud(pki, download_bytes=16 * 1024) as cloud,
        lab_proxy(ProxyConfig(faults=faults), cloud.resolver) as proxy,
    ):
        settings = DeviceSettings(proxy=ProxySettings(*proxy.address), read_timeout_s=5.0)
        with Device(settings, pki, cloud.resolver, journal_path=journal) as device:
            results = await device.run(["os_updates"])
    return {r.endpoint: r.outcome for r in results}


def test_the_device_reports_a_download_below_the_guides_floor_as_degraded(pki: PKI, tmp_path: Path) -> None:
    seen = run(_device_sees(pki, tmp_path / "journal", rate_kbps=200), timeout_s=30)
    assert seen == {"https://pb-ota.redbend.com/": Outcome.DEGRADED}


def test_the_device_passes_at_the_recommended_1000_kbps(pki: PKI, tmp_path: Path) -> None:
    seen = run(_device_sees(pki, tmp_path / "journal", rate_kbps=1000), timeout_s=30)  # negative control
    assert seen == {"https://pb-ota.redbend.com/": Outcome.PASS}
