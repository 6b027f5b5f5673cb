"""Scenarios and runs survive the trip into the namespace child and back as JSON (`proxy_lab.typed`,
`proxy_lab.runs`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy_lab.outcomes import CertSummary, Evidence, Outcome, Result
from proxy_lab.runs import ScenarioRun, decode_run, encode_run
from proxy_lab.scenarios import Scenario, load_scenarios
from proxy_lab.typed import Invalid, decode, encode

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.parametrize("scenario", load_scenarios([SCENARIOS]), ids=lambda s: s.id)
def test_every_shipped_scenario_round_trips(scenario: object) -> None:
    assert decode(Scenario, json.loads(json.dumps(encode(scenario)))) == scenario


def test_a_run_with_its_evidence_round_trips_and_keeps_the_callers_scenario() -> None:
    scenario = load_scenarios([SCENARIOS], only=["baseline"])[0]
    cert = CertSummary("CN=x", "OU=proxy-lab Corp Inspection CA", "ab" * 32, "2026-01-01T00:00:00", "2027-01-01T00:00:00")
    evidence = Evidence(
        transcript=["> CONNECT a:443 HTTP/1.1", "< HTTP/1.1 200 Connection established"],
        connect_status=200,
        connect_headers=[("Server", "squid/5.7")],
        chain_shown=[cert],
        kbps=812.5,
    )
    result = Result("baseline", "funds", "https://a/", Outcome.TLS_INTERCEPTED, "issuer shown", evidence, 0.25)
    run = ScenarioRun(
        scenario,
        "squid",
        results=[result],
        observed={"funds": Outcome.TLS_INTERCEPTED},
        expected={"funds": (Outcome.PASS, Outcome.DEGRADED)},
        elapsed_s=1.5,
        journal_after_followup=0,
    )
    back = decode_run(json.loads(json.dumps(encode_run(run))), scenario)
    assert back == run and back.scenario is scenario
    assert isinstance(back.results[0].evidence.connect_headers[0], tuple)


def test_a_value_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(Invalid, match=r"expected list\[int\], got \{'not': 'a list'\}"):
        decode(list[int], {"not": "a list"})
    with pytest.raises(Invalid, match="expected 'pass'"):
        decode(Outcome, "passed")  # not an outcome
    assert decode(list[int], [1, 2]) == [1, 2] and decode(Outcome, "pass") is Outcome.PASS  # negative control
