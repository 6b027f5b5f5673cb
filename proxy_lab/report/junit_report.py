"""The JUnit XML report: one testsuite per scenario run, one testcase per scenario and service.

For CI: a service that broke its expectation is a `<failure>` whose message states expected against
observed with the evidence, and whose text gives the worst endpoint's wire transcript, the guide's
rule and the remedy for the cause diagnosed from what was observed (the scenario's own remedy is
part of its lesson). A skipped run is `<skipped>`; a run that could not be set up is `<error>`
(a setup failure, not an outcome). Follow-up and journal checks are a testcase of their own.

The file validates against Jenkins' junit-10.xsd (shipped as `proxy_lab/data/junit.xsd`) and against
the stricter Ant schema (windyroad/JUnit-Schema): hence the properties, system-out and system-err on
every suite, at most one child per testcase, and a time-zone-less UTC timestamp.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import proxy_lab
from proxy_lab.outcomes import Result
from proxy_lab.report.cells import (
    Cell,
    cells,
    lesson_for,
    remedy_for,
    rule_for,
    run_label,
    run_model,
    run_problems,
    services_of,
    target_label,
    transcript,
)

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun

# XML 1.0 §2.2 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
# Bytes from the network may hold anything else; such a character is shown as \xNN instead.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    return _NOT_XML_CHAR.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_text(text)
    return el


def _time(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"


def failure_text(run: ScenarioRun, c: Cell) -> str:
    """Expected against observed, then the worst endpoint's evidence, rule and remedy, then the rest."""
    lines = [f"expected {c.expected_text()}, observed {c.observed_sentence()}"]
    r = c.worst
    if r is None:
        lines.append("the device reported no result for this service")
    else:
        lines += [f"endpoint: {r.endpoint}", f"detail: {r.detail}", f"evidence: {r.evidence.one_line()}"]
        if r.evidence.transcript:
            lines.append("transcript:")
            lines += [f"  {t}" for t in transcript(r)]
        if rule := rule_for(r):
            lines.append(f"rule: {rule}")
        if fix := remedy_for(run, r):
            lines.append(f"remedy: {fix}")
        others = [o for o in c.results if o is not r]
        if others:
            lines.append("other endpoints of this service:")
            lines += [f"  {o.endpoint}: {o.outcome.value} ({o.evidence.one_line()})" for o in others]
    if lesson := lesson_for(run):
        lines.append(f"lesson: {lesson}")
    return "\n".join(lines)


def failure_message(c: Cell) -> str:
    head = f"expected {c.expected_text()}, observed {c.observed_text()}"
    r: Result | None = c.worst
    return f"{head} at {r.endpoint}: {r.evidence.one_line()}" if r is not None else head


def _testcase(suite: ET.Element, run: ScenarioRun, c: Cell) -> str:
    """Add one service's testcase; return its verdict: passed, failure, error or skipped."""
    time = sum(r.elapsed_s for r in c.results)
    case = _el(suite, "testcase", name=c.service, classname=f"proxy-lab.{run.scenario.id}", time=_time(time))
    if c.status == "setup_error":
        _el(case, "error", f"setup failure (not an outcome): {run.setup_error}", message=run.setup_error or "", type="setup_error")
        return "error"
    if c.status == "skipped":
        _el(case, "skipped", run.skipped or "", message=f"skipped on {target_label(run.target)}: {run.skipped}")
        return "skipped"
    if c.unexpected:
        kind = c.observed.value if (c.status == "not_met" and c.observed is not None) else c.status
        _el(case, "failure", failure_text(run, c), message=failure_message(c), type=kind)
        return "failure"
    return "passed"


def _suite(root: ET.Element, index: int, run: ScenarioRun, services: Sequence[str], stamp: str, host: str) -> None:
    s = run.scenario
    suite = ET.SubElement(root, "testsuite")
    props = _el(suite, "properties")
    for name, value in (
        ("scenario", s.id),
        ("title", s.title),
        ("target", target_label(run.target)),
        ("model", run_model(run)),
        ("status", run.status),
        ("guide_section", s.guide_section),
        ("lesson", s.lesson),
        ("remedy", s.remedy),
        ("path", str(s.path) if s.path else ""),
    ):
        _el(props, "property", name=name, value=value)
    verdicts: list[str] = []
    run_cells = cells(run, services)
    for c in run_cells:
        verdicts.append(_testcase(suite, run, c))
    if not run_cells and (run.setup_error or run.skipped):
        # Nothing expected was recorded: one testcase still carries the setup failure or the skip.
        case = _el(suite, "testcase", name="setup", classname=f"proxy-lab.{s.id}", time=_time(run.elapsed_s))
        if run.setup_error:
            _el(case, "error", f"setup failure (not an outcome): {run.setup_error}", message=run.setup_error, type="setup_error")
            verdicts.append("error")
        else:
            _el(case, "skipped", run.skipped or "", message=f"skipped on {target_label(run.target)}: {run.skipped}")
            verdicts.append("skipped")
    problems = run_problems(run)
    if problems or getattr(run, "followup_results", None) or getattr(s, "followup", False):
        followups = getattr(run, "followup_results", []) or []
        case = _el(suite, "testcase", name="journal", classname=f"proxy-lab.{s.id}",
                   time=_time(sum(r.elapsed_s for r in followups)))  # fmt: skip
        if problems:
            _el(case, "failure", "\n".join(problems), message=problems[0], type="journal")
            verdicts.append("failure")
        else:
            verdicts.append("passed")
    out = [f"{run_label(run)}: {s.title}", f"status: {run.status}"]
    if lesson := lesson_for(run):
        out.append(f"lesson: {lesson}")
    for c in run_cells:
        if c.worst is not None and c.finding and not c.unexpected:
            out.append(f"as expected, {c.service}: {c.observed_sentence()} ({c.worst.evidence.one_line()})")
    _el(suite, "system-out", "\n".join(out))
    _el(suite, "system-err", f"setup failure: {run.setup_error}" if run.setup_error else "")
    suite.attrib.update(
        {
            "name": xml_text(run_label(run)),
            "tests": str(len(verdicts)),
            "failures": str(verdicts.count("failure")),
            "errors": str(verdicts.count("error")),
            "skipped": str(verdicts.count("skipped")),
            "time": _time(run.elapsed_s),
            "timestamp": stamp,
            "hostname": xml_text(host),
            "package": "proxy-lab",
            "id": str(index),
        }
    )


def render(runs: Sequence[ScenarioRun], generated_at: datetime | None = None) -> str:
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S")  # UTC, no zone: the Ant schema's pattern allows none
    host = socket.gethostname() or "localhost"
    services = services_of(runs)
    root = ET.Element("testsuites")
    for i, run in enumerate(runs):
        _suite(root, i, run, services, stamp, host)
    ET.indent(root)
    met = sum(r.status == "met" for r in runs)
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!-- proxy-lab {proxy_lab.__version__}: {met} of {len(runs)} scenarios met their expectation -->\n"
    )
    return head + ET.tostring(root, encoding="unicode") + "\n"
