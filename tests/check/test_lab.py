"""`proxy-lab check --lab --fault X` names each fault of the lab proxy and its remedy; bad input is one line."""

from __future__ import annotations

import asyncio
import re
import string
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.advice import CAUSES
from proxy_lab.check import VERDICT_FAILS, VERDICT_REDUCED, VERDICT_WORKS, run_check, specific_remedy
from proxy_lab.cli import main
from proxy_lab.outcomes import VERDICT_PORT80_ONLY
from proxy_lab.proxy import FAULTS

# fault -> (settings that make it bite quickly, the cause the check must name)
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "allow_ports": ({"preset": "ssl_ports_only"}, "allow_ports"),
    "socks_only": ({}, "socks_only"),
    "tls_inspect": ({}, "tls_inspect"),
    "exclusions": ({"direct_hosts": ["*.pb.com"]}, "exclusions"),
    "deny_hosts": ({"patterns": ["*.teamviewer.com"]}, "deny_hosts"),
    "allow_hosts": ({"patterns": ["*.pb.com"]}, "allow_hosts"),
    "auth_schemes": ({"schemes": ["NTLM", "Negotiate"]}, "auth_schemes"),
    "challenge_style": ({"style": "401_bearer"}, "challenge_style"),  # with users: see USERS
    "dns_fail": ({"hosts": ["pb-ota.redbend.com"]}, "dns_fail"),
    "connect_quirks": ({"status": 204}, "connect_quirks"),
    "reset_after": ({"after_bytes": 200, "hosts": ["cometservp1.pb.com"]}, "reset_after"),
    "idle_timeout": ({"idle_s": 0.1, "ports": [5938]}, "idle_timeout"),
    "latency": ({"delay_ms": 2500, "hosts": ["s3.amazonaws.com"]}, "latency"),
    "throttle": ({"rate_kbps": 96, "hosts": ["pbdlsp1*.pb.com"]}, "throttle"),
    "ipv6_broken": ({"fallback": False, "connect_timeout_ms": 100, "hosts": ["pb-ota.redbend.com"]}, "upstream"),
    "block_page": ({"paths": ["/generate_204"]}, "block_page"),
    "tamper": ({"mode": "flip_byte", "offset_bytes": 10, "ports": [80]}, "tamper"),
}


USERS = {"challenge_style", "auth_schemes"}  # faults that act on the proxy's authentication


def fills(template: str, text: str) -> bool:
    """`text` is `template` with every field replaced by some text: all of its wording is the table's."""
    pattern = "".join(
        re.escape(literal) + ("(.+?)" if name is not None else "")
        for literal, name, _, _ in string.Formatter().parse(template)
    )
    return re.fullmatch(pattern, text, flags=re.DOTALL) is not None


def check(faults: list[tuple[str, dict[str, Any]]], certs: Path, proxy_url: str | None = None) -> Any:
    return asyncio.run(
        run_check(
            proxy_url=proxy_url, model="sendpro-c", trust="lab", timeout_s=2.0, concurrency=16,
            lab_faults=faults, resolve={}, certs_dir=certs, bandwidth_url=None,
        )
    )  # fmt: skip


def test_every_fault_of_the_lab_proxy_has_a_case_here() -> None:
    assert set(CASES) == set(FAULTS)


def test_without_a_fault_the_check_says_the_meter_will_work(proxy_lab_certs_dir: Path) -> None:
    report = check([], proxy_lab_certs_dir)
    assert report.verdict == VERDICT_WORKS and report.exit_code == 0 and report.findings == []
    assert report.bandwidth_kbps is not None and report.bandwidth_kbps > 1000


@pytest.mark.parametrize("fault", sorted(CASES))
def test_check_names_the_fault_and_its_remedy(fault: str, proxy_lab_certs_dir: Path) -> None:
    settings, cause = CASES[fault]
    url = "http://meter:Postage-2020!@127.0.0.1:3128" if fault in USERS else None
    report = check([(fault, settings)], proxy_lab_certs_dir, url)
    found = {f.cause.id: f for f in report.findings}
    assert cause in found, f"{fault}: findings {list(found)}"
    fix = specific_remedy(found[cause])
    assert fills(CAUSES[cause].remedy, fix) and "{" not in fix, fix  # the table's sentence, filled in
    assert report.verdict in (VERDICT_FAILS, VERDICT_PORT80_ONLY, VERDICT_REDUCED) and report.exit_code == 1


def test_field_mode_against_a_real_proxy_names_a_wrong_password(
    proxy_lab_session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The field path end to end on loopback: the lab proxy stands in for the corporate proxy."""
    from proxy_lab.proxy import LabProxy, ProxyConfig

    lab = proxy_lab_session.lab
    proxy = LabProxy(ProxyConfig(users={"meter": "Postage-2020!"}), lab.resolver)
    proxy_lab_session.call(proxy.start())
    try:
        host, port = proxy.address
        dns_host, dns_port = lab.resolver.lookup("8.8.8.8", 53)
        dns = f"{dns_host}:{dns_port}"
        common = ["--trust", str(lab.pki.pb_root.cert), "--dns-server", dns, "--model", "sendpro-c", "--timeout", "3"]
        assert main(["check", "--proxy", f"http://meter:Postage-2020!@{host}:{port}", *common]) == 0
        assert "the meter will work" in capsys.readouterr().out
        assert main(["check", "--proxy", f"http://meter:postage-2020!@{host}:{port}", *common]) == 1
        out = capsys.readouterr().out
        assert "username or password was rejected" in out and "will NOT work" in out
    finally:
        proxy_lab_session.call(proxy.stop())


@pytest.mark.parametrize(
    ("argv", "needle", "code"),
    [
        (["check", "--proxy", "socks5://127.0.0.1:1080"], "SOCKS", 2),
        (["check", "--proxy", "http://127.0.0.1"], "host and a port", 2),
        (["check", "--proxy", "http://[::1"], "malformed", 2),
        (["check", "--proxy", "ftp://127.0.0.1:21"], "expected http://", 2),
        (["check"], "--proxy", 2),
        (["check", "--proxy", "http://127.0.0.1:9", "--fault", "throttle"], "--lab", 2),
    ],
)
def test_bad_check_input_is_said_in_one_line(argv: list[str], needle: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_an_unreachable_proxy_is_said_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    assert main(["check", "--proxy", f"http://127.0.0.1:{port}", "--timeout", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0] and f"127.0.0.1:{port}" in err[0]


def test_check_lab_writes_junit_that_validates_and_fails_on_the_refused_services(
    proxy_lab_certs_dir: Path, tmp_path: Path
) -> None:
    import xml.etree.ElementTree as ET
    from importlib import resources

    import xmlschema

    out = tmp_path / "check.xml"
    common = ["--certs", str(proxy_lab_certs_dir), "check", "--lab", "--model", "sendpro-c", "--timeout", "2", "--format", "junit"]
    assert main([*common, "--fault", "allow_ports:preset=ssl_ports_only", "-o", str(out)]) == 1
    xml = out.read_text()
    xmlschema.XMLSchema(str(resources.files("proxy_lab").joinpath("data/junit.xsd"))).validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["distributor (required)"].find("failure") is not None
    assert cases["funds (required)"].find("failure") is None
    assert "finding: " in " ".join(n or "" for n in cases) and int(suite.get("failures") or 0) >= 2
    assert main([*common, "-o", str(out)]) == 0  # negative control: no fault, no failure
    assert ET.fromstring(out.read_text()).find("testsuite").get("failures") == "0"  # type: ignore[union-attr]
