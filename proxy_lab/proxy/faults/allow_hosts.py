"""allow_hosts: a URL filter's allow list; every other CONNECT target gets a 403 block page."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, Fault, doc
from proxy_lab.proxy.responses import web_filter_block


@dataclass(kw_only=True)
class AllowHosts(Fault, name="allow_hosts"):
    """Lets CONNECT reach only hosts matching a pattern; others get a web filter's 403 block page."""

    patterns: list[str] = field(
        default_factory=list, metadata=doc("fnmatch patterns of allowed hosts (e.g. '*.pb.com')")
    )
    category: str = field(default="Uncategorized", metadata=doc("category named on the block page"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.patterns:
            raise ValueError(
                "patterns: give at least one allowed host pattern (an empty allow list blocks all)"
            )

    async def on_connect(self, ctx: Ctx) -> Refusal | None:
        host = ctx.host.lower()
        if any(fnmatch.fnmatchcase(host, p.lower()) for p in self.patterns):
            return None
        return web_filter_block(
            ctx.authority,
            self.category,
            policy="not on the allow list",
            why=f"allow_hosts: {host} matches none of {self.patterns} (category {self.category})",
        )
