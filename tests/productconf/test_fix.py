"""The fix is the smallest change in the product's own syntax, says why with the guide's words, and never uses wildcards."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import proxy_lab.productconf.guide as guide
from proxy_lab.productconf import LabFacts, Problem, for_lab, parse_config, propose_fix
from proxy_lab.productconf.diff import changed_line_count
from proxy_lab.productconf.run import write_files
from tests.productconf.productconf_helpers import STOCK_SQUID, STOCK_TINYPROXY, guide_text, require

METER = "10.20.30.40"
PORT_REFUSALS = Problem("allow_ports", ("http://distservp1.pb.com/csd/dstproduct", "tcp://master3.teamviewer.com:5938/", "tcp://mobile-gtalk.l.google.com:5228/"))


def stock_squid_allowing(tmp_path: Path, meter: str = METER) -> Path:
    """Debian's squid.conf plus `http_access allow` for the meter's address where Debian says to add rules."""
    text = STOCK_SQUID.read_text().replace(
        "http_access allow localhost\n", f"acl meter src {meter}\nhttp_access allow meter\nhttp_access allow localhost\n", 1
    )
    f = tmp_path / "squid.conf"
    f.write_text(text)
    return f


def added(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def assert_no_wildcards(diff: str) -> None:
    for line in added(diff):
        if not line.startswith("#"):
            assert "*" not in line and not re.search(r"(^|\s)\.[a-z]", line), line


def test_stock_squid_allowing_the_meter_is_fixed_by_its_ssl_ports_in_under_10_lines(tmp_path: Path) -> None:
    model = parse_config(stock_squid_allowing(tmp_path), "squid")
    fix = propose_fix(model, [PORT_REFUSALS], meter_ip=METER)
    assert added(fix.diff)[1] == "acl SSL_ports port 80 5228 5938"
    assert added(fix.diff)[0].startswith("# proxy-lab: CONNECT to ports 80, 5228 and 5938 for the meter (acl SSL_ports)")
    assert changed_line_count(fix.diff) == 2 < 10 and fix.fixed == ("allow_ports",) and not fix.unfixed
    assert fix.text.index("acl SSL_ports port 443\n") < fix.text.index("acl SSL_ports port 80 5228 5938\n") < fix.text.index("acl Safe_ports")
    assert_no_wildcards(fix.diff)


def test_a_meter_no_rule_allows_gets_an_acl_and_an_allow_ahead_of_the_deny_that_caught_it() -> None:
    model = parse_config(STOCK_SQUID, "squid")
    fix = propose_fix(model, [PORT_REFUSALS, Problem("exclusions", ("https://distservp1.pb.com/csd/dstproduct",))], meter_ip=METER)
    lines = fix.text.splitlines()
    i = lines.index("http_access deny all")
    assert lines[i - 2 : i] == ["acl sendpro_meter src 10.20.30.40", "http_access allow sendpro_meter"]
    assert lines[i - 3].startswith("# proxy-lab: let the meter (10.20.30.40) through before `http_access deny all`")
    assert set(fix.fixed) == {"allow_ports", "exclusions"} and not fix.unfixed
    assert_no_wildcards(fix.diff)


def test_stock_tinyproxy_with_a_lan_meter_is_fixed_by_an_allow_line() -> None:
    fix = propose_fix(parse_config(STOCK_TINYPROXY, "tinyproxy"), [Problem("refused", ("https://distservp1.pb.com/",))], meter_ip=METER)
    assert added(fix.diff)[1:] == ["Allow 10.20.30.40"] and fix.fixed == ("refused",)
    assert fix.text.index("Allow ::1\n") < fix.text.index("Allow 10.20.30.40\n")


def test_tinyproxy_connectport_443_gets_the_guides_other_ports(tmp_path: Path) -> None:
    f = tmp_path / "tinyproxy.conf"
    f.write_text("Port 8888\nConnectPort 443\nMaxClients 100\n")
    fix = propose_fix(parse_config(f, "tinyproxy"), [PORT_REFUSALS], meter_ip=METER)
    assert fix.text.splitlines()[2:6] == [fix.text.splitlines()[2], "ConnectPort 80", "ConnectPort 5228", "ConnectPort 5938"]
    assert fix.text.splitlines()[2].startswith("# proxy-lab: CONNECT to ports 80, 5228, 5938 for the meter")


def test_a_default_deny_filter_gets_a_new_file_with_the_guides_exact_hosts(tmp_path: Path) -> None:
    (tmp_path / "filter").write_text("^intranet\\.corp$\n")
    f = tmp_path / "tinyproxy.conf"
    f.write_text(f'Port 8888\nFilter "{tmp_path}/filter"\nFilterDefaultDeny Yes\n')
    out = tmp_path / "fixed"
    fix = propose_fix(parse_config(f, "tinyproxy"), [Problem("deny_hosts", ("https://distservp1.pb.com/", "tcp://master3.teamviewer.com:5938/"))],
                      meter_ip=METER, fix_dir=out)  # fmt: skip
    new = out / "filter.sendpro"
    assert f'Filter "{new}"' in fix.text and (tmp_path / "filter").read_text() == "^intranet\\.corp$\n"
    assert fix.files[new].splitlines()[0] == "^intranet\\.corp$"
    assert fix.files[new].splitlines()[2:] == ["^distservp1\\.pb\\.com$", "^master3\\.teamviewer\\.com$"]
    assert_no_wildcards(fix.diff)


def test_a_deny_list_filter_pattern_that_blocks_the_meter_is_commented_out_in_a_new_file(tmp_path: Path) -> None:
    (tmp_path / "filter").write_text("teamviewer\nfacebook\n")
    f = tmp_path / "tinyproxy.conf"
    f.write_text(f'Port 8888\nFilter "{tmp_path}/filter"\n')
    fix = propose_fix(parse_config(f, "tinyproxy"), [Problem("deny_hosts", ("tcp://master3.teamviewer.com:5938/",))], meter_ip=METER, fix_dir=tmp_path)
    assert fix.files[tmp_path / "filter.sendpro"].splitlines()[1:] == ["# teamviewer", "facebook"]


SSL_BUMP = (
    "http_port 3128 ssl-bump tls-cert=/etc/squid/corp-ca.pem\n"
    "acl step1 at_step SslBump1\nssl_bump peek step1\nssl_bump bump all\nhttp_access allow all\n"
)


def test_ssl_inspection_is_spliced_for_the_meter_before_the_first_bump(tmp_path: Path) -> None:
    f = tmp_path / "squid.conf"
    f.write_text(SSL_BUMP)
    fix = propose_fix(parse_config(f, "squid"), [Problem("tls_inspect", ("https://decometlb20.pb.com/",))], meter_ip=METER)
    lines = fix.text.splitlines()
    assert lines[3:6] == [lines[3], "acl sendpro_meter src 10.20.30.40", "ssl_bump splice sendpro_meter"]
    assert lines[6] == "ssl_bump bump all" and guide.NO_INSPECTION in lines[3]


def test_ssl_inspection_can_be_spliced_for_the_guides_exact_hosts_listed_in_a_new_file(tmp_path: Path) -> None:
    f = tmp_path / "squid.conf"
    f.write_text(SSL_BUMP)
    problem = Problem("tls_inspect", ("https://decometlb20.pb.com/", "https://pb-ota.redbend.com/", "https://not-in-the-guide.example/"))
    fix = propose_fix(parse_config(f, "squid"), [problem], meter_ip=METER, splice_by="hosts", fix_dir=tmp_path)
    listing = tmp_path / "squid.sendpro-tls-hosts.txt"
    assert fix.files[listing] == "decometlb20.pb.com\npb-ota.redbend.com\n"  # exact names of the guide only
    assert f'acl sendpro_tls_hosts ssl::server_name "{listing}"' in fix.text


def test_a_delay_pool_below_the_guides_floor_exempts_the_meter(tmp_path: Path) -> None:
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\ndelay_pools 1\ndelay_class 1 1\ndelay_parameters 1 16000/16000\ndelay_access 1 allow all\nhttp_access allow all\n")
    fix = propose_fix(parse_config(f, "squid"), [Problem("throttle", ())], meter_ip=METER)
    assert fix.text.splitlines()[4:7] == [fix.text.splitlines()[4], "acl sendpro_meter src 10.20.30.40", "delay_access 1 deny sendpro_meter"]
    assert fix.fixed == ("throttle",)


def test_causes_a_file_cannot_fix_are_reported_not_papered_over(tmp_path: Path) -> None:
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\nauth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth\nacl k proxy_auth REQUIRED\nhttp_access deny !k\nhttp_access allow all\n")
    problems = [Problem("auth_schemes", ("https://distservp1.pb.com/",), "offers only Negotiate"), Problem("dns_fail", ("https://dlsdlp1.pb.com/",)),
                Problem("tls_inspect", ("https://decometlb20.pb.com/",))]  # fmt: skip
    fix = propose_fix(parse_config(f, "squid"), problems, meter_ip=METER)
    assert not fix.changed and not fix.fixed
    assert [u.cause for u in fix.unfixed] == ["auth_schemes", "dns_fail", "tls_inspect"]
    assert "Basic only" in fix.unfixed[0].reason and "no ssl_bump rule" in fix.unfixed[2].reason


def test_a_refusal_this_files_rules_do_not_explain_is_reported_as_coming_from_elsewhere(tmp_path: Path) -> None:
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\nhttp_access allow all\n")
    fix = propose_fix(parse_config(f, "squid"), [PORT_REFUSALS], meter_ip=METER)
    assert not fix.changed and "the refusal comes from elsewhere" in fix.unfixed[0].reason


def test_every_quote_of_the_guide_is_verbatim() -> None:
    text = guide_text()
    if text is None:
        pytest.skip("the guide is not beside this checkout")
    flat = " ".join(text.split())
    for quote in guide.QUOTES:
        assert quote in flat, quote
    assert "not the guide's words" not in flat  # negative control: the check can fail


@pytest.mark.parametrize("case", ["ports", "meter allow", "splice", "delay pool"])
def test_squid_itself_parses_every_fixed_file(case: str, labdir: Path, facts: LabFacts) -> None:
    exe = require("squid")
    if case == "ports":
        model, problems = parse_config(stock_squid_allowing(labdir), "squid"), [PORT_REFUSALS]
    elif case == "meter allow":
        model, problems = parse_config(STOCK_SQUID, "squid"), [PORT_REFUSALS, Problem("exclusions", ("https://a.pb.com/",))]
    else:
        import trustme

        ca = trustme.CA()
        (labdir / "corp-ca.pem").write_bytes(ca.private_key_pem.bytes() + ca.cert_pem.bytes())
        f = labdir / "squid.conf"
        f.write_text(SSL_BUMP.replace("/etc/squid/corp-ca.pem", str(labdir / "corp-ca.pem")) if case == "splice" else
                     "http_port 3128\ndelay_pools 1\ndelay_class 1 1\ndelay_parameters 1 16000/16000\ndelay_access 1 allow all\nhttp_access allow all\n")  # fmt: skip
        model, problems = parse_config(f, "squid"), [Problem("tls_inspect" if case == "splice" else "throttle", ("https://a.pb.com/",))]
    fix = propose_fix(model, problems, meter_ip=METER)
    assert fix.changed
    fixed = labdir / "fixed.conf"
    fixed.write_text(fix.text)
    lab = for_lab(parse_config(fixed, "squid"), facts)
    write_files(lab)
    done = subprocess.run([exe, "-k", "parse", "-f", str(lab.path)], capture_output=True, text=True, timeout=120, check=False)
    complaints = [line for line in done.stderr.splitlines() if "ERROR" in line or "FATAL" in line]
    assert done.returncode == 0 and not complaints, done.stderr[-1500:]
