"""The access evaluators name the rule that refuses the meter, as Squid and tinyproxy would."""

from __future__ import annotations

from pathlib import Path

from proxy_lab.productconf import parse_config
from proxy_lab.productconf.squid_access import Request, http_access
from proxy_lab.productconf.tinyproxy_access import bre_to_python, tinyproxy_access
from tests.productconf.productconf_helpers import STOCK_SQUID, STOCK_TINYPROXY


def squid(tmp_path: Path, body: str) -> object:
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\n" + body)
    return parse_config(f, "squid")


def req(host: str, port: int, src: str = "10.20.30.40", user: str | None = None) -> Request:
    return Request(src, host, port, 3128, "3128", user)


def test_stock_squid_refuses_connect_to_port_80_by_its_ssl_ports_rule() -> None:
    model = parse_config(STOCK_SQUID, "squid")
    d = http_access(model, req("distservp1.pb.com", 80, src="127.0.0.1"))
    assert d.action == "deny" and str(d.rule) == "http_access deny CONNECT !SSL_ports"


def test_stock_squid_lets_localhost_through_to_443_and_refuses_a_lan_meter_by_deny_all() -> None:
    model = parse_config(STOCK_SQUID, "squid")
    assert http_access(model, req("distservp1.pb.com", 443, src="127.0.0.1")).allowed
    d = http_access(model, req("distservp1.pb.com", 443))
    assert d.action == "deny" and str(d.rule) == "http_access deny all"


def test_the_meters_address_decides_when_a_rule_keys_on_it(tmp_path: Path) -> None:
    model = squid(tmp_path, "acl meter src 10.20.30.40\nhttp_access allow meter\nhttp_access deny all\n")
    assert http_access(model, req("distservp1.pb.com", 443)).allowed
    assert not http_access(model, req("distservp1.pb.com", 443, src="10.20.30.41")).allowed  # another LAN address


def test_dstdomain_matches_a_domain_and_its_subdomains_with_a_leading_dot(tmp_path: Path) -> None:
    model = squid(tmp_path, "acl blocked dstdomain .teamviewer.com pb-ota.redbend.com\nhttp_access deny blocked\nhttp_access allow all\n")
    assert not http_access(model, req("master3.teamviewer.com", 5938)).allowed
    assert not http_access(model, req("pb-ota.redbend.com", 443)).allowed
    assert http_access(model, req("x.pb-ota.redbend.com", 443)).allowed  # no leading dot: that host only


def test_without_credentials_an_auth_rule_is_a_challenge_and_with_them_it_passes(tmp_path: Path) -> None:
    model = squid(tmp_path, "auth_param basic program /usr/lib/squid/basic_ncsa_auth /x\nacl users proxy_auth REQUIRED\nhttp_access deny !users\nhttp_access allow all\n")
    assert http_access(model, req("distservp1.pb.com", 443)).action == "auth"
    assert http_access(model, req("distservp1.pb.com", 443, user="meter")).allowed


def test_an_acl_it_cannot_decide_keeps_the_meter_out_and_says_so(tmp_path: Path) -> None:
    model = squid(tmp_path, "acl hours time MTWHF 08:00-18:00\nhttp_access allow hours\nhttp_access deny all\n")
    d = http_access(model, req("distservp1.pb.com", 443))
    assert not d.allowed and d.assumed == ("hours",)


def test_with_no_rule_matching_the_default_is_the_opposite_of_the_last_rule(tmp_path: Path) -> None:
    assert not http_access(squid(tmp_path, "acl lan src 10.1.0.0/16\nhttp_access allow lan\n"), req("a.pb.com", 443)).allowed
    assert http_access(squid(tmp_path, "acl bad src 10.1.0.0/16\nhttp_access deny bad\n"), req("a.pb.com", 443)).allowed


def test_stock_tinyproxy_refuses_a_lan_meter_by_its_allow_list_and_lets_localhost_through() -> None:
    model = parse_config(STOCK_TINYPROXY, "tinyproxy")
    d = tinyproxy_access(model, "10.20.30.40", "distservp1.pb.com", 443)
    assert not d.allowed and d.stage == "acl"
    assert tinyproxy_access(model, "127.0.0.1", "distservp1.pb.com", 80).allowed


def test_tinyproxy_connectport_and_an_allow_list_filter_refuse_in_that_order(tmp_path: Path) -> None:
    (tmp_path / "filter").write_text("^distservp1\\.pb\\.com$\n")
    f = tmp_path / "tinyproxy.conf"
    f.write_text(f'Port 8888\nConnectPort 443\nFilter "{tmp_path}/filter"\nFilterDefaultDeny Yes\n')
    model = parse_config(f, "tinyproxy")
    assert tinyproxy_access(model, "10.20.30.40", "distservp1.pb.com", 80).stage == "connectport"
    assert tinyproxy_access(model, "10.20.30.40", "decometlb20.pb.com", 443).stage == "filter"
    assert tinyproxy_access(model, "10.20.30.40", "distservp1.pb.com", 443).allowed


def test_a_basic_regular_expression_reads_as_posix_does() -> None:
    assert bre_to_python(r"^a\.b+c?\(d\)$") == r"^a\.b\+c\?(d)$"
