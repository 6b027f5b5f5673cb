"""The catalog holds the guide's URL lists, checked against the guide's own text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy_lab.catalog import CatalogError, load_catalog, parse_catalog

GUIDE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "sendpro-connectivity-guide.txt"


def hosts_of(service: str, transport: str | None = None) -> list[str]:
    cat = load_catalog()
    return [e.host for e in cat.services[service].endpoints if transport is None or e.transport == transport]


def test_funds_has_the_five_funds_servers_of_the_guide() -> None:
    assert sorted(hosts_of("funds")) == sorted(
        ["decometlb20.pb.com", "ukcometlb12k.pb.com", "decometlb5.pb.com", "swcometlb2.pb.com", "cometservp1.pb.com"]
    )


def test_downloads_has_six_download_service_hosts_and_os_updates_the_ota_host() -> None:
    assert len(set(hosts_of("downloads"))) == 6
    assert hosts_of("os_updates") == ["pb-ota.redbend.com"]


def test_distributor_is_reached_over_both_port_80_and_port_443() -> None:
    eps = load_catalog().services["distributor"].endpoints
    assert {(e.scheme, e.host, e.port, e.path) for e in eps} == {
        ("http", "distservp1.pb.com", 80, "/csd/dstproduct"),
        ("https", "distservp1.pb.com", 443, "/csd/dstproduct"),
    }


def test_remote_access_has_port_5938_and_the_dyngate_fallback_urls() -> None:
    eps = load_catalog().services["remote_access"].endpoints
    assert any(e.transport == "tcp" and e.port == 5938 for e in eps)
    paths = [e.path for e in eps if e.transport == "http"]
    assert any(p.startswith("/din.aspx?") and "client=DynGate" in p for p in paths)
    assert any(p.startswith("/dout.aspx?") and "client=DynGate" in p for p in paths)


def test_connectivity_check_uses_generate_204_and_google_dns_over_udp_and_tcp() -> None:
    eps = load_catalog().services["connectivity_check"].endpoints
    assert any(e.path == "/generate_204" and e.host == "connectivitycheck.gstatic.com" for e in eps)
    assert {(e.host, e.port, e.dns_protocol) for e in eps if e.transport == "dns"} == {
        ("8.8.8.8", 53, "udp"), ("8.8.8.8", 53, "tcp"),
    }  # fmt: skip
    assert all(not e.via_proxy for e in eps if e.transport == "dns")


def test_parcel_shipping_is_on_the_sendpro_plus_only() -> None:
    cat = load_catalog()
    assert "parcel_shipping" not in [s.name for s in cat.for_model("sendpro-c")]
    assert "parcel_shipping" in [s.name for s in cat.for_model("sendpro-plus")]


def test_remote_access_and_device_management_are_recommended_the_rest_required() -> None:
    cat = load_catalog()
    assert {s.name for s in cat.services.values() if not s.required} == {"remote_access", "device_management"}


@pytest.mark.skipif(not GUIDE.exists(), reason="the guide is not beside the checkout")
def test_every_https_and_http_url_of_the_guide_is_in_the_catalog() -> None:
    text = GUIDE.read_text()
    urls = set(re.findall(r"(https?://[A-Za-z0-9.\-]+)", text))
    cat = load_catalog()
    hosts = {e.host for s in cat.services.values() for e in s.endpoints}
    missing = sorted(u for u in urls if u.split("://")[1].lower() not in hosts)
    assert missing == []


@pytest.mark.skipif(not GUIDE.exists(), reason="the guide is not beside the checkout")
def test_every_bare_device_management_host_of_the_guide_is_in_the_catalog() -> None:
    text = GUIDE.read_text()
    section = text.split("Device Management")[1].split("Proxy\n")[0]
    bare = {m.lower() for m in re.findall(r"^\s*-\s+([A-Za-z0-9][A-Za-z0-9.\-]+\.[a-z]{2,})\s*$", section, re.M)}
    hosts = set(load_catalog().hosts())
    assert bare and bare <= hosts


def test_a_catalog_with_an_unknown_scheme_is_rejected_naming_the_key() -> None:
    bad = {"services": {"x": {"level": "required", "endpoints": [{"url": "ftp://h/", "exchange": "get"}]}}}
    with pytest.raises(CatalogError, match=r"services\.x\.endpoints\[0\].*scheme"):
        parse_catalog(bad, "bad.toml")


def test_a_catalog_with_a_wrong_level_is_rejected() -> None:
    bad = {"services": {"x": {"level": "maybe", "endpoints": [{"url": "https://h/", "exchange": "get"}]}}}
    with pytest.raises(CatalogError, match=r"services\.x\.level"):
        parse_catalog(bad, "bad.toml")
