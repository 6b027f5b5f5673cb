"""Classification: from what the device observed on the wire to an Outcome and a sentence.

Owns the observation events (small frozen dataclasses named for what happened) and the pure
function `classify(observation) -> Verdict`. Nothing here touches a socket: the transport and the
workflows describe what they saw, this module decides what it means (the closed set of `proxy_lab.outcomes.Outcome`).

| observation                                        | outcome            |
|----------------------------------------------------|--------------------|
| TCP connect refused / failed                       | unreachable        |
| TCP connect or any read timed out                  | timeout            |
| answer bytes that are not an HTTP status line       | protocol_mismatch  |
| EOF before any byte of the CONNECT answer          | unreachable        |
| ECONNRESET anywhere; EOF anywhere else             | reset              |
| CONNECT 200 (HTTP/1.0 or 1.1)                      | tunnel (pass)      |
| CONNECT 2xx other than 200                         | refused            |
| bytes after the 200 head before the device spoke   | protocol_mismatch  |
| 407 that Basic credentials cannot satisfy          | auth_required      |
| 407 without Proxy-Authenticate; 401                | refused            |
| 502, 503, 504                                      | unreachable        |
| any other non-2xx                                  | refused            |
| TLS chain not anchored in the PB root              | tls_intercepted    |
| TLS handshake EOF/reset/alert                      | reset              |
| non-TLS answer to the ClientHello                  | protocol_mismatch  |
| origin 4xx/5xx inside the tunnel                   | refused            |
| signature or semantic check failed                 | tampered           |
| DNS: no A record, NXDOMAIN, SERVFAIL               | unreachable        |
| worked, but slow download or slow CONNECT          | degraded           |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from proxy_lab.device.auth import Why
from proxy_lab.http1 import Headers
from proxy_lab.outcomes import Outcome
from proxy_lab.response import describe_bytes


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    detail: str


class ProbeFailed(Exception):
    """Raised inside a probe when an observation ends it; carries the verdict."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict


# -- observations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectFailed:
    """The TCP connection to `peer` could not be opened."""

    peer: str  # "proxy 127.0.0.1:3128", "origin funds.pb.com:443 at 127.0.0.1:4443"
    error: str  # "ECONNREFUSED", "EHOSTUNREACH", ...
    timed_out: bool = False
    timeout_s: float = 0.0


@dataclass(frozen=True)
class NameFailed:
    """The device's resolver had no address for a name (direct mode, or the proxy's own name)."""

    host: str
    reason: str


@dataclass(frozen=True)
class StreamCut:
    """The byte stream from `peer` ended: EOF, a reset, or silence longer than the read timeout."""

    peer: str
    during: str  # "while waiting for the answer to CONNECT funds.pb.com:443", "during GET /"
    how: Literal["eof", "reset", "timeout"]
    after_bytes: int = 0  # bytes received from this peer on this connection before the cut
    before_answer: bool = False  # no byte at all had come back in answer to the CONNECT
    timeout_s: float = 0.0
    expected: str = ""


@dataclass(frozen=True)
class NotHttpAnswer:
    """The peer answered with bytes that are not an HTTP/1.x response."""

    peer: str
    during: str
    first_bytes: bytes
    reason: str = ""
    protocol: str = "an HTTP/1.x response"


@dataclass(frozen=True)
class ConnectAnswer:
    """The proxy's complete answer to one CONNECT (after any 407 retries were exhausted)."""

    proxy: str
    target: str
    status: int
    reason: str
    headers: Headers = ()
    body_start: bytes = b""
    auth: Why | None = None  # for a 407: why the device did not (or no longer) retry
    offered: tuple[str, ...] = ()  # auth schemes offered by Proxy-Authenticate
    attempts: int = 1


@dataclass(frozen=True)
class BytesAfterHead:
    """Bytes arrived after the 200 head, before the device sent anything into the tunnel."""

    proxy: str
    target: str
    count: int
    first_bytes: bytes


TlsFailureKind = Literal["verify", "not_tls", "eof", "reset", "timeout", "alert", "error"]


@dataclass(frozen=True)
class TlsFailed:
    """The TLS handshake (or a TLS record later) failed; `kind` says how."""

    peer: str
    host: str
    kind: TlsFailureKind
    message: str
    issuer_shown: str = ""
    first_bytes: bytes = b""


@dataclass(frozen=True)
class OriginAnswer:
    """An HTTP answer inside the tunnel with a status the exchange cannot use (4xx/5xx)."""

    peer: str
    request: str  # "GET /generate_204"
    status: int
    reason: str
    headers: Headers = ()
    body_start: bytes = b""
    expected: str = "200"


@dataclass(frozen=True)
class CheckFailed:
    """Content arrived but failed its signature or semantic check."""

    peer: str
    what: str  # "Ed25519 signature of /files/rates-gb.bin"
    seen: str
    expected: str


@dataclass(frozen=True)
class DnsFailed:
    """The resolver answered, but not with an address."""

    server: str
    name: str
    protocol: str
    seen: str


@dataclass(frozen=True)
class Worked:
    """The exchange completed; whether it was fast enough decides pass or degraded."""

    summary: str
    setup_s: float | None = None
    slow_setup_s: float = 3.0
    kbps: float | None = None
    min_kbps: int = 384


Observation = (
    ConnectFailed
    | NameFailed
    | StreamCut
    | NotHttpAnswer
    | ConnectAnswer
    | BytesAfterHead
    | TlsFailed
    | OriginAnswer
    | CheckFailed
    | DnsFailed
    | Worked
)


# -- helpers ------------------------------------------------------------------------------------


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)


def page_title(body: bytes) -> str:
    m = _TITLE.search(body)
    if not m:
        return ""
    return " ".join(m.group(1).decode("utf-8", "replace").split())[:120]


def show_bytes(data: bytes, limit: int = 24) -> str:
    text = data[:limit].hex(" ")
    return text + (" ..." if len(data) > limit else "")


def _extras(headers: Headers, body: bytes) -> str:
    """The parts of a refusal a person compares: Squid's error id, where a redirect goes, the page title."""
    parts = []
    for name in ("X-Squid-Error", "Location", "WWW-Authenticate", "Proxy-Authenticate"):
        values = [v for k, v in headers if k.lower() == name.lower()]
        if values:
            parts.append(f"{name}: {', '.join(values)}")
    title = page_title(body)
    if title:
        parts.append(f"page title {title!r}")
    return f" ({'; '.join(parts)})" if parts else ""


def _status(status: int, reason: str) -> str:
    return f"{status} {reason}".rstrip()


# -- the table ----------------------------------------------------------------------------------


def classify(obs: Observation) -> Verdict:
    """The outcome of one observation, with a sentence naming what was seen, from whom, and what
    was expected. Total over the observation types; see the table in the module docstring."""
    match obs:
        case ConnectFailed(peer=peer, timed_out=True, timeout_s=t):
            return Verdict(Outcome.TIMEOUT, f"{peer} did not accept a TCP connection within {t:g} s")
        case ConnectFailed(peer=peer, error=error):
            return Verdict(Outcome.UNREACHABLE, f"{peer} could not be reached: TCP connect failed ({error})")
        case NameFailed(host=host, reason=reason):
            return Verdict(Outcome.UNREACHABLE, f"the device's resolver has no address for {host}: {reason}")
        case StreamCut():
            return _classify_cut(obs)
        case NotHttpAnswer(peer=peer, during=during, first_bytes=data, reason=reason, protocol=protocol):
            what = reason or describe_bytes(data)
            return Verdict(
                Outcome.PROTOCOL_MISMATCH,
                f"{peer} sent bytes that are not {protocol} {during} ({what}; first bytes "
                f"{show_bytes(data)}); expected {protocol}",
            )
        case ConnectAnswer():
            return _classify_connect_answer(obs)
        case BytesAfterHead(proxy=proxy, target=target, count=n, first_bytes=data):
            return Verdict(
                Outcome.PROTOCOL_MISMATCH,
                f"{proxy} sent {n} bytes after its 200 answer to CONNECT {target} before the device spoke "
                f"(first bytes {show_bytes(data)}); a 2xx answer has no body and the tunnel must carry only "
                "the server's answer (OkHttp: 'TLS tunnel buffered too many bytes!')",
            )
        case TlsFailed():
            return _classify_tls(obs)
        case OriginAnswer(peer=peer, request=request, status=status, reason=reason, expected=expected):
            extras = _extras(obs.headers, obs.body_start)
            outcome = Outcome.REFUSED if status >= 400 else Outcome.TAMPERED
            return Verdict(
                outcome,
                f"{peer} answered {request} with {_status(status, reason)}{extras}; expected {expected}",
            )
        case CheckFailed(peer=peer, what=what, seen=seen, expected=expected):
            return Verdict(Outcome.TAMPERED, f"{peer}: {what} failed: saw {seen}; expected {expected}")
        case DnsFailed(server=server, name=name, protocol=protocol, seen=seen):
            return Verdict(
                Outcome.UNREACHABLE,
                f"resolver {server} over {protocol.upper()} answered the A query for {name} with {seen}; "
                "expected at least one A record",
            )
        case Worked():
            return _classify_worked(obs)
    raise TypeError(f"not an observation: {obs!r}")  # pragma: no cover


def _classify_cut(obs: StreamCut) -> Verdict:
    expected = f"; expected {obs.expected}" if obs.expected else ""
    if obs.how == "timeout":
        return Verdict(
            Outcome.TIMEOUT,
            f"{obs.peer} sent nothing for {obs.timeout_s:g} s {obs.during} (after {obs.after_bytes} bytes){expected}",
        )
    if obs.how == "reset":
        return Verdict(
            Outcome.RESET,
            f"{obs.peer} reset the connection {obs.during} after {obs.after_bytes} bytes{expected}",
        )
    if obs.before_answer:
        # A proxy that closes without a word (Kaspersky KWTS "the connection is terminated") gives
        # the device nothing to go on: as OkHttp's "unexpected end of stream", not a refusal.
        return Verdict(
            Outcome.UNREACHABLE,
            f"{obs.peer} closed the connection {obs.during}, before sending any byte{expected}",
        )
    return Verdict(
        Outcome.RESET,
        f"{obs.peer} closed the connection {obs.during} after {obs.after_bytes} bytes{expected}",
    )


def _classify_connect_answer(obs: ConnectAnswer) -> Verdict:
    status = _status(obs.status, obs.reason)
    head = f"{obs.proxy} answered CONNECT {obs.target} with {status}"
    extras = _extras(obs.headers, obs.body_start)
    if obs.status == 200:
        return Verdict(Outcome.PASS, f"{obs.proxy} opened a tunnel to {obs.target} ({status})")
    if 200 <= obs.status < 300:
        return Verdict(
            Outcome.REFUSED,
            f"{head}{extras}; only 200 opens a tunnel for this device (as Android's OkHttp and CPython "
            "http.client: 'Unexpected response code for CONNECT')",
        )
    if obs.status == 407:
        offered = ", ".join(obs.offered) or "none"
        match obs.auth:
            case "no_challenge" | None:
                return Verdict(
                    Outcome.REFUSED,
                    f"{head} without a Proxy-Authenticate challenge{extras}: RFC 9110 §11.7.1 violated "
                    "('The proxy MUST send a Proxy-Authenticate header field'); expected a Basic challenge",
                )
            case "no_basic":
                why = f"it offers only {offered}, and the device answers only Basic (as Android's OkHttp)"
            case "no_credentials":
                why = f"it offers {offered}, and no proxy username and password are configured on the device"
            case "rejected":
                why = f"it offers {offered} and answered 407 again to the configured credentials (rejected)"
            case "attempts":
                why = f"the device gave up after {obs.attempts} CONNECT attempts (offered: {offered})"
            case _:  # pragma: no cover - "retry" never reaches classification
                why = f"offered: {offered}"
        return Verdict(Outcome.AUTH_REQUIRED, f"{head}{extras}: {why}")
    if obs.status == 401:
        return Verdict(
            Outcome.REFUSED,
            f"{head}{extras}: 401 is an origin's answer; a proxy asks for credentials with 407 and "
            "Proxy-Authenticate (RFC 9110 §15.5.8); expected 200",
        )
    if obs.status in (502, 503, 504):
        return Verdict(Outcome.UNREACHABLE, f"{head}{extras}: the proxy could not reach {obs.target}")
    return Verdict(
        Outcome.REFUSED, f"{obs.proxy} refused CONNECT {obs.target}: {status}{extras}; expected 200"
    )


_ALERT_REASON = re.compile(r"(?:TLSV1|SSLV3)_ALERT_([A-Z_]+)")


def _classify_tls(obs: TlsFailed) -> Verdict:
    where = f"TLS with {obs.host} via {obs.peer}"
    match obs.kind:
        case "verify":
            issuer = f" (issuer shown: {obs.issuer_shown})" if obs.issuer_shown else ""
            return Verdict(
                Outcome.TLS_INTERCEPTED,
                f"{obs.peer} showed a certificate chain for {obs.host}{issuer} not anchored in the PB root: "
                f"{obs.message}; expected the PB-signed chain (TLS inspection between device and PB)",
            )
        case "not_tls":
            return Verdict(
                Outcome.PROTOCOL_MISMATCH,
                f"{where}: the answer to the ClientHello is not TLS ({describe_bytes(obs.first_bytes)}; "
                f"first bytes {show_bytes(obs.first_bytes)}); expected a TLS ServerHello",
            )
        case "timeout":
            return Verdict(Outcome.TIMEOUT, f"{where}: {obs.message}")
        case "eof" | "reset" | "alert":
            return Verdict(Outcome.RESET, f"{where}: the handshake was cut: {obs.message}")
        case _:
            return Verdict(Outcome.PROTOCOL_MISMATCH, f"{where}: the handshake failed: {obs.message}")


def alert_name(reason: str) -> str:
    """`TLSV1_ALERT_UNKNOWN_CA` -> `unknown_ca` (the alert's RFC 8446 §6 name)."""
    m = _ALERT_REASON.search(reason)
    return m.group(1).lower() if m else ""


# The guide's 384 kbps is a link rate; the device measures goodput of a file body, which the link's
# TLS records, HTTP head and request round trip cost a few percent of (measured: 381-384 kbit/s
# through a 384 kbit/s shaper). A download counts as below the floor only under 97% of it.
GOODPUT_TOLERANCE = 0.97


def _classify_worked(obs: Worked) -> Verdict:
    notes = []
    if obs.kbps is not None and obs.kbps < obs.min_kbps * GOODPUT_TOLERANCE:
        notes.append(f"download at {obs.kbps:.0f} kbit/s is below the guide's {obs.min_kbps} kbit/s floor")
    if obs.setup_s is not None and obs.setup_s > obs.slow_setup_s:
        notes.append(f"the tunnel took {obs.setup_s:.1f} s to open (more than {obs.slow_setup_s:g} s)")
    if notes:
        return Verdict(Outcome.DEGRADED, f"{obs.summary}, but {' and '.join(notes)}")
    return Verdict(Outcome.PASS, obs.summary)
