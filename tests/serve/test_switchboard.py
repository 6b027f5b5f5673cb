"""The switchboard: a LabProxy built once with it follows the faults put in force and taken out at
run time, through real sockets (the proxy's own server, a loopback upstream)."""

from __future__ import annotations

import asyncio

import pytest

from proxy_lab.proxy import ProxyConfig
from proxy_lab.resolver import MapResolver
from proxy_lab.serve.switchboard import FaultRejected, Switchboard, UnknownFault
from tests.proxy.proxy_testkit import TIMEOUT_S, client, lab_proxy, run, upstream


def _resolver(port: int) -> MapResolver:
    # Two names for the one echo upstream: a web port (80) and the TLS port (443).
    return MapResolver({("web.example", 80): ("127.0.0.1", port), ("tls.example", 443): ("127.0.0.1", port)})


async def _status(proxy, target: str) -> int:
    c = await client(proxy)
    try:
        return (await c.connect(target)).status
    finally:
        await c.close()


def test_a_fault_added_at_run_time_refuses_new_tunnels_and_its_removal_lets_them_through():
    async def scenario() -> list[int]:
        board = Switchboard()
        async with upstream() as up, lab_proxy(ProxyConfig(faults=[board]), _resolver(up.port)) as proxy:
            seen = [await _status(proxy, "web.example:80")]  # negative control: nothing in force
            entry = await board.add("allow_ports", {"preset": "ssl_ports_only"})
            seen += [await _status(proxy, "web.example:80"), await _status(proxy, "tls.example:443")]
            await board.remove(entry.id)
            seen.append(await _status(proxy, "web.example:80"))
            return seen

    assert run(scenario()) == [200, 403, 200, 200]


def test_a_patch_rebuilds_the_fault_with_merged_settings_in_the_same_place():
    async def scenario() -> tuple[list[int], dict]:
        board = Switchboard()
        async with upstream() as up, lab_proxy(ProxyConfig(faults=[board]), _resolver(up.port)) as proxy:
            entry = await board.add("allow_ports", {"preset": "ssl_ports_only"})
            before = await _status(proxy, "web.example:80")
            changed = await board.update(entry.id, {"ports_allowed": [80]})
            after = await _status(proxy, "web.example:80")
            return [before, after], changed.settings

    statuses, settings = run(scenario())
    assert statuses == [403, 200]
    assert settings == {"preset": "ssl_ports_only", "ports_allowed": [80]}


def test_an_open_tunnel_survives_a_change_unless_the_change_cuts_it():
    async def scenario() -> tuple[bytes, bytes]:
        board = Switchboard()
        async with upstream() as up, lab_proxy(ProxyConfig(faults=[board]), _resolver(up.port)) as proxy:
            kept, cut = await client(proxy), await client(proxy)
            for c in (kept, cut):
                assert (await c.connect("tls.example:443")).status == 200
            entry = await board.add("deny_hosts", {"patterns": ["*.example"]})  # no cut: both stay open
            kept.send(b"still here")
            echoed = await asyncio.wait_for(kept.reader.readexactly(10), TIMEOUT_S)
            await board.remove(entry.id, cut=True)
            try:
                after = await asyncio.wait_for(cut.reader.read(100), TIMEOUT_S)
            except ConnectionResetError:
                after = b"<reset>"
            for c in (kept, cut):
                await c.close()
            return echoed, after

    echoed, after = run(scenario())
    assert echoed == b"still here"
    assert after in (b"", b"<reset>")  # the cut tunnel ended: EOF or RST


def test_faults_are_validated_by_their_own_rules_and_unknown_names_are_refused():
    async def scenario() -> None:
        board = Switchboard()
        with pytest.raises(UnknownFault, match="unknown fault 'nope'"):
            await board.add("nope")
        with pytest.raises(FaultRejected) as wrong_type:
            await board.add("throttle", {"rate_kbps": "fast"})
        assert wrong_type.value.field == "rate_kbps"
        with pytest.raises(FaultRejected) as bad_value:
            await board.add("throttle", {"rate_kbps": -1})
        assert bad_value.value.field == "rate_kbps" and "must be > 0" in str(bad_value.value)
        with pytest.raises(UnknownFault, match="no fault with id 'f9'"):
            await board.remove("f9")
        assert board.entries == []  # nothing half-added

    run(scenario())


def test_a_preset_replaces_every_fault_or_none_when_one_is_refused():
    async def scenario() -> tuple[list[str], list[str]]:
        board = Switchboard()
        await board.add("latency", {"delay_ms": 5})
        with pytest.raises(FaultRejected):
            await board.replace([("allow_ports", {"preset": "ssl_ports_only"}), ("throttle", {"rate_kbps": 0})])
        unchanged = [e.name for e in board.entries]
        await board.replace([("allow_ports", {"preset": "ssl_ports_only"})])
        return unchanged, [e.name for e in board.entries]

    assert run(scenario()) == (["latency"], ["allow_ports"])


async def _echo_through(proxy, data: bytes) -> bytes:
    """What comes back through a new tunnel to the echo upstream until EOF or reset."""
    c = await client(proxy)
    assert (await c.connect("tls.example:443")).status == 200
    c.send(data)
    got = b""
    try:
        while len(got) < len(data) and (chunk := await asyncio.wait_for(c.reader.read(100), TIMEOUT_S)):
            got += chunk
    except ConnectionResetError:
        pass
    await c.close()
    return got


def test_the_stages_of_two_faults_in_force_both_act_on_one_tunnel():
    async def scenario() -> tuple[bytes, bytes]:
        board = Switchboard()
        async with upstream() as up, lab_proxy(ProxyConfig(faults=[board]), _resolver(up.port)) as proxy:
            await board.add("latency", {"delay_ms": 1})
            whole = await _echo_through(proxy, b"0123456789")  # negative control: one stage, nothing cut
            await board.add("reset_after", {"after_bytes": 4})
            cut = await _echo_through(proxy, b"0123456789")
            return whole, cut

    whole, cut = run(scenario())
    assert whole == b"0123456789"
    assert len(cut) <= 4 and b"0123".startswith(cut)
