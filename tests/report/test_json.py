"""The JSON report validates against docs/results-schema.json and keeps stable scenario/service/endpoint ids."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import jsonschema
import pytest

from proxy_lab.outcomes import Outcome
from proxy_lab.report import render
from proxy_lab.report.json_report import report_dict

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "results-schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def errors(validator, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_report_of_every_kind_of_run_validates_against_the_documented_schema(validator, all_runs, hostile_run):
    doc = json.loads(render([*all_runs, hostile_run], "json"))
    assert errors(validator, doc) == []
    assert doc["summary"] == {"runs": 6, "met": 2, "not_met": 2, "skipped": 1, "setup_error": 1}
    assert [r["status"] for r in doc["runs"]] == ["met", "met", "not_met", "setup_error", "skipped", "not_met"]


def test_the_schema_rejects_a_report_that_breaks_it(validator, squid_run):
    """Negative control: the schema is not so loose that anything passes."""
    good = report_dict([squid_run])
    broken = []
    for mutate in (
        lambda d: d["runs"][0]["results"][0].__setitem__("outcome", "maybe"),  # not an outcome
        lambda d: d["runs"][0].__setitem__("status", "passed"),  # not a run status
        lambda d: d["runs"][0]["services"][0].pop("expected"),  # a required field missing
        lambda d: d["runs"][0]["results"][0]["evidence"].__setitem__("bytes_sent", -1),  # negative bytes
        lambda d: d["runs"][0].__setitem__("extra", 1),  # an undocumented field
        lambda d: d.__setitem__("generated_at", "yesterday"),  # not RFC 3339 UTC
        lambda d: (d["runs"][0].__setitem__("status", "setup_error"), d["runs"][0].__setitem__("setup_error", None)),
    ):
        doc = copy.deepcopy(good)
        mutate(doc)
        broken.append(bool(errors(validator, doc)))
    assert errors(validator, good) == []
    assert broken == [True] * len(broken)


def test_result_ids_are_scenario_service_endpoint_and_unique(squid_run, tls_run):
    doc = report_dict([squid_run, tls_run])
    ids = [r["id"] for run in doc["runs"] for r in run["results"]]
    assert "squid-stock/distributor/http://distservp1.pb.com/csd/dstproduct" in ids
    assert "squid-stock/remote_access/tcp://master.teamviewer.com:5938/" in ids
    assert "tls-inspection/funds/https://decometlb20.pb.com/" in ids
    assert len(ids) == len(set(ids))
    # The same run rendered twice gives the same ids: they do not depend on time or order of rendering.
    assert ids == [r["id"] for run in report_dict([squid_run, tls_run])["runs"] for r in run["results"]]


def test_a_failing_result_carries_its_evidence_rule_and_remedy(squid_run):
    run = report_dict([squid_run])["runs"][0]
    refused = next(r for r in run["results"] if r["endpoint"] == "http://distservp1.pb.com/csd/dstproduct")
    assert refused["outcome"] == "refused"
    assert refused["evidence"]["connect_status"] == 403
    assert {"name": "X-Squid-Error", "value": "ERR_ACCESS_DENIED 0"} in refused["evidence"]["connect_headers"]
    assert "X-Squid-Error: ERR_ACCESS_DENIED 0" in refused["evidence"]["one_line"]
    assert refused["guide_rule"].startswith("Guide, Proxy:")
    assert "SSL_ports" in refused["remedy"]
    distributor = next(s for s in run["services"] if s["service"] == "distributor")
    assert distributor == {
        "service": "distributor",
        "expected": ["pass"],
        "observed": "refused",
        "met": False,
        "status": "not_met",
        "worst_result": refused["id"],
        "rule": "worst",
        "sentence": "refused: 1 of 2 endpoints did not pass (http://distservp1.pb.com/csd/dstproduct refused)",
        "way": None,
    }
    assert run["model"] == "sendpro-plus"


def test_a_passing_result_has_no_rule_and_no_remedy(baseline_run):
    results = report_dict([baseline_run])["runs"][0]["results"]
    assert all(r["guide_rule"] == "" and r["remedy"] == "" for r in results)


def test_tls_results_carry_both_chains(tls_run):
    r = report_dict([tls_run])["runs"][0]["results"][1]
    assert r["outcome"] == "tls_intercepted"
    assert "Corp Inspection CA" in r["evidence"]["chain_shown"][0]["issuer"]
    assert "proxy-lab PB Root (lab only)" in r["evidence"]["chain_expected"][-1]["subject"]
    assert set(r["evidence"]["chain_shown"][0]) == {"subject", "issuer", "sha256", "not_before", "not_after"}


def test_setup_failures_and_skips_are_run_statuses_with_their_reason(setup_run, skipped_run):
    setup, skipped = report_dict([setup_run, skipped_run])["runs"]
    assert setup["status"] == "setup_error" and "squid did not start" in setup["setup_error"]
    assert {s["status"] for s in setup["services"]} == {"setup_error"}
    assert skipped["status"] == "skipped" and skipped["skipped"] == "tinyproxy cannot inspect TLS"
    assert skipped["target"] == "tinyproxy"


def test_credentials_never_reach_the_report(validator, make):
    token = base64.b64encode(b"meter:Postage-2020!").decode()
    r = make.ok("funds", "https://decometlb20.pb.com/")
    r.evidence.transcript.insert(1, f"> Proxy-Authorization: Basic {token}")
    run = make.run("basic-auth", [r], {"funds": Outcome.PASS}, target="http://meter:Postage-2020!@127.0.0.1:3128")
    text = render([run], "json")
    assert "Postage-2020!" not in text and token not in text
    doc = json.loads(text)
    assert doc["runs"][0]["target"] == "http://meter:***@127.0.0.1:3128"
    assert "> Proxy-Authorization: Basic <user 'meter', password hidden>" in doc["runs"][0]["results"][0]["evidence"]["transcript"]
    assert errors(validator, doc) == []
