"""The `proxy-lab` command line: certs, proxy, demo, run, faults (and check, lint, matrix where installed).

`main(argv) -> int` so tests call it directly. Exit codes for every command: 0 every expectation
met (or the command succeeded), 1 some expectation not met, 2 usage or configuration error, with
the reason on stderr in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from proxy_lab.errors import ConfigError

EXIT_OK, EXIT_NOT_MET, EXIT_USAGE = 0, 1, 2
FORMATS = ("terminal", "json", "junit", "markdown", "html")


def default_scenarios_dir() -> Path:
    here = Path("scenarios")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "scenarios"


def _certs_dir(args: argparse.Namespace) -> Path:
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


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="terminal", help="output format (default: terminal)")
    p.add_argument("--output", "-o", metavar="PATH", help="write the report here instead of stdout")
    p.add_argument("--verbose", "-v", action="store_true", help="print each wire exchange as it happens")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proxy-lab",
        description="Will a SendPro C / SendPro+ postage meter's traffic survive this proxy, and if not, why?",
    )
    parser.add_argument("--certs", metavar="DIR", help="certificate directory (default: ./certs or $PROXY_LAB_CERTS)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("certs", help="write the lab PB root, the corporate inspection CA and the signing key under certs/")

    p = sub.add_parser("proxy", help="run the lab proxy in the foreground (system resolver) for curl, a browser or a meter")
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 3128), metavar="HOST:PORT")
    p.add_argument("--user", type=parse_user, action="append", default=[], metavar="NAME:PASSWORD",
                   help="require Basic proxy authentication; repeat for several users")  # fmt: skip
    p.add_argument("--realm", default="proxy-lab")
    p.add_argument("--username-case-insensitive", action="store_true", help="match user names regardless of case")
    p.add_argument("--fault", type=parse_fault, action="append", default=[], metavar="NAME[:key=value,...]",
                   help="enable a fault (see `proxy-lab faults`)")  # fmt: skip
    p.add_argument("--allow-open", action="store_true", help="allow a non-loopback listen address without --user")
    p.add_argument("--max-connections", type=int, default=4096)
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="worker processes sharing the listener (0: one per core, at most 4, when no fault is set)")  # fmt: skip
    p.add_argument("--no-defer-accept", action="store_true",
                   help="accept connections at once, not when their first bytes arrive (TCP_DEFER_ACCEPT), so "
                        "silent clients count against --max-connections at once")  # fmt: skip
    p.add_argument("--no-cpu-affinity", action="store_true",
                   help="let worker processes run on any CPU, and spread connections over them by hash "
                        "(default: a CPU per worker, and each new connection to the worker on its CPU "
                        "while the workers are lightly loaded)")  # fmt: skip
    p.add_argument("--upstream", metavar="URL",
                   help="send every CONNECT on through this HTTP proxy, http://[user:pass@]host:port "
                        "(the corporate proxy); its refusals reach the client as they came")  # fmt: skip
    p.add_argument("--record", type=Path, metavar="PATH",
                   help="append one JSON line per tunnel to PATH, for `proxy-lab observe` (docs/observe.md)")  # fmt: skip
    p.add_argument("--record-max-bytes", type=int, default=64 * 1024 * 1024, metavar="N",
                   help="rotate the record to PATH.1 before it passes N bytes (default 64 MiB)")  # fmt: skip
    p.add_argument("--record-anonymise", action="store_true",
                   help="record client addresses as pseudonyms (stable for this run only)")  # fmt: skip

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
        p.add_argument("--target", default="lab", help="lab (default), mitmproxy, proxypy, squid, tinyproxy, or a proxy URL")
        _add_output_options(p)

    sub.add_parser("faults", help="list every fault with its description and settings")
    for extra in _extra_commands():
        extra(sub)
    return parser


def _extra_commands() -> list[Callable[[Any], None]]:
    """Commands contributed by optional modules (check, lint, matrix)."""
    found = []
    for module in ("proxy_lab.check", "proxy_lab.lint", "proxy_lab.matrix", "proxy_lab.observe"):
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ImportError:
            continue
        found.append(mod.add_parser)
    return found


def cmd_certs(args: argparse.Namespace) -> int:
    from proxy_lab.pki import PKI

    pki = PKI(_certs_dir(args))
    written = pki.ensure()
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"certificates already present under {pki.dir}")
    print(f"lab PB root: {pki.pb_root.cert}\ncorporate inspection CA: {pki.corp_ca.cert} (lab only: never install it)")
    return EXIT_OK


def cmd_proxy(args: argparse.Namespace) -> int:
    from proxy_lab.proxy import ProxyConfig, make_fault, run_proxy
    from proxy_lab.proxy.chain import UpstreamProxy
    from proxy_lab.record import Recorder
    from proxy_lab.resolver import SystemResolver

    faults = [make_fault(name, settings) for name, settings in args.fault]
    upstream = UpstreamProxy.parse(args.upstream) if args.upstream else None
    if args.record is None and (args.record_anonymise or args.record_max_bytes != 64 * 1024 * 1024):
        raise ConfigError("--record-max-bytes and --record-anonymise need --record PATH")
    recorder = Recorder(args.record, args.record_max_bytes, args.record_anonymise, upstream) if args.record else None
    config = ProxyConfig(
        listen=args.listen,
        users=dict(args.user),
        realm=args.realm,
        username_case_sensitive=not args.username_case_insensitive,
        faults=faults,
        allow_open=args.allow_open,
        max_connections=args.max_connections,
        workers=args.workers,
        defer_accept=not args.no_defer_accept,
        cpu_affinity=not args.no_cpu_affinity,
        upstream=upstream,
        watcher=recorder,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    config.check_exposure()
    if upstream is not None:
        logging.getLogger("proxy_lab.proxy").info("chained to %s", upstream)  # str() hides the password
    try:
        return run_proxy(config, SystemResolver())
    finally:
        if recorder is not None:
            recorder.close()


def cmd_faults(args: argparse.Namespace) -> int:
    from proxy_lab.proxy.faults import describe_faults

    for name, doc, settings in describe_faults():
        print(f"{name}\n    {doc}")
        for setting in settings:
            key, typ, default, helptext = setting
            print(f"    {key:<22} {typ:<12} default {default!r:<16} {helptext}")
        print()
    return EXIT_OK


def _emit(runs: Sequence[Any], args: argparse.Namespace) -> None:
    from proxy_lab.report import render

    if args.format == "terminal" and not args.output:
        from proxy_lab.report.terminal import print_runs

        print_runs(runs)
        return
    text = render(runs, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({args.format})", file=sys.stderr)
    else:
        sys.stdout.write(text)


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from proxy_lab.runner import run_scenarios
    from proxy_lab.scenarios import load_scenarios
    from proxy_lab.targets import SetupError

    paths = args.paths if args.command == "run" else [args.scenarios or default_scenarios_dir()]
    scenarios = load_scenarios(paths, only=args.only or None)
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
                run_scenarios(scenarios, target=args.target, certs_dir=_certs_dir(args), on_progress=on_progress, on_event=on_event)
            )
        except SetupError as exc:
            print(f"proxy-lab: setup failure: {exc}", file=sys.stderr)
            return EXIT_USAGE
    _emit(runs, args)
    if any(r.setup_error for r in runs):
        return EXIT_NOT_MET
    return EXIT_OK if all(r.status in ("met", "skipped") for r in runs) else EXIT_NOT_MET


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "certs": cmd_certs,
    "proxy": cmd_proxy,
    "demo": cmd_run,
    "run": cmd_run,
    "faults": cmd_faults,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, usage errors are 2
        return int(exc.code or 0)
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"proxy-lab: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
