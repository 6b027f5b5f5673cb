"""Site lint: every rule of the guide, table-tested, with a clean-settings negative control."""

from __future__ import annotations

import json

import pytest

from proxy_lab.cli import main
from proxy_lab.errors import ConfigError
from proxy_lab.lint import SiteSettings, lint_site

CLEAN = SiteSettings(gateway="10.0.0.1", proxy="http://10.0.0.5:8080", wifi_security="wpa2", ipv6=False, bandwidth_kbps=2000)


def rules(site: SiteSettings) -> dict[str, str]:
    return {f.rule: f.level for f in lint_site(site)}


def test_clean_settings_break_no_rule() -> None:
    assert rules(CLEAN) == {}


@pytest.mark.parametrize(
    ("change", "rule", "level"),
    [
        ({"gateway": "192.168.10.254"}, "gateway-internal-subnet", "error"),
        ({"gateway": "192.168.10.240"}, "gateway-internal-subnet", "error"),  # first address of the upper range
        ({"gateway": "192.168.10.100"}, "gateway-internal-subnet", "error"),
        ({"gateway": "192.168.10.96"}, "gateway-internal-subnet", "error"),
        ({"gateway": "192.168.10.111"}, "gateway-internal-subnet", "error"),
        ({"proxy": "http://192.168.10.250:3128"}, "proxy-internal-subnet", "error"),
        ({"proxy": "socks5://10.0.0.5:1080"}, "proxy-socks", "error"),
        ({"proxy": "https://10.0.0.5:8443"}, "proxy-scheme", "error"),
        ({"proxy": "http://10.0.0.5"}, "proxy-port", "error"),
        ({"proxy": "http://proxy.corp:8080"}, "proxy-hostname", "warning"),
        ({"wifi_security": "wep"}, "wifi-wep", "error"),
        ({"wifi_security": "open"}, "wifi-open", "warning"),
        ({"bandwidth_kbps": 256}, "bandwidth-floor", "error"),
        ({"bandwidth_kbps": 512}, "bandwidth-recommended", "warning"),
        ({"ipv6": True}, "ipv6", "warning"),
        ({"exclusions": ("*.pb.com",)}, "exclusions", "error"),
    ],
)
def test_each_rule_of_the_guide_fires_on_its_setting(change: dict[str, object], rule: str, level: str) -> None:
    site = SiteSettings(**{**CLEAN.__dict__, **change})  # type: ignore[arg-type]
    assert rules(site) == {rule: level}


@pytest.mark.parametrize(
    "gateway", ["192.168.10.95", "192.168.10.112", "192.168.10.239", "192.168.11.250"]  # just outside each range
)
def test_addresses_just_outside_the_internal_ranges_pass(gateway: str) -> None:
    assert "gateway-internal-subnet" not in rules(SiteSettings(gateway=gateway))


def test_exactly_384_kbps_meets_the_floor_but_warns_and_1000_is_clean() -> None:
    assert rules(SiteSettings(gateway="10.0.0.1", bandwidth_kbps=384)) == {"bandwidth-recommended": "warning"}
    assert rules(SiteSettings(gateway="10.0.0.1", bandwidth_kbps=1000)) == {}


def test_a_gateway_that_is_not_an_ip_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="--gateway"):
        lint_site(SiteSettings(gateway="router.local"))


def test_the_cli_exits_1_with_errors_0_with_warnings_only_and_2_on_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--gateway", "192.168.10.250", "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["findings"][0]["rule"] == "gateway-internal-subnet"
    assert main(["lint", "--gateway", "10.0.0.1", "--bandwidth-kbps", "500"]) == 0
    assert "WARNING" in capsys.readouterr().out
    assert main(["lint", "--gateway", "not-an-ip"]) == 2
    assert "--gateway" in capsys.readouterr().err
    assert main(["lint", "--gateway", "10.0.0.1", "--proxy", "http://[::1"]) == 2
