"""Rendering an `Observation` (proxy_lab/observe.py): terminal text, JSON, Markdown, one HTML file.

The same shape as the other reports: one line per service (outcome, required or recommended,
contacts), findings with what was seen, who refused, the guide's rule and the remedy, then the two
lists only a real meter can give: hosts it contacted that the guide does not list, and the guide's
endpoints it never contacted while recording. The HTML is self-contained (no external assets).
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types only: observe.py imports this module
    from proxy_lab.observe import Contact, Observation, ServiceSeen

NOT_CONTACTED = "not contacted"


def render(obs: Observation, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_dict(obs), indent=2) + "\n"
    if fmt == "markdown":
        return markdown(obs)
    if fmt == "html":
        return html_page(obs)
    return terminal(obs)


def _outcome(s: ServiceSeen) -> str:
    o = s.outcome
    return NOT_CONTACTED if o is None else o.value


def _contact_dict(c: Contact) -> dict[str, Any]:
    r = c.record
    return {
        "time": c.time, "client": c.client, "target": c.target, "endpoint": c.endpoint,
        "outcome": c.outcome.value, "detail": c.detail, "refused_by": c.refused_by,
        "sni": r.get("sni"), "issuer": r.get("issuer"), "bytes_up": r.get("bytes_up", 0),
        "bytes_down": r.get("bytes_down", 0), "end": r.get("end"),
    }  # fmt: skip


def to_dict(obs: Observation) -> dict[str, Any]:
    return {
        "kind": "observe",
        "sources": list(obs.sources),
        "model": obs.model,
        "window": {"first": obs.first, "last": obs.last, "contacts": len(obs.contacts)},
        "services": [
            {
                "service": s.name, "title": s.title, "level": s.level, "outcome": _outcome(s),
                "contacts": [_contact_dict(c) for c in s.contacts],
            }
            for s in obs.services
        ],
        "findings": [
            {
                "cause": f.cause, "title": f.title, "refuser": f.refuser, "outcome": f.outcome.value,
                "services": list(f.services), "hosts": list(f.hosts), "seen": f.seen, "remedy": f.remedy,
                "rule": f.rule,
            }
            for f in obs.findings
        ],
        "not_in_guide": [
            {"target": t, "contacts": len(cs), "outcomes": sorted({c.outcome.value for c in cs})}
            for t, cs in obs.not_in_guide
        ],
        "never_contacted": list(obs.never_contacted),
    }


def _verdict(obs: Observation) -> str:
    if not obs.contacts:
        return "nothing was recorded"
    required = [s for s in obs.services if s.level == "required" and s.outcome is not None and not s.outcome.ok]
    if required:
        return f"required services failed: {', '.join(s.name for s in required)}"
    if obs.failed:
        return "some contacts failed (recommended services or hosts not in the guide)"
    return "every contact worked"


def terminal(obs: Observation) -> str:
    lines = [
        f"proxy-lab observe: {', '.join(obs.sources) or 'records'} ({obs.model}); "
        f"{len(obs.contacts)} contacts, {obs.first or '-'} .. {obs.last or '-'}",
        "",
        "Services (what the meter did through the proxy):",
    ]
    for s in obs.services:
        sym = s.outcome.symbol if s.outcome is not None else " ·"
        lines.append(f"  {sym} {s.name:<20} {_outcome(s):<16} {s.level:<11} {len(s.contacts)} contact(s)")
        failed = [c for c in s.contacts if not c.outcome.ok]
        for c in failed[:3]:
            lines.append(f"      {c.target}: {c.detail}")
    if obs.findings:
        lines += ["", "Findings:"]
        for f in obs.findings:
            lines.append(f"  - {f.title}: by {f.refuser} ({', '.join(f.services)})")
            lines.append(f"      seen: {f.seen}")
            lines.append(f"      remedy: {f.remedy}")
            if f.rule:
                lines.append(f"      rule: {f.rule}")
    lines += ["", f"Hosts contacted that the guide does not list ({len(obs.not_in_guide)}):"]
    lines += [f"  {t}: {len(cs)} contact(s), {', '.join(sorted({c.outcome.value for c in cs}))}" for t, cs in obs.not_in_guide] or ["  none"]
    lines += ["", f"Guide endpoints never contacted during the recording ({len(obs.never_contacted)}):"]
    lines += [f"  {u}" for u in obs.never_contacted] or ["  none"]
    lines += ["", f"Verdict: {_verdict(obs)}", ""]
    return "\n".join(lines)


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(obs: Observation) -> str:
    out = [
        f"# What the meter did ({obs.model})", "",
        f"Recording: {', '.join(obs.sources)}; {len(obs.contacts)} contacts, {obs.first or '-'} to {obs.last or '-'}.",
        "", f"**Verdict:** {_verdict(obs)}", "",
        "| service | outcome | level | contacts |", "|---|---|---|---|",
    ]  # fmt: skip
    out += [f"| {s.name} | {_outcome(s)} | {s.level} | {len(s.contacts)} |" for s in obs.services]
    if obs.findings:
        out += ["", "## Findings"]
        for f in obs.findings:
            out += [
                f"### {_md(f.title)}", f"- refused or broken by: {_md(f.refuser)}",
                f"- services: {', '.join(f.services)}; hosts: {', '.join(f.hosts)}",
                f"- seen: {_md(f.seen)}", f"- remedy: {_md(f.remedy)}",
            ]  # fmt: skip
            if f.rule:
                out.append(f"- rule: {_md(f.rule)}")
    out += ["", "## Hosts the meter contacted that the guide does not list", ""]
    out += [f"- `{t}`: {len(cs)} contact(s), {', '.join(sorted({c.outcome.value for c in cs}))}" for t, cs in obs.not_in_guide] or ["none"]
    out += ["", "## Guide endpoints never contacted during the recording", ""]
    out += [f"- `{u}`" for u in obs.never_contacted] or ["none"]
    return "\n".join(out) + "\n"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
    "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}.pass,.degraded{background:#dfd}"
    ".none{background:#eee}.fail{background:#fdd}code{font-size:.9em}"
)


def html_page(obs: Observation) -> str:
    e = html.escape
    rows = []
    for s in obs.services:
        cls = "none" if s.outcome is None else ("pass" if s.outcome.ok else "fail")
        detail = "; ".join(f"{c.target}: {c.detail}" for c in s.contacts if not c.outcome.ok)[:600]
        rows.append(
            f'<tr class="{cls}"><td>{e(s.name)}</td><td>{e(_outcome(s))}</td><td>{e(s.level)}</td>'
            f"<td>{len(s.contacts)}</td><td>{e(detail)}</td></tr>"
        )
    findings = "".join(
        f"<li><b>{e(f.title)}</b> by {e(f.refuser)} ({e(', '.join(f.services))})<br>seen: {e(f.seen)}"
        f"<br>remedy: {e(f.remedy)}" + (f"<br>rule: {e(f.rule)}" if f.rule else "") + "</li>"
        for f in obs.findings
    )
    others = "".join(f"<li><code>{e(t)}</code>: {len(cs)} contact(s)</li>" for t, cs in obs.not_in_guide) or "<li>none</li>"
    never = "".join(f"<li><code>{e(u)}</code></li>" for u in obs.never_contacted) or "<li>none</li>"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>proxy-lab observe: {e(obs.model)}</title>'
        f"<style>{_CSS}</style></head><body><h1>What the meter did ({e(obs.model)})</h1>"
        f"<p>Recording: {e(', '.join(obs.sources))}; {len(obs.contacts)} contacts, {e(obs.first or '-')} to "
        f"{e(obs.last or '-')}.</p><p><b>Verdict:</b> {e(_verdict(obs))}</p>"
        "<table><tr><th>service</th><th>outcome</th><th>level</th><th>contacts</th><th>what failed</th></tr>"
        f"{''.join(rows)}</table><h2>Findings</h2><ul>{findings or '<li>none</li>'}</ul>"
        f"<h2>Hosts the meter contacted that the guide does not list</h2><ul>{others}</ul>"
        f"<h2>Guide endpoints never contacted during the recording</h2><ul>{never}</ul></body></html>\n"
    )
