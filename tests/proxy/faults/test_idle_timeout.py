"""idle_timeout: a tunnel with no byte either way for idle_s is closed (FIN) or reset; a busy one is not."""

from __future__ import annotations

import asyncio
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
from proxy_lab.proxy.faults.idle_timeout import IdleTimeout
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, client, lab_proxy, run, upstream

CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "master3.teamviewer.com", 5938)


class ScriptedTunnel:
    """A TunnelControl on a virtual clock: `activity` says at which times bytes crossed it."""

    def __init__(self, activity: list[float]) -> None:
        self.ctx = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "master3.teamviewer.com", 5938)
        self.now = 0.0
        self.activity = activity
        self.calls: list[tuple[str, float, str]] = []
        self.bytes_upstream_to_client = 0

    @property
    def bytes_client_to_upstream(self) -> int:
        return sum(1 for t in self.activity if t <= self.now)

    @property
    def closed(self) -> bool:
        return bool(self.calls)

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay_s: float) -> None:
        self.now = round(self.now + delay_s, 9)

    def send(self, direction: Direction, data: bytes) -> None: ...
    async def flush(self, timeout_s: float = 2.0) -> None: ...

    def close(self, why: str) -> None:
        self.calls.append(("close", self.now, why))

    def reset(self, why: str) -> None:
        self.calls.append(("reset", self.now, why))


def _watch(settings: dict[str, object], activity: list[float]) -> ScriptedTunnel:
    fault = make_fault("idle_timeout", settings)
    assert isinstance(fault, IdleTimeout)
    tunnel = ScriptedTunnel(activity)
    stage = fault.stream(CTX, clock=tunnel.clock, sleep=tunnel.sleep)
    assert stage is not None
    assert not stage.inspects("client_to_upstream") and not stage.inspects("upstream_to_client")  # fast path
    stage.bind(tunnel)
    asyncio.run(asyncio.wait_for(stage.run(), TIMEOUT_S))
    return tunnel


def test_a_tunnel_quiet_for_idle_s_after_its_last_byte_is_closed_with_a_fin() -> None:
    tunnel = _watch({"idle_s": 1.0}, activity=[0.05, 0.35])  # polled every 0.1 s
    [(action, at, why)] = tunnel.calls
    assert action == "close"
    assert 0.35 + 1.0 <= at <= 0.35 + 1.0 + 2 * 0.1  # never early; late by at most two polls
    assert "idle_timeout: no byte either way for 1.00 s (limit 1 s)" == why
    assert tunnel.ctx.notes["idle_timeout"] == why


def test_a_tunnel_that_never_carries_a_byte_is_cut_idle_s_after_it_opened() -> None:
    tunnel = _watch({"idle_s": 0.5, "action": "reset"}, activity=[])
    assert [(a, round(t, 6)) for a, t, _ in tunnel.calls] == [("reset", 0.5)]


def test_a_byte_every_half_idle_period_keeps_the_tunnel_open() -> None:
    # negative control: traffic every 0.5 s for 10 s, limit 1 s: the cut comes only after the traffic stops
    tunnel = _watch({"idle_s": 1.0}, activity=[i * 0.5 for i in range(21)])
    [(_, at, _)] = tunnel.calls
    assert at >= 10.0 + 1.0


@pytest.mark.parametrize(("settings", "said"), [({"idle_s": 0}, "outside"), ({"action": "fin"}, "expected")])
def test_bad_settings_are_rejected(settings: dict[str, object], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        make_fault("idle_timeout", settings)


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every line with 'ok' (a long-lived session, as TeamViewer's)."""
    try:
        while line := await asyncio.wait_for(reader.readline(), TIMEOUT_S):
            writer.write(b"ok " + line)
            await writer.drain()
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()


async def _hold_then_ping(
    faults: list[Fault], pings: int, gap_s: float
) -> tuple[bytes, BaseException | None]:
    async with upstream(_session) as up:
        resolver = MapResolver({("master3.teamviewer.com", None): ("127.0.0.1", up.port)})
        async with lab_proxy(ProxyConfig(faults=faults), resolver) as proxy:
            c = await client(proxy)
            assert (await c.connect("master3.teamviewer.com:5938")).status == 200
            got, error = b"", None
            try:
                for i in range(pings):
                    await asyncio.sleep(gap_s)
                    if c.writer.is_closing():  # cut while quiet (uvloop sees a reset at once)
                        got += await c.read(100)
                        break
                    c.send(f"ping {i}\n".encode())
                    got += await c.read(100)
            except ConnectionResetError as exc:
                error = exc
            await c.close()
            return got, error


def test_through_the_proxy_a_session_held_quiet_past_the_limit_is_closed() -> None:
    got, error = run(_hold_then_ping([make_fault("idle_timeout", {"idle_s": 0.2})], pings=1, gap_s=0.5))
    assert got == b"" and error is None  # EOF (FIN) where the answer to the ping should be


def test_through_the_proxy_the_reset_action_resets_the_session() -> None:
    fault = make_fault("idle_timeout", {"idle_s": 0.2, "action": "reset"})
    _got, error = run(_hold_then_ping([fault], pings=1, gap_s=0.5))
    assert isinstance(error, ConnectionResetError)


def test_through_the_proxy_a_session_that_pings_inside_the_limit_survives() -> None:
    fault = make_fault("idle_timeout", {"idle_s": 0.3})  # negative control: a ping every 0.1 s
    got, error = run(_hold_then_ping([fault], pings=6, gap_s=0.1))
    assert got == b"".join(f"ok ping {i}\n".encode() for i in range(6)) and error is None


async def _device_sees(pki: PKI, journal: Path, idle_s: float) -> dict[str, Outcome]:
    faults = [make_fault("idle_timeout", {"idle_s": idle_s})]
    async with Cloud(pki) as cloud, lab_proxy(ProxyConfig(faults=faults), cloud.resolver) as proxy:
        settings = DeviceSettings(proxy=ProxySettings(*proxy.address), teamviewer_hold_s=0.5)
        with Device(settings, pki, cloud.resolver, journal_path=journal) as device:
            results = await device.run(["remote_access"])
    return {r.endpoint: r.outcome for r in results}


def test_the_device_sees_its_teamviewer_session_reset_when_the_proxy_cuts_idle_tunnels(
    pki: PKI, tmp_path: Path
) -> None:
    seen = run(_device_sees(pki, tmp_path / "j", idle_s=0.25), timeout_s=30)
    assert seen.pop("tcp://master3.teamviewer.com:5938/") == Outcome.RESET
    assert set(seen.values()) == {Outcome.PASS}  # the DynGate polls are short exchanges: not cut


def test_the_device_keeps_its_teamviewer_session_under_a_longer_idle_limit(pki: PKI, tmp_path: Path) -> None:
    seen = run(_device_sees(pki, tmp_path / "j", idle_s=2.0), timeout_s=30)  # negative control
    assert set(seen.values()) == {Outcome.PASS}
