"""`proxy-lab observe` (proxy_lab/observe.py, observe_render.py) on hand-written records: the
classification of each kind of contact, the lists, the formats and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.cli import main
from proxy_lab.observe import classify_record, observe
from proxy_lab.observe_render import render
from proxy_lab.outcomes import Outcome


def _rec(target: str, *, end: str = "client closed", lab: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "time": "2026-12-06T02:00:00.000+00:00", "client": "127.0.0.1:5000", "target": target,
        "lab": lab or {"status": 200, "reason": "Connection established"}, "upstream": None,
        "refused_by": None, "sni": None, "issuer": None, "bytes_up": 100, "bytes_down": 2000, "end": end,
    }  # fmt: skip
    record.update(extra)
    return record


UPSTREAM_403 = {
    "lab": {"status": 403, "reason": "Forbidden", "action": "respond", "passed_on": True},
    "upstream": {"proxy": "10.0.0.5:8080", "status": 403, "reason": "Forbidden", "credentials": False,
                 "headers": [["X-Squid-Error", "ERR_ACCESS_DENIED 0"]]},
    "refused_by": "upstream",
}  # fmt: skip
UPSTREAM_407 = {
    "lab": {"status": 407, "reason": "Proxy Authentication Required", "action": "respond", "passed_on": True},
    "upstream": {"proxy": "10.0.0.5:8080", "status": 407, "reason": "Proxy Authentication Required",
                 "credentials": False, "headers": [["Proxy-Authenticate", 'Basic realm="corp"']]},
    "refused_by": "upstream",
}  # fmt: skip


@pytest.mark.parametrize(
    ("record", "outcome"),
    [
        (_rec("dlsdlp1.pb.com:443"), Outcome.PASS),  # opened and closed normally
        (_rec("distservp1.pb.com:80", end="refused", **UPSTREAM_403), Outcome.REFUSED),
        (_rec("dlsdlp1.pb.com:443", end="refused", **UPSTREAM_407), Outcome.AUTH_REQUIRED),
        (_rec("dlsdlp1.pb.com:443", end="refused", lab={"status": 503, "reason": "Service Unavailable", "action": "respond"}), Outcome.UNREACHABLE),
        (_rec("dlsdlp1.pb.com:443", end="refused", lab={"action": "reset"}), Outcome.RESET),
        (_rec("dlsdlp1.pb.com:443", end="refused", lab={"action": "close"}), Outcome.UNREACHABLE),
        (_rec("dlsdlp1.pb.com:443", end="server reset"), Outcome.RESET),
        (_rec("master3.teamviewer.com:5938", end="idle timeout"), Outcome.RESET),
        (_rec("dlsdlp1.pb.com:443", end="server closed", bytes_down=0), Outcome.RESET),  # closed before answering
        (_rec("dlsdlp1.pb.com:443", issuer="CN=Corp Inspection CA"), Outcome.TLS_INTERCEPTED),
        (_rec("dlsdlp1.pb.com:443", issuer="CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1,O=DigiCert Inc,C=US"), Outcome.PASS),
    ],
)
def test_each_kind_of_recorded_contact_is_classified_as_the_device_would(record: dict[str, Any], outcome: Outcome) -> None:
    assert classify_record(record).outcome == outcome


def test_a_refusal_passed_on_from_the_upstream_is_named_as_the_corporate_proxys() -> None:
    verdict = classify_record(_rec("distservp1.pb.com:80", end="refused", **UPSTREAM_403))
    assert "upstream proxy 10.0.0.5:8080 (the corporate proxy) refused CONNECT distservp1.pb.com:80" in verdict.detail
    lab = _rec("distservp1.pb.com:80", end="refused", lab={"status": 403, "reason": "Forbidden", "action": "respond"}, refused_by="lab")
    assert "lab proxy refused" in classify_record(lab).detail  # negative control


def test_services_hosts_not_in_the_guide_and_endpoints_never_contacted_are_listed() -> None:
    records = [
        _rec("distservp1.pb.com:443"),
        _rec("distservp1.pb.com:80", end="refused", **UPSTREAM_403),
        _rec("telemetry.example.net:443"),
    ]
    obs = observe(records, model="sendpro-c")
    by_name = {s.name: s for s in obs.services}
    assert by_name["distributor"].outcome == Outcome.REFUSED and len(by_name["distributor"].contacts) == 2
    assert by_name["funds"].outcome is None  # not contacted in the window
    assert "parcel_shipping" not in by_name  # SendPro+ only
    assert [t for t, _ in obs.not_in_guide] == ["telemetry.example.net:443"]
    assert "https://distservp1.pb.com/csd/dstproduct" not in obs.never_contacted
    assert "https://cometservp1.pb.com/" in obs.never_contacted
    (finding,) = obs.findings
    assert finding.cause == "allow_ports" and finding.refuser == "the upstream proxy 10.0.0.5:8080 (the corporate proxy)"


@pytest.mark.parametrize("fmt", ["terminal", "markdown", "html", "json"])
def test_every_format_names_the_refused_service_its_refuser_and_the_remedy(fmt: str) -> None:
    obs = observe([_rec("distservp1.pb.com:80", end="refused", **UPSTREAM_403)])
    text = render(obs, fmt)
    for needle in ("distributor", "upstream proxy 10.0.0.5:8080", "allow CONNECT to port 80"):
        assert needle in text
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and "http://" not in text.split("<body>")[0]  # no external assets
    clean = render(observe([_rec("dlsdlp1.pb.com:443")]), fmt)  # negative control: nothing refused
    assert "allow CONNECT to port 80" not in clean


def test_observe_exits_0_when_every_contact_worked_and_1_when_one_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps(_rec("dlsdlp1.pb.com:443")) + "\n")
    bad.write_text(json.dumps(_rec("distservp1.pb.com:80", end="refused", **UPSTREAM_403)) + "\n")
    assert main(["observe", str(good)]) == 0
    assert main(["observe", str(bad), "--format", "markdown", "-o", str(tmp_path / "out.md")]) == 1
    assert "| distributor | refused |" in (tmp_path / "out.md").read_text()
    capsys.readouterr()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"time": "x"\n', "bad.jsonl:1: not a JSON line"),  # cut off mid-object
        ('{"time": "x", "client": "c", "target": "t:1", "lab": {}, "end": "refused"}\n[1, 2]\n', "bad.jsonl:2: not a proxy-lab record (not an object)"),
        ('{"time": "x"}\n', "bad.jsonl:1: not a proxy-lab record (missing client, target, lab, end)"),
        ('{"time": "x", "client": "c", "target": "t:1", "lab": "403", "end": "refused"}\n', "bad.jsonl:1: not a proxy-lab record (lab is not an object)"),
        ('{"time": "x", "client": "c", "target": "t", "lab": {}, "end": "refused"}\n', "bad.jsonl:1: not a proxy-lab record (target 't' is not host:port)"),
        ('{"time": "x", "client": "c", "target": "t:1", "lab": {"status": "403"}, "end": "refused"}\n', "lab.status is not a number"),
    ],
)
def test_a_bad_record_file_is_named_with_its_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["observe", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_record_file_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["observe", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
