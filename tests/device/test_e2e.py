"""End to end: the Device through the LabProxy to the Cloud, and direct to the Cloud.

Every endpoint of the SendPro+ passes through a well-behaved proxy and with no proxy at all; the
same run against faulty proxies and a misbehaving back end must fail where the guide says it does
(negative controls).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.cloud import Cloud
from proxy_lab.device import Device, DeviceSettings, ProxySettings
from proxy_lab.outcomes import Outcome, Result, service_outcomes
from proxy_lab.pki import PKI
from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
from tests.device.device_testkit import run

pytestmark = pytest.mark.slow

USERS = {"meter": "S3cret"}


async def _run(
    pki: PKI,
    tmp_path: Path,
    *,
    proxy: bool = True,
    faults: list[Any] | None = None,
    services: list[str] | None = None,
    knobs: dict[str, Any] | None = None,
    **settings: Any,
) -> tuple[list[Result], Cloud]:
    async with Cloud(pki, download_bytes=16 * 1024, idle_timeout_s=5.0) as cloud:
        for k, v in (knobs or {}).items():
            setattr(cloud.state, k, v)
        base: dict[str, Any] = {
            "model": "sendpro-plus",
            "read_timeout_s": 3.0,
            "connect_timeout_s": 3.0,
            "teamviewer_hold_s": 0.1,
            "concurrency": 8,
        }
        base.update(settings)

        async def go(proxy_settings: ProxySettings | None) -> list[Result]:
            device = Device(
                DeviceSettings(proxy=proxy_settings, **base),
                pki,
                cloud.resolver,
                journal_path=tmp_path / "journal.sqlite",
                scenario="e2e",
            )
            with device:
                return await device.run(services)

        if not proxy:
            return await go(None), cloud
        async with LabProxy(ProxyConfig(users=USERS, faults=faults or []), cloud.resolver) as lab:
            host, port = lab.address
            return await go(ProxySettings(host, port, "meter", "S3cret")), cloud


def _failures(results: list[Result]) -> list[str]:
    return [f"{r.endpoint}: {r.outcome}: {r.detail}" for r in results if r.outcome != Outcome.PASS]


def test_every_sendpro_plus_endpoint_passes_through_the_lab_proxy(pki: PKI, tmp_path: Path) -> None:
    results, cloud = run(_run(pki, tmp_path), timeout=120)
    assert not _failures(results), "\n".join(_failures(results))
    assert len(results) > 90 and {r.scenario for r in results} == {"e2e"}
    assert "parcel_shipping" in service_outcomes(results)
    assert len(cloud.state.transactions) == 1 and set(cloud.state.transactions.values()) == {1}
    http = [r for r in results if r.endpoint.startswith("http://")]
    assert http and all("> CONNECT " in "\n".join(r.evidence.transcript) for r in http)


def test_every_sendpro_plus_endpoint_passes_in_direct_mode(pki: PKI, tmp_path: Path) -> None:
    results, _ = run(_run(pki, tmp_path, proxy=False), timeout=120)
    assert not _failures(results), "\n".join(_failures(results))
    assert not any("CONNECT" in line for r in results for line in r.evidence.transcript)


def test_squids_ssl_ports_rule_refuses_everything_but_443(pki: PKI, tmp_path: Path) -> None:
    faults = [make_fault("allow_ports", {"preset": "ssl_ports_only"})]
    services = ["distributor", "online_help", "remote_access", "funds"]
    results, _ = run(_run(pki, tmp_path, faults=faults, services=services), timeout=60)
    by_port = {r.endpoint: r.outcome for r in results}
    assert by_port["https://distservp1.pb.com/csd/dstproduct"] == Outcome.PASS
    assert by_port["http://distservp1.pb.com/csd/dstproduct"] == Outcome.REFUSED
    assert by_port["tcp://master3.teamviewer.com:5938/"] == Outcome.REFUSED
    refused = [r for r in results if r.outcome == Outcome.REFUSED]
    assert all(r.evidence.header("X-Squid-Error") == "ERR_ACCESS_DENIED 0" for r in refused)
    assert service_outcomes(results)["funds"] == Outcome.PASS  # negative control: 443 untouched


def test_a_socks_only_proxy_is_a_protocol_mismatch_for_every_endpoint(pki: PKI, tmp_path: Path) -> None:
    results, _ = run(_run(pki, tmp_path, faults=[make_fault("socks_only", {})], services=["funds"]))
    assert Counter(r.outcome for r in results) == Counter({Outcome.PROTOCOL_MISMATCH: 5})


def test_a_lost_receipt_keeps_the_record_and_the_next_run_uploads_it_once_more(
    pki: PKI, tmp_path: Path
) -> None:
    results, cloud = run(_run(pki, tmp_path, services=["funds"], knobs={"drop_receipts": True}))
    upload = next(r for r in results if r.endpoint == "https://cometservp1.pb.com/")
    assert upload.outcome == Outcome.RESET, upload.detail
    with Device(DeviceSettings(), pki, cloud.resolver, journal_path=tmp_path / "journal.sqlite") as d:
        kept = [r.id for r in d.journal.pending()]
    assert list(cloud.state.transactions) == kept  # the cloud stored it; the device still holds it

    again, cloud2 = run(_run(pki, tmp_path, services=["funds"]))
    assert all(r.outcome == Outcome.PASS for r in again), _failures(again)
    assert cloud2.state.transactions == {kept[0]: 1}
    with Device(DeviceSettings(), pki, cloud2.resolver, journal_path=tmp_path / "journal.sqlite") as d:
        assert d.journal.count() == 0


def test_corrupted_downloads_are_tampered_and_the_index_is_not(pki: PKI, tmp_path: Path) -> None:
    results, _ = run(
        _run(pki, tmp_path, services=["downloads", "os_updates"], knobs={"corrupt_downloads": True})
    )
    outcomes = {r.endpoint: r.outcome for r in results}
    assert outcomes.pop("https://dlsdlp1.pb.com/") == Outcome.PASS
    assert set(outcomes.values()) == {Outcome.TAMPERED}


def test_without_credentials_the_lab_proxy_is_auth_required(pki: PKI, tmp_path: Path) -> None:
    async def go() -> list[Result]:
        async with (
            Cloud(pki, download_bytes=1024) as cloud,
            LabProxy(ProxyConfig(users=USERS), cloud.resolver) as lab,
        ):
            s = DeviceSettings(proxy=ProxySettings(*lab.address), read_timeout_s=3.0)
            with Device(s, pki, cloud.resolver, journal_path=tmp_path / "j.sqlite") as d:
                return await d.run(["distributor"])

    results = run(go())
    assert {r.outcome for r in results} == {Outcome.AUTH_REQUIRED}
    assert all(r.evidence.auth_schemes == ["Basic"] for r in results)


def test_a_throttled_proxy_degrades_downloads_below_the_guides_floor(pki: PKI, tmp_path: Path) -> None:
    faults = [make_fault("throttle", {"rate_kbps": 96})]
    results, _ = run(_run(pki, tmp_path, faults=faults, services=["os_updates"]), timeout=60)
    (ota,) = results
    assert ota.outcome == Outcome.DEGRADED, ota.detail
    assert ota.evidence.kbps is not None and ota.evidence.kbps < 384


def test_an_idle_timeout_shorter_than_the_teamviewer_hold_cuts_the_session(pki: PKI, tmp_path: Path) -> None:
    faults = [make_fault("idle_timeout", {"idle_s": 0.1, "ports": [5938]})]
    results, _ = run(_run(pki, tmp_path, faults=faults, services=["remote_access"], teamviewer_hold_s=0.5))
    outcomes = {r.endpoint: r.outcome for r in results}
    assert outcomes.pop("tcp://master3.teamviewer.com:5938/") == Outcome.RESET
    assert set(outcomes.values()) == {Outcome.PASS}  # the DynGate fallback on port 80 is not idle


def test_tls_inspection_is_tls_intercepted_naming_the_corporate_ca(pki: PKI, tmp_path: Path) -> None:
    inspect = make_fault("tls_inspect", {})
    inspect.bind_pki(pki)  # type: ignore[attr-defined]
    results, _ = run(_run(pki, tmp_path, faults=[inspect], services=["funds", "online_help"]), timeout=90)
    outcomes = {r.endpoint: r for r in results}
    help_page = outcomes.pop("http://eureka.pitneybowes.com/sendpro-c-series/gb/SV63242-gb-help/Default.htm")
    assert help_page.outcome == Outcome.PASS, help_page.detail  # plain HTTP: nothing to intercept
    for r in outcomes.values():
        assert r.outcome == Outcome.TLS_INTERCEPTED, r.detail
        assert "Corp Inspection CA" in r.evidence.chain_shown[0].issuer


@pytest.mark.parametrize(
    ("fault", "settings", "outcome"),
    [
        ("connect_quirks", {"status": 204}, Outcome.REFUSED),  # a 2xx other than 200
        ("connect_quirks", {"bytes_after_head": "hello"}, Outcome.PROTOCOL_MISMATCH),  # bytes after the 200
        (
            "connect_quirks",
            {"content_length_on_200": True, "transfer_encoding_on_200": True, "http10": True},
            Outcome.PASS,
        ),
        ("auth_schemes", {"schemes": ["NTLM", "Negotiate"]}, Outcome.AUTH_REQUIRED),  # no Basic offered
        ("auth_schemes", {"schemes": ["Negotiate", "Basic"]}, Outcome.PASS),  # Basic among others: answered
        ("challenge_style", {"style": "401_bearer"}, Outcome.REFUSED),  # envoy's 401 instead of 407
        ("challenge_style", {"style": "407_no_header"}, Outcome.REFUSED),  # 407 without a challenge
    ],
)
def test_the_lab_proxys_connect_and_auth_quirks_are_classified(
    pki: PKI, tmp_path: Path, fault: str, settings: dict[str, Any], outcome: Outcome
) -> None:
    results, _ = run(_run(pki, tmp_path, faults=[make_fault(fault, settings)], services=["distributor"]))
    assert {r.outcome for r in results} == {outcome}, _failures(results)
