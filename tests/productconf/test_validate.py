"""Before a run: the product, the files the configuration names, and the product's own verdict, each in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.productconf import LabFacts, ProductConfigError, check_meter_ip, parse_config, validate
from proxy_lab.productconf import validation as validate_module
from proxy_lab.productconf.facts import INTERNAL_SUBNETS_RULE
from tests.productconf.productconf_helpers import STOCK_SQUID, STOCK_TINYPROXY, guide_text, require


@pytest.mark.parametrize(("path", "product"), [(STOCK_SQUID, "squid"), (STOCK_TINYPROXY, "tinyproxy")])
def test_the_real_product_accepts_debians_stock_file(path: Path, product: str, facts: LabFacts) -> None:
    require(product)
    result = validate(parse_config(path, product), facts)
    assert result.product == product and result.binary


def test_squid_rejects_a_bad_line_with_its_own_message_and_the_users_line(tmp_path: Path, facts: LabFacts) -> None:
    require("squid")
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\nacl ports port abc\nhttp_access allow all\n")
    with pytest.raises(ProductConfigError) as err:
        validate(parse_config(f, "squid"), facts)
    message = str(err.value)
    assert f"Bungled {f} line 2: acl ports port abc" in message and "No digits were found" in message
    assert len(message.splitlines()) == 1 and str(facts.workdir) not in message


def test_an_unknown_squid_directive_is_rejected_with_its_line(tmp_path: Path, facts: LabFacts) -> None:
    require("squid")
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\nno_such_directive on\n")
    with pytest.raises(ProductConfigError, match=rf"{f}\(2\): unrecognized: 'no_such_directive'"):
        validate(parse_config(f, "squid"), facts)


def test_tinyproxy_rejects_a_bad_line_at_start_with_the_users_line(tmp_path: Path, facts: LabFacts) -> None:
    require("tinyproxy")
    f = tmp_path / "tinyproxy.conf"
    f.write_text("Port 8888\nBasicAuthRealm \"corp\"\n")  # not a directive of tinyproxy 1.11
    with pytest.raises(ProductConfigError, match=r'tinyproxy rejects .*tinyproxy.conf line 2: `BasicAuthRealm "corp"`: Syntax error'):
        validate(parse_config(f, "tinyproxy"), facts)


def test_missing_password_and_acl_files_are_named_with_their_lines(tmp_path: Path, facts: LabFacts) -> None:
    f = tmp_path / "squid.conf"
    f.write_text(
        "http_port 3128\nauth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/no-such-passwd\n"
        'acl blocked dstdomain "/etc/squid/no-such-list.txt"\nhttp_access deny blocked\nhttp_access allow all\n'
    )
    require("squid")
    with pytest.raises(ProductConfigError) as err:
        validate(parse_config(f, "squid"), facts)
    message = str(err.value)
    assert "2 files it names are missing" in message
    assert "line 2 (`auth_param`): password file of basic_ncsa_auth /etc/squid/no-such-passwd" in message
    assert "line 3 (`acl`): list of acl blocked /etc/squid/no-such-list.txt" in message


def test_a_missing_tinyproxy_filter_file_is_named(tmp_path: Path, facts: LabFacts) -> None:
    f = tmp_path / "tinyproxy.conf"
    f.write_text('Port 8888\nFilter "/etc/tinyproxy/no-such-filter"\nFilterDefaultDeny Yes\n')
    require("tinyproxy")
    with pytest.raises(ProductConfigError, match=r"line 2 \(`Filter`\): filter file /etc/tinyproxy/no-such-filter"):
        validate(parse_config(f, "tinyproxy"), facts)


def test_a_product_not_installed_names_the_package_openssl_for_sslbump(tmp_path: Path, facts: LabFacts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_module, "find_product", lambda product: None)
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128 ssl-bump tls-cert=/etc/squid/ca.pem\nssl_bump bump all\n")
    with pytest.raises(ProductConfigError, match=r"squid is not installed .*apt-get install squid-openssl \(squid.conf uses SslBump at line 1\)"):
        validate(parse_config(f, "squid"), facts)
    with pytest.raises(ProductConfigError, match=r"apt-get install squid$"):
        validate(parse_config(STOCK_SQUID, "squid"), facts)
    with pytest.raises(ProductConfigError, match=r"apt-get install tinyproxy$"):
        validate(parse_config(STOCK_TINYPROXY, "tinyproxy"), facts)


def test_sslbump_with_a_squid_built_without_openssl_says_so(tmp_path: Path, facts: LabFacts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_module, "find_product", lambda product: "/usr/sbin/squid")
    monkeypatch.setattr(validate_module, "supports_ssl_bump", lambda exe: False)
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128 ssl-bump tls-cert=/etc/squid/ca.pem\n")
    with pytest.raises(ProductConfigError, match=r"squid.conf line 1: `http_port 3128 ssl-bump .*` uses SslBump, but .* without OpenSSL"):
        validate(parse_config(f, "squid"), facts)


@pytest.mark.parametrize("value", ["10.20.30.40", "192.168.10.95", "192.168.10.112", "192.168.10.239", "fd00::5"])
def test_a_meter_address_outside_its_internal_subnets_is_accepted(value: str) -> None:
    assert check_meter_ip(value) == value


@pytest.mark.parametrize("value", ["192.168.10.240", "192.168.10.255", "192.168.10.96", "192.168.10.111"])
def test_a_meter_address_inside_its_internal_subnets_is_refused_quoting_the_guide(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_meter_ip(value)
    assert str(err.value).startswith(f"--meter-ip {value}: inside the meter's internal subnet")
    assert f'"{INTERNAL_SUBNETS_RULE}"' in str(err.value)


@pytest.mark.parametrize("value", ["meter.local", "10.20.30", "0.0.0.0", "224.0.0.1", ""])
def test_a_meter_address_that_is_not_a_device_address_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^--meter-ip "):
        check_meter_ip(value)


def test_the_internal_subnet_rule_is_the_guides_sentence_verbatim() -> None:
    text = guide_text()
    if text is None:
        pytest.skip("the guide is not beside this checkout")
    assert INTERNAL_SUBNETS_RULE in " ".join(text.split())


def test_a_port_squid_refuses_is_named_by_the_users_port_and_line(tmp_path: Path, facts: LabFacts, pb_root: Path) -> None:
    exe = require("squid")
    if not validate_module.supports_ssl_bump(exe):
        pytest.skip("needs a squid built with OpenSSL (squid-openssl)")
    f = tmp_path / "squid.conf"
    f.write_text(f"http_port 3128 ssl-bump tls-cert={pb_root}\nhttp_access allow all\n")  # a certificate without its key
    with pytest.raises(ProductConfigError, match=r"No valid signing certificate configured for HTTP_port 3128 \(squid.conf line 1\)"):
        validate(parse_config(f, "squid"), facts)
