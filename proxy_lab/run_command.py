"""`proxy-lab demo` and `proxy-lab run`: scenarios against a target, reported in one of the formats.

`demo` runs every scenario under scenarios/ on the lab; `run PATH...` the given files or
directories. Both take `--only ID` and `--tag TAG` (repeatable) to choose scenarios, `--target`
(lab, a real product, or a proxy URL) and the report options. Exit 0 when every run met its
expectation or was skipped with a reason, 1 otherwise, 2 for bad input or a lab that cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from proxy_lab.cliargs import (
    EXIT_NOT_MET,
    EXIT_OK,
    EXIT_USAGE,
    add_output_options,
    certs_dir,
    default_scenarios_dir,
    emit,
)
from proxy_lab.errors import ConfigError, SetupError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, helptext in (
        ("demo", "run every scenario under scenarios/ on loopback and show the matrix"),
        ("run", "run the given scenario files or directories"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "run":
            p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        else:
            p.add_argument("--scenarios", type=Path, default=None, metavar="DIR")
        p.add_argument("--only", action="append", default=[], metavar="ID", help="run only this scenario id (repeatable)")
        p.add_argument("--tag", action="append", default=[], metavar="TAG",
                       help="run only the scenarios with this tag (repeatable: any of them)")  # fmt: skip
        p.add_argument("--target", default="lab", help="lab (default), mitmproxy, proxypy, squid, tinyproxy, or a proxy URL")
        p.add_argument("--config", metavar="FILE",
                       help="with --target squid|tinyproxy: run your own squid.conf / tinyproxy.conf instead of the scenarios' proxy settings")  # fmt: skip
        add_output_options(p)
        p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from proxy_lab.runner import run_scenarios
    from proxy_lab.scenarios import load_scenarios

    if args.config:
        from proxy_lab.targets.real import use_config

        use_config(args.target, args.config)
    paths = args.paths if args.command == "run" else [args.scenarios or default_scenarios_dir()]
    scenarios = load_scenarios(paths, only=args.only or None, tags=args.tag or None)
    if not scenarios:
        raise ConfigError(f"no scenario files found in {', '.join(map(str, paths))}")
    console = Console(stderr=True)
    on_event = None
    if args.verbose:
        def on_event(line: str) -> None:
            console.print(line, markup=False, highlight=False)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=True, disable=args.verbose or not console.is_terminal,
    )  # fmt: skip
    with progress:
        task = progress.add_task("scenarios", total=len(scenarios))

        def on_progress(stage: str, scenario: Any, run: Any) -> None:
            if stage == "start":
                progress.update(task, description=f"running {scenario.id}")
            else:
                progress.advance(task)

        try:
            runs = asyncio.run(
                run_scenarios(scenarios, target=args.target, certs_dir=certs_dir(args), on_progress=on_progress, on_event=on_event)
            )
        except SetupError as exc:
            print(f"proxy-lab: setup failure: {exc}", file=sys.stderr)
            return EXIT_USAGE
    emit(runs, args)
    if any(r.setup_error for r in runs):
        return EXIT_NOT_MET
    return EXIT_OK if all(r.status in ("met", "skipped") for r in runs) else EXIT_NOT_MET
