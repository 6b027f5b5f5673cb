"""dns_fail: the proxy cannot resolve the target (Squid 503 ERR_DNS_FAIL, or nginx proxy_connect 502)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.proxy.faults.base import Ctx, Fault, Refuse, ResolveNext, doc
from proxy_lab.proxy.responses import nginx_error, squid_dns_fail
from proxy_lab.resolver import Address


@dataclass(kw_only=True)
class DnsFail(Fault, name="dns_fail"):
    """Fails name resolution for the hosts in scope and answers as Squid (503) or nginx (502) does."""

    style: Literal["squid", "nginx"] = field(
        default="squid",
        metadata=doc(
            "'squid': 503 + X-Squid-Error: ERR_DNS_FAIL 0; 'nginx': 502 Bad Gateway (proxy_connect issue #137)"
        ),
    )
    delay_ms: int = field(
        default=0, metadata=doc("wait before failing, as a resolver timing out (Squid dns_timeout)", "ms")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.delay_ms <= 120_000:
            raise ValueError(f"delay_ms: {self.delay_ms} outside 0-120000")

    async def resolve(self, ctx: Ctx, host: str, port: int, next: ResolveNext) -> list[Address]:
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        why = f"dns_fail: {host} does not resolve ({self.style} style)"
        if self.style == "nginx":
            raise Refuse(nginx_error(502, why=why))
        raise Refuse(
            squid_dns_fail(ctx.authority, host, "Name Error: The domain name does not exist.", why=why)
        )
