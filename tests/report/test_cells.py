"""The reports' shared view: which cells are findings, which endpoint stands for a service, which remedy applies."""

from __future__ import annotations

import pytest

from proxy_lab.advice import remedy
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Evidence, Outcome, Result
from proxy_lab.report import FORMATS, render
from proxy_lab.report.cells import (
    anchor,
    cell,
    cells,
    findings,
    lesson_for,
    printable,
    remedy_for,
    run_problems,
    services_of,
)


def test_a_passing_run_has_no_findings(baseline_run):
    assert [c.status for c in cells(baseline_run)] == ["met", "met"]
    assert findings(baseline_run) == []


def test_an_expected_failure_is_a_finding_but_not_unexpected(tls_run):
    found = findings(tls_run)
    assert [c.service for c in found] == ["distributor", "funds"]
    assert all(c.finding and not c.unexpected and c.status == "met" for c in found)


def test_a_refusal_against_a_pass_expectation_is_unexpected(squid_run):
    distributor = cell(squid_run, "distributor")
    assert distributor is not None
    assert distributor.status == "not_met" and distributor.unexpected
    # The service's outcome is its worst endpoint's: the refused :80 one, not the passing :443 one.
    assert distributor.worst is not None and distributor.worst.endpoint.startswith("http://")
    assert distributor.worst.outcome == Outcome.REFUSED


def test_a_service_expected_but_never_observed_is_reported_as_no_result(make):
    run = make.run("gap", [make.ok("funds", "https://decometlb20.pb.com/")], {"funds": Outcome.PASS, "downloads": Outcome.PASS})
    downloads = cell(run, "downloads")
    assert downloads is not None and downloads.status == "no_result" and downloads.unexpected
    assert downloads.worst is None and downloads.observed_text() == "no result"


def test_a_service_observed_but_not_expected_is_reported_as_not_expected(make):
    run = make.run("extra", [make.ok("funds", "https://decometlb20.pb.com/")], {})
    funds = cell(run, "funds")
    assert funds is not None and funds.status == "not_expected" and funds.finding


def test_setup_failures_and_skips_are_statuses_not_findings(setup_run, skipped_run):
    assert {c.status for c in cells(setup_run)} == {"setup_error"}
    assert {c.status for c in cells(skipped_run)} == {"skipped"}
    assert findings(setup_run) == [] and findings(skipped_run) == []


def test_columns_follow_the_catalog_order_and_keep_unknown_services_last(all_runs, make):
    odd = make.run("odd", [make.ok("made_up", "https://example.invalid/")], {"made_up": Outcome.PASS})
    assert services_of([*all_runs, odd]) == ["distributor", "funds", "remote_access", "made_up"]


def bad_gateway(service: str, host: str) -> Result:
    """A 502 from the proxy: it could not resolve or reach the host (no TLS was ever inspected)."""
    ev = Evidence(
        transcript=[f"> CONNECT {host}:443 HTTP/1.1", f"> Host: {host}:443", "< HTTP/1.1 502 Bad Gateway"],
        connect_status=502,
        connect_reason="Bad Gateway",
    )
    return Result("", service, f"https://{host}/", Outcome.UNREACHABLE, f"proxy answered CONNECT {host}:443 with 502", ev, 0.01)


SSL_REMEDY = "exempt the pb.com hosts from SSL inspection (splice by SNI)"


def test_the_remedy_follows_the_observed_cause_not_the_scenarios_remedy(tls_run, squid_run):
    r = next(r for r in tls_run.results if r.outcome == Outcome.TLS_INTERCEPTED)
    assert tls_run.scenario.remedy == SSL_REMEDY
    assert remedy_for(tls_run, r) == remedy(r) and "exempt this host from SSL inspection" in remedy_for(tls_run, r)
    refused = next(r for r in squid_run.results if r.outcome == Outcome.REFUSED)
    assert "SSL_ports" in remedy_for(squid_run, refused)  # the advice's, per port
    passed = next(r for r in tls_run.results if r.outcome == Outcome.PASS)
    assert remedy_for(tls_run, passed) == ""


def test_a_tls_inspect_scenario_whose_proxy_answered_502_is_not_advised_to_exempt_from_inspection(make):
    run = make.run(
        "tls-inspect", [bad_gateway("funds", "decometlb20.pb.com")], {"funds": Outcome.TLS_INTERCEPTED}, remedy=SSL_REMEDY
    )
    [r] = run.results
    fix = remedy_for(run, r)
    assert "SSL inspection" not in fix and fix == remedy(r) and "resolve and reach this host" in fix
    assert SSL_REMEDY in lesson_for(run)  # the scenario's own remedy, shown as part of its lesson
    for fmt in FORMATS:
        text = render([run], fmt)
        assert "resolve and reach this host" in text, fmt
        # the scenario's remedy appears only inside its lesson, never as the finding's remedy
        assert f"remedy: {SSL_REMEDY}" not in text and f"Remedy:</strong> {SSL_REMEDY}" not in text, fmt


def test_a_run_whose_observation_matches_the_scenario_still_gets_the_advices_remedy(make):
    # negative control for the test above: the same scenario, intercepted as it meant to be
    run = make.run("tls-inspect", [make.intercepted("funds", "decometlb20.pb.com")], {"funds": Outcome.TLS_INTERCEPTED},
                   remedy=SSL_REMEDY)  # fmt: skip
    assert "exempt this host from SSL inspection" in remedy_for(run, run.results[0])


def test_a_journal_left_with_records_after_the_followup_is_a_run_problem(baseline_run, make):
    assert run_problems(baseline_run) == []
    baseline_run.journal_after_followup = 2
    baseline_run.followup_results = [make.intercepted("funds", "cometservp1.pb.com")]
    problems = run_problems(baseline_run)
    assert any("journal still holds 2 record(s)" in p for p in problems)
    assert any("follow-up funds" in p and "tls_intercepted" in p for p in problems)


def test_control_characters_from_the_network_are_made_visible():
    assert printable("a\x1b[31mb\x00") == "a\\x1b[31mb\\x00"
    assert printable("tab\tand\nnewline") == "tab\tand\nnewline"  # whitespace is left alone


def test_anchors_hold_only_ascii_letters_digits_and_dashes():
    assert anchor("run", 3, "tls inspection/ü", "http://x:3128") == "run-3-tls-inspection---http---x-3128"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_an_empty_list_of_runs(fmt):
    assert render([], fmt).strip()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_odd_runs_without_failing(fmt, make):
    odd = [
        make.run("no-results", [], {"funds": Outcome.PASS}),
        make.run("unknown-service", [make.refused("made_up", "tcp://example.invalid:9/", 9)], {}),
        make.run("setup-without-services", [], {}, setup_error="certs/ is read-only"),
        make.run("skip-without-services", [], {}, skipped="no such product here", target="squid"),
    ]
    assert render(odd, fmt).strip()


def test_an_unknown_format_is_a_configuration_error(baseline_run):
    with pytest.raises(ConfigError, match="'pdf' is not one of terminal, json"):
        render([baseline_run], "pdf")
