"""`proxy-lab check --direct`, `--hold` and `--upload-url`: the meter without a proxy, held sessions,
and the upload half of the bandwidth.

Owns the options these add to `check` (`add_direct_options`), the command that runs them
(`cmd_check_direct`); the firewall diagnosis of a direct check is `proxy_lab.check.firewall_causes`.
In the field `--direct` probes the guide's real hosts from this machine; `--lab --direct`
probes the lab cloud through the lab firewall (`proxy_lab.firewall`), whose rules are `--fault`s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

MAX_HOLD_S = 86_400.0


# -- the options and the command ----------------------------------------------------------------


def _seconds(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hold {value!r}: expected seconds, e.g. 300") from None
    if not 0 <= s <= MAX_HOLD_S:
        raise argparse.ArgumentTypeError(f"--hold {value!r}: expected 0..{MAX_HOLD_S:g} seconds")
    return s


def _bytes(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) <= 64 * 1024 * 1024:
        raise argparse.ArgumentTypeError(f"--upload-bytes {value!r}: expected 1..67108864 bytes")
    return int(value)


def add_direct_options(p: argparse.ArgumentParser) -> None:
    """`--direct`, `--hold SECONDS`, `--upload-url URL` and `--upload-bytes N` of `proxy-lab check`."""
    p.add_argument("--direct", action="store_true",
                   help="check without a proxy, as a meter on a firewall-only site: every endpoint directly "
                        "(with --lab: through the lab firewall, whose rules are --fault drop_ports, "
                        "reset_ports, dns_tcp, dns_udp)")  # fmt: skip
    p.add_argument("--hold", type=_seconds, default=None, metavar="SECONDS",
                   help="hold the 5938 and 5228 sessions open and quiet this long, then exchange their "
                        "keep-alive (finds idle timeouts of minutes; default 0.5 s for 5938, none for 5228)")  # fmt: skip
    p.add_argument("--upload-url", metavar="URL",
                   help="time an upload: POST --upload-bytes to this URL (field only; the lab has its own sink)")  # fmt: skip
    p.add_argument("--upload-bytes", type=_bytes, default=256 * 1024, metavar="N",
                   help="bytes POSTed to --upload-url (default 262144)")  # fmt: skip


def cmd_check_direct(args: argparse.Namespace) -> int:
    """`proxy-lab check` through a proxy, directly or on the lab (with `--hold`, `--upload-url`): probe, print, set the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from proxy_lab.catalog import load_catalog
    from proxy_lab.check.probe import run_check
    from proxy_lab.check.render import render
    from proxy_lab.cliargs import EXIT_USAGE, write_output
    from proxy_lab.errors import ConfigError, SetupError
    from proxy_lab.targets.url import parse_proxy_url

    if args.direct and args.proxy and not args.lab:
        raise ConfigError("check: --direct checks without a proxy; drop --proxy (or drop --direct)")
    if not args.direct and not args.lab and not args.proxy:
        raise ConfigError("check: give --proxy http://[user:pass@]host:port, --direct (no proxy), or --lab")
    if args.fault and not args.lab:
        raise ConfigError("check: --fault applies to the lab only (the lab proxy, or with --direct the lab firewall); add --lab")
    if args.upload_url and args.lab:
        raise ConfigError("check: --upload-url is for the field; the lab times its upload on the cloud's own sink")
    if args.proxy and not args.direct:
        parse_proxy_url(args.proxy)
    if args.timeout <= 0 or args.concurrency < 1:
        raise ConfigError("check: --timeout must be > 0 and --concurrency >= 1")
    trust = args.trust or ("lab" if args.lab else "public")
    certs = Path(args.certs) if getattr(args, "certs", None) else None
    console = Console(stderr=True)
    progress = Progress(TextColumn("probing"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        console=console, transient=True, disable=not console.is_terminal)  # fmt: skip
    with progress:
        task = progress.add_task("probes", total=len(load_catalog().endpoints(args.model)))
        try:
            report = asyncio.run(
                run_check(
                    proxy_url=args.proxy, model=args.model, trust=trust, timeout_s=args.timeout,
                    concurrency=args.concurrency, lab_faults=args.fault if args.lab else None,
                    resolve=dict(args.resolve), certs_dir=certs, bandwidth_url=args.bandwidth_url,
                    on_progress=lambda _r: progress.advance(task), dns_server=args.dns_server,
                    direct=args.direct, hold_s=args.hold, upload_url=args.upload_url,
                    **({"upload_bytes": args.upload_bytes} if args.upload_url else {}),
                )
            )  # fmt: skip
        except SetupError as exc:
            print(f"proxy-lab: setup failure: {exc}", file=sys.stderr)
            return EXIT_USAGE
    write_output(render(report, args.format), args.output, f"(verdict: {report.verdict})")
    return report.exit_code
