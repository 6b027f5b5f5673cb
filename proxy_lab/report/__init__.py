"""Reports: render scenario runs as terminal text, JSON, JUnit XML, Markdown or one HTML file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from proxy_lab.errors import ConfigError

if TYPE_CHECKING:
    from proxy_lab.runner import ScenarioRun


def render(runs: Sequence[ScenarioRun], fmt: str) -> str:
    if fmt == "terminal":
        from rich.console import Console

        from proxy_lab.report.terminal import print_runs

        console = Console(record=True, width=200, force_terminal=False)
        with console.capture():
            print_runs(runs, console)
        return console.export_text()
    try:
        module = __import__(f"proxy_lab.report.{fmt}_report", fromlist=["render"])
    except ImportError as exc:
        raise ConfigError(f"report format {fmt!r} is not available: {exc}") from exc
    return str(module.render(runs))
