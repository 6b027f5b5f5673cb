"""The report of `check --product`: `check`'s own report, then the lab's diff and the fix; or JUnit XML.

Terminal and Markdown give the field check's report (`check.render`) followed by which port the meter
used, the lines the lab changed to run the file (a unified diff `--- yours/` `+++ lab/`), and, with
`--fix-out`, the fix (a diff `--- yours/` `+++ fix/` whose every block opens with a comment quoting
the guide) with the fixed file's own verdict. JSON is `check`'s JSON with a `product` key.

JUnit (for CI) is `check`'s suite (`check.render.render_junit`) named for the file, with the product,
file, meter address and port as properties and the rule that refused each finding, so a pipeline
that keeps the file in git fails on the change that would break the meter.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from proxy_lab.check.render import render, render_junit

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


def render_junit_product(c: ProductCheck, generated_at: datetime | None = None) -> str:
    """`check`'s JUnit suite for the file, with the product's properties, rules and diff."""
    return render_junit(
        c.report,
        suite=f"proxy-lab check --product {c.product} {c.config}",
        classname=f"proxy-lab.{c.product}.{c.config.name}",
        properties={"product": c.product, "config": str(c.config), "meter_ip": c.meter_ip, "port": c.port_note},
        system_out=product_lines(c),
        refused_by=c.refused_by,
        generated_at=generated_at,
    )


def render_product(c: ProductCheck, fmt: str) -> str:
    """The product check's report in `fmt`: terminal, markdown, json or junit."""
    if fmt == "junit":
        return render_junit_product(c)
    if fmt == "json":
        return json.dumps(c.to_dict(), indent=2) + "\n"
    if fmt == "markdown":
        return render_markdown_product(c)
    return render(c.report, "terminal") + "\n".join(product_lines(c)) + "\n"
