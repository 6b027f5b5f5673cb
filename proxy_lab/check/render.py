"""The field check's report as text: terminal lines, a Markdown ticket, JSON, or JUnit XML for CI.

Each service's line gives its outcome by the catalog's rule and, for a service the guide lets work
in several ways (remote access), the sentence that says which way worked. A finding that rests on
the guide's own words (the port-80 conflict) quotes them.
"""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime

from proxy_lab.check.verdict import CheckReport, specific_remedy
from proxy_lab.report.junit_report import xml_text


def render_terminal(report: CheckReport) -> str:
    lines = [f"proxy-lab check: {report.proxy}, model {report.model}, {len(report.results)} endpoints in {report.elapsed_s:.1f} s", ""]
    for service, outcome in report.services.items():
        level = "required" if report.required.get(service) else "recommended"
        lines.append(f"  {outcome.symbol} {service:<20} {outcome.value:<18} ({level})")
        if sentence := report.sentence(service):
            lines.append(f"      {sentence}")
    lines.append("")
    if report.findings:
        lines.append("What breaks, and what to change on the proxy:")
        for f in report.findings:
            lines.append(f"  - {f.cause.title} [{f.cause.id}] ({', '.join(f.services)})")
            lines.append(f"      seen: {f.evidence}")
            if f.quote:
                lines.append(f"      guide: {f.quote}")
            lines.append(f"      fix:  {specific_remedy(f)}")
        lines.append("")
    if report.bandwidth_kbps is not None:
        k = report.bandwidth_kbps
        judgement = (
            f"below the guide's {report.min_kbps} kbit/s floor" if k < report.min_kbps
            else "below the recommended 1 Mbit/s" if k < report.recommended_kbps
            else "meets the recommended 1 Mbit/s"
        )  # fmt: skip
        lines.append(f"bandwidth: {k:.0f} kbit/s, {judgement} ({report.bandwidth_note})")
    else:
        lines.append(f"bandwidth: {report.bandwidth_note}")
    lines.append(f"verdict: {report.verdict}")
    return "\n".join(lines) + "\n"


def render_markdown(report: CheckReport) -> str:
    out = [f"# proxy-lab check: {report.proxy}", "", f"**Verdict:** {report.verdict}", "",
           "| service | level | outcome |", "|---|---|---|"]  # fmt: skip
    for s, o in report.services.items():
        said = f"{o.symbol} {report.sentence(s) or o.value}"
        out.append(f"| {s} | {'required' if report.required.get(s) else 'recommended'} | {said} |")
    if report.findings:
        out += ["", "## Findings", ""]
        for f in report.findings:
            out.append(f"- **{f.cause.title}** ({', '.join(f.services)}): seen `{f.evidence}`. Fix: {specific_remedy(f)}")
            if f.quote:
                out.append(f"  - The guide: {f.quote}")
    return "\n".join(out) + "\n"


def render_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_text(text)
    return el


def render_junit(
    r: CheckReport,
    *,
    suite: str = "",
    classname: str = "",
    properties: Mapping[str, str] | None = None,
    system_out: list[str] | None = None,
    refused_by: Mapping[str, str] | None = None,
    generated_at: datetime | None = None,
) -> str:
    """One testsuite: a testcase per service of the model (a `<failure>` when it does not pass, with
    the worst endpoint's evidence) and one per finding (always a `<failure>`: what was seen and what
    to change), so a pipeline fails on the change that would break the meter. It validates against
    Jenkins' junit-10.xsd (`proxy_lab/data/junit.xsd`) and the stricter Ant schema: properties,
    system-out and system-err on the suite, at most one child per testcase, a UTC timestamp."""
    stamp = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element("testsuites")
    el = ET.SubElement(root, "testsuite")
    props = _el(el, "properties")
    for name, value in {"proxy": r.proxy, **(properties or {}), "model": r.model, "verdict": r.verdict}.items():
        _el(props, "property", name=name, value=value)
    classname = classname or f"proxy-lab.check.{r.model}"
    failures = 0
    by_service: dict[str, list[str]] = {}
    for result in r.results:
        by_service.setdefault(result.service, []).append(f"{result.endpoint}: {result.outcome.value} ({result.evidence.one_line()})")
    for service, outcome in r.services.items():
        level = "required" if r.required.get(service) else "recommended"
        elapsed = sum(x.elapsed_s for x in r.results if x.service == service)
        case = _el(el, "testcase", name=f"{service} ({level})", classname=classname, time=f"{elapsed:.3f}")
        if outcome.value != "pass":
            failures += 1
            worst = next((x for x in r.results if x.service == service and x.outcome == outcome), None)
            message = f"{service}: {outcome.value}" + (f" at {worst.endpoint}: {worst.detail}" if worst else "")
            _el(case, "failure", "\n".join(by_service.get(service, [])), message=message, type=outcome.value)
    for f in r.findings:
        case = _el(el, "testcase", name=f"finding: {f.cause.title} [{f.cause.id}]", classname=classname, time="0.000")
        failures += 1
        rule = (refused_by or {}).get(f.cause.id)
        text = "\n".join([f"services: {', '.join(f.services)}", f"seen: {f.evidence}", *([f"rule: {rule}"] if rule else []),
                          f"fix: {specific_remedy(f)}", *f.endpoints])  # fmt: skip
        _el(case, "failure", text, message=f"{f.cause.title}: {specific_remedy(f)}", type=f.cause.id)
    _el(el, "system-out", "\n".join([f"verdict: {r.verdict}", *(system_out or [])]))
    _el(el, "system-err", "")
    el.attrib.update({
        "name": xml_text(suite or f"proxy-lab check ({r.proxy})"), "tests": str(len(r.services) + len(r.findings)),
        "failures": str(failures), "errors": "0", "skipped": "0", "time": f"{r.elapsed_s:.3f}", "timestamp": stamp,
        "hostname": xml_text(socket.gethostname() or "localhost"), "package": "proxy-lab", "id": "0",
    })  # fmt: skip
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(report: CheckReport, fmt: str) -> str:
    """The report in `fmt`: terminal, markdown, json or junit."""
    if fmt == "junit":
        return render_junit(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_terminal(report)
