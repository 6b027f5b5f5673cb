"""The inspection engine's mitmproxy addons: which tunnels it serves, what it inspects, what chain it shows.

Imported only when an engine starts (it imports mitmproxy). `make_addons(tunnels, corp_ca_cert)`
gives the four addons the engine's `Master` runs: `Tunnels` pairs mitmproxy's connections with the
stages' tunnels by the token header (a CONNECT without a known token gets 403: the engine serves
only tunnels a stage opened); `LabNextLayer` is mitmproxy's layer choice plus each stage's bypass
list and raw TCP for anything not TLS; `LabTlsConfig` is mitmproxy's TLS addon, sending the
corporate CA in the chain for a stage with `send_root`; and mitmproxy's own `Proxyserver`.

What mitmproxy does with the bytes: TLS (a ClientHello) is intercepted, mitmproxy connecting
upstream first (`connection_strategy` eager) and serving a leaf for the same names signed by the
corporate CA. A host matching a stage's `bypass` (fnmatch patterns turned into `ignore_hosts`-style
regexes over `host:port`, matched against the CONNECT target and the SNI as
`NextLayer._ignore_connection` does) is spliced: relayed untouched, genuine certificate and all.
Anything that does not start like a TLS record (TeamViewer's 5938 protocol, mtalk, plain HTTP on
port 80) is relayed as raw TCP, as mitmproxy does for `tcp_hosts`; otherwise a line protocol that
looks like HTTP (`MTALK HELLO`) would be read as an HTTP request line, and mitmproxy would wait
for the rest of a head that never comes.

`send_root`: mitmproxy sends the leaf alone when its CA file holds one certificate (certs.py
`CertStore.from_files`: `chain_file = None`, and `tls_start_client` adds extra chain certificates
only for a longer chain), so a client that does not trust the CA fails with "unable to get local
issuer certificate". With `send_root` the certificate entry gets a `chain_file` (the corporate CA
certificate), the path mitmproxy takes for a CA file that holds a chain: the file becomes the
context's verify locations and OpenSSL's automatic chain building sends leaf + CA, so the
client's error is "self-signed certificate in certificate chain".
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.addons.next_layer import NeedsMoreData, NextLayer
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.addons.tlsconfig import TlsConfig
from mitmproxy.net.tls import starts_like_tls_record
from mitmproxy.proxy import layers

from proxy_lab.proxy.inspection.tunnels import TUNNEL_HEADER, Tunnels


class TunnelAddon:
    """Pairs mitmproxy's connections with the stages' tunnels via the token header."""

    name = "prxlab_tunnels"

    def __init__(self, tunnels: Tunnels) -> None:
        self.tunnels = tunnels
        self.running_event = asyncio.Event()

    def running(self) -> None:
        self.running_event.set()

    def http_connect(self, flow: Any) -> None:
        token = flow.request.headers.get(TUNNEL_HEADER)
        if token is None or not self.tunnels.bind_client(flow.client_conn.id, token):
            flow.response = http.Response.make(
                403, b"proxy-lab inspection engine: only tunnels opened by an InspectionStage are served\n"
            )

    def http_connect_upstream(self, flow: Any) -> None:
        token = self.tunnels.token_of(flow.client_conn.id)
        if token is not None:
            flow.request.headers[TUNNEL_HEADER] = token

    def client_disconnected(self, client: Any) -> None:
        self.tunnels.unbind_client(client.id)


class LabNextLayer(NextLayer):  # type: ignore[misc]
    """mitmproxy's layer choice, plus per-stage bypass and raw TCP for anything not TLS."""

    name = "nextlayer"

    def __init__(self, tunnels: Tunnels) -> None:
        super().__init__()
        self.tunnels = tunnels

    def _next_layer(self, context: Any, data_client: bytes, data_server: bytes) -> Any:
        profile = self.tunnels.profile_of(context.client.id)
        # The first choice inside a lab tunnel: the CONNECT target is known, TLS not started.
        if profile is not None and context.server.address is not None and not context.client.tls:
            if len(data_client) < 3 and not data_server:
                raise NeedsMoreData
            if not starts_like_tls_record(data_client):
                return layers.TCPLayer(context, ignore=True)
            if profile.bypass:
                host, port = context.server.address[:2]
                names = [f"{host}:{port}"]
                hello = self._get_client_hello(context, data_client)  # NeedsMoreData until complete
                if hello is not None and hello.sni:
                    names.append(f"{hello.sni}:{port}")
                if profile.bypasses(names):
                    return layers.TCPLayer(context, ignore=True)
        return super()._next_layer(context, data_client, data_server)


class LabTlsConfig(TlsConfig):  # type: ignore[misc]
    """mitmproxy's TLS addon; with `send_root`, the served chain ends with the corporate CA."""

    name = "tlsconfig"

    def __init__(self, tunnels: Tunnels, corp_ca_cert: Path) -> None:
        super().__init__()
        self.tunnels = tunnels
        self.corp_ca_cert = corp_ca_cert

    def get_cert(self, conn_context: Any) -> Any:
        entry = super().get_cert(conn_context)
        profile = self.tunnels.profile_of(conn_context.client.id)
        if profile is not None and profile.send_root:
            return dataclasses.replace(entry, chain_file=self.corp_ca_cert)
        return entry


def make_addons(tunnels: Tunnels, corp_ca_cert: Path) -> tuple[TunnelAddon, LabNextLayer, LabTlsConfig, Any]:
    """The engine's four addons, in the order its Master adds them."""
    return TunnelAddon(tunnels), LabNextLayer(tunnels), LabTlsConfig(tunnels, corp_ca_cert), Proxyserver()
