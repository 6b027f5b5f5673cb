"""What the commands of `proxy-lab` share: exit codes, report formats, argument types and output.

Each command is a module with `add_parser(sub)` (listed in `proxy_lab.cli`); they take their common
options and helpers from here, so no command module imports the CLI itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy_lab.errors import ConfigError

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun

# Exit codes for every command: 0 every expectation met (or the command succeeded), 1 some
# expectation not met, 2 usage or configuration error, with the reason on stderr in one line.
EXIT_OK, EXIT_NOT_MET, EXIT_USAGE = 0, 1, 2
FORMATS = ("terminal", "json", "junit", "markdown", "html")


def default_scenarios_dir() -> Path:
    here = Path("scenarios")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "scenarios"


def certs_dir(args: argparse.Namespace) -> Path:
    return Path(args.certs) if args.certs else Path(os.environ.get("PROXY_LAB_CERTS", "certs"))


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:3128")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_user(value: str) -> tuple[str, str]:
    name, sep, password = value.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--user {value!r}: expected NAME:PASSWORD")
    return name, password


def parse_fault(value: str) -> tuple[str, dict[str, Any]]:
    """`name` or `name:key=value,key=value` (values parsed as TOML scalars or lists)."""
    import tomllib

    name, _, rest = value.partition(":")
    settings: dict[str, Any] = {}
    for item in filter(None, _split_top_level(rest)):
        key, sep, raw = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--fault {value!r}: expected NAME[:key=value,...]")
        try:
            settings[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            settings[key.strip()] = raw
    return name.strip(), settings


def _split_top_level(text: str) -> list[str]:
    """Split `a=1,b=[1,2],c="x,y"` on the commas outside brackets and quotes."""
    items, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch in ",;" and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [i.strip() for i in items]


def add_output_options(p: argparse.ArgumentParser, *, verbose: bool = True) -> None:
    p.add_argument("--format", choices=FORMATS, default="terminal", help="output format (default: terminal)")
    p.add_argument("--output", "-o", metavar="PATH", help="write the report here instead of stdout")
    if verbose:
        p.add_argument("--verbose", "-v", action="store_true", help="print each wire exchange as it happens")


def emit(runs: Sequence[ScenarioRun], args: argparse.Namespace) -> None:
    """The runs' report in `args.format`, to `args.output` or stdout (the terminal one in colour)."""
    from proxy_lab.report import render

    if args.format == "terminal" and not args.output:
        from proxy_lab.report.terminal import print_runs

        print_runs(runs)
        return
    write_output(render(runs, args.format), args.output, f"({args.format})")


def write_output(text: str, output: str | None, note: str) -> None:
    """`text` to the file `output` (saying so on stderr, with `note`), or to stdout without one.
    A file that cannot be written is a ConfigError naming it (exit 2, one line)."""
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--output {output!r}: cannot write: {exc.strerror or exc}") from exc
        print(f"wrote {output} {note}", file=sys.stderr)
    else:
        sys.stdout.write(text)
