"""ipv6_broken: the proxy's first upstream attempt goes to a loopback black hole standing in for an
unrouted IPv6 address; then a slow IPv4 fallback, or Squid's 504 ERR_CONNECT_FAIL."""

from __future__ import annotations

import asyncio
import socket
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
from proxy_lab.proxy.faults import Ctx, Refuse
from proxy_lab.proxy.faults.ipv6_broken import black_hole
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import client, echo, lab_proxy, run, upstream

CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "pbdlsp1.pb.com", 443)


def test_the_black_hole_is_on_loopback_and_never_completes_a_handshake() -> None:
    hole = black_hole()
    assert hole.address[0] in ("::1", "127.0.0.1")
    assert black_hole() is hole  # one per process
    sock = socket.socket(hole.family, socket.SOCK_STREAM)
    sock.settimeout(0.3)
    try:
        with pytest.raises(TimeoutError):  # the SYN is dropped: no SYN-ACK, no RST
            sock.connect(hole.address)
    finally:
        sock.close()


def _open(settings: dict[str, object]) -> tuple[list[str], float, Ctx, BaseException | None]:
    """Call the fault's open_upstream hook with a `next` that records it was asked (IPv4)."""
    ctx = Ctx(CTX.client, CTX.proxy, CTX.host, CTX.port)
    fault = make_fault("ipv6_broken", settings)
    asked: list[str] = []

    async def next_(host: str, port: int) -> socket.socket:
        asked.append(f"{host}:{port}")
        return socket.socket()  # stands for the IPv4 connection

    async def script() -> tuple[float, BaseException | None]:
        start = time.monotonic()
        try:
            (await fault.open_upstream(ctx, ctx.host, ctx.port, next_)).close()
        except Refuse as exc:
            return time.monotonic() - start, exc
        return time.monotonic() - start, None

    elapsed, error = asyncio.run(script())
    return asked, elapsed, ctx, error


def test_with_fallback_ipv4_is_tried_only_after_the_ipv6_attempt_timed_out() -> None:
    asked, elapsed, ctx, error = _open({"connect_timeout_ms": 150})
    assert error is None and asked == ["pbdlsp1.pb.com:443"]
    assert elapsed >= 0.145
    assert "did not answer within 150 ms; fell back to IPv4" in ctx.notes["ipv6_broken"]


def test_without_fallback_the_proxy_answers_504_err_connect_fail_as_squid() -> None:
    asked, elapsed, _ctx, error = _open({"connect_timeout_ms": 100, "fallback": False})
    assert asked == [] and elapsed >= 0.095
    assert isinstance(error, Refuse)
    assert error.refusal.status == 504
    assert error.refusal.get("X-Squid-Error") == "ERR_CONNECT_FAIL 110"  # ETIMEDOUT
    assert b"Connection timed out" in error.refusal.body


@pytest.mark.parametrize(
    ("settings", "said"), [({"connect_timeout_ms": 0}, "outside"), ({"fallback": "no"}, "bool")]
)
def test_bad_settings_are_rejected(settings: dict[str, object], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        make_fault("ipv6_broken", settings)


async def _connect(faults: list[Fault]) -> tuple[int, str | None, float, bytes]:
    async with upstream(echo) as up:
        resolver = MapResolver({("pbdlsp1.pb.com", None): ("127.0.0.1", up.port)})
        async with lab_proxy(ProxyConfig(faults=faults), resolver) as proxy:
            c = await client(proxy)
            start = time.monotonic()
            answer = await c.connect("pbdlsp1.pb.com:443")
            elapsed = time.monotonic() - start
            echoed = b""
            if answer.status == 200:
                c.send(b"hi")
                echoed = await c.read_exactly(2)
            await c.close()
            return answer.status, answer.header("X-Squid-Error"), elapsed, echoed


def test_through_the_proxy_the_tunnel_opens_late_over_ipv4() -> None:
    status, _, elapsed, echoed = run(_connect([make_fault("ipv6_broken", {"connect_timeout_ms": 300})]))
    assert status == 200 and echoed == b"hi" and elapsed >= 0.29


def test_through_the_proxy_without_fallback_connect_is_answered_504() -> None:
    fault = make_fault("ipv6_broken", {"connect_timeout_ms": 200, "fallback": False})
    status, squid_error, elapsed, _ = run(_connect([fault]))
    assert (status, squid_error) == (504, "ERR_CONNECT_FAIL 110") and elapsed >= 0.19


def test_through_the_proxy_without_the_fault_the_tunnel_opens_at_once() -> None:
    status, _, elapsed, echoed = run(_connect([]))  # negative control
    assert status == 200 and echoed == b"hi" and elapsed < 0.2


async def _device_sees(pki: PKI, journal: Path, faults: list[Fault], **settings: float) -> Outcome:
    async with Cloud(pki) as cloud, lab_proxy(ProxyConfig(faults=faults), cloud.resolver) as proxy:
        device_settings = DeviceSettings(proxy=ProxySettings(*proxy.address), **settings)  # type: ignore[arg-type]
        with Device(device_settings, pki, cloud.resolver, journal_path=journal) as device:
            [result] = await device.run(["online_help"])
    return result.outcome


@pytest.mark.parametrize(
    ("settings", "device", "outcome"),
    [
        ({"connect_timeout_ms": 600}, {"slow_setup_s": 0.4}, Outcome.DEGRADED),  # slow, but it worked
        ({"connect_timeout_ms": 200, "fallback": False}, {}, Outcome.UNREACHABLE),  # the proxy's 504
        (
            {"connect_timeout_ms": 3000, "fallback": False},
            {"read_timeout_s": 0.5},
            Outcome.TIMEOUT,
        ),  # device first
    ],
)
def test_the_device_sees_a_slow_pass_a_504_or_its_own_timeout(
    pki: PKI, tmp_path: Path, settings: dict[str, object], device: dict[str, float], outcome: Outcome
) -> None:
    faults = [make_fault("ipv6_broken", settings)]
    assert run(_device_sees(pki, tmp_path / "j", faults, **device), timeout_s=30) == outcome


def test_the_device_passes_without_broken_ipv6(pki: PKI, tmp_path: Path) -> None:
    assert run(_device_sees(pki, tmp_path / "j", [], slow_setup_s=0.4)) == Outcome.PASS  # negative control
