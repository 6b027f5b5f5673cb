"""`proxy-lab matrix`: the core scenarios and the presets over every installed target, target x service.

Each target runs the core scenarios (`baseline`, `sendpro-c-baseline`, `basic-auth`,
`basic-auth-missing`: both models, with and without authentication); the lab runs
every preset scenario too (`scenarios/preset-*.toml`, emulated with the preset's faults), and each
real product runs its own presets. A product that is not installed, or cannot be run here (namespace
mode needs root), has its runs reported as skipped with the reason, never as passed. The exit code is
0 only when every run met its expectation or was skipped with a reason.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy_lab.cliargs import EXIT_NOT_MET, EXIT_OK, add_output_options, default_scenarios_dir, write_output
from proxy_lab.cliargs import certs_dir as certs_dir_of
from proxy_lab.errors import ConfigError, SetupError

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun
    from proxy_lab.scenarios import Scenario

CORE_SCENARIOS = ("baseline", "sendpro-c-baseline", "basic-auth", "basic-auth-missing")
TARGETS = ("lab", "mitmproxy", "proxypy", "squid", "tinyproxy")
PRESET_GLOB = "preset-*.toml"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "matrix", help="run the core scenarios and the presets over every installed target (lab and real products)"
    )
    p.add_argument("--scenarios", type=Path, default=None, metavar="DIR", help="scenario directory (default: scenarios/)")
    p.add_argument("--target", action="append", choices=TARGETS, default=[], help="only this target (repeatable)")
    p.add_argument("--only", action="append", default=[], metavar="ID", help="only this scenario id (repeatable)")
    add_output_options(p, verbose=False)
    p.set_defaults(handler=cmd_matrix)


def load_matrix_scenarios(directory: Path, only: Sequence[str] = ()) -> list[Scenario]:
    """The core scenarios and every preset scenario of `directory`, core first."""
    from proxy_lab.scenarios import load_scenarios

    files = [directory / f"{i}.toml" for i in CORE_SCENARIOS if (directory / f"{i}.toml").exists()]
    files += sorted(directory.glob(PRESET_GLOB))
    if not files:
        raise ConfigError(f"{directory}: none of {', '.join(CORE_SCENARIOS)} nor any {PRESET_GLOB}")
    return load_scenarios(files, only=list(only) or None)


def plan(scenarios: Sequence[Scenario], target: str) -> list[Scenario]:
    """What `target` runs: every scenario without a preset, and the presets it can run (lab: all)."""
    from proxy_lab.targets.presets import get_preset

    out = []
    for s in scenarios:
        preset = s.proxy.preset
        if preset is None or target == "lab" or get_preset(preset).product == target:
            out.append(s)
    return out


def _skipped(scenarios: Sequence[Scenario], target: str, reason: str) -> list[ScenarioRun]:
    from proxy_lab.runs import ScenarioRun

    return [ScenarioRun(s, target, skipped=reason) for s in scenarios]


def versions() -> dict[str, str]:
    from proxy_lab.targets.real import PRODUCTS, product_version

    return {name: product_version(name) for name in PRODUCTS}


async def run_matrix(
    scenarios: Sequence[Scenario], targets: Sequence[str], *, certs_dir: Path | None = None, log: Any = None
) -> list[ScenarioRun]:
    """Every target's runs, ordered by scenario then by target (so lab and product sit together)."""
    from proxy_lab.netns import require_root
    from proxy_lab.runner import run_scenarios
    from proxy_lab.runs import ScenarioRun
    from proxy_lab.targets.real import installed

    by_target: dict[str, list[ScenarioRun]] = {}
    for target in targets:
        todo = plan(scenarios, target)
        if not todo:
            continue
        if target != "lab":
            if not installed(target):
                by_target[target] = _skipped(todo, target, f"{target} is not installed")
                continue
            try:
                require_root()
            except SetupError as exc:
                by_target[target] = _skipped(todo, target, str(exc))
                continue
        if log is not None:
            print(f"matrix: {target}: {len(todo)} scenario(s)", file=log, flush=True)
        try:
            by_target[target] = await run_scenarios(todo, target=target, certs_dir=certs_dir)
        except SetupError as exc:
            from proxy_lab.runs import ScenarioRun

            by_target[target] = [ScenarioRun(s, target, setup_error=str(exc)) for s in todo]
    order = {s.id: i for i, s in enumerate(scenarios)}
    runs = [r for t in targets for r in by_target.get(t, [])]
    return sorted(runs, key=lambda r: (order[r.scenario.id], TARGETS.index(r.target) if r.target in TARGETS else 99))


def header(now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    parts = ", ".join(f"{name} {v}" for name, v in versions().items())
    return f"proxy-lab matrix, {now:%Y-%m-%d}: {parts}"


def matrix_table(runs: Sequence[ScenarioRun], title: str = "") -> Any:
    """Scenario and target as two columns, then one column per service (the report's cells)."""
    from rich.table import Table
    from rich.text import Text

    from proxy_lab.report.cells import SHORT, cell, services_of
    from proxy_lab.report.terminal import RUN_STATUS, STYLE, TERSE

    services = services_of(runs)
    table = Table(title=title or "proxy-lab matrix: what the meter saw, per target and service", title_justify="left")
    table.add_column("scenario", style="bold", no_wrap=True)
    table.add_column("target", no_wrap=True)
    for s in services:
        table.add_column(SHORT.get(s, s), no_wrap=True, justify="center")
    table.add_column("expectation", no_wrap=True)
    previous = None
    for run in runs:
        row: list[Text] = []
        for s in services:
            c = cell(run, s)
            if run.setup_error:
                row.append(Text("setup", style="bold yellow"))
            elif run.skipped:
                row.append(Text("skip", style="dim"))
            elif c is None or (c.status == "not_expected" and c.observed is None):
                row.append(Text("·", style="dim"))
            elif c.observed is None:
                row.append(Text("! none", style="bold white on red"))
            elif c.unexpected:
                row.append(Text(f"! {c.observed.symbol} {TERSE[c.observed]}", style="bold white on red"))
            else:
                row.append(Text(f"{c.observed.symbol} {TERSE[c.observed]}", style=STYLE[c.observed]))
        name = run.scenario.id if run.scenario.id != previous else ""
        previous = run.scenario.id
        table.add_row(name, run.target, *row, RUN_STATUS.get(run.status, Text(run.status)))
    return table


def print_matrix(runs: Sequence[ScenarioRun], console: Any, head: str) -> None:
    """The header, the table, the legend, then skipped runs and the findings of runs not met."""
    from rich.text import Text

    from proxy_lab.report.terminal import findings, legend, setup_section

    console.print(head, highlight=False)
    console.print(matrix_table(runs))
    console.print(legend())
    if setup := setup_section(runs):
        console.print(Text("\nSkipped runs and setup failures (not outcomes)", style="bold underline"))
        for line in setup:
            console.print(line)
    not_met = [r for r in runs if r.status == "not_met"]
    if not_met:
        console.print(Text("\nRuns that did not meet their expectation", style="bold underline"))
        for line in findings(not_met):
            console.print(line)
    counts = {k: sum(r.status == k for r in runs) for k in ("met", "not_met", "skipped", "setup_error")}
    ok = counts["not_met"] == 0 and counts["setup_error"] == 0
    console.print(
        Text(
            f"\n{counts['met']} of {len(runs)} runs met their expectation; {counts['skipped']} skipped with a reason; "
            f"{counts['not_met']} not met; {counts['setup_error']} could not be set up",
            style="bold green" if ok else "bold red",
        )
    )


def cmd_matrix(args: argparse.Namespace) -> int:
    from proxy_lab.report import render

    scenarios = load_matrix_scenarios(args.scenarios or default_scenarios_dir(), args.only)
    targets = args.target or list(TARGETS)
    runs = asyncio.run(run_matrix(scenarios, targets, certs_dir=certs_dir_of(args), log=sys.stderr))
    head = header()
    if args.format == "terminal":
        from rich.console import Console

        if args.output:
            console = Console(record=True, width=220, force_terminal=False, file=io.StringIO())
            print_matrix(runs, console, head)
            Path(args.output).write_text(console.export_text(), encoding="utf-8")
            print(f"wrote {args.output} (terminal)", file=sys.stderr)
        else:
            # a pipe or a file gets the full width too: the table is ~190 columns
            print_matrix(runs, Console(width=None if sys.stdout.isatty() else 220), head)
    else:
        text = render(runs, args.format)
        if args.format == "markdown":
            text = f"{head}\n\n{text}"
        write_output(text, args.output, f"({args.format})")
    ok = all(r.status == "met" or (r.status == "skipped" and r.skipped) for r in runs)
    return EXIT_OK if ok else EXIT_NOT_MET
