"""The field check: replay the meter's traffic profile through a real proxy and say what it breaks.

`proxy-lab check --proxy http://[user:pass@]host:port` probes every catalog endpoint through the
proxy as the device does, diagnoses each failing service (the cause, named as the proxy feature that
produces it, and a remedy), measures bandwidth through the proxy, and gives one verdict: the meter
will work (exit 0), works with reduced support (1), or will not work (1). `--lab [--fault NAME ...]`
runs the same check against the lab (cloud hosts, lab trust), so anyone can try it without a
corporate network.

One module per job:
- `probe`: `run_check` and the probes (`FieldResolver`, `trust_context`, `field_endpoints`, `preflight`);
- `verdict`: `Finding`, `diagnose`, `specific_remedy`, `CheckReport`, `summarize`, the verdicts;
- `render`: the report as terminal text, Markdown or JSON;
- `command`: `add_parser` and the `check` command.
"""

from __future__ import annotations

from proxy_lab.check.command import add_parser, cmd_check
from proxy_lab.check.probe import run_check
from proxy_lab.check.render import render, render_markdown, render_terminal
from proxy_lab.check.verdict import (
    VERDICT_FAILS,
    VERDICT_REDUCED,
    VERDICT_WORKS,
    CheckReport,
    Finding,
    diagnose,
    specific_remedy,
    summarize,
)

__all__ = [
    "VERDICT_FAILS",
    "VERDICT_REDUCED",
    "VERDICT_WORKS",
    "CheckReport",
    "Finding",
    "add_parser",
    "cmd_check",
    "diagnose",
    "render",
    "render_markdown",
    "render_terminal",
    "run_check",
    "specific_remedy",
    "summarize",
]
