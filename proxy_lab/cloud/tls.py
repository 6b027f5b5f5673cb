"""TLS for the cloud's single HTTPS listener: one server context per host, chosen by SNI.

A ClientHello without SNI, or naming a host the catalog does not list, is served the *default
certificate*: a PB-root-signed leaf for `unknown.lab.invalid` (RFC 6761 reserves `.invalid`), as
a web server's default virtual host does. A verifying client then fails with a hostname mismatch,
and any request sent anyway is answered 421 (see `CloudApp.handle`).

Why not the fatal `unrecognized_name` alert that RFC 6066 §3 also allows: asyncio's SSL
transport drops the alert bytes when the handshake fails (it closes without flushing), so the
client would see a bare EOF, indistinguishable from a reset. The default certificate gives a
clear, verifiable failure instead.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

from proxy_lab.pki import PKI

ALPN = ["http/1.1"]
DEFAULT_HOST = "unknown.lab.invalid"


class SniContexts:
    """Per-host server contexts, built once (`build`, blocking: call it off the event loop)."""

    def __init__(self, pki: PKI, hosts: Iterable[str]) -> None:
        self.pki = pki
        self.hosts = sorted({h.lower() for h in hosts})
        self._by_host: dict[str, ssl.SSLContext] = {}
        self._host_of: dict[int, str] = {}
        self._default: ssl.SSLContext | None = None

    def build(self) -> None:
        if self._default is None:
            ctx = self.pki.server_context(DEFAULT_HOST)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_alpn_protocols(ALPN)
            ctx.sni_callback = self._select
            self._default = ctx
        for host in self.hosts:
            if host in self._by_host:
                continue
            ctx = self.pki.server_context(host)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_alpn_protocols(ALPN)
            self._by_host[host] = ctx
            self._host_of[id(ctx)] = host

    def listener_context(self) -> ssl.SSLContext:
        """The context the listener starts with: the default certificate, and an SNI callback that
        swaps in the host's own context when the name is a catalog host."""
        if self._default is None or len(self._by_host) != len(self.hosts):
            self.build()
        assert self._default is not None
        return self._default

    def _select(
        self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        found = self._by_host.get(server_name.lower().rstrip(".")) if server_name else None
        if found is not None:
            sslobj.context = found
        # else: the handshake goes on with the default certificate (unknown.lab.invalid)

    def host_for(self, sslobj: ssl.SSLObject | None) -> str | None:
        """The catalog host whose certificate this connection was given (its SNI); None for the default."""
        if sslobj is None:
            return None
        return self._host_of.get(id(sslobj.context))
