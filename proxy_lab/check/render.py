"""The field check's report as text: terminal lines, a Markdown ticket, or JSON.

Each service's line gives its outcome by the catalog's rule and, for a service the guide lets work
in several ways (remote access), the sentence that says which way worked. A finding that rests on
the guide's own words (the port-80 conflict) quotes them.
"""

from __future__ import annotations

import json

from proxy_lab.check.verdict import CheckReport, specific_remedy


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


def render(report: CheckReport, fmt: str) -> str:
    """The report in `fmt`: terminal, markdown or json."""
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_terminal(report)
