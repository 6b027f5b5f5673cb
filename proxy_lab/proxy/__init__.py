"""The lab proxy: an asyncio HTTP CONNECT proxy with Basic auth and deliberate faults.

    async with LabProxy(ProxyConfig(users={"meter": "S3cret"}, faults=[make_fault("allow_ports",
            {"preset": "ssl_ports_only"})]), MapResolver({...})) as proxy:
        ...  # point a client at proxy.url

`proxy_lab.proxy.faults` documents the fault hooks; `serve_forever` runs it for `proxy-lab proxy`.
"""

from __future__ import annotations

from proxy_lab.proxy.events import ConnectRequest, Refusal
from proxy_lab.proxy.faults import FAULTS, Fault, describe_faults, load_all, make_fault
from proxy_lab.proxy.records import ProxyLogRecord, ProxyStats
from proxy_lab.proxy.server import LabProxy, ProxyConfig, run_proxy, serve_forever

load_all()

__all__ = [
    "FAULTS",
    "ConnectRequest",
    "Fault",
    "LabProxy",
    "ProxyConfig",
    "ProxyLogRecord",
    "ProxyStats",
    "Refusal",
    "describe_faults",
    "make_fault",
    "run_proxy",
    "serve_forever",
]
