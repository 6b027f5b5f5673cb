"""The HTML report: one self-contained page that shows a room why each cell is red, and how to fix it.

One file, inline CSS and a few lines of inline JS, no external assets, fonts or URLs: it opens
offline, and its Content-Security-Policy forbids loading anything at all. It is made for a
projector: large type, high contrast, and every outcome shown as colour *and* symbol *and* word, so
it reads for colour-blind viewers and in black and white.

Content: the scenario x service matrix (each cell links to its details), the legend, setup failures
and skipped runs apart from outcomes, then per scenario its lesson (with its own fix) and per cell the worst
endpoint's CONNECT exchange (`pre.transcript`), for TLS the chain the device was shown beside the
one it expected (`.tls-evidence` > `.chain-shown` | `.chain-expected`: subject, issuer, SHA-256,
validity), timing and bytes, the guide's rule and the remedy for the observed cause. Everything from a run is
escaped: evidence comes from the network.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import proxy_lab
from proxy_lab.catalog import load_catalog
from proxy_lab.outcomes import CertSummary, Outcome, Result
from proxy_lab.report.cells import (
    SHORT,
    Cell,
    anchor,
    cell,
    cells,
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
    transcript,
)

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun

# Content-Security-Policy: nothing may be fetched; only this page's own inline style and script run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

# Outcome families for colour. The palette keeps dark text on light tints (contrast above 7:1) and
# is told apart by hue and lightness; symbol and word carry the meaning without colour.
FAMILY = {
    Outcome.PASS: "ok",
    Outcome.DEGRADED: "warn",
    Outcome.AUTH_REQUIRED: "auth",
    Outcome.REFUSED: "bad",
    Outcome.PROTOCOL_MISMATCH: "bad",
    Outcome.UNREACHABLE: "bad",
    Outcome.TIMEOUT: "bad",
    Outcome.RESET: "bad",
    Outcome.TLS_INTERCEPTED: "worst",
    Outcome.TAMPERED: "worst",
}

CSS = """
:root { --ink:#111111; --paper:#ffffff; --muted:#3d3d3d; --line:#6b6b6b;
  --ok-bg:#d7f2df; --ok-ink:#0b3d1c; --warn-bg:#fff0b8; --warn-ink:#4d3b00;
  --auth-bg:#e8dbff; --auth-ink:#32125e; --bad-bg:#ffdcd1; --bad-ink:#6e1a00;
  --worst-bg:#ffc9c9; --worst-ink:#5c0000; --setup-bg:#d6e6ff; --setup-ink:#0a2f66;
  --skip-bg:#ececec; --skip-ink:#333333; }
* { box-sizing: border-box; }
html { font-size: 20px; }
body { margin: 0; padding: 1rem 1rem 4rem; color: var(--ink); background: var(--paper);
  font-family: "DejaVu Sans", "Noto Sans", "Liberation Sans", Arial, sans-serif; line-height: 1.45; }
h1 { font-size: 2.1rem; margin: 0 0 .3rem; }
h2 { font-size: 1.6rem; margin: 2rem 0 .6rem; border-bottom: 3px solid var(--ink); }
h3 { font-size: 1.35rem; margin: 1.6rem 0 .4rem; }
h4 { font-size: 1.15rem; margin: 1rem 0 .4rem; }
h5, h6 { font-size: 1rem; margin: .8rem 0 .3rem; }
a { color: #0b3a8c; }
code, pre, .mono { font-family: "DejaVu Sans Mono", "Noto Sans Mono", "Liberation Mono", monospace; }
.verdict { font-size: 1.4rem; font-weight: bold; margin: .2rem 0; }
.meta { color: var(--muted); margin: 0; }
table.matrix { border-collapse: collapse; width: 100%; table-layout: fixed; font-size: .9rem; }
.matrix col.c-scenario { width: 12%; } .matrix col.c-expectation { width: 7%; }
.matrix th, .matrix td { border: 2px solid var(--line); padding: .3rem .2rem; text-align: center; vertical-align: middle; }
.matrix thead th { background: #222; color: #fff; font-size: .85rem; overflow-wrap: anywhere; }
.matrix thead th, .matrix .word, .matrix .status { font-family: "DejaVu Sans", "Arial Narrow", sans-serif; font-stretch: condensed; }
.matrix tbody th { text-align: left; font-size: .95rem; overflow-wrap: anywhere; }
.matrix td a { display: block; color: inherit; text-decoration: none; }
.matrix .sym { display: block; font-size: 1.35rem; line-height: 1.2; }
svg.icon { width: 1.1em; height: 1.1em; vertical-align: -0.15em; }
.matrix .word { display: block; font-size: .76rem; font-weight: bold; overflow-wrap: anywhere; }
.matrix .sym .flag { font-size: .8rem; vertical-align: .25em; }
.matrix td.none { color: var(--muted); }
.o-ok { background: var(--ok-bg); color: var(--ok-ink); }
.o-warn { background: var(--warn-bg); color: var(--warn-ink); }
.o-auth { background: var(--auth-bg); color: var(--auth-ink); }
.o-bad { background: var(--bad-bg); color: var(--bad-ink); }
.o-worst { background: var(--worst-bg); color: var(--worst-ink); }
.o-setup { background: var(--setup-bg); color: var(--setup-ink); }
.o-skip { background: var(--skip-bg); color: var(--skip-ink); }
.matrix td.unexpected { outline: 5px solid var(--ink); outline-offset: -5px; }
.flag { display: inline-block; background: var(--ink); color: #fff; border-radius: 1em; padding: 0 .45em; font-weight: bold; }
.status { font-weight: bold; }
.s-met { color: var(--ok-ink); } .s-not_met { color: var(--worst-ink); }
.s-setup_error { color: var(--setup-ink); } .s-skipped { color: var(--skip-ink); }
.legend { display: flex; flex-wrap: wrap; gap: .4rem .8rem; list-style: none; padding: 0; font-size: .85rem; }
.legend li { padding: .15rem .5rem; border: 2px solid var(--line); border-radius: .3rem; }
.setup-list li { margin: .3rem 0; }
article.scenario { border-top: 4px solid var(--ink); margin-top: 2rem; }
.lesson, .scenario-remedy, .rule, .fix { padding: .5rem .8rem; border-left: 8px solid var(--line); background: #f4f4f4; }
.fix, .scenario-remedy { border-left-color: #0b3a8c; background: #e6eeff; }
.cell-detail { border: 3px solid var(--line); border-radius: .4rem; padding: .2rem 1rem 1rem; margin: 1rem 0; }
.cell-detail.unexpected { border: 5px solid var(--ink); }
details.cell-detail:not([open]) { padding-bottom: .2rem; }
.cell-detail:target, .endpoint:target { box-shadow: 0 0 0 6px #0b3a8c; }
details.cell-detail > summary, details.more > summary { cursor: pointer; font-weight: bold; font-size: 1.05rem; padding: .5rem 0; }
.cell-head { padding: .3rem .6rem; border-radius: .3rem; display: inline-block; }
.endpoint { margin: .8rem 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0; }
dl.facts dt { font-weight: bold; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
pre.transcript { background: #111; color: #f2f2f2; padding: .8rem 1rem; font-size: .9rem; overflow-x: auto;
  white-space: pre-wrap; overflow-wrap: anywhere; border-radius: .3rem; }
pre.transcript .tunnel { font-style: italic; } pre.transcript .sent { color: #9fd3ff; } pre.transcript .recv { color: #ffe08a; } pre.transcript .event { color: #ffb3b3; }
.tls-evidence { display: grid; grid-template-columns: 1fr 1fr; gap: 1.2rem; margin: .8rem 0; }
.chain { border: 3px solid var(--line); border-radius: .4rem; padding: .4rem .8rem; min-width: 0; }
.chain-shown { border-color: var(--worst-ink); }
.chain-expected { border-color: var(--ok-ink); }
.chain ol { margin: .2rem 0; padding-left: 1.3rem; }
.cert { margin: .4rem 0 .8rem; }
.cert .differs { background: var(--worst-bg); color: var(--worst-ink); font-weight: bold; }
.chain-expected .cert .differs { background: var(--ok-bg); color: var(--ok-ink); }
.fp { font-size: .8rem; overflow-wrap: anywhere; }
.problems li { font-weight: bold; color: var(--worst-ink); }
.setup-error, .skipped { padding: .5rem .8rem; border-radius: .3rem; }
"""

JS = """
(function () {
  // Open the <details> around the element a matrix link points at, so a click always shows it.
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    for (var n = el; n; n = n.parentElement) { if (n.tagName === "DETAILS") { n.open = true; } }
    if (el) { el.scrollIntoView(); }
  }
  window.addEventListener("hashchange", reveal);
  document.documentElement.classList.add("js");
  reveal();
})();
"""


# The few symbols that common fonts lack (Debian's DejaVu has none of them) are drawn as inline SVG,
# so the matrix never shows an empty box on a presenter's machine; the others are plain text.
SETUP_SYMBOL = "🔹"
_ICON_IDS = {
    Outcome.AUTH_REQUIRED.symbol: "i-key",
    Outcome.REFUSED.symbol: "i-no-entry",
    Outcome.TLS_INTERCEPTED.symbol: "i-open-lock",
    Outcome.TIMEOUT.symbol: "i-stopwatch",
    SETUP_SYMBOL: "i-diamond",
}
SPRITE = (
    '<svg width="0" height="0" style="position:absolute" aria-hidden="true">'
    '<symbol id="i-key" viewBox="0 0 24 24"><g fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round">'
    '<circle cx="7.5" cy="12" r="4.5"/><path d="M12 12h10M18.5 12v4M21.5 12v3"/></g></symbol>'
    '<symbol id="i-no-entry" viewBox="0 0 24 24"><circle cx="12" cy="12" r="10" fill="currentColor"/>'
    '<rect x="5.5" y="10.2" width="13" height="3.6" fill="#fff"/></symbol>'
    '<symbol id="i-open-lock" viewBox="0 0 24 24"><rect x="2" y="11" width="14" height="11" rx="1.5" fill="currentColor"/>'
    '<path d="M13 11V6.5a4.5 4.5 0 0 1 9 0V9" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/></symbol>'
    '<symbol id="i-stopwatch" viewBox="0 0 24 24"><g fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round">'
    '<circle cx="12" cy="13.5" r="8"/><path d="M12 13.5V9M9 2.5h6M12 2.5v3M18.5 6.5 20 5"/></g></symbol>'
    '<symbol id="i-diamond" viewBox="0 0 24 24"><path d="M12 2.5 20.5 12 12 21.5 3.5 12z" fill="currentColor"/></symbol>'
    "</svg>"
)


def sym(symbol: str) -> str:
    """An outcome's symbol as HTML: inline SVG where fonts often lack the glyph, else the character."""
    icon = _ICON_IDS.get(symbol)
    if icon is None:
        return esc(symbol)
    return f'<svg class="icon" role="img" aria-label="{esc(symbol)}"><use href="#{icon}"/></svg>'


def esc(value: object) -> str:
    return html.escape(printable(value), quote=True)


def word(o: Outcome) -> str:
    """The outcome word, breakable after its underscores in narrow matrix cells."""
    return esc(o.value).replace("_", "_<wbr>")


class _Ids:
    """HTML ids of runs and cells: readable, and unique even when a scenario runs on two targets."""

    def __init__(self, runs: Sequence[ScenarioRun]) -> None:
        self._runs = {id(r): anchor("run", i, r.scenario.id, target_label(r.target)) for i, r in enumerate(runs)}
        self._tls_id_given = False

    def first_interception(self, r: Result) -> str:
        """`tls-evidence` for the page's first intercepted chain (a fixed place to look), else ''."""
        if self._tls_id_given or r.outcome != Outcome.TLS_INTERCEPTED or not r.evidence.chain_shown:
            return ""
        self._tls_id_given = True
        return "tls-evidence"

    def run(self, run: ScenarioRun) -> str:
        return self._runs[id(run)]

    def cell(self, run: ScenarioRun, service: str) -> str:
        return f"{self._runs[id(run)]}--{anchor(service)}"


def _matrix_cell(run: ScenarioRun, c: Cell | None, ids: _Ids) -> str:
    if c is None:
        return '<td class="none" title="not expected in this scenario">·</td>'
    href = f"#{ids.cell(run, c.service)}" if c.status not in ("setup_error", "skipped") else f"#{ids.run(run)}"
    if c.status == "setup_error":
        return f'<td class="o-setup" data-status="setup_error"><a href="{href}"><span class="sym" aria-hidden="true">{sym(SETUP_SYMBOL)}</span><span class="word">setup</span></a></td>'
    if c.status == "skipped":
        return f'<td class="o-skip" data-status="skipped"><a href="{href}"><span class="sym" aria-hidden="true">–</span><span class="word">skipped</span></a></td>'
    flag = ' <span class="flag" title="differs from the expectation">!</span>' if c.unexpected else ""
    title = esc(f"{c.service}: {c.observed_text()}; expected {c.expected_text()}")
    if c.observed is None:
        return (
            f'<td class="o-bad unexpected" data-status="{c.status}" title="{title}"><a href="{href}">'
            f'<span class="sym">?{flag}</span><span class="word">no result</span></a></td>'
        )
    o = c.observed
    classes = f"o-{FAMILY[o]}" + (" unexpected" if c.unexpected else "")
    return (
        f'<td class="{classes}" data-outcome="{o.value}" data-status="{c.status}" title="{title}">'
        f'<a href="{href}"><span class="sym"><span aria-hidden="true">{sym(o.symbol)}</span>{flag}</span>'
        f'<span class="word">{word(o)}</span></a></td>'
    )


def matrix(runs: Sequence[ScenarioRun], services: Sequence[str], ids: _Ids) -> str:
    catalog = load_catalog()
    head = ['<th scope="col">scenario</th>', '<th scope="col" title="the meter model the device played">model</th>']
    for s in services:
        full = catalog.services[s].title if s in catalog.services else s
        head.append(f'<th scope="col" title="{esc(full)} ({esc(s)})">{esc(SHORT.get(s, s))}</th>')
    head.append('<th scope="col" title="did the run meet the scenario\'s expectation?">verdict</th>')
    rows = []
    for run in runs:
        label = f'<a href="#{ids.run(run)}">{esc(run.scenario.id)}</a>'
        if run.target != "lab":
            label += f' <span class="target">[{esc(target_label(run.target))}]</span>'
        tds = f'<td class="model">{esc(run_model(run))}</td>' + "".join(
            _matrix_cell(run, cell(run, s, catalog), ids) for s in services
        )
        status = {"met": "met", "not_met": "✗ NOT MET", "skipped": "skipped", "setup_error": "SETUP ERROR"}.get(run.status, run.status)
        rows.append(
            f'<tr class="run" data-status="{esc(run.status)}"><th scope="row">{label}</th>{tds}'
            f'<td class="status s-{esc(run.status)}">{esc(status)}</td></tr>'
        )
    return (
        '<table id="matrix" class="matrix"><caption class="meta">Rows: scenarios. Columns: the services of the '
        "connectivity guide. Click a cell for its evidence.</caption>"
        f'<colgroup><col class="c-scenario"><col class="c-model">{"<col>" * len(services)}<col class="c-expectation"></colgroup>'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def legend() -> str:
    items = [
        f'<li class="o-{FAMILY[o]}"><span aria-hidden="true">{sym(o.symbol)}</span> <b>{esc(o.value)}</b>: {esc(o.meaning)}</li>'
        for o in Outcome
    ]
    items += [
        '<li><span class="flag">!</span> differs from the scenario\'s expectation (thick black frame)</li>',
        f'<li class="o-setup">{sym(SETUP_SYMBOL)} <b>setup</b>: the run could not be set up (not an outcome)</li>',
        '<li class="o-skip">– <b>skipped</b>: the target cannot express the scenario</li>',
        "<li>· not expected in this scenario</li>",
    ]
    return f'<ul class="legend" id="legend">{"".join(items)}</ul>'


def _transcript(lines: Sequence[str]) -> str:
    # Prefixes as the device writes them (proxy_lab.device.transcript): '>' sent, '<' received,
    # '>>' and '<<' the same inside the tunnel, '!' an event.
    kinds = {">>": "sent tunnel", "<<": "recv tunnel", ">": "sent", "<": "recv", "!": "event"}
    out = []
    for line in lines:
        kind = kinds.get(line[:2], "") or kinds.get(line[:1], "")
        out.append(f'<span class="{kind}">{esc(line)}</span>' if kind else esc(line))
    return '<pre class="transcript">' + "\n".join(out) + "</pre>"


def _cert(c: CertSummary, other: CertSummary | None) -> str:
    def row(label: str, value: str, theirs: str | None, mono: bool = False) -> str:
        differs = theirs is not None and theirs != value
        cls = " ".join(filter(None, ["differs" if differs else "", "fp mono" if mono else ""]))
        return f'<dt>{label}</dt><dd class="{cls}">{esc(value)}</dd>' if cls else f"<dt>{label}</dt><dd>{esc(value)}</dd>"

    return (
        '<li class="cert"><dl class="facts">'
        + row("subject", c.subject, other.subject if other else None)
        + row("issuer", c.issuer, other.issuer if other else None)
        + row("SHA-256", c.sha256, None, mono=True)
        + row("valid", f"{c.not_before} to {c.not_after}", None)
        + "</dl></li>"
    )


def _chain(kind: str, title: str, chain: Sequence[CertSummary], other: Sequence[CertSummary]) -> str:
    if chain:
        certs = "".join(_cert(c, other[i] if i < len(other) else None) for i, c in enumerate(chain))
        body = f"<ol>{certs}</ol>"
    else:
        body = "<p>not recorded</p>"
    return f'<div class="chain chain-{kind}"><h6>{title}</h6>{body}</div>'


def tls_block(r: Result, block_id: str = "") -> str:
    """Both chains side by side; `tls-intercepted` marks the blocks where the device refused the chain."""
    ev = r.evidence
    if not (ev.chain_shown or ev.chain_expected):
        return ""
    intercepted = " tls-intercepted" if r.outcome == Outcome.TLS_INTERCEPTED else ""
    ident = f' id="{block_id}"' if block_id else ""
    return (
        f'<div class="tls-evidence{intercepted}"{ident} data-outcome="{r.outcome.value}">'
        + _chain("shown", "Certificate chain the device was shown", ev.chain_shown, ev.chain_expected)
        + _chain("expected", "Chain the device expected (anchored in the PB root)", ev.chain_expected, ev.chain_shown)
        + "</div>"
    )


def endpoint_block(run: ScenarioRun, r: Result, ids: _Ids) -> str:
    ev = r.evidence
    facts = [
        ("outcome", f"{r.outcome.value}: {r.outcome.meaning}"),
        ("detail", r.detail),
        ("time", f"{r.elapsed_s * 1000:.0f} ms" + (f" over {ev.attempts} attempts" if ev.attempts > 1 else "")),
        ("bytes", f"{ev.bytes_sent} sent, {ev.bytes_received} received"),
    ]
    if ev.kbps is not None:
        facts.append(("throughput", f"{ev.kbps:.0f} kbit/s"))
    if ev.connect_status is not None:
        facts.append(("CONNECT answer", f"{ev.connect_status} {ev.connect_reason}".strip()))
    for name, value in ev.connect_headers:
        if name.lower() in ("x-squid-error", "proxy-authenticate", "www-authenticate", "location", "via", "server"):
            facts.append((name, value))
    if ev.auth_schemes:
        facts.append(("schemes offered", ", ".join(ev.auth_schemes)))
    if ev.tls_error:
        facts.append(("TLS error", ev.tls_error))
    if ev.tls_alert:
        facts.append(("TLS alert", ev.tls_alert))
    if ev.http_status is not None:
        facts.append(("HTTP status in tunnel", str(ev.http_status)))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    parts = [
        f'<div class="endpoint" data-outcome="{r.outcome.value}">',
        f"<h5><code>{esc(r.endpoint)}</code></h5>",
        f'<dl class="facts">{dl}</dl>',
    ]
    if r.outcome != Outcome.PASS:
        if rule := rule_for(r):
            parts.append(f'<p class="rule"><strong>The guide:</strong> {esc(rule)}</p>')
        if fix := remedy_for(run, r):
            parts.append(f'<p class="fix"><strong>Remedy:</strong> {esc(fix)}</p>')
    parts.append("<h6>CONNECT exchange</h6>")
    parts.append(_transcript(transcript(r)) if ev.transcript else "<p>no transcript recorded</p>")
    parts.append(tls_block(r, ids.first_interception(r)))
    parts.append("</div>")
    return "".join(parts)


def cell_block(run: ScenarioRun, c: Cell, ids: _Ids) -> str:
    cid = ids.cell(run, c.service)
    family = f"o-{FAMILY[c.observed]}" if c.observed is not None else "o-bad"
    icon = sym(c.observed.symbol) if c.observed is not None else "?"
    flag = ' <span class="flag">!</span> UNEXPECTED' if c.unexpected else ""
    expected = f" (expected {esc(c.expected_text())})" if c.unexpected else ""
    head = f'<span class="cell-head {family}">{esc(c.service)}: {icon} {esc(c.observed_sentence())}</span>{flag}{expected}'
    worst = c.worst
    if worst is None:
        body = "<p>The device reported no result for this service.</p>"
    else:
        body = endpoint_block(run, worst, ids)
        others = [r for r in c.results if r is not worst]
        if others:
            more = "".join(endpoint_block(run, r, ids) for r in others)
            body += f'<details class="more"><summary>{len(others)} more endpoint(s) of {esc(c.service)}</summary>{more}</details>'
    classes = f"cell-detail {'unexpected' if c.unexpected else ''}".strip()
    if c.finding:
        return f'<section class="{classes}" id="{cid}" data-service="{esc(c.service)}"><h4>{head}</h4>{body}</section>'
    return f'<details class="{classes}" id="{cid}" data-service="{esc(c.service)}"><summary>{head}</summary>{body}</details>'


def run_block(run: ScenarioRun, services: Sequence[str], ids: _Ids) -> str:
    s = run.scenario
    status = {"met": "met", "not_met": "NOT MET", "skipped": "skipped", "setup_error": "SETUP ERROR"}.get(run.status, run.status)
    parts = [
        f'<article class="scenario" id="{ids.run(run)}" data-status="{esc(run.status)}">',
        f'<h3>{esc(run_label(run))}: {esc(s.title)} <span class="status s-{esc(run.status)}">[{esc(status)}]</span></h3>',
    ]
    meta = [f"Guide section: {esc(s.guide_section)}"] if s.guide_section else []
    meta += [f"target: {esc(target_label(run.target))}", f"model: {esc(run_model(run))}", f"{run.elapsed_s:.2f} s"]
    parts.append(f'<p class="meta">{" · ".join(meta)}</p>')
    if lesson := lesson_for(run):
        parts.append(f'<p class="lesson"><strong>Lesson:</strong> {esc(lesson)}</p>')
    if run.setup_error:
        parts.append(f'<p class="setup-error o-setup">{sym(SETUP_SYMBOL)} <strong>Setup failure (not an outcome):</strong> {esc(run.setup_error)}</p>')
    elif run.skipped:
        parts.append(f'<p class="skipped o-skip"><strong>Skipped on {esc(target_label(run.target))}:</strong> {esc(run.skipped)}</p>')
    problems = run_problems(run)
    if problems:
        parts.append('<ul class="problems">' + "".join(f"<li>UNEXPECTED: {esc(p)}</li>" for p in problems) + "</ul>")
    if not (run.setup_error or run.skipped):
        run_cells = cells(run, services)
        # Failures first (they are what the room came to see), then the passing cells, folded.
        ordered = [c for c in run_cells if c.finding] + [c for c in run_cells if not c.finding]
        parts.extend(cell_block(run, c, ids) for c in ordered)
    parts.append("</article>")
    return "".join(parts)


def render(runs: Sequence[ScenarioRun], generated_at: datetime | None = None) -> str:
    catalog = load_catalog()
    services = services_of(runs, catalog)
    ids = _Ids(runs)
    when = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = sum(r.status == "met" for r in runs)
    verdict = f"{met} of {len(runs)} scenarios met their expectation"
    if n := sum(r.status == "setup_error" for r in runs):
        verdict += f" · {n} could not be set up"
    if n := sum(r.status == "skipped" for r in runs):
        verdict += f" · {n} skipped"
    setup = [r for r in runs if r.setup_error] + [r for r in runs if r.skipped and not r.setup_error]
    setup_html = ""
    if setup:
        items = "".join(
            f'<li><a href="#{ids.run(r)}">{esc(run_label(r))}</a>: '
            + (f"{sym(SETUP_SYMBOL)} setup failure: {esc(r.setup_error)}" if r.setup_error else f"skipped: {esc(r.skipped)}")
            + "</li>"
            for r in setup
        )
        setup_html = f'<section id="setup"><h2>Setup failures and skipped runs (not outcomes)</h2><ul class="setup-list">{items}</ul></section>'
    details = "".join(run_block(run, services, ids) for run in runs)
    models = model_differences(runs, catalog)
    models_html = (
        '<section id="models"><h3>SendPro C and SendPro+</h3><ul>' + "".join(f"<li>{esc(m)}</li>" for m in models) + "</ul></section>"
        if models
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="generator" content="proxy-lab {esc(proxy_lab.__version__)}">
<title>proxy-lab: {esc(verdict)}</title>
<style>{CSS}</style>
</head>
<body>
{SPRITE}
<header>
<h1>Will the meter's traffic survive this proxy?</h1>
<p class="verdict" id="verdict">{esc(verdict)}</p>
<p class="meta">Checked against {esc(catalog.guide)} · proxy-lab {esc(proxy_lab.__version__)} · {esc(when)}</p>
</header>
<main>
<section id="matrix-section"><h2>What the meter saw, per scenario and service</h2>
{matrix(runs, services, ids)}
{legend()}
{models_html}
</section>
{setup_html}
<section id="details"><h2>Why: the evidence, the guide's rule and the remedy</h2>
{details}
</section>
</main>
<script>{JS}</script>
</body>
</html>
"""
