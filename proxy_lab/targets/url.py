"""The `url` target: an existing HTTP proxy given as a URL; nothing is started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from proxy_lab.proxyurl import parse_proxy_url
from proxy_lab.targets.base import ProxyEndpoint, lab_only_reason

__all__ = ["UrlTarget", "parse_proxy_url"]  # parse_proxy_url: proxy_lab.proxyurl, the one parser

if TYPE_CHECKING:
    from proxy_lab.lab import Lab
    from proxy_lab.scenarios import Scenario


class UrlTarget:
    name = "url"
    needs_namespace = False  # the proxy is the site's own: it resolves names as it does in the field

    def __init__(self, url: str) -> None:
        self.host, self.port, _, _ = parse_proxy_url(url)

    def skip_reason(self, scenario: Scenario) -> str | None:
        return lab_only_reason(scenario)

    @asynccontextmanager
    async def proxy_for(self, scenario: Scenario, lab: Lab) -> AsyncIterator[ProxyEndpoint]:
        yield ProxyEndpoint(self.host, self.port, f"existing proxy {self.host}:{self.port}")
