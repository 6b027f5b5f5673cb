"""exclusions: targets the corporate design sends DIRECT are refused by the proxy (the meter cannot bypass it)."""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, Fault, doc
from proxy_lab.proxy.responses import squid_access_denied


def _is_internal(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_link_local


@dataclass(kw_only=True)
class Exclusions(Fault, name="exclusions"):
    """Refuses with Squid's 403 the hosts a PAC file or bypass list would have sent DIRECT."""

    direct_hosts: list[str] = field(
        default_factory=list,
        metadata=doc("fnmatch patterns of hosts meant to bypass the proxy (e.g. '*.corp.example')"),
    )
    internal_addresses: bool = field(
        default=False, metadata=doc("also refuse IP-literal targets in RFC 1918 / link-local / ULA ranges")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.direct_hosts and not self.internal_addresses:
            raise ValueError("give direct_hosts or internal_addresses = true")

    async def on_connect(self, ctx: Ctx) -> Refusal | None:
        host = ctx.host.lower()
        if any(fnmatch.fnmatchcase(host, p.lower()) for p in self.direct_hosts):
            why = f"exclusions: {host} is meant to go DIRECT (bypass list), the proxy does not serve it"
        elif self.internal_addresses and _is_internal(host):
            why = f"exclusions: {host} is an internal address, reached DIRECT in this design"
        else:
            return None
        return squid_access_denied(ctx.authority, why=why)
