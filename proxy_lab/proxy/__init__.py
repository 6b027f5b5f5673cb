"""The lab proxy: an asyncio HTTP CONNECT proxy with Basic auth and deliberate faults.

    async with LabProxy(ProxyConfig(users={"meter": "S3cret"}, faults=[make_fault("allow_ports",
            {"preset": "ssl_ports_only"})]), MapResolver({...})) as proxy:
        ...  # point a client at proxy.url

`proxy_lab.proxy.faults` documents the fault hooks; `run_proxy` runs it for `proxy-lab proxy`.
The names below are imported on first use (PEP 562), so importing one module of the package does
not load the others, and no module of the package needs to import the package back.

The modules, each with one job: config (ProxyConfig), server (LabProxy: lifecycle and the general
request path), hooks (the faults' hook chains), upstream (resolve, loop check, one connect loop),
conn (a client connection before its tunnel), relay (the general path's tunnel), plainpath and
plaintunnel (the plain path, a switch), listener, poller and splice (what the plain path runs on),
serve (serve_forever), workers (run_proxy, one process per core), steering (CPU-local workers),
records (counters and log records), events, parse, auth, ntlm, responses, socks, shaping, deadlines,
inspection (the embedded mitmproxy of tls_inspect), faults (one fault per module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy_lab.lazy import lazy_exports

_EXPORTS = {
    "ConnectRequest": "proxy_lab.proxy.events",
    "Refusal": "proxy_lab.proxy.events",
    "FAULTS": "proxy_lab.proxy.faults",
    "Fault": "proxy_lab.proxy.faults",
    "describe_faults": "proxy_lab.proxy.faults",
    "make_fault": "proxy_lab.proxy.faults",
    "ProxyLogRecord": "proxy_lab.proxy.records",
    "ProxyStats": "proxy_lab.proxy.records",
    "ProxyConfig": "proxy_lab.proxy.config",
    "LabProxy": "proxy_lab.proxy.server",
    "serve_forever": "proxy_lab.proxy.serve",
    "run_proxy": "proxy_lab.proxy.workers",
}

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

if TYPE_CHECKING:
    from proxy_lab.proxy.config import ProxyConfig
    from proxy_lab.proxy.events import ConnectRequest, Refusal
    from proxy_lab.proxy.faults import FAULTS, Fault, describe_faults, make_fault
    from proxy_lab.proxy.records import ProxyLogRecord, ProxyStats
    from proxy_lab.proxy.serve import serve_forever
    from proxy_lab.proxy.server import LabProxy
    from proxy_lab.proxy.workers import run_proxy


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
