"""Reports: render scenario runs as terminal text, JSON, JUnit XML, Markdown or one HTML file.

`render(runs, fmt)` returns the whole report as text; `fmt` is one of FORMATS. Each format other
than the terminal lives in `proxy_lab.report.<fmt>_report` with `render(runs) -> str`.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from proxy_lab.errors import ConfigError

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun

__all__ = ["FORMATS", "render"]

FORMATS = ("terminal", "json", "junit", "markdown", "html")


def render(runs: Sequence[ScenarioRun], fmt: str) -> str:
    if fmt == "terminal":
        from rich.console import Console

        from proxy_lab.report.terminal import print_runs

        # Plain text for a file: no colour codes, wide enough that the matrix does not wrap.
        buffer = io.StringIO()
        console = Console(file=buffer, width=200, force_terminal=False, color_system=None, emoji=False)
        print_runs(runs, console)
        return buffer.getvalue()
    if fmt not in FORMATS:
        raise ConfigError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    try:
        module = importlib.import_module(f"proxy_lab.report.{fmt}_report")
    except ImportError as exc:
        raise ConfigError(f"report format {fmt!r} is not available: {exc}") from exc
    return str(module.render(runs))
