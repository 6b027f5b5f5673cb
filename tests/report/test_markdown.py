"""The Markdown report: a table scenario x service plus findings, ready to paste into a ticket."""

from __future__ import annotations

import re

from proxy_lab.report import render


def table_rows(md: str) -> list[list[str]]:
    """The table's rows split on unescaped pipes (how a GFM renderer splits them)."""
    rows = [line for line in md.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def test_the_table_has_a_row_per_run_and_a_column_per_service(all_runs):
    rows = table_rows(render(all_runs, "markdown"))
    assert rows[0] == ["scenario", "model", "distributor", "funds", "remote_access", "expectation"]
    assert all(len(r) == len(rows[0]) for r in rows)
    assert {r[1] for r in rows[2:]} == {"sendpro-plus"}  # the model column
    body = {r[0]: r[2:] for r in rows[2:]}
    assert body["baseline"] == ["✓ pass", "✓ pass", "·", "met"]
    assert body["squid-stock"] == ["**! ⛔ refused**", "✓ pass", "**! ⛔ refused**", "**NOT MET**"]
    assert body["tls-inspection"] == ["🔓 tls_intercepted", "🔓 tls_intercepted", "·", "met"]
    assert body["squid-real \\[squid\\]"][-1] == "**SETUP ERROR**"
    assert body["tls-inspection \\[tinyproxy\\]"][-1] == "skipped"


def test_each_failing_cell_is_a_finding_with_outcome_evidence_rule_and_remedy(squid_run):
    md = render([squid_run], "markdown")
    findings = md.split("### Findings", 1)[1]
    item = findings.split("- **UNEXPECTED** **distributor: ⛔ refused** (expected pass)", 1)[1].split("\n- ", 1)[0]
    assert "`http://distservp1.pb.com/csd/dstproduct`" in item
    assert "evidence: `CONNECT -> 403 Forbidden; X-Squid-Error: ERR_ACCESS_DENIED 0;" in item
    assert "rule: Guide, Proxy:" in item
    assert "remedy: allow CONNECT to port 80: on Squid add it to SSL_ports" in item
    assert "**remote_access: ⛔ refused**" in findings


def test_a_passing_run_has_a_table_and_no_findings(baseline_run):
    md = render([baseline_run], "markdown")
    assert "1 of 1 scenarios met their expectation" in md
    assert "### Findings" not in md and "Setup failures" not in md


def test_setup_failures_and_skips_have_their_own_section(setup_run, skipped_run):
    md = render([setup_run, skipped_run], "markdown")
    section = md.split("### Setup failures and skipped runs (not outcomes)", 1)[1]
    assert "setup failure: `squid did not start: /usr/sbin/squid: No such file or directory`" in section
    assert "skipped on tinyproxy: tinyproxy cannot inspect TLS" in section


def test_network_text_cannot_change_the_ticket_layout(hostile_run):
    md = render([hostile_run], "markdown")
    rows = table_rows(md)
    assert all(len(r) == len(rows[0]) for r in rows)
    assert "<script>" not in md.replace("`CONNECT -> 403 <script>", "")  # raw only inside a code span
    assert "\\<script\\>" in md
    assert "\x1b" not in md and "\x00" not in md
    finding_lines = [line for line in md.splitlines() if "online_help" in line and line.startswith("- ")]
    assert len(finding_lines) == 1  # the hostile detail did not break the list item
