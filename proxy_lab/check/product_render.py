"""The report of `check --product`: `check`'s own report, then the lab's diff and the fix; or JUnit XML.

Terminal and Markdown give the field check's report (`check.render`) followed by which port the meter
used, the lines the lab changed to run the file (a unified diff `--- yours/` `+++ lab/`), and, with
`--fix-out`, the fix (a diff `--- yours/` `+++ fix/` whose every block opens with a comment quoting
the guide) with the fixed file's own verdict. JSON is `check`'s JSON with a `product` key.

JUnit (for CI) has one testsuite for the file: one testcase per service of the model (a `<failure>`
when it does not pass, with the worst endpoint's evidence) and one per finding (always a `<failure>`:
what the proxy did and what to change), so a pipeline that keeps the file in git fails on the change
that would break the meter. It validates against Jenkins' junit-10.xsd (`proxy_lab/data/junit.xsd`)
and the stricter Ant schema: properties, system-out and system-err on the suite, at most one child per
testcase, a time-zone-less UTC timestamp.
"""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from proxy_lab.check.render import render
from proxy_lab.check.verdict import specific_remedy
from proxy_lab.report.junit_report import xml_text

if TYPE_CHECKING:
    from proxy_lab.check.product import ProductCheck


def _indent(text: str) -> list[str]:
    return [f"    {line}" for line in text.rstrip("\n").splitlines()]


def product_lines(c: ProductCheck) -> list[str]:
    """What the terminal report adds to `check`'s: the port, the lab's diff, the fix."""
    lines = [f"configuration: {c.product} {c.config}; the meter at {c.meter_ip}; {c.port_note}"]
    for cause, rule in c.refused_by.items():
        lines.append(f"[{cause}] refused by {rule}")
    if c.warnings:
        lines.append(f"{c.product} said (without refusing the file):")
        lines += [f"    {w}" for w in c.warnings]
    if c.lab_diff:
        lines.append("what the lab changed to run your file (nothing else; it is never written):")
        lines += _indent(c.lab_diff)
    fix = c.fix
    if fix is not None:
        lines.append("")
        if fix.path is not None:
            assert fix.report is not None
            lines.append(f"fix written to {fix.path}; checked the same way: {fix.report.verdict}")
        else:
            lines.append(f"no fix offered: {fix.reason}")
        if fix.diff:
            lines += _indent(fix.diff)
        for u in fix.unfixed:
            lines.append(f"  not fixed in the file: {u}")
        if fix.report is not None and fix.path is None:
            lines.append(render(fix.report, "terminal").rstrip("\n"))
    return lines


def render_markdown_product(c: ProductCheck) -> str:
    out = [render(c.report, "markdown").rstrip("\n"), "", "## Your configuration", "",
           f"`{c.product}` `{c.config}`; the meter at `{c.meter_ip}`; {c.port_note}"]  # fmt: skip
    out += [f"- `{cause}` refused by {rule}" for cause, rule in c.refused_by.items()]
    if c.lab_diff:
        out += ["", "What the lab changed to run it:", "", "```diff", c.lab_diff.rstrip("\n"), "```"]
    if c.fix is not None:
        head = f"Fix written to `{c.fix.path}`: {c.fix.report.verdict}" if c.fix.path and c.fix.report else f"No fix offered: {c.fix.reason}"
        out += ["", "## Fix", "", head]
        if c.fix.diff:
            out += ["", "```diff", c.fix.diff.rstrip("\n"), "```"]
    return "\n".join(out) + "\n"


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_text(text)
    return el


def render_junit(c: ProductCheck, generated_at: datetime | None = None) -> str:
    """One testsuite: a testcase per service and one per finding (see the module docstring)."""
    r = c.report
    stamp = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite")
    props = _el(suite, "properties")
    for name, value in (("product", c.product), ("config", str(c.config)), ("meter_ip", c.meter_ip), ("port", c.port_note),
                        ("model", r.model), ("verdict", r.verdict)):  # fmt: skip
        _el(props, "property", name=name, value=value)
    classname = f"proxy-lab.{c.product}.{c.config.name}"
    failures = 0
    by_service: dict[str, list[str]] = {}
    for result in r.results:
        by_service.setdefault(result.service, []).append(f"{result.endpoint}: {result.outcome.value} ({result.evidence.one_line()})")
    for service, outcome in r.services.items():
        level = "required" if r.required.get(service) else "recommended"
        elapsed = sum(x.elapsed_s for x in r.results if x.service == service)
        case = _el(suite, "testcase", name=f"{service} ({level})", classname=classname, time=f"{elapsed:.3f}")
        if outcome.value != "pass":
            failures += 1
            worst = next((x for x in r.results if x.service == service and x.outcome == outcome), None)
            message = f"{service}: {outcome.value}" + (f" at {worst.endpoint}: {worst.detail}" if worst else "")
            _el(case, "failure", "\n".join(by_service.get(service, [])), message=message, type=outcome.value)
    for f in r.findings:
        case = _el(suite, "testcase", name=f"finding: {f.cause.title} [{f.cause.id}]", classname=classname, time="0.000")
        failures += 1
        text = "\n".join([f"services: {', '.join(f.services)}", f"seen: {f.evidence}", f"rule: {c.refused_by.get(f.cause.id, '')}", f"fix: {specific_remedy(f)}", *f.endpoints])
        _el(case, "failure", text, message=f"{f.cause.title}: {specific_remedy(f)}", type=f.cause.id)
    out = [f"verdict: {r.verdict}", *product_lines(c)]
    _el(suite, "system-out", "\n".join(out))
    _el(suite, "system-err", "")
    suite.attrib.update({
        "name": xml_text(f"proxy-lab check --product {c.product} {c.config}"), "tests": str(len(r.services) + len(r.findings)),
        "failures": str(failures), "errors": "0", "skipped": "0", "time": f"{r.elapsed_s:.3f}", "timestamp": stamp,
        "hostname": xml_text(socket.gethostname() or "localhost"), "package": "proxy-lab", "id": "0",
    })  # fmt: skip
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_product(c: ProductCheck, fmt: str) -> str:
    """The product check's report in `fmt`: terminal, markdown, json or junit."""
    if fmt == "junit":
        return render_junit(c)
    if fmt == "json":
        return json.dumps(c.to_dict(), indent=2) + "\n"
    if fmt == "markdown":
        return render_markdown_product(c)
    return render(c.report, "terminal") + "\n".join(product_lines(c)) + "\n"
