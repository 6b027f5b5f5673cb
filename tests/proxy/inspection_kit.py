"""Shared by the inspection-stage and tls_inspect tests: a TLS client that reports what it saw.

`through(open_plain, host, trust)` runs a TLS client trusting `trust` on a fresh tunnel to host:443
(opened by `open_plain`), records its OpenSSL verify message or the answer to `GET /`, then takes a
second, non-verifying look to read the chain the server presented.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from proxy_lab.outcomes import CertSummary
from proxy_lab.pki import PKI, summarize

TIMEOUT_S = 5.0
CORP = "Corp Inspection CA"
PB_ROOT = "PB Root"

OpenPlain = Callable[[str], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def corp_trusting(pki: PKI) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.corp_ca.cert))


@dataclass
class Seen:
    verify_error: str  # the client's OpenSSL verify message; "" when it accepted the chain
    chain: list[CertSummary]  # what the server presented, leaf first (read without verifying)
    answer: bytes  # the first bytes of the answer to `GET /` (only when verification passed)


async def through(open_plain: OpenPlain, host: str, trust: ssl.SSLContext) -> Seen:
    verify_error, answer = "", b""
    reader, writer = await open_plain(host)
    try:
        await asyncio.wait_for(writer.start_tls(trust, server_hostname=host), TIMEOUT_S)
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message
    else:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    writer.close()
    reader, writer = await open_plain(host)
    await asyncio.wait_for(writer.start_tls(unverified(), server_hostname=host), TIMEOUT_S)
    chain = [summarize(der) for der in writer.get_extra_info("ssl_object").get_unverified_chain()]
    writer.close()
    return Seen(verify_error, chain, answer)
