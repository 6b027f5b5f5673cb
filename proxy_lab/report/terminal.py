"""The terminal report: the scenario x service matrix, a legend, setup failures, and one finding per failing cell.

Each finding gives the outcome, the evidence in one line, the guide's rule it breaks and the remedy
for the cause diagnosed from what was observed (the scenario's own remedy is part of its lesson),
so the terminal alone tells a presenter or an engineer why a cell is red. Setup failures (a target
that did not start, a certificate that could not be written) and skipped runs are listed apart from
outcomes, as mnot's cache-tests keeps its setup failures apart from test failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from proxy_lab.catalog import Catalog
from proxy_lab.outcomes import Outcome
from proxy_lab.report.cells import (
    SHORT,
    Cell,
    cell,
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
    worst_result,
)
from proxy_lab.report.cells import findings as cell_findings

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun

__all__ = [
    "STYLE", "findings", "legend", "matrix_table", "model_section", "print_runs", "setup_section", "worst_result",
]  # fmt: skip

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
RUN_STATUS = {
    "met": Text("met", style="green"),
    "not_met": Text("NOT MET", style="bold red"),
    "skipped": Text("skipped", style="dim"),
    "setup_error": Text("SETUP ERROR", style="bold yellow"),
}


# The model column: short enough for a terminal, unambiguous.
MODEL_SHORT = {"sendpro-c": "C", "sendpro-plus": "+"}

# Short cell words so twelve services fit a terminal; the legend gives the full outcome names.
TERSE = {
    Outcome.PASS: "pass",
    Outcome.DEGRADED: "slow",
    Outcome.AUTH_REQUIRED: "auth",
    Outcome.REFUSED: "refused",
    Outcome.TLS_INTERCEPTED: "tls",
    Outcome.PROTOCOL_MISMATCH: "proto",
    Outcome.UNREACHABLE: "unreach",
    Outcome.TIMEOUT: "timeout",
    Outcome.RESET: "reset",
    Outcome.TAMPERED: "tamper",
}


def _cell_text(c: Cell | None, compact: bool = False) -> Text:
    if c is None:
        return Text("·", style="dim")
    if c.status == "setup_error":
        return Text("setup", style="bold yellow")
    if c.status == "skipped":
        return Text("skip", style="dim")
    if c.observed is None:
        return Text("! none", style="bold white on red")
    label = c.observed.symbol if compact else f"{c.observed.symbol} {TERSE[c.observed]}"
    if c.unexpected:
        return Text(f"! {label}", style="bold white on red")
    return Text(label, style=STYLE[c.observed])


def matrix_table(
    runs: Sequence[ScenarioRun], catalog: Catalog | None = None, title: str = "", width: int | None = None
) -> Table:
    """The matrix; when it would not fit `width` columns, cells show the symbol without the word."""
    services = services_of(runs, catalog)
    cells_of = [[cell(run, s, catalog) for s in services] for run in runs]
    models = [Text(MODEL_SHORT.get(run_model(run), run_model(run))) for run in runs]
    labels = [Text(printable(run_label(run))) for run in runs]
    statuses = [RUN_STATUS.get(run.status, Text(run.status)) for run in runs]

    def needed(compact: bool) -> int:
        widths = [max([len("scenario"), *(t.cell_len for t in labels)]), max([len("model"), *(t.cell_len for t in models)])]
        for i, s in enumerate(services):
            widths.append(max([cell_len(SHORT.get(s, s)), *(_cell_text(row[i], compact).cell_len for row in cells_of)]))
        widths.append(len("expectation"))
        return sum(w + 3 for w in widths) + 1

    compact = width is not None and needed(False) > width
    squeeze = width is not None and needed(True) > width
    table = Table(title=title or "proxy-lab: what the meter saw, per scenario and service", show_lines=False)
    table.add_column("scenario", style="bold", no_wrap=True, overflow="ellipsis", max_width=24 if squeeze else None)
    table.add_column("model", no_wrap=True)
    for s in services:
        table.add_column(SHORT.get(s, s), no_wrap=True, justify="center", min_width=4)
    table.add_column("expectation", no_wrap=True)
    for label, model, row, status in zip(labels, models, cells_of, statuses, strict=True):
        table.add_row(label, model, *(_cell_text(c, compact) for c in row), status)
    return table


def legend() -> Text:
    text = Text("legend: ")
    for o in Outcome:
        text.append(f"{o.symbol} {TERSE[o]}", style=STYLE[o])
        text.append(f" = {o.value}: {o.meaning}; ")
    text.append("model: C = sendpro-c, + = sendpro-plus; ! = differs from the scenario's expectation; · = not expected in this scenario; ")
    text.append("setup = the run could not be set up (not an outcome); skip = the target cannot express the scenario")
    return text


def model_section(runs: Sequence[ScenarioRun], catalog: Catalog | None = None) -> list[Text]:
    """What differs between the two meter models, when the runs played both."""
    return [Text(printable(f"  {line}")) for line in model_differences(runs, catalog)]


def setup_section(runs: Sequence[ScenarioRun]) -> list[Text]:
    """Setup failures and skipped runs, kept apart from outcomes."""
    lines: list[Text] = []
    for run in runs:
        if run.setup_error:
            lines.append(
                Text(printable(f"  {run_label(run)}: SETUP FAILURE (not an outcome): {run.setup_error}"), style="bold yellow")
            )
    for run in runs:
        if run.skipped and not run.setup_error:
            lines.append(Text(printable(f"  {run_label(run)}: skipped on {target_label(run.target)}: {run.skipped}"), style="dim"))
    return lines


def _finding_lines(run: ScenarioRun, c: Cell) -> list[Text]:
    lines: list[Text] = []
    r = c.worst
    head = Text("  ")
    head.append("UNEXPECTED " if c.unexpected else "", style="bold white on red")
    if r is None:
        head.append(f"{c.service}: no result (expected {c.expected_text()})", style="bold red")
        lines.append(head)
        lines.append(Text("      evidence: the device reported nothing for this service", style="dim"))
        return lines
    if c.sentence and c.observed is not None:
        # A service the guide lets work in several ways: the sentence says which way worked.
        head.append(f"{c.service}: {c.observed.symbol} {c.sentence}", style=STYLE[c.observed])
        head.append(f" (expected {c.expected_text()})" if c.unexpected else "")
        lines.append(head)
        head = Text(printable(f"      worst endpoint: {r.outcome.value} at {r.endpoint}: {r.detail}"))
    else:
        head.append(f"{c.service}: {r.outcome.symbol} {r.outcome.value}", style=STYLE[r.outcome])
        head.append(f" (expected {c.expected_text()})" if c.unexpected else "")
        head.append(printable(f" at {r.endpoint}: {r.detail}"))
    lines.append(head)
    lines.append(Text(printable(f"      evidence: {r.evidence.one_line()}"), style="dim"))
    if rule := rule_for(r):
        lines.append(Text(f"      rule: {rule}", style="dim"))
    if fix := remedy_for(run, r):
        lines.append(Text(printable(f"      remedy: {fix}"), style="cyan"))
    elif r.outcome == Outcome.PASS and c.unexpected:
        lines.append(Text("      remedy: the scenario's fault did not take effect: check the target's configuration", style="cyan"))
    return lines


def findings(runs: Sequence[ScenarioRun], catalog: Catalog | None = None) -> list[Text]:
    """One block per scenario with failing or unexpected cells: lesson, then the lines of each cell."""
    services = services_of(runs, catalog)
    lines: list[Text] = []
    for run in runs:
        found = cell_findings(run, services)
        problems = run_problems(run)
        if not found and not problems:
            continue
        lines.append(Text(printable(f"{run_label(run)} — {run.scenario.title}"), style="bold"))
        if lesson := lesson_for(run):
            lines.append(Text(printable(f"  lesson: {lesson}"), style="italic"))
        for c in found:
            lines.extend(_finding_lines(run, c))
        for p in problems:
            lines.append(Text(printable(f"  UNEXPECTED: {p}"), style="bold red"))
    return lines


def print_runs(runs: Sequence[ScenarioRun], console: Console | None = None, catalog: Catalog | None = None) -> None:
    console = console or Console()
    console.print(matrix_table(runs, catalog, width=console.width))
    console.print(legend())
    if models := model_section(runs, catalog):
        console.print()
        console.print(Text("SendPro C and SendPro+ (model column: C = sendpro-c, + = sendpro-plus)", style="bold underline"))
        for line in models:
            console.print(line)
    setup = setup_section(runs)
    if setup:
        console.print()
        console.print(Text("Setup failures and skipped runs (not outcomes)", style="bold underline"))
        for line in setup:
            console.print(line)
    lines = findings(runs, catalog)
    if lines:
        console.print()
        console.print(Text("Findings", style="bold underline"))
        for line in lines:
            console.print(line)
    met = sum(r.status == "met" for r in runs)
    tail = f"{met} of {len(runs)} scenarios met their expectation"
    if n_setup := sum(r.status == "setup_error" for r in runs):
        tail += f"; {n_setup} could not be set up"
    if n_skip := sum(r.status == "skipped" for r in runs):
        tail += f"; {n_skip} skipped"
    console.print()
    console.print(Text(tail, style="bold green" if met == len(runs) else "bold red"))
