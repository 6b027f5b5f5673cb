"""The terminal report names, for each failure, the evidence and the remedy; setup failures stand apart."""

from __future__ import annotations

import io

from rich.console import Console

from proxy_lab.report import render
from proxy_lab.report.terminal import print_runs


def captured(runs) -> str:
    """What a person reads: printed to a recording console, exported as plain text."""
    console = Console(file=io.StringIO(), record=True, width=240, force_terminal=False, color_system=None)
    print_runs(runs, console)
    return console.export_text()


def findings_section(text: str) -> str:
    return text.split("Findings", 1)[1] if "Findings" in text else ""


def test_a_failing_run_names_the_evidence_and_the_remedy_of_each_failure(squid_run):
    text = captured([squid_run])
    findings = findings_section(text)
    for service, endpoint, port in (
        ("distributor", "http://distservp1.pb.com/csd/dstproduct", 80),
        ("remote_access", "tcp://master.teamviewer.com:5938/", 5938),
    ):
        block = findings.split(f"UNEXPECTED {service}:", 1)[1].split("UNEXPECTED", 1)[0]
        assert f"refused (expected pass) at {endpoint}" in block
        assert "evidence: CONNECT -> 403 Forbidden; X-Squid-Error: ERR_ACCESS_DENIED 0" in block
        assert f"remedy: allow CONNECT to port {port}: on Squid add it to SSL_ports" in block
        assert "rule: Guide, Proxy:" in block
    assert "NOT MET" in text
    assert "0 of 1 scenarios met their expectation" in text


def test_a_tls_finding_names_the_issuer_shown_the_alert_and_the_observed_causes_remedy(tls_run):
    findings = findings_section(captured([tls_run]))
    assert "lesson: The meter trusts only the PB root" in findings
    assert "The scenario's fix: exempt the pb.com hosts from SSL inspection (splice by SNI)" in findings
    assert "issuer shown: CN=proxy-lab Corp Inspection CA - LAB ONLY - never install" in findings
    assert "alert: unknown_ca" in findings
    assert "remedy: TLS re-signed by 'CN=proxy-lab Corp Inspection CA" in findings
    assert "remedy: exempt the pb.com hosts" not in findings


def test_a_passing_run_prints_the_matrix_and_no_findings(baseline_run):
    text = captured([baseline_run])
    assert "baseline" in text and "✓ pass" in text
    assert "Findings" not in text
    assert "1 of 1 scenarios met their expectation" in text


def test_setup_failures_and_skips_are_listed_apart_from_the_findings(setup_run, skipped_run, squid_run):
    text = captured([setup_run, skipped_run, squid_run])
    setup_part = text.split("Setup failures and skipped runs (not outcomes)", 1)[1].split("Findings", 1)[0]
    assert "squid-real [squid]: SETUP FAILURE (not an outcome): squid did not start" in setup_part
    assert "tls-inspection [tinyproxy]: skipped on tinyproxy: tinyproxy cannot inspect TLS" in setup_part
    assert "squid did not start" not in findings_section(text)
    assert "SETUP ERROR" in text
    assert "1 could not be set up; 1 skipped" in text


def test_a_journal_problem_after_the_followup_is_a_finding(baseline_run):
    baseline_run.journal_after_followup = 1
    assert "UNEXPECTED: journal still holds 1 record(s) after the follow-up upload" in captured([baseline_run])


def test_the_rendered_terminal_text_is_the_whole_report_without_colour_codes(squid_run):
    text = render([squid_run], "terminal")
    assert "squid-stock" in text and "remedy: allow CONNECT to port 80" in text
    assert "\x1b[" not in text


def test_escape_sequences_from_the_network_do_not_reach_the_terminal(hostile_run):
    assert "\x1b" not in render([hostile_run], "terminal")


def test_a_narrow_terminal_gets_symbols_and_a_wide_one_gets_words(squid_run):
    def matrix_at(width: int) -> str:
        console = Console(file=io.StringIO(), record=True, width=width, force_terminal=False, color_system=None)
        print_runs([squid_run], console)
        return console.export_text().split("legend:", 1)[0]

    wide, narrow = matrix_at(200), matrix_at(60)
    assert "! ⛔ refused" in wide and "✓ pass" in wide
    assert "! ⛔" in narrow and "refused" not in narrow and "pass" not in narrow
    assert "legend: ✓ pass = pass:" in captured([squid_run])  # the legend names every symbol
