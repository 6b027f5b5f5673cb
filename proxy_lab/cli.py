"""The `proxy-lab` command line: certs, proxy and faults here, every other command a module of its own.

`main(argv) -> int` so tests call it directly. A command is a module with `add_parser(sub)`, which
adds its subparser and sets `handler`; `COMMAND_MODULES` lists them, so adding a command is adding
its module there. What commands share (exit codes, formats, argument types, report output) is in
`proxy_lab.cliargs`. Exit codes for every command: 0 every expectation met (or the command
succeeded), 1 some expectation not met, 2 usage or configuration error, with the reason on stderr
in one line.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from proxy_lab import check, export, lint, matrix, observe, run_command
from proxy_lab.cliargs import (
    EXIT_NOT_MET,
    EXIT_OK,
    EXIT_USAGE,
    FORMATS,
    certs_dir,
    parse_fault,
    parse_listen,
    parse_user,
)
from proxy_lab.errors import ConfigError
from proxy_lab.serve import command as serve_command

__all__ = ["COMMAND_MODULES", "EXIT_NOT_MET", "EXIT_OK", "EXIT_USAGE", "FORMATS", "build_parser", "main", "parse_fault"]

# Every command that is a module of its own: each has add_parser(sub), which sets its handler.
COMMAND_MODULES = (run_command, check, lint, matrix, export, serve_command, observe)


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
    p.add_argument("--record-max-bytes", type=int, default=None, metavar="N",
                   help="rotate the record to PATH.1 before it passes N bytes (default 64 MiB)")  # fmt: skip
    p.add_argument("--record-anonymise", action="store_true",
                   help="record client addresses as pseudonyms (stable for this run only)")  # fmt: skip

    sub.add_parser("faults", help="list every fault with its description and settings")
    for module in COMMAND_MODULES:
        module.add_parser(sub)
    return parser


def cmd_certs(args: argparse.Namespace) -> int:
    from proxy_lab.pki import PKI

    pki = PKI(certs_dir(args))
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
    from proxy_lab.record import DEFAULT_MAX_BYTES, Recorder
    from proxy_lab.resolver import SystemResolver

    faults = [make_fault(name, settings) for name, settings in args.fault]
    upstream = UpstreamProxy.parse(args.upstream) if args.upstream else None
    if args.record is None and (args.record_anonymise or args.record_max_bytes is not None):
        raise ConfigError("--record-max-bytes and --record-anonymise need --record PATH")
    if args.record is not None and args.workers > 1:
        raise ConfigError(
            f"--workers {args.workers} with --record: the record has one writer, so the recording proxy "
            "runs as one process; leave --workers out"
        )
    recorder = None
    if args.record is not None:
        max_bytes = DEFAULT_MAX_BYTES if args.record_max_bytes is None else args.record_max_bytes
        recorder = Recorder(args.record, max_bytes, args.record_anonymise, upstream)
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
        plain_path=True,  # a proxy for real clients: plain tunnels on the fast relay
        upstream=upstream,
        watcher=recorder,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        config.check_exposure()
        if upstream is not None:
            logging.getLogger("proxy_lab.proxy").info("chained to %s", upstream)  # str() hides the password
        return run_proxy(config, SystemResolver())
    finally:
        if recorder is not None:
            recorder.close()


def cmd_faults(args: argparse.Namespace) -> int:
    from proxy_lab.firewall import FIREWALL_FAULTS
    from proxy_lab.proxy.faults import describe_faults

    print("Lab proxy faults (proxy-lab proxy / check --lab / serve / scenarios: --fault NAME[:key=value,...])\n")
    for name, doc, settings in describe_faults():
        print(f"{name}\n    {doc}")
        for setting in settings:
            key, typ, default, helptext = setting
            print(f"    {key:<22} {typ:<12} default {default!r:<16} {helptext}")
        print()
    print("Lab firewall faults (no proxy: proxy-lab check --lab --direct --fault NAME[:key=value,...])\n")
    for name, (defaults, doc) in FIREWALL_FAULTS.items():
        print(f"{name}\n    {doc}")
        for key, default in defaults.items():
            print(f"    {key:<22} {type(default).__name__:<12} default {default!r}")
        print()
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "certs": cmd_certs,
    "proxy": cmd_proxy,
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
