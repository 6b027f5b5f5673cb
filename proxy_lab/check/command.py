"""`proxy-lab check`: its options, and the command that probes, prints and sets the exit code."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from proxy_lab.catalog import MODELS, load_catalog
from proxy_lab.check.direct import add_direct_options, cmd_check_direct, wants_direct_command
from proxy_lab.check.probe import run_check
from proxy_lab.check.product import add_product_options, cmd_product, product_requested
from proxy_lab.check.render import render
from proxy_lab.cliargs import EXIT_USAGE, parse_fault, write_output
from proxy_lab.errors import ConfigError, SetupError
from proxy_lab.resolver import Address, is_ip


def _dns_server_arg(value: str) -> Address:
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "53")
    if not is_ip(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--dns-server {value!r}: expected IP[:PORT]")
    return host, int(port)


def _resolve_arg(value: str) -> tuple[str, str]:
    host, sep, ip = value.partition("=")
    if not sep or not host or not is_ip(ip):
        raise argparse.ArgumentTypeError(f"--resolve {value!r}: expected HOST=IP")
    return host, ip


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check",
        help="probe a real proxy with the meter's traffic profile and say what it breaks",
        description=(
            "Replay the SendPro traffic profile through your proxy toward the guide's real hosts. "
            "Example: proxy-lab check --proxy http://meter:secret@10.0.0.5:8080 --model sendpro-plus. "
            "Read the result per service (required/recommended), then the findings: each names what the "
            "proxy did and what to change. Exit 0 only when the meter will work. "
            "Without a corporate network: proxy-lab check --lab --fault allow_ports:preset=ssl_ports_only"
        ),
    )
    p.add_argument("--proxy", metavar="URL", help="http://[user:pass@]host:port of the proxy to check")
    p.add_argument("--model", choices=MODELS, default="sendpro-plus")
    p.add_argument("--trust", default=None, metavar="public|lab|FILE",
                   help="CA roots the TLS chains are verified against (default: public, or lab with --lab)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds per connect and per read")
    p.add_argument("--concurrency", type=int, default=16, metavar="N", help="probes in flight at once")
    p.add_argument("--lab", action="store_true", help="check the lab proxy (cloud hosts on loopback) instead")
    p.add_argument("--fault", type=parse_fault, action="append", default=[], metavar="NAME[:key=value,...]",
                   help="with --lab: a fault for the lab proxy (see `proxy-lab faults`)")  # fmt: skip
    p.add_argument("--resolve", type=_resolve_arg, action="append", default=[], metavar="HOST=IP",
                   help="use IP for HOST when the meter itself resolves it (the proxy's name)")  # fmt: skip
    p.add_argument("--dns-server", type=_dns_server_arg, default=None, metavar="IP[:PORT]",
                   help="send the meter's direct DNS probes here instead of 8.8.8.8:53")  # fmt: skip
    p.add_argument("--bandwidth-url", metavar="URL", help="a large file to download through the proxy to measure bandwidth")
    add_direct_options(p)
    p.add_argument("--format", choices=("terminal", "json", "markdown"), default="terminal")
    p.add_argument("--output", "-o", metavar="PATH")
    add_product_options(p)
    p.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from proxy_lab.targets.url import parse_proxy_url

    if product_requested(args):
        return cmd_product(args)
    if wants_direct_command(args):
        return cmd_check_direct(args)
    if not args.lab and not args.proxy:
        raise ConfigError("check: give --proxy http://[user:pass@]host:port (or --lab to try the lab)")
    if args.fault and not args.lab:
        raise ConfigError("check: --fault applies to the lab proxy only; add --lab")
    if args.proxy:
        parse_proxy_url(args.proxy)  # malformed or SOCKS: one line, exit 2
    if args.timeout <= 0 or args.concurrency < 1:
        raise ConfigError("check: --timeout must be > 0 and --concurrency >= 1")
    trust = args.trust or ("lab" if args.lab else "public")
    certs = Path(args.certs) if getattr(args, "certs", None) else None
    console = Console(stderr=True)
    progress = Progress(TextColumn("probing"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        console=console, transient=True, disable=not console.is_terminal)  # fmt: skip
    total = len(load_catalog().endpoints(args.model))
    with progress:
        task = progress.add_task("probes", total=total)
        try:
            report = asyncio.run(
                run_check(
                    proxy_url=args.proxy, model=args.model, trust=trust, timeout_s=args.timeout,
                    concurrency=args.concurrency, lab_faults=args.fault if args.lab else None,
                    resolve=dict(args.resolve), certs_dir=certs, bandwidth_url=args.bandwidth_url,
                    on_progress=lambda _r: progress.advance(task), dns_server=args.dns_server,
                )
            )  # fmt: skip
        except SetupError as exc:
            print(f"proxy-lab: setup failure: {exc}", file=sys.stderr)
            return EXIT_USAGE
    write_output(render(report, args.format), args.output, f"(verdict: {report.verdict})")
    return report.exit_code
