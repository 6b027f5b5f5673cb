"""The lab firewall's transparent TLS inspection: an appliance on the path that re-signs TLS.

Owns `InterceptingFront`: a loopback listener for port 443 that terminates the meter's TLS with a
leaf for the name the meter asked for (SNI), minted by the lab's *corporate inspection CA*, then opens
its own TLS to the cloud (verifying the PB root, same SNI) and relays the bytes between the two, as a
transparent SSL-inspecting firewall does. The meter sees a chain that is not the PB root's
(`tls_intercepted`), which a direct check reports as `fw_tls`.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import trustme

from proxy_lab.pki import PKI
from proxy_lab.resolver import Address

Pump = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class InterceptingFront:
    """Terminates TLS with corporate-CA leaves by SNI and relays to `upstream` over verified TLS."""

    def __init__(self, pki: PKI, upstream: Address, pump: Pump) -> None:
        self.pki = pki
        self.upstream = upstream
        self.pump = pump
        self._ca = trustme.CA.from_pem(pki.corp_ca.cert.read_bytes(), pki.corp_ca.key.read_bytes())
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._sni: dict[int, str] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="proxy-lab-fw-tls-")
        self._client = pki.device_context()  # the appliance trusts the back end's real (PB) root

    def close(self) -> None:
        self._tmp.cleanup()

    def _context_for(self, host: str) -> ssl.SSLContext:
        ctx = self._contexts.get(host)
        if ctx is None:
            try:
                leaf = self._ca.issue_cert(host, organization_name="proxy-lab transparent appliance")
            except UnicodeError:  # names trustme's IDNA refuses ('r1---sn-...'): the parent's wildcard
                leaf = self._ca.issue_cert("*." + host.split(".", 1)[1])
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            pem = Path(self._tmp.name) / f"{len(self._contexts)}.pem"
            pem.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
            ctx.load_cert_chain(str(pem))
            self._contexts[host] = ctx
        return ctx

    def listener_context(self) -> ssl.SSLContext:
        ctx = self._context_for("unknown.lab.invalid")
        ctx.sni_callback = self._on_sni
        return ctx

    def _on_sni(self, sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name:
            self._sni[id(sslobj)] = name
            sslobj.context = self._context_for(name)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = self._sni.pop(id(writer.get_extra_info("ssl_object")), None)
        if host is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream, ssl=self._client, server_hostname=host), 10.0
            )
        except (OSError, TimeoutError, ssl.SSLError):
            writer.close()
            return
        try:
            await asyncio.gather(self.pump(reader, up_writer), self.pump(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()
