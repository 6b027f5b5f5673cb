"""The `url` target: an existing HTTP proxy given as a URL; nothing is started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from proxy_lab.errors import ConfigError
from proxy_lab.targets.base import ProxyEndpoint

if TYPE_CHECKING:
    from proxy_lab.lab import Lab
    from proxy_lab.scenarios import Scenario


def parse_proxy_url(url: str) -> tuple[str, int, str | None, str | None]:
    """`http://[user:pass@]host:port` -> (host, port, user, password); other schemes are refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"proxy URL {url!r} is malformed: {exc}") from exc
    if parts.scheme.startswith("socks"):
        raise ConfigError(
            f"proxy URL {url!r} is a SOCKS proxy: the meter supports HTTP CONNECT only (guide, Proxy: "
            "'Socket Secure (SOCKS) protocol is not supported')"
        )
    if parts.scheme != "http":
        raise ConfigError(f"proxy URL {url!r}: expected http://[user:pass@]host:port")
    if not parts.hostname or port is None:
        raise ConfigError(f"proxy URL {url!r}: expected http://[user:pass@]host:port with a host and a port")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts.hostname, port, user, password


class UrlTarget:
    name = "url"
    needs_namespace = False  # the proxy is the site's own: it resolves names as it does in the field

    def __init__(self, url: str) -> None:
        self.host, self.port, _, _ = parse_proxy_url(url)

    def skip_reason(self, scenario: Scenario) -> str | None:
        return None

    @asynccontextmanager
    async def proxy_for(self, scenario: Scenario, lab: Lab) -> AsyncIterator[ProxyEndpoint]:
        yield ProxyEndpoint(self.host, self.port, f"existing proxy {self.host}:{self.port}")
