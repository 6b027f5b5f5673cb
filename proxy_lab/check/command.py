"""`proxy-lab check`: its options, and the command that probes, prints and sets the exit code."""

from __future__ import annotations

import argparse

from proxy_lab.catalog import MODELS
from proxy_lab.check.direct import add_direct_options, cmd_check_direct
from proxy_lab.check.product import add_product_options, cmd_product, product_requested
from proxy_lab.cliargs import parse_fault
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
    p.add_argument("--format", choices=("terminal", "json", "markdown", "junit"), default="terminal",
                   help="junit: one testcase per service and per finding, for CI")  # fmt: skip
    p.add_argument("--output", "-o", metavar="PATH")
    add_product_options(p)
    p.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """`proxy-lab check`: a user's product config in a lab namespace, or the meter's probes through a
    proxy, directly, or against the lab (`cmd_check_direct` handles every mode but the product)."""
    if product_requested(args):
        return cmd_product(args)
    return cmd_check_direct(args)
