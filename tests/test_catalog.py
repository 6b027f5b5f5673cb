"""The catalog holds the guide's URL lists, checked against the guide's own text."""

from __future__ import annotations

import re
from typing import Any

import pytest

from proxy_lab.catalog import CatalogError, load_catalog, parse_catalog
from proxy_lab.guide import guide_text, is_quoted


def hosts_of(service: str, transport: str | None = None) -> list[str]:
    cat = load_catalog()
    return [e.host for e in cat.services[service].endpoints if transport is None or e.transport == transport]


def minimal(**service: Any) -> dict[str, Any]:
    """A one-service catalog; keyword arguments replace the service's keys."""
    base: dict[str, Any] = {"level": "required", "endpoints": [{"url": "https://h.example/", "exchange": "get"}]}
    return {"services": {"x": {**base, **service}}}


def device_management_section() -> str:
    return guide_text().split("Device Management")[1].split("Proxy\n")[0]


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


def test_remote_access_is_scored_by_any_of_three_ways_each_complete() -> None:
    ra = load_catalog().services["remote_access"]
    assert ra.rule == "any"
    assert [w.id for w in ra.ways] == ["port_5938", "dyngate_teamviewer", "dyngate_dyngate"]
    assert [e.port for e in ra.endpoints_of("port_5938")] == [5938]
    for way in ("dyngate_teamviewer", "dyngate_dyngate"):
        eps = ra.endpoints_of(way)
        assert {e.exchange for e in eps} == {"dyngate_in", "dyngate_out"}  # the GET and POST pair
        assert len({e.host for e in eps}) == 1 and {e.port for e in eps} == {80}


def test_each_dyngate_host_stands_for_a_pattern_the_guide_writes_and_is_labelled_as_chosen() -> None:
    cat = load_catalog()
    ra = cat.services["remote_access"]
    assert ra.patterns == ("*.TeamViewer.com", "*.dyngate.com")
    assert all(is_quoted(p) for p in ra.patterns)
    for way, pattern in (("dyngate_teamviewer", "*.TeamViewer.com"), ("dyngate_dyngate", "*.dyngate.com")):
        for e in ra.endpoints_of(way):
            assert e.host.endswith(pattern[1:].lower())
            assert any(a.startswith("dyngate_") and a.endswith("_host") for a in e.assumptions)
    assert "ping3.dyngate.com" not in guide_text()  # a choice of the project, never claimed as the guide's


def test_every_other_service_is_scored_by_its_worst_endpoint() -> None:
    cat = load_catalog()
    assert {s.name for s in cat.services.values() if s.rule != "worst"} == {"remote_access"}
    assert all(not s.ways for s in cat.services.values() if s.rule == "worst")


def test_connectivity_check_uses_generate_204_and_google_dns_over_udp_and_tcp() -> None:
    eps = load_catalog().services["connectivity_check"].endpoints
    assert any(e.path == "/generate_204" and e.host == "connectivitycheck.gstatic.com" for e in eps)
    assert {(e.host, e.port, e.dns_protocol) for e in eps if e.transport == "dns"} == {
        ("8.8.8.8", 53, "udp"), ("8.8.8.8", 53, "tcp"),
    }  # fmt: skip
    assert all(not e.via_proxy and "dns_direct" in e.assumptions for e in eps if e.transport == "dns")


def test_parcel_shipping_is_on_the_sendpro_plus_only_as_a_labelled_inference() -> None:
    cat = load_catalog()
    assert "parcel_shipping" not in [s.name for s in cat.for_model("sendpro-c")]
    assert "parcel_shipping" in [s.name for s in cat.for_model("sendpro-plus")]
    ps = cat.services["parcel_shipping"]
    assert ps.assumptions == ("parcel_shipping_sendpro_plus",)
    text = cat.assumptions["parcel_shipping_sendpro_plus"]
    assert "'SendPro C meter (Envelope Printing only)'" in text
    assert "'The SendPro+ system enables you to print Trackable Labels'" in text


def test_remote_access_and_device_management_are_recommended_the_rest_required() -> None:
    cat = load_catalog()
    assert {s.name for s in cat.services.values() if not s.required} == {"remote_access", "device_management"}


def test_each_service_quotes_its_section_and_entry_from_the_guide() -> None:
    for s in load_catalog().services.values():
        assert s.section in ("Required URLs", "Recommended URLs"), s.name
        assert s.item and is_quoted(s.item), f"{s.name}: {s.item!r}"
        assert (s.section == "Required URLs") == s.required, s.name


def test_every_https_and_http_url_of_the_guide_is_in_the_catalog() -> None:
    urls = set(re.findall(r"(https?://[A-Za-z0-9.\-]+)", guide_text()))
    hosts = {e.host for s in load_catalog().services.values() for e in s.endpoints}
    missing = sorted(u for u in urls if u.split("://")[1].lower() not in hosts)
    assert missing == []


def test_every_bare_device_management_host_is_in_the_catalog_in_the_guides_spelling() -> None:
    bare = set(re.findall(r"^\s*-\s+([A-Za-z0-9][A-Za-z0-9.\-]+\.[a-z]{2,})\s*$", device_management_section(), re.M))
    eps = load_catalog().services["device_management"].endpoints
    spelt = {e.guide_host or e.host for e in eps if e.transport in ("http", "tls") and e.path == "/"}
    assert len(bare) == 62 and bare <= spelt


def test_bare_device_management_hosts_are_probed_on_both_443_and_80_and_say_so() -> None:
    eps = load_catalog().services["device_management"].endpoints
    bare = [e for e in eps if "dm_both_ports" in e.assumptions]
    by_host: dict[str, set[int]] = {}
    for e in bare:
        by_host.setdefault(e.host, set()).add(e.port)
    assert len(by_host) == 62 and all(ports == {80, 443} for ports in by_host.values())
    # negative control: the hosts the guide gives with https:// (or a port) keep theirs alone
    given = [e for e in eps if "dm_both_ports" not in e.assumptions]
    assert {e.host for e in given} & set(by_host) == set()
    assert {e.port for e in given} == {443, 5228}


def test_the_guides_ih3_is_kept_as_written_and_lh3_is_probed_as_an_assumption() -> None:
    eps = [e for e in load_catalog().services["device_management"].endpoints if e.guide_host == "Ih3.googleusercontent.com"]
    assert {e.host for e in eps} == {"lh3.googleusercontent.com"} and {e.port for e in eps} == {80, 443}
    assert all("ih3_is_lh3" in e.assumptions for e in eps)
    assert "Ih3.googleusercontent.com" in guide_text() and "lh3.googleusercontent.com" not in guide_text()


def test_port_5228_is_in_the_proxy_ports_with_every_port_an_endpoint_tunnels_to() -> None:
    cat = load_catalog()
    assert cat.proxy_ports == (80, 443, 5228, 5938)
    assert cat.ports() == cat.proxy_ports == cat.ports("sendpro-c")


def test_the_port_80_conflict_quotes_both_of_the_guides_sentences_exactly() -> None:
    conflict = load_catalog().port80_conflict
    assert conflict is not None
    assert is_quoted(conflict.url_lists) and conflict.url_lists.startswith("These URLs must be accessible")
    assert is_quoted(conflict.faq) and "Some of the non-critical services use port 80" in conflict.faq


def test_every_assumption_named_by_an_entry_is_declared_and_every_declared_one_is_used() -> None:
    cat = load_catalog()
    used = {a for s in cat.services.values() for a in s.assumptions}
    used |= {a for s in cat.services.values() for e in s.endpoints for a in e.assumptions}
    assert used == set(cat.assumptions)


def test_a_catalog_with_an_unknown_scheme_is_rejected_naming_the_key() -> None:
    bad = minimal(endpoints=[{"url": "ftp://h/", "exchange": "get"}])
    with pytest.raises(CatalogError, match=r"services\.x\.endpoints\[0\].*scheme"):
        parse_catalog(bad, "bad.toml")


def test_a_catalog_with_a_wrong_level_is_rejected() -> None:
    with pytest.raises(CatalogError, match=r"services\.x\.level"):
        parse_catalog(minimal(level="maybe"), "bad.toml")


def test_an_undeclared_assumption_is_rejected_naming_the_declared_ones() -> None:
    bad = minimal(assumption="nope")
    bad["assumptions"] = {"real": "a sentence"}
    with pytest.raises(CatalogError, match=r"services\.x\.assumption: nope not declared.*declared: real"):
        parse_catalog(bad, "bad.toml")


def test_rule_any_needs_ways_that_cover_every_endpoint() -> None:
    eps = [{"url": "tcp://h.example:5938", "exchange": "teamviewer", "way": "a"},
           {"url": "http://h.example/x", "exchange": "get"}]  # fmt: skip
    with pytest.raises(CatalogError, match=r"rule 'any' needs at least two ways"):
        parse_catalog(minimal(rule="any", endpoints=eps, ways=[{"id": "a", "title": "A"}]), "bad.toml")
    ways = [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]
    with pytest.raises(CatalogError, match=r"every endpoint names one of the ways.*http://h\.example/x"):
        parse_catalog(minimal(rule="any", endpoints=eps, ways=ways), "bad.toml")
    eps[1]["way"] = "b"
    assert parse_catalog(minimal(rule="any", endpoints=eps, ways=ways)).services["x"].rule == "any"  # negative control


def test_ways_without_rule_any_are_rejected() -> None:
    with pytest.raises(CatalogError, match=r"ways apply only with rule = 'any'"):
        parse_catalog(minimal(ways=[{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]), "bad.toml")


def test_an_endpoint_on_a_port_missing_from_proxy_ports_is_rejected() -> None:
    bad = minimal(endpoints=[{"url": "tcp://h.example:5228", "exchange": "mtalk"}])
    bad["proxy_ports"] = [80, 443, 5938]
    with pytest.raises(CatalogError, match=r"proxy_ports \[80, 443, 5938\] lacks port\(s\) \[5228\]"):
        parse_catalog(bad, "bad.toml")


def test_bare_hosts_expand_to_one_url_per_port_and_reject_other_ports() -> None:
    cat = parse_catalog(minimal(bare_hosts={"ports": [443, 80], "hosts": ["a.example", {"host": "b.example"}]}))
    assert [e.url for e in cat.services["x"].endpoints][1:] == [
        "https://a.example/", "http://a.example/", "https://b.example/", "http://b.example/",
    ]  # fmt: skip
    with pytest.raises(CatalogError, match=r"bare_hosts\.ports"):
        parse_catalog(minimal(bare_hosts={"ports": [8080], "hosts": ["a.example"]}), "bad.toml")


def test_an_endpoint_listed_twice_is_rejected() -> None:
    twice = [{"url": "https://h.example/", "exchange": "get"}] * 2
    with pytest.raises(CatalogError, match=r"listed twice: https://h\.example/"):
        parse_catalog(minimal(endpoints=twice), "bad.toml")


def test_a_catalog_without_proxy_ports_takes_the_ports_its_endpoints_tunnel_to() -> None:
    cat = parse_catalog({"services": {"x": {"level": "required", "endpoints": [{"url": "tcp://localhost:36655/", "exchange": "get"}]}}})
    assert cat.proxy_ports == (36655,)
    with pytest.raises(CatalogError, match=r"lacks port\(s\) \[36655\]"):  # negative control: declared, then checked
        parse_catalog({"proxy_ports": [443], "services": {"x": {"level": "required", "endpoints": [{"url": "tcp://localhost:36655/", "exchange": "get"}]}}})
