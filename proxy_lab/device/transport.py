"""The device's transport: a CONNECT tunnel through the configured proxy (or a direct connection),
then TLS for https endpoints.

Owns `open_stream()`. Through a proxy it opens *every* endpoint with `CONNECT host:port HTTP/1.1`
(80, 443, 5938 and 5228 alike: the guide's "All communication must tunnel through the proxy when
enabled"; no SOCKS, no exclusions), answers a 407 as Android's OkHttp `RealConnection.createTunnel`
does, and accepts only a 200. In direct mode (no proxy set) it connects to the address the resolver
gives for (host, port). DNS endpoints never come here (`proxy_lab.device.dnsprobe`).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy_lab.catalog import Endpoint
from proxy_lab.device.auth import basic_credentials, decide_on_407
from proxy_lab.device.classify import (
    BytesAfterHead,
    ConnectAnswer,
    NameFailed,
    ProbeFailed,
    classify,
    page_title,
)
from proxy_lab.device.client import read_body, read_head
from proxy_lab.device.settings import DeviceSettings, ProxySettings
from proxy_lab.device.tls import TlsStream
from proxy_lab.device.transcript import Transcript
from proxy_lab.device.wire import Stream, Wire, show_address
from proxy_lab.errors import RemoteProtocolError
from proxy_lab.outcomes import CertSummary, Evidence, Outcome
from proxy_lab.resolver import Address, ResolveError, Resolver
from proxy_lab.response import Response, body_framing, parse_challenges

MAX_407_BODY = 1024 * 1024  # a 407 body is consumed to reuse the connection; Squid's is ~4 KB
REFUSAL_QUOTE = 4096  # of a refusal page only the start is kept (for the title and the transcript)


@dataclass
class Link:
    """Everything one probe's transport needs; built by the Device for each endpoint."""

    endpoint: Endpoint
    settings: DeviceSettings
    resolver: Resolver
    evidence: Evidence
    transcript: Transcript
    tls_context: ssl.SSLContext
    summarize: Callable[[bytes], CertSummary]
    setup_s: float | None = None  # from the first TCP connect to the 200 (or the direct connect)


async def _resolve(resolver: Resolver, host: str, port: int, transcript: Transcript) -> list[Address]:
    try:
        addresses = await resolver.resolve(host, port)
    except ResolveError as exc:
        transcript.note(f"resolve {host}: {exc.reason}")
        raise ProbeFailed(classify(NameFailed(host, exc.reason))) from exc
    if not addresses:
        raise ProbeFailed(classify(NameFailed(host, "no addresses")))
    return addresses


async def _connect_any(link: Link, host: str, port: int, role: str) -> Wire:
    """Try each resolved address in turn, as Android 7's OkHttp does (no Happy Eyeballs)."""
    s = link.settings
    addresses = await _resolve(link.resolver, host, port, link.transcript)
    failure: ProbeFailed | None = None
    for address in addresses[:8]:
        where = show_address(address)
        name = f"{host}:{port}"
        peer = f"{role} {where}" if name == where else f"{role} {name} at {where}"
        try:
            return await Wire.open(
                address,
                peer=peer,
                evidence=link.evidence,
                transcript=link.transcript,
                connect_timeout_s=s.connect_timeout_s,
                read_timeout_s=s.read_timeout_s,
            )
        except ProbeFailed as exc:
            failure = exc
    assert failure is not None
    raise failure


def connect_request(authority: str, authorization: str | None) -> bytes:
    """RFC 9110 §9.3.6: authority-form target, and "a client MUST send the port number"."""
    head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if authorization:
        head += f"Proxy-Authorization: {authorization}\r\n"
    return (head + "\r\n").encode("latin-1")


def _log_answer(transcript: Transcript, response: Response) -> None:
    transcript.received(response.status_line)
    for k, v in response.headers:
        transcript.received(f"{k}: {v}")


async def _connect_through_proxy(link: Link, proxy: ProxySettings) -> Wire:
    """CONNECT with OkHttp's 407 loop; returns the wire of an open tunnel or ends the probe."""
    s, ev, tr, ep = link.settings, link.evidence, link.transcript, link.endpoint
    target = ep.authority
    started = time.monotonic()
    wire = await _connect_any(link, proxy.host, proxy.port, "proxy")
    proxy_name = wire.peer
    send_credentials = s.preemptive_auth and proxy.has_credentials
    credentials_sent = False
    challenge = None
    attempts = 0
    reused_retry_done = False
    offered: list[str] = []
    while True:
        attempts += 1
        ev.attempts = attempts
        authorization = None
        if send_credentials and proxy.username is not None and proxy.password is not None:
            authorization = basic_credentials(proxy.username, proxy.password, challenge)
            credentials_sent = True
        wire.during = f"while waiting for the answer to CONNECT {target}"
        wire.expected = "HTTP/1.1 200 Connection established"
        tr.sent(f"CONNECT {target} HTTP/1.1")
        tr.sent(f"Host: {target}")
        if authorization:
            tr.sent("Proxy-Authorization: Basic ****")
        reused = wire.received > 0
        received_before = wire.received
        try:
            await wire.write(connect_request(target, authorization))
            response, rest = await read_head(wire, connect=True)
        except ProbeFailed as exc:
            silent = wire.received == received_before and exc.verdict.outcome in (
                Outcome.UNREACHABLE,
                Outcome.RESET,
            )
            if reused and silent and not reused_retry_done:
                # The proxy kept the connection open after its 407 without saying Connection: close,
                # then dropped it: a stale connection, retried once on a new one (as OkHttp's
                # RetryAndFollowUpInterceptor does for a connection that failed before any answer).
                reused_retry_done = True
                tr.note("the proxy dropped the kept-alive connection before answering: new connection")
                wire = await _connect_any(link, proxy.host, proxy.port, "proxy")
                continue
            raise
        _log_answer(tr, response)
        ev.connect_status = response.status
        ev.connect_reason = response.reason
        ev.connect_headers = list(response.headers)
        if response.status == 200:
            link.setup_s = time.monotonic() - started
            for name in ("Content-Length", "Transfer-Encoding"):
                if response.get(name) is not None:
                    # RFC 9110 §9.3.6: "A client MUST ignore any Content-Length or Transfer-Encoding
                    # header fields received in a successful response to CONNECT."
                    tr.note(f"ignoring {name} on a 200 answer to CONNECT (RFC 9110 §9.3.6)")
            if response.version == "HTTP/1.0":
                tr.note("tunnel opened by an HTTP/1.0 answer (accepted, as OkHttp and CPython do)")
            if rest:
                # OkHttp createTunnel: "if (!source.buffer.exhausted() ...) throw new IOException(
                # "TLS tunnel buffered too many bytes!")": the server cannot have spoken yet.
                tr.note(f"{len(rest)} bytes arrived after the 200 head before the device spoke")
                wire.close()
                raise ProbeFailed(classify(BytesAfterHead(proxy_name, target, len(rest), rest[:64])))
            wire.peer = f"the tunnel to {target} through {proxy_name}"
            tr.note(f"tunnel open after {link.setup_s * 1000:.0f} ms")
            return wire

        if response.status != 407:
            body, _ = await _read_refusal(wire, response, rest)
            wire.close()
            raise ProbeFailed(
                classify(
                    ConnectAnswer(
                        proxy_name,
                        target,
                        response.status,
                        response.reason,
                        response.headers,
                        body,
                        attempts=attempts,
                    )
                )
            )

        # RFC 9110 §15.5.8 / OkHttp createTunnel: consume the 407 body, then maybe retry.
        challenges = parse_challenges(response.get_all("Proxy-Authenticate"))
        for c in challenges:
            if c.scheme not in offered:
                offered.append(c.scheme)
        ev.auth_schemes = list(offered)
        body, reusable = await _consume_407(wire, response, rest)
        decision = decide_on_407(
            challenges,
            has_credentials=proxy.has_credentials,
            credentials_sent=credentials_sent,
            attempts=attempts,
            max_attempts=s.max_auth_attempts,
        )
        if not decision.retry:
            wire.close()
            tr.note(f"407 not answered: {decision.why.replace('_', ' ')}")
            raise ProbeFailed(
                classify(
                    ConnectAnswer(
                        proxy_name,
                        target,
                        407,
                        response.reason,
                        response.headers,
                        body,
                        auth=decision.why,
                        offered=tuple(offered),
                        attempts=attempts,
                    )
                )
            )
        challenge = decision.challenge
        send_credentials = True
        if not reusable:
            # OkHttp: "if ("close".equalsIgnoreCase(response.header("Connection"))) return nextRequest"
            # and the caller opens a new connection for it.
            tr.note("proxy closes the connection after its 407: retrying CONNECT on a new connection")
            wire.close()
            wire = await _connect_any(link, proxy.host, proxy.port, "proxy")
        else:
            tr.note("retrying CONNECT with Basic credentials on the same connection")


async def _read_refusal(wire: Wire, response: Response, rest: bytes) -> tuple[bytes, bool]:
    """Quote the start of a refusal page; the tunnel is not formed and the connection is dropped."""
    try:
        framing = body_framing(response, method="CONNECT")
    except RemoteProtocolError:
        return rest[:REFUSAL_QUOTE], False
    try:
        body, complete = await read_body(wire, framing, rest, limit=MAX_407_BODY, stop_after=REFUSAL_QUOTE)
    except ProbeFailed:
        # The answer's status is what matters; a page cut short or too slow is only noted.
        wire.transcript.note("the refusal page could not be read to its end")
        return rest[:REFUSAL_QUOTE], False
    if body:
        title = page_title(body)
        wire.transcript.received(
            f"[body {len(body)}{'' if complete else '+'} bytes{f': {title}' if title else ''}]"
        )
    return body[:REFUSAL_QUOTE], complete


async def _consume_407(wire: Wire, response: Response, rest: bytes) -> tuple[bytes, bool]:
    """Read the whole 407 body; return it and whether the connection can carry the retry."""
    try:
        framing = body_framing(response, method="CONNECT")
    except RemoteProtocolError:
        return rest[:REFUSAL_QUOTE], False
    try:
        body, complete = await read_body(wire, framing, rest, limit=MAX_407_BODY)
    except ProbeFailed:
        wire.transcript.note("the 407 body could not be read to its end: the connection is not reused")
        return rest[:REFUSAL_QUOTE], False
    if body:
        wire.transcript.received(f"[body {len(body)} bytes]")
    reusable = complete and framing.kind != "close" and response.keeps_alive
    return body[:REFUSAL_QUOTE], reusable


async def open_stream(link: Link) -> Stream:
    """The stream to the endpoint's origin: a tunnel (through the proxy) or a direct connection,
    with TLS on top for https endpoints. Ends the probe with ProbeFailed on any failure."""
    ep, s = link.endpoint, link.settings
    if s.proxy is not None:
        wire = await _connect_through_proxy(link, s.proxy)
    else:
        started = time.monotonic()
        wire = await _connect_any(link, ep.host, ep.port, "origin")
        link.setup_s = time.monotonic() - started
    if ep.transport != "tls":
        return wire
    tls = TlsStream(wire, link.tls_context, ep.host)
    await tls.handshake(link.summarize)
    return tls
