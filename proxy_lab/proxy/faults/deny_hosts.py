"""deny_hosts: a URL filter's deny list; matching CONNECT targets get a 403 block page."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, Fault, doc
from proxy_lab.proxy.responses import web_filter_block


@dataclass(kw_only=True)
class DenyHosts(Fault, name="deny_hosts"):
    """Blocks CONNECT to hosts matching a pattern with a web filter's 403 block page naming the category."""

    patterns: list[str] = field(
        default_factory=list, metadata=doc("fnmatch patterns of blocked hosts (e.g. '*.teamviewer.com')")
    )
    category: str = field(default="Remote Access", metadata=doc("category named on the block page"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.patterns:
            raise ValueError("patterns: give at least one host pattern to block")

    async def on_connect(self, ctx: Ctx) -> Refusal | None:
        host = ctx.host.lower()
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(host, pattern.lower()):
                return web_filter_block(
                    ctx.authority,
                    self.category,
                    policy=f"deny list: {pattern}",
                    why=f"deny_hosts: {host} matches {pattern!r} (category {self.category})",
                )
        return None
