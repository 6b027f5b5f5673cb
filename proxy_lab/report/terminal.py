"""The terminal report: the scenario x service matrix, a legend, and one finding per failing cell.

Each finding gives the outcome, the evidence in one line, the guide's rule it breaks and the remedy,
so the terminal alone tells a presenter or an engineer why a cell is red.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from proxy_lab.advice import guide_rule, remedy
from proxy_lab.catalog import Catalog, load_catalog
from proxy_lab.outcomes import Outcome, Result, worst
from proxy_lab.runner import ScenarioRun

STYLE = {
    Outcome.PASS: "green",
    Outcome.DEGRADED: "yellow",
    Outcome.AUTH_REQUIRED: "magenta",
    Outcome.REFUSED: "red",
    Outcome.TLS_INTERCEPTED: "bold red",
    Outcome.PROTOCOL_MISMATCH: "red",
    Outcome.UNREACHABLE: "red",
    Outcome.TIMEOUT: "red",
    Outcome.RESET: "red",
    Outcome.TAMPERED: "bold red",
}
SHORT = {
    "distributor": "distrib",
    "funds": "funds",
    "downloads": "downloads",
    "os_updates": "os upd",
    "accounting": "account",
    "online_help": "help",
    "health_data": "health",
    "connectivity_check": "conncheck",
    "pb_web_services": "pb web",
    "parcel_shipping": "parcel",
    "remote_access": "remote",
    "device_management": "dev mgmt",
}


def _cell(run: ScenarioRun, service: str) -> Text:
    if run.setup_error:
        return Text("setup", style="bold yellow")
    if run.skipped:
        return Text("skip", style="dim")
    if service not in run.expected:
        return Text("·", style="dim")
    observed = run.observed.get(service)
    if observed is None:
        return Text("?", style="yellow")
    text = Text(f"{observed.symbol} {observed.value}", style=STYLE[observed])
    if observed not in run.expected[service]:
        text = Text(f"! {observed.value}", style="bold white on red")
    return text


def worst_result(results: Sequence[Result], service: str) -> Result | None:
    mine = [r for r in results if r.service == service]
    if not mine:
        return None
    w = worst(r.outcome for r in mine)
    return next(r for r in mine if r.outcome == w)


def matrix_table(runs: Sequence[ScenarioRun], catalog: Catalog | None = None, title: str = "") -> Table:
    catalog = catalog or load_catalog()
    services = list(catalog.services)
    table = Table(title=title or "proxy-lab: what the meter saw, per scenario and service", show_lines=False)
    table.add_column("scenario", style="bold", no_wrap=True)
    for s in services:
        table.add_column(SHORT.get(s, s), no_wrap=True, justify="center")
    table.add_column("expectation", no_wrap=True)
    for run in runs:
        label = run.scenario.id if run.target == "lab" else f"{run.scenario.id} [{run.target}]"
        status = {
            "met": Text("met", style="green"),
            "not_met": Text("NOT MET", style="bold red"),
            "skipped": Text("skipped", style="dim"),
            "setup_error": Text("SETUP ERROR", style="bold yellow"),
        }[run.status]
        table.add_row(label, *[_cell(run, s) for s in services], status)
    return table


def legend() -> Text:
    text = Text("legend: ")
    for o in Outcome:
        text.append(f"{o.symbol} {o.value}", style=STYLE[o])
        text.append(f" = {o.meaning}; ")
    text.append("! = differs from the scenario's expectation; · = service not on this model")
    return text


def findings(runs: Sequence[ScenarioRun]) -> list[Text]:
    """One block per scenario with failing or unexpected cells: lesson, then one line per cell."""
    lines: list[Text] = []
    for run in runs:
        if run.setup_error:
            lines.append(Text(f"{run.scenario.id}: setup failure (not an outcome): {run.setup_error}", style="bold yellow"))
            continue
        if run.skipped:
            lines.append(Text(f"{run.scenario.id}: skipped on {run.target}: {run.skipped}", style="dim"))
            continue
        cells = [
            s for s, o in run.observed.items() if o != Outcome.PASS or (s in run.expected and o not in run.expected[s])
        ]
        problems = []
        if run.journal_after_followup not in (None, 0):
            problems.append(f"journal still holds {run.journal_after_followup} record(s) after the follow-up upload")
        if not cells and not problems:
            continue
        lines.append(Text(f"{run.scenario.id} — {run.scenario.title}", style="bold"))
        if run.scenario.lesson:
            lines.append(Text(f"  lesson: {run.scenario.lesson}", style="italic"))
        for service in cells:
            r = worst_result(run.results, service)
            if r is None:
                continue
            expected = run.expected.get(service, ())
            unexpected = r.outcome not in expected
            head = Text("  ")
            head.append("UNEXPECTED " if unexpected else "", style="bold white on red")
            head.append(f"{service}: {r.outcome.value}", style=STYLE[r.outcome])
            head.append(f" (expected {'/'.join(o.value for o in expected)})" if unexpected else "")
            head.append(f" at {r.endpoint}: {r.detail}")
            lines.append(head)
            lines.append(Text(f"      evidence: {r.evidence.one_line()}", style="dim"))
            if rule := guide_rule(r):
                lines.append(Text(f"      rule: {rule}", style="dim"))
            fix = run.scenario.remedy if (run.scenario.remedy and r.outcome != Outcome.PASS) else remedy(r)
            if fix:
                lines.append(Text(f"      remedy: {fix}", style="cyan"))
        for p in problems:
            lines.append(Text(f"  UNEXPECTED: {p}", style="bold red"))
    return lines


def print_runs(runs: Sequence[ScenarioRun], console: Console | None = None, catalog: Catalog | None = None) -> None:
    console = console or Console()
    console.print(matrix_table(runs, catalog))
    console.print(legend())
    lines = findings(runs)
    if lines:
        console.print()
        console.print(Text("Findings", style="bold underline"))
        for line in lines:
            console.print(line)
    met = sum(r.status == "met" for r in runs)
    console.print()
    console.print(
        Text(
            f"{met} of {len(runs)} scenarios met their expectation",
            style="bold green" if met == len(runs) else "bold red",
        )
    )
