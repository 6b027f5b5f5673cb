"""End to end through the CLI: the demo's verdicts come from what the device saw, and every format renders them.

These run the real lab (cloud, lab proxy, device) on loopback through `proxy_lab.cli.main`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.cli import main
from proxy_lab.lab import Lab
from proxy_lab.outcomes import Outcome
from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
from proxy_lab.runner import run_scenarios
from proxy_lab.scenarios import Scenario, load_scenario
from proxy_lab.targets.base import ProxyEndpoint

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def demo(certs: Path, *args: str) -> int:
    return main(["--certs", str(certs), "demo", "--scenarios", str(SCENARIOS), *args])


class Forbidding:
    """A target that answers every CONNECT with Squid's 403, whatever the scenario says."""

    name = "forbidding"
    needs_namespace = False

    def skip_reason(self, scenario: Scenario) -> str | None:
        return None

    @asynccontextmanager
    async def proxy_for(self, scenario: Scenario, lab: Lab) -> AsyncIterator[ProxyEndpoint]:
        fault = make_fault("allow_ports", {"ports_allowed": [1]})
        async with LabProxy(ProxyConfig(faults=[fault]), lab.resolver) as proxy:
            yield ProxyEndpoint(*proxy.address)


def test_changing_the_proxy_alone_changes_the_observed_outcome(proxy_lab_session: Any) -> None:
    """No outcome is declared by the scenario: the same baseline file observes 403s as refused."""
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    good = proxy_lab_session.call(run_scenarios([baseline], target="lab", lab=proxy_lab_session.lab))[0]
    bad = proxy_lab_session.call(run_scenarios([baseline], target=Forbidding(), lab=proxy_lab_session.lab))[0]
    assert good.met and set(good.observed.values()) == {Outcome.PASS}
    assert not bad.met
    tunnelled = {s for s, o in bad.observed.items() if o == Outcome.REFUSED}
    assert tunnelled >= {"funds", "distributor", "downloads"}
    refused = [r for r in bad.results if r.outcome == Outcome.REFUSED]
    assert all(r.evidence.connect_status == 403 for r in refused)
    assert all(r.evidence.header("X-Squid-Error") == "ERR_ACCESS_DENIED 0" for r in refused)


def test_demo_exits_0_when_every_expectation_is_met(proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo(proxy_lab_certs_dir, "--only", "baseline", "--only", "basic-auth-wrong-password") == 0
    out = capsys.readouterr().out
    assert "2 of 2 scenarios met their expectation" in out


def test_a_failing_run_exits_1_and_names_evidence_and_remedy(
    proxy_lab_certs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one finding per line
    # A scenario that expects a stock Squid to pass: its expectation is wrong, the evidence says why.
    text = (SCENARIOS / "preset-squid-stock.toml").read_text().replace('id = "preset-squid-stock"', 'id = "wrong-hope"')
    text = text.split("[expect]")[0] + '[expect]\ndefault = "pass"\n'
    (tmp_path / "wrong-hope.toml").write_text(text)
    code = main(["--certs", str(proxy_lab_certs_dir), "run", str(tmp_path / "wrong-hope.toml")])
    out = capsys.readouterr().out
    assert code == 1
    assert "UNEXPECTED online_help: ⛔ refused (expected pass)" in out
    assert "X-Squid-Error: ERR_ACCESS_DENIED 0" in out  # the evidence
    assert "remedy:" in out and "SSL_ports" in out  # the fix


def test_json_and_junit_outputs_of_a_real_run_validate(proxy_lab_certs_dir: Path, tmp_path: Path) -> None:
    import jsonschema
    import xmlschema

    out_json, out_xml = tmp_path / "r.json", tmp_path / "r.xml"
    only = ["--only", "tls-inspect", "--only", "basic-auth-missing"]
    assert demo(proxy_lab_certs_dir, *only, "--format", "json", "--output", str(out_json)) == 0
    assert demo(proxy_lab_certs_dir, *only, "--format", "junit", "--output", str(out_xml)) == 0
    doc = json.loads(out_json.read_text())
    jsonschema.validate(doc, json.loads((ROOT / "docs" / "results-schema.json").read_text()))
    ids = [r["id"] for run in doc["runs"] for r in run["results"]]
    assert "tls-inspect/funds/https://decometlb20.pb.com/" in ids
    xmlschema.XMLSchema(str(ROOT / "proxy_lab" / "data" / "junit.xsd")).validate(str(out_xml))


@pytest.mark.browser
def test_the_demo_html_shows_the_matrix_and_both_chains_in_chromium(proxy_lab_certs_dir: Path, tmp_path: Path) -> None:
    from proxy_lab.report.screenshot import dump_dom, find_chromium

    if find_chromium() is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    html = tmp_path / "report.html"
    assert demo(proxy_lab_certs_dir, "--only", "tls-inspect", "--only", "baseline", "--format", "html", "--output", str(html)) == 0
    dom = dump_dom(html)
    assert '<table id="matrix" class="matrix">' in dom
    assert 'id="tls-evidence"' in dom and 'class="chain chain-shown"' in dom and 'class="chain chain-expected"' in dom
    assert "Corp Inspection CA" in dom and "PB Root" in dom


def test_the_demo_runs_the_sendpro_c_and_shows_what_differs_between_the_models(
    proxy_lab_certs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one line per sentence
    c_ids = sorted(p.stem for p in SCENARIOS.glob("sendpro-c-*.toml"))
    only = [a for s in [*c_ids, "baseline"] for a in ("--only", s)]
    out_json = tmp_path / "r.json"
    assert demo(proxy_lab_certs_dir, *only, "--format", "json", "--output", str(out_json)) == 0
    runs = json.loads(out_json.read_text())["runs"]
    c_runs = [r for r in runs if r["model"] == "sendpro-c"]
    assert sorted(r["scenario"]["id"] for r in c_runs) == c_ids and len(c_ids) >= 4
    assert all(r["status"] == "met" for r in c_runs)
    # the SendPro C is probed without parcel shipping (an inference, labelled); the SendPro+ with it
    assert all("parcel_shipping" not in {c["service"] for c in r["services"]} for r in c_runs)
    [plus] = [r for r in runs if r["model"] == "sendpro-plus"]
    assert "parcel_shipping" in {c["service"] for c in plus["services"]}
    assert demo(proxy_lab_certs_dir, *only) == 0
    text = capsys.readouterr().out
    assert "only the sendpro-plus has parcel_shipping" in text and "parcel_shipping_sendpro_plus" in text
    assert "sendpro-c: 4 scenarios, 4 met their expectation" in text
    assert (
        "baseline and sendpro-c-baseline (the same set-up): the 11 shared services see the same outcomes; "
        "parcel_shipping only on the sendpro-plus (pass)"
    ) in text


def test_in_the_demo_an_idle_timeout_resets_port_5938_while_dyngate_carries_remote_access(
    proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one finding per line
    assert demo(proxy_lab_certs_dir, "--only", "idle-timeout-teamviewer") == 0
    out = capsys.readouterr().out
    assert "remote_access: ✓ pass via the DynGate fallback on port 80" in out
    assert "port 5938 reset" in out and "idle timeout" in out  # the failed way, with its remedy
