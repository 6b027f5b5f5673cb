"""`check --direct` (no proxy, through the lab firewall), `--hold` and the upload rate, end to end on the lab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy_lab.cli import main


def check(certs: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--certs", str(certs), "check", "--lab", "--timeout", "2", "--model", "sendpro-c", *args])
    return code, capsys.readouterr().out


def findings(out: str) -> dict[str, dict[str, object]]:
    return {f["cause"]: f for f in json.loads(out)["findings"]}


def test_check_lab_direct_exits_0_and_says_it_checked_without_a_proxy(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(proxy_lab_certs_dir, capsys, "--direct")
    assert code == 0, out
    assert "no proxy: the meter connects directly" in out.splitlines()[0]
    assert "the meter will work" in out and "What breaks" not in out
    code, out = check(proxy_lab_certs_dir, capsys, "--direct", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["connection"] == "direct" and data["proxy"].startswith("no proxy")


def test_a_firewall_that_drops_5938_is_named_with_the_port(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = check(proxy_lab_certs_dir, capsys, "--direct", "--fault", "drop_ports:ports=[5938]")
    assert "firewall: TCP connections silently dropped" in out
    assert "allow outgoing TCP from the meter to port 5938 on the site firewall" in out
    _, out = check(proxy_lab_certs_dir, capsys, "--direct", "--fault", "drop_ports:ports=[5938]", "--format", "json")
    found = findings(out)
    assert list(found) == ["fw_drop"], found  # dropped, not rejected: the connect got no answer
    assert found["fw_drop"]["endpoints"] == ["tcp://master3.teamviewer.com:5938/"]


def test_a_firewall_that_resets_5938_is_told_apart_from_one_that_drops_it(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = check(proxy_lab_certs_dir, capsys, "--direct", "--fault", "reset_ports:ports=[5938]", "--format", "json")
    found = findings(out)
    assert list(found) == ["fw_reject"], found
    assert "port 5938" in str(found["fw_reject"]["remedy"]) and "ECONNREFUSED" in str(found["fw_reject"]["evidence"])


def test_dns_over_tcp_refused_by_the_firewall_fails_the_connectivity_check_and_says_so(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(proxy_lab_certs_dir, capsys, "--direct", "--fault", "dns_tcp:action=reset", "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["services"]["connectivity_check"]["outcome"] != "pass"
    found = findings(out)
    assert list(found) == ["dns_tcp"] and found["dns_tcp"]["endpoints"] == ["dns+tcp://8.8.8.8/connectivitycheck.gstatic.com"]
    assert "allow for both UDP and TCP traffic to this port." in str(found["dns_tcp"]["remedy"])


def test_a_hold_longer_than_the_idle_timeout_names_the_idle_timeout(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(proxy_lab_certs_dir, capsys, "--hold", "3", "--fault", "idle_timeout:idle_s=1", "--format", "json")
    found = findings(out)
    assert code == 1 and "idle_timeout" in found, found
    assert "tcp://master3.teamviewer.com:5938/" in found["idle_timeout"]["endpoints"]
    assert "tcp://mobile-gtalk.l.google.com:5228/" in found["idle_timeout"]["endpoints"]


def test_a_hold_shorter_than_the_idle_timeout_names_nothing(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(proxy_lab_certs_dir, capsys, "--hold", "1", "--fault", "idle_timeout:idle_s=4", "--format", "json")
    assert code == 0 and findings(out) == {}, out


def test_the_check_prints_an_upload_rate_and_its_data_carries_both_ways(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(proxy_lab_certs_dir, capsys)
    assert code == 0 and "upload: " in out and "kbit/s, POST of 49152 bytes to https://pbdlsp1.pb.com/upload" in out
    _, out = check(proxy_lab_certs_dir, capsys, "--format", "json")
    data = json.loads(out)
    assert data["bandwidth_kbps"] > 1000 and data["upload_kbps"] > 1000


def test_a_slow_upload_is_below_the_floor_and_named(proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(proxy_lab_certs_dir, capsys, "--timeout", "5", "--fault", "throttle:rate_kbps=200,hosts=[\"pbdlsp1.pb.com\"]",
                      "--format", "json")  # fmt: skip
    data = json.loads(out)
    assert code == 1 and data["upload_kbps"] < 384, data["upload_kbps"]
    assert "throttle" in findings(out) and data["verdict"] != "the meter will work: every required service passes"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["check", "--direct", "--proxy", "http://127.0.0.1:3128"], "drop --proxy"),
        (["check", "--lab", "--direct", "--fault", "drop_ports:ports=[22]"], "ports=[22]"),
        (["check", "--lab", "--direct", "--fault", "tls_inspect"], "not a firewall fault"),
        (["check", "--direct", "--fault", "drop_ports"], "add --lab"),
        (["check", "--lab", "--hold=-1"], "--hold '-1': expected 0..86400 seconds"),
        (["check", "--lab", "--upload-url", "https://127.0.0.1:9/up"], "--upload-url is for the field"),
        (["check", "--direct", "--upload-url", "ftp://127.0.0.1/x"], "--upload-url 'ftp://127.0.0.1/x'"),
    ],
)
def test_bad_direct_hold_and_upload_input_is_said_in_one_line(
    argv: list[str], needle: str, proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--certs", str(proxy_lab_certs_dir), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    if err[0].startswith("usage:"):  # argparse's own errors: the usage, then the one line that says why
        err = err[-1:]
    assert len(err) == 1 and needle in err[-1] and "Traceback" not in err[-1], err


def test_tls_re_signed_by_a_transparent_appliance_is_named_with_its_issuer(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = check(proxy_lab_certs_dir, capsys, "--direct", "--fault", "tls_intercept", "--format", "json")
    found = findings(out)
    assert "fw_tls" in found and "Corp Inspection CA" in str(found["fw_tls"]["remedy"]), found
    # Negative control: a meter that trusted the appliance's CA would pass through the very same path.
    corp_ca = proxy_lab_certs_dir / "corp-ca.pem"
    code, out = check(proxy_lab_certs_dir, capsys, "--direct", "--fault", "tls_intercept", "--trust", str(corp_ca), "--format", "json")
    assert code == 0 and findings(out) == {}, findings(out)
