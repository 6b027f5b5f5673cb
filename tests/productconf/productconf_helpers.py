"""Helpers of the product-config tests: Debian's stock files, real products and CONNECT on loopback."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from proxy_lab.productconf import find_product
from tests.sockkit import send_connect

DATA = Path(__file__).parent / "data"
STOCK_SQUID = DATA / "debian-squid.conf"
STOCK_TINYPROXY = DATA / "debian-tinyproxy.conf"
INSTALLED = {"squid": Path("/etc/squid/squid.conf"), "tinyproxy": Path("/etc/tinyproxy/tinyproxy.conf")}
METER = "127.20.30.40"  # the meter's source address on loopback (not 127.0.0.1, which stock files allow)


def guide_text() -> str | None:
    """The connectivity guide, when a checkout has it beside it (shared/seed)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "seed" / "sendpro-connectivity-guide.txt"
        if candidate.exists():
            return candidate.read_text("utf-8")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(product: str) -> str:
    """The product's program, or skip: real products run as root (they switch to their own account)."""
    exe = find_product(product)  # type: ignore[arg-type]
    if exe is None:
        pytest.skip(f"{product} is not installed")
    if os.geteuid() != 0:
        pytest.skip(f"{product} is started as root (it switches to its own account), as in the lab")
    return exe


def connect_via(proxy: tuple[str, int], target: str, src: str = METER, timeout_s: float = 20.0) -> tuple[str, socket.socket | None]:
    """CONNECT `target` through `proxy` from `src`: the status line, and the tunnel when it is 2xx."""
    s = socket.socket()
    s.settimeout(timeout_s)
    s.bind((src, 0))
    s.connect(proxy)
    status = send_connect(s, target)
    if " 200 " in f"{status} ":
        return status, s
    s.close()
    return status, None


