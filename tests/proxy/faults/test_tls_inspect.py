"""tls_inspect: the lab proxy sends its tunnels through an embedded mitmproxy that re-signs with the corporate CA.

End to end through a LabProxy and the simulated Cloud with real TLS clients: a client pinning the PB
root fails and was shown the corporate CA; a client trusting the corporate CA gets the cloud's answer
(a real interception); `bypass` splices the PB hosts; `send_root` flips the OpenSSL message; without
the fault the PB chain is shown (negative control). The proxy's own refusals are unchanged.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.cloud import Cloud
from proxy_lab.device import Device, DeviceSettings, ProxySettings
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome, Result
from proxy_lab.pki import PKI
from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
from proxy_lab.proxy.faults.base import Ctx
from proxy_lab.proxy.faults.tls_inspect import TlsInspect
from proxy_lab.proxy.inspection.engine import engine_counts
from tests.proxy.inspection_kit import CORP, PB_ROOT, TIMEOUT_S, Seen, corp_trusting
from tests.proxy.inspection_kit import through as kit_through
from tests.proxy.proxy_testkit import run


def inspecting(pki: PKI, **settings: Any) -> TlsInspect:
    fault = make_fault("tls_inspect", settings)
    assert isinstance(fault, TlsInspect)
    fault.bind_pki(pki)
    return fault


@asynccontextmanager
async def lab(pki: PKI, *faults: Any) -> AsyncIterator[LabProxy]:
    """The Cloud and a LabProxy resolving through it; the faults' engine is left when the proxy stops."""
    cloud = Cloud(pki)
    await cloud.start()
    proxy = LabProxy(ProxyConfig(faults=list(faults)), cloud.resolver)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop(grace_s=0.5)
        for fault in faults:
            await fault.stop()  # until the framework calls a stop hook itself
        await cloud.stop()


async def connect(proxy: LabProxy, authority: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*proxy.address), TIMEOUT_S)
    writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
    return head, reader, writer


async def through(proxy: LabProxy, host: str, trust: ssl.SSLContext) -> Seen:
    """A TLS client trusting `trust` talks to host:443 through the proxy (see inspection_kit.through)."""

    async def open_plain(h: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        head, reader, writer = await connect(proxy, f"{h}:443")
        assert head.startswith(b"HTTP/1.1 200 "), head
        return reader, writer

    return await kit_through(open_plain, host, trust)


def test_a_client_pinning_the_pb_root_fails_and_the_certificate_it_was_shown_is_issued_by_the_corporate_ca(pki: PKI) -> None:
    async def scenario() -> Seen:
        async with lab(pki, inspecting(pki)) as proxy:
            return await through(proxy, "pb-ota.redbend.com", pki.device_context())

    seen = run(scenario())
    assert seen.verify_error == "unable to get local issuer certificate"
    assert CORP in seen.chain[0].issuer and "pb-ota.redbend.com" in seen.chain[0].subject


def test_the_same_client_trusting_the_corporate_ca_gets_the_clouds_answer(pki: PKI) -> None:
    async def scenario() -> Seen:
        async with lab(pki, inspecting(pki)) as proxy:
            return await through(proxy, "dlsdlp1.pb.com", corp_trusting(pki))

    seen = run(scenario())
    assert seen.verify_error == ""
    assert seen.answer.startswith(b"HTTP/1.1 200 OK") and b"Server: proxy-lab-cloud" in seen.answer


def test_without_the_fault_the_client_is_shown_the_genuine_pb_root_chain(pki: PKI) -> None:
    async def scenario() -> Seen:
        async with lab(pki) as proxy:
            return await through(proxy, "pb-ota.redbend.com", pki.device_context())

    seen = run(scenario())
    assert seen.verify_error == ""
    assert PB_ROOT in seen.chain[0].issuer and CORP not in seen.chain[0].issuer


def test_bypass_pb_com_passes_pb_hosts_with_the_pb_chain_while_redbend_is_still_intercepted(pki: PKI) -> None:
    async def scenario() -> tuple[Seen, Seen]:
        async with lab(pki, inspecting(pki, bypass=["*.pb.com"])) as proxy:
            return (
                await through(proxy, "cometservp1.pb.com", pki.device_context()),
                await through(proxy, "pb-ota.redbend.com", pki.device_context()),
            )

    pb, redbend = run(scenario())
    assert pb.verify_error == "" and pb.answer.startswith(b"HTTP/1.1 ") and PB_ROOT in pb.chain[0].issuer
    assert redbend.verify_error and CORP in redbend.chain[0].issuer


@pytest.mark.parametrize(
    ("send_root", "message"),
    [
        (False, "unable to get local issuer certificate"),  # only the leaf is sent
        (True, "self-signed certificate in certificate chain"),  # the corporate root comes along
    ],
)
def test_send_root_flips_the_clients_openssl_verify_message(pki: PKI, send_root: bool, message: str) -> None:
    async def scenario() -> Seen:
        async with lab(pki, inspecting(pki, send_root=send_root)) as proxy:
            return await through(proxy, "decometlb20.pb.com", pki.device_context())

    seen = run(scenario())
    assert seen.verify_error == message
    assert len(seen.chain) == (2 if send_root else 1)


@pytest.mark.parametrize(
    ("authority", "send", "expect"),
    [
        # TeamViewer's own protocol inside CONNECT to 5938
        ("master3.teamviewer.com:5938", b"\x17\x24HELLO SP000001\n", b"\x17\x24OK "),
        # plain HTTP inside CONNECT to port 80 (the connectivity check)
        (
            "connectivitycheck.gstatic.com:80",
            b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n",
        ),
    ],
)
def test_port_80_and_5938_still_pass_under_inspection(pki: PKI, authority: str, send: bytes, expect: bytes) -> None:
    async def scenario() -> bytes:
        fault = inspecting(pki)
        async with lab(pki, fault) as proxy:
            head, reader, writer = await connect(proxy, authority)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert fault.tunnels >= 1  # it did go through mitmproxy
            writer.write(send)
            answer = await asyncio.wait_for(reader.read(len(expect)), TIMEOUT_S)
            writer.close()
            return answer

    assert run(scenario()) == expect


def test_the_proxys_own_refusals_come_before_the_inspection(pki: PKI) -> None:
    async def scenario() -> bytes:
        fault = inspecting(pki)
        async with lab(pki, fault) as proxy:
            head, _reader, writer = await connect(proxy, "not-in-the-lab.example:443")
            writer.close()
            assert fault.tunnels == 0  # nothing was sent to mitmproxy
            return head

    head = run(scenario())
    assert head.startswith(b"HTTP/1.1 503 ") and b"X-Squid-Error: ERR_DNS_FAIL 0" in head


def test_a_fault_scoped_to_port_443_leaves_other_ports_out_of_the_engine(pki: PKI) -> None:
    async def scenario() -> None:
        fault = inspecting(pki, ports=[443])
        async with lab(pki, fault) as proxy:
            head, reader, writer = await connect(proxy, "master3.teamviewer.com:5938")
            writer.write(b"\x17\x24HELLO SP000001\n")
            assert (await asyncio.wait_for(reader.read(6), TIMEOUT_S)) == b"\x17\x24OK T"
            writer.close()
            assert head.startswith(b"HTTP/1.1 200 ") and fault.tunnels == 0

    run(scenario())


def test_a_tunnel_still_connecting_when_the_fault_stops_is_spliced_and_leaves_no_engine_running(pki: PKI) -> None:
    """A served lab removes the fault while a probe's tunnel connects: that tunnel must not join the
    engine after the fault stopped (nothing would release it, and the next lab with another CA could
    not start its own)."""

    async def scenario() -> tuple[socket.socket, socket.socket, dict[str, Any], tuple[int, int] | None]:
        fault = inspecting(pki)
        await fault.start()
        assert engine_counts() is not None  # the engine runs while the fault is in force
        connecting, go_on = asyncio.Event(), asyncio.Event()
        upstream, other_end = socket.socketpair()

        async def slow_connect(host: str, port: int) -> socket.socket:
            connecting.set()
            await go_on.wait()
            return upstream

        ctx = Ctx(client=("127.0.0.1", 1), proxy=("127.0.0.1", 2), host="pb-ota.redbend.com", port=443)
        opening = asyncio.ensure_future(fault.open_upstream(ctx, "pb-ota.redbend.com", 443, slow_connect))
        await connecting.wait()
        await fault.stop()  # the fault leaves while the tunnel connects
        go_on.set()
        sock = await asyncio.wait_for(opening, TIMEOUT_S)
        return sock, other_end, ctx.notes, engine_counts()

    sock, other_end, notes, counts = run(scenario())
    try:
        assert sock is not other_end and sock.fileno() >= 0  # the upstream socket itself, not mitmproxy's
        assert "stopped" in notes["tls_inspect"]
        assert counts is None  # the engine stopped with the fault and nothing started it again
    finally:
        sock.close()
        other_end.close()


@pytest.mark.parametrize(
    "settings",
    [
        {"bypass": ["*.pb.com", "two words"]},  # a pattern with a space is not a host pattern
        {"bypass": "*.pb.com"},  # a string, not a list
        {"send_root": "yes"},  # not a bool
    ],
)
def test_bad_settings_are_rejected_when_the_scenario_loads(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="tls_inspect"):
        make_fault("tls_inspect", settings)


# -- the device, end to end -----------------------------------------------------------------------
SERVICES = ["funds", "downloads", "os_updates", "connectivity_check", "remote_access"]


async def device_results(pki: PKI, journal: Path, *faults: Any) -> list[Result]:
    async with lab(pki, *faults) as proxy:
        settings = DeviceSettings(proxy=ProxySettings(*proxy.address))
        with Device(settings, pki, proxy.resolver, journal_path=journal) as device:
            return await device.run(SERVICES)


def test_the_device_reports_tls_intercepted_and_names_the_corporate_ca_while_plain_services_pass(
    pki: PKI, tmp_path: Path
) -> None:
    results = run(device_results(pki, tmp_path / "journal.sqlite3", inspecting(pki)), timeout_s=60)
    tls = [r for r in results if r.endpoint.startswith("https://")]
    plain = [r for r in results if not r.endpoint.startswith("https://")]
    assert tls and plain
    for r in tls:
        assert r.outcome is Outcome.TLS_INTERCEPTED, (r.endpoint, r.outcome, r.detail)
        assert CORP in r.evidence.chain_shown[0].issuer
    # port 80, TeamViewer 5938 and the DNS probes are not TLS: they pass under inspection
    assert {r.outcome for r in plain} == {Outcome.PASS}, [(r.endpoint, r.outcome) for r in plain]


def test_with_bypass_pb_com_the_device_sees_only_the_non_pb_hosts_still_intercepted(pki: PKI, tmp_path: Path) -> None:
    fault = inspecting(pki, bypass=["*.pb.com"])
    results = run(device_results(pki, tmp_path / "journal.sqlite3", fault), timeout_s=60)
    broken = sorted(r.endpoint for r in results if r.outcome is not Outcome.PASS)
    assert broken == ["https://pb-ota.redbend.com/"], [(r.endpoint, r.outcome) for r in results]


def test_without_the_fault_the_device_passes_the_same_services(pki: PKI, tmp_path: Path) -> None:
    results = run(device_results(pki, tmp_path / "journal.sqlite3"), timeout_s=60)
    assert {r.outcome for r in results} == {Outcome.PASS}, [(r.endpoint, r.outcome) for r in results]
