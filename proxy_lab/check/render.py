"""The field check's report as text: terminal lines, a Markdown ticket, or JSON."""

from __future__ import annotations

import json

from proxy_lab.check.verdict import CheckReport, specific_remedy


def render_terminal(report: CheckReport) -> str:
    lines = [f"proxy-lab check: {report.proxy}, model {report.model}, {len(report.results)} endpoints in {report.elapsed_s:.1f} s", ""]
    for service, outcome in report.services.items():
        level = "required" if report.required.get(service) else "recommended"
        lines.append(f"  {outcome.symbol} {service:<20} {outcome.value:<18} ({level})")
    lines.append("")
    if report.findings:
        lines.append("What breaks, and what to change on the proxy:")
        for f in report.findings:
            lines.append(f"  - {f.cause.title} [{f.cause.id}] ({', '.join(f.services)})")
            lines.append(f"      seen: {f.evidence}")
            lines.append(f"      fix:  {specific_remedy(f)}")
        lines.append("")
    if report.bandwidth_kbps is not None:
        k = report.bandwidth_kbps
        judgement = "below the 384 kbit/s floor" if k < 384 else ("below the recommended 1 Mbit/s" if k < 1000 else "meets the recommended 1 Mbit/s")
        lines.append(f"bandwidth: {k:.0f} kbit/s, {judgement} ({report.bandwidth_note})")
    else:
        lines.append(f"bandwidth: {report.bandwidth_note}")
    lines.append(f"verdict: {report.verdict}")
    return "\n".join(lines) + "\n"


def render_markdown(report: CheckReport) -> str:
    out = [f"# proxy-lab check: {report.proxy}", "", f"**Verdict:** {report.verdict}", "",
           "| service | level | outcome |", "|---|---|---|"]  # fmt: skip
    for s, o in report.services.items():
        out.append(f"| {s} | {'required' if report.required.get(s) else 'recommended'} | {o.symbol} {o.value} |")
    if report.findings:
        out += ["", "## Findings", ""]
        for f in report.findings:
            out.append(f"- **{f.cause.title}** ({', '.join(f.services)}): seen `{f.evidence}`. Fix: {specific_remedy(f)}")
    return "\n".join(out) + "\n"


def render_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def render(report: CheckReport, fmt: str) -> str:
    """The report in `fmt`: terminal, markdown or json."""
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_terminal(report)
