"""`proxy-lab serve`: the served lab in the foreground until Ctrl-C or SIGTERM (then exit 0).

Registered by proxy_lab.cli next to check, lint and matrix (`add_parser(sub)`). The first line on
stdout says where everything is: `proxy http://H:P dashboard http://H:U` (scripts read it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from proxy_lab.catalog import MODELS

TOKEN_ENV = "PROXY_LAB_UI_TOKEN"


def _interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--interval {value!r}: expected seconds, e.g. 5 or 0.5") from None
    return seconds


def add_parser(sub: Any) -> None:
    from proxy_lab.cliargs import parse_fault, parse_listen, parse_user

    p = sub.add_parser(
        "serve",
        help="a live lab: cloud, lab proxy and a meter probing on an interval, with a fault API and a dashboard",
    )
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 3128), metavar="HOST:PORT",
                   help="the lab proxy's address (default 127.0.0.1:3128)")  # fmt: skip
    p.add_argument("--ui", type=parse_listen, default=("127.0.0.1", 8080), metavar="HOST:PORT",
                   help="the API and dashboard's address (default 127.0.0.1:8080)")  # fmt: skip
    p.add_argument("--model", choices=MODELS, default="sendpro-c", help="the meter's model (default sendpro-c)")
    p.add_argument("--user", type=parse_user, action="append", default=[], metavar="NAME:PASSWORD",
                   help="require Basic proxy authentication; the meter uses the first user")  # fmt: skip
    p.add_argument("--fault", type=parse_fault, action="append", default=[], metavar="NAME[:key=value,...]",
                   help="a fault in force from the start (see `proxy-lab faults`)")  # fmt: skip
    p.add_argument("--interval", type=_interval, default=5.0, metavar="SECONDS",
                   help="seconds between the meter's runs (default 5)")  # fmt: skip
    p.add_argument("--ui-token", default=None, metavar="TOKEN",
                   help=f"bearer token for every API call; required for a non-loopback --ui (or ${TOKEN_ENV})")  # fmt: skip
    p.add_argument("--allow-open", action="store_true", help="allow a non-loopback --listen without --user")
    p.add_argument("--proxy", default=None, metavar="URL",
                   help="the meter probes through this existing proxy (http://[USER:PASSWORD@]HOST:PORT) instead of the lab's")  # fmt: skip
    p.add_argument("--cloud-address", default=None, metavar="IP",
                   help="serve the cloud on the guide's real ports (443, 80, 5938, 5228) and its DNS (53) on this "
                        "address, for --proxy to reach (root for ports below 1024)")  # fmt: skip
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from proxy_lab.serve.served import ServeConfig

    certs = args.certs or os.environ.get("PROXY_LAB_CERTS") or "certs"
    config = ServeConfig(
        listen=args.listen,
        ui=args.ui,
        model=args.model,
        users=dict(args.user),
        faults=list(args.fault),
        interval_s=args.interval,
        ui_token=args.ui_token or os.environ.get(TOKEN_ENV) or None,
        allow_open=args.allow_open,
        certs_dir=Path(certs),
        proxy_url=args.proxy,
        cloud_address=args.cloud_address,
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    # The meter refusing the inspection CA is the point of the demo, not a warning (the dashboard shows it).
    logging.getLogger("mitmproxy").setLevel(logging.ERROR)
    return asyncio.run(_serve(config))


async def _serve(config: Any) -> int:
    from proxy_lab.serve.served import ServedLab

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # first, so a signal during start-up is not lost
        loop.add_signal_handler(sig, stop.set)
    served = ServedLab(config)
    try:
        await served.start()
        print(f"proxy {served.proxy_url} dashboard {served.ui_url}", flush=True)
        print(
            f"proxy-lab serve: the meter ({config.model}) probes every {config.interval_s:g} s through "
            f"{served.status()['meter']['proxy']}; lab proxy {served.proxy_url}; dashboard and API on {served.ui_url}; Ctrl-C or SIGTERM stops",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        await served.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
