"""The Markdown report: the scenario x service table and the findings, ready to paste into a ticket.

GitHub-flavoured Markdown. Every cell shows a symbol and a word (so it reads without colour); each
finding gives the outcome, the evidence in one line, the guide's rule and the remedy for the cause
diagnosed from what was observed (the scenario's own remedy is part of its lesson). Text that
came from the network is escaped, or put in code spans, so it cannot change the ticket's layout.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import proxy_lab
from proxy_lab.catalog import load_catalog
from proxy_lab.outcomes import Outcome, Result
from proxy_lab.report.cells import (
    Cell,
    cell,
    findings,
    lesson_for,
    model_differences,
    printable,
    remedy_for,
    rule_for,
    run_label,
    run_model,
    run_problems,
    services_of,
    target_label,
)

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun

# Characters that start inline markup anywhere in a line; '_' only where it can open or close
# emphasis (not inside words such as online_help), '&' only where it would start an entity.
_SPECIAL = re.compile(r"[\\`*\[\]<>|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|&(?=#?[A-Za-z0-9]+;)")
_STATUS = {"met": "met", "not_met": "**NOT MET**", "skipped": "skipped", "setup_error": "**SETUP ERROR**"}


def md_text(value: object) -> str:
    """Plain text in Markdown: one line, every character that could start markup escaped."""
    one_line = " ".join(printable(value).split())
    return _SPECIAL.sub(lambda m: "\\" + m.group(), one_line)


def md_code(value: object) -> str:
    """A code span that holds any text on one line: a fence longer than any backtick run inside."""
    text = " ".join(printable(value).split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell_md(c: Cell | None) -> str:
    if c is None:
        return "·"
    if c.status == "setup_error":
        return "🔹 setup"
    if c.status == "skipped":
        return "skip"
    if c.observed is None:
        return "**! no result**"
    word = f"{c.observed.symbol} {c.observed.value}"
    return f"**! {word}**" if c.unexpected else word


def table(runs: Sequence[ScenarioRun], services: Sequence[str]) -> list[str]:
    catalog = load_catalog()
    head = ["scenario", "model", *services, "expectation"]
    lines = ["| " + " | ".join(md_text(h) for h in head) + " |", "|---|---|" + ":-:|" * len(services) + "---|"]
    for run in runs:
        row = [
            md_text(run_label(run)), md_text(run_model(run)),
            *(_cell_md(cell(run, s, catalog)) for s in services), _STATUS.get(run.status, run.status),
        ]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return lines


def legend() -> str:
    parts = [f"{o.symbol} {md_text(o.value)} = {md_text(o.meaning)}" for o in Outcome]
    parts += [
        "**!** = differs from the scenario's expectation",
        "· = not expected in this scenario",
        "🔹 setup = the run could not be set up (not an outcome)",
        "skip = the target cannot express the scenario",
    ]
    return "Legend: " + "; ".join(parts) + "."


def _finding(run: ScenarioRun, c: Cell) -> list[str]:
    r = c.worst
    flag = "**UNEXPECTED** " if c.unexpected else ""
    if r is None:
        return [f"- {flag}**{md_text(c.service)}: no result** (expected {md_text(c.expected_text())})"]
    expected = f" (expected {md_text(c.expected_text())})" if c.unexpected else ""
    if c.sentence and c.observed is not None:
        # A service the guide lets work in several ways: the sentence says which way worked.
        return [
            f"- {flag}**{md_text(c.service)}: {c.observed.symbol} {md_text(c.sentence)}**{expected}",
            f"  - worst endpoint: {r.outcome.value} at {md_code(r.endpoint)}: {md_text(r.detail)}",
            *_advice(run, c, r),
        ]
    lines = [
        f"- {flag}**{md_text(c.service)}: {r.outcome.symbol} {r.outcome.value}**{expected} at {md_code(r.endpoint)}: {md_text(r.detail)}",
    ]
    return lines + _advice(run, c, r)


def _advice(run: ScenarioRun, c: Cell, r: Result) -> list[str]:
    """The worst endpoint's evidence, the guide's rule, the remedy, and the other failing endpoints."""
    lines = [f"  - evidence: {md_code(r.evidence.one_line())}"]
    if rule := rule_for(r):
        lines.append(f"  - rule: {md_text(rule)}")
    if fix := remedy_for(run, r):
        lines.append(f"  - remedy: {md_text(fix)}")
    others = [o for o in c.results if o is not r and o.outcome != Outcome.PASS]
    if others:
        lines.append(f"  - also: {', '.join(f'{md_code(o.endpoint)} {o.outcome.value}' for o in others)}")
    return lines


def render(runs: Sequence[ScenarioRun], generated_at: datetime | None = None) -> str:
    catalog = load_catalog()
    services = services_of(runs, catalog)
    when = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = sum(r.status == "met" for r in runs)
    verdict = f"**{met} of {len(runs)} scenarios met their expectation**"
    if n := sum(r.status == "setup_error" for r in runs):
        verdict += f"; {n} could not be set up"
    if n := sum(r.status == "skipped" for r in runs):
        verdict += f"; {n} skipped"
    out = [
        "## proxy-lab: what the meter saw, per scenario and service",
        "",
        f"{verdict}. Checked against *{md_text(catalog.guide)}* by proxy-lab {proxy_lab.__version__}, {when}.",
        "",
        *table(runs, services),
        "",
        legend(),
    ]
    if models := model_differences(runs, catalog):
        out += ["", "### SendPro C and SendPro+", "", *(f"- {md_text(line)}" for line in models)]
    setup = [r for r in runs if r.setup_error]
    skipped = [r for r in runs if r.skipped and not r.setup_error]
    if setup or skipped:
        out += ["", "### Setup failures and skipped runs (not outcomes)", ""]
        out += [f"- **{md_text(run_label(r))}**: setup failure: {md_code(r.setup_error)}" for r in setup]
        out += [f"- {md_text(run_label(r))}: skipped on {md_text(target_label(r.target))}: {md_text(r.skipped)}" for r in skipped]
    blocks: list[str] = []
    for run in runs:
        found = findings(run, services)
        problems = run_problems(run)
        if not found and not problems:
            continue
        blocks += ["", f"#### {md_text(run_label(run))}: {md_text(run.scenario.title)}", ""]
        if run.scenario.guide_section:
            blocks.append(f"Guide section: {md_text(run.scenario.guide_section)}.  ")
        if lesson := lesson_for(run):
            blocks.append(f"*Lesson:* {md_text(lesson)}")
        blocks.append("")
        for c in found:
            blocks += _finding(run, c)
        blocks += [f"- **UNEXPECTED** {md_text(p)}" for p in problems]
    if blocks:
        out += ["", "### Findings", *blocks]
    return "\n".join(out) + "\n"
