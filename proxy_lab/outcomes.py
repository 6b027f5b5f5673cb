"""Outcomes and Results: what the device saw for one endpoint, and how services are summarised.

The Outcome set is closed (DESIGN.md). A Result carries the wire evidence the device observed;
nothing in here decides an outcome, the device does (proxy_lab.device.classify).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    PASS = "pass"
    DEGRADED = "degraded"
    AUTH_REQUIRED = "auth_required"
    REFUSED = "refused"
    TLS_INTERCEPTED = "tls_intercepted"
    PROTOCOL_MISMATCH = "protocol_mismatch"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    RESET = "reset"
    TAMPERED = "tampered"

    @property
    def ok(self) -> bool:
        return self in (Outcome.PASS, Outcome.DEGRADED)

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


# Worst first wins when a service summarises its endpoints. Failures that say most about the
# proxy's policy rank above transport symptoms that might be incidental.
_ORDER = [
    Outcome.PASS,
    Outcome.DEGRADED,
    Outcome.TIMEOUT,
    Outcome.RESET,
    Outcome.UNREACHABLE,
    Outcome.TAMPERED,
    Outcome.REFUSED,
    Outcome.TLS_INTERCEPTED,
    Outcome.AUTH_REQUIRED,
    Outcome.PROTOCOL_MISMATCH,
]
_SEVERITY = {o: i for i, o in enumerate(_ORDER)}
_SYMBOLS = {
    Outcome.PASS: "✓",
    Outcome.DEGRADED: "~",
    Outcome.AUTH_REQUIRED: "🔑",
    Outcome.REFUSED: "⛔",
    Outcome.TLS_INTERCEPTED: "🔓",
    Outcome.PROTOCOL_MISMATCH: "≠",
    Outcome.UNREACHABLE: "✗",
    Outcome.TIMEOUT: "⏱",
    Outcome.RESET: "↯",
    Outcome.TAMPERED: "☠",
}
_MEANINGS = {
    Outcome.PASS: "worked as the guide expects",
    Outcome.DEGRADED: "worked, but below the guide's 384 kbit/s floor or only after retries",
    Outcome.AUTH_REQUIRED: "the proxy answered 407 and the device could not satisfy it",
    Outcome.REFUSED: "the proxy answered CONNECT with a non-2xx status other than 407",
    Outcome.TLS_INTERCEPTED: "the TLS chain shown was not anchored in the PB root (inspection)",
    Outcome.PROTOCOL_MISMATCH: "the proxy did not speak HTTP CONNECT",
    Outcome.UNREACHABLE: "the proxy or the upstream could not be reached (502/504, DNS)",
    Outcome.TIMEOUT: "no answer within the device's timeout",
    Outcome.RESET: "the connection was cut mid-exchange",
    Outcome.TAMPERED: "content failed its signature or semantic check",
}


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    return max(outcomes, key=lambda o: o.severity, default=Outcome.PASS)


@dataclass(frozen=True)
class CertSummary:
    """One certificate of a chain as a person compares them: who, by whom, fingerprint, validity."""

    subject: str
    issuer: str
    sha256: str
    not_before: str
    not_after: str


@dataclass
class Evidence:
    """What the device saw on the wire for one endpoint."""

    transcript: list[str] = field(default_factory=list)  # ">" lines sent, "<" lines received, "!" events
    connect_status: int | None = None
    connect_reason: str = ""
    connect_headers: list[tuple[str, str]] = field(default_factory=list)
    auth_schemes: list[str] = field(default_factory=list)
    tls_error: str = ""
    tls_alert: str = ""
    chain_shown: list[CertSummary] = field(default_factory=list)
    chain_expected: list[CertSummary] = field(default_factory=list)
    http_status: int | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    kbps: float | None = None
    attempts: int = 1

    def header(self, name: str) -> str | None:
        for k, v in self.connect_headers:
            if k.lower() == name.lower():
                return v
        return None

    def one_line(self) -> str:
        """The evidence in one line, for terminal findings and JUnit messages."""
        parts: list[str] = []
        if self.connect_status is not None:
            parts.append(f"CONNECT -> {self.connect_status} {self.connect_reason}".rstrip())
        for name in ("X-Squid-Error", "Proxy-Authenticate", "WWW-Authenticate", "Location"):
            for k, v in self.connect_headers:
                if k.lower() == name.lower():
                    parts.append(f"{k}: {v}")
        if self.chain_shown:
            parts.append(f"issuer shown: {self.chain_shown[0].issuer}")
        if self.tls_error:
            parts.append(f"TLS: {self.tls_error}")
        if self.tls_alert:
            parts.append(f"alert: {self.tls_alert}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.kbps is not None:
            parts.append(f"{self.kbps:.0f} kbit/s")
        parts.append(f"{self.bytes_sent}B out/{self.bytes_received}B in")
        return "; ".join(parts)


@dataclass
class Result:
    """One endpoint's outcome as observed by the device."""

    scenario: str
    service: str
    endpoint: str  # Endpoint.url
    outcome: Outcome
    detail: str
    evidence: Evidence = field(default_factory=Evidence)
    elapsed_s: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.scenario}/{self.service}/{self.endpoint}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome.value
        d["id"] = self.id
        return d


def service_outcomes(results: Iterable[Result]) -> dict[str, Outcome]:
    """A service's outcome is its worst endpoint's."""
    by_service: dict[str, list[Outcome]] = {}
    for r in results:
        by_service.setdefault(r.service, []).append(r.outcome)
    return {s: worst(os) for s, os in by_service.items()}
