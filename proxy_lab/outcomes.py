"""Outcomes and Results: what the device saw for one endpoint, and how services are summarised.

The Outcome set is closed (DESIGN.md). A Result carries the wire evidence the device observed;
nothing in here decides an endpoint's outcome, the device does (proxy_lab.device.classify). A
service's outcome follows the rule its catalog entry declares (`score_service`): its worst
endpoint's, or, where the guide offers alternatives ("There are two ways to unblock TeamViewer"),
the best of its ways when one works. `port80_only` says when the only failures of required services
are on port 80, the one place the guide contradicts itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from proxy_lab.catalog import Catalog, Port80Conflict, Service


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


def service_outcomes(results: Iterable[Result], catalog: Catalog | None = None) -> dict[str, Outcome]:
    """Each service's outcome. Without a catalog, its worst endpoint's; with one, by the rule the
    catalog declares for it (`score_service`), and the worst endpoint's for a service it lacks."""
    by_service: dict[str, list[Result]] = {}
    for r in results:
        by_service.setdefault(r.service, []).append(r)
    if catalog is None:
        return {s: worst(r.outcome for r in rs) for s, rs in by_service.items()}
    return {
        s: score_service(catalog.services[s], rs).outcome if s in catalog.services else worst(r.outcome for r in rs)
        for s, rs in by_service.items()
    }


# -- scoring by the catalog's rule ---------------------------------------------------------------
_LISTED = 3  # endpoints named in a sentence before "N more"


@dataclass(frozen=True)
class ServiceScore:
    """A service's outcome under its catalog rule, and the sentence that says how it was reached:
    `pass via the DynGate fallback on port 80 at master3.teamviewer.com; port 5938 refused`."""

    service: str
    outcome: Outcome
    rule: str
    sentence: str
    way: str | None = None  # the id of the way that worked (rule "any"), else None

    def __post_init__(self) -> None:
        if self.rule not in ("worst", "any"):
            raise ValueError(f"rule {self.rule!r}: expected 'worst' or 'any'")
        if self.way is not None and not self.outcome.ok:
            raise ValueError(f"{self.service}: a way is named only when it worked, not for {self.outcome.value}")


def _said(results: Sequence[Result]) -> str:
    shown = [f"{r.endpoint} {r.outcome.value}" for r in results[:_LISTED]]
    if len(results) > _LISTED:
        shown.append(f"{len(results) - _LISTED} more")
    return ", ".join(shown)


def _by_worst(name: str, results: Sequence[Result], rule: str = "worst") -> ServiceScore:
    outcome = worst(r.outcome for r in results)
    off = [r for r in results if r.outcome != Outcome.PASS]
    if not off:
        return ServiceScore(name, outcome, rule, f"pass: all {len(results)} endpoints passed")
    return ServiceScore(
        name, outcome, rule, f"{outcome.value}: {len(off)} of {len(results)} endpoints did not pass ({_said(off)})"
    )


def score_service(service: Service, results: Iterable[Result]) -> ServiceScore:
    """`service`'s outcome from its endpoints' results, by the rule its catalog entry declares.

    - `worst`: its worst endpoint's outcome.
    - `any`: each way's outcome is its worst endpoint's; when a way works (pass or degraded), the
      service takes the best working way's outcome and names that way; when none works, the
      service's worst endpoint's, as under `worst` (the two rules differ only when a way works).
      A way with no result (not probed) counts for nothing.
    Results of other services are ignored; a service with no result at all is an error."""
    mine = [r for r in results if r.service == service.name]
    if not mine:
        raise ValueError(f"no result for service {service.name!r}")
    if service.rule != "any":
        return _by_worst(service.name, mine)
    way_of = {e.url: e.way for e in service.endpoints}
    ways: list[tuple[str, str, Outcome]] = []  # (id, title, outcome) of each way probed
    for w in service.ways:
        rs = [r for r in mine if way_of.get(r.endpoint) == w.id]
        if rs:
            ways.append((w.id, w.title, worst(r.outcome for r in rs)))
    working = [w for w in ways if w[2].ok]
    if not working:
        score = _by_worst(service.name, mine, "any")
        tried = "; ".join(f"{title} {o.value}" for _, title, o in ways) or "no way was probed"
        return ServiceScore(service.name, score.outcome, "any", f"{score.outcome.value}: no way worked ({tried})")
    best = min(working, key=lambda w: w[2].severity)
    others = [f"{title} {o.value}" for wid, title, o in ways if wid != best[0]]
    sentence = "; ".join([f"{best[2].value} via {best[1]}", *others])
    return ServiceScore(service.name, best[2], "any", sentence, way=best[0])


def score_services(results: Iterable[Result], catalog: Catalog) -> dict[str, ServiceScore]:
    """`score_service` for every catalog service the results name, in catalog order."""
    rs = list(results)
    named = {r.service for r in rs}
    return {name: score_service(svc, rs) for name, svc in catalog.services.items() if name in named}


# -- the port-80 conflict ------------------------------------------------------------------------
# How the verdict reads when only port 80 fails (docs/assumptions.md, "port80_verdict"): still not
# "will work", as the URL lists' required level is kept, but never a flat "will NOT work" either.
VERDICT_PORT80_ONLY = (
    "the meter will NOT work as the guide's URL lists require: only port 80 fails, "
    "which the guide's FAQ calls non-critical"
)


@dataclass(frozen=True)
class Port80Only:
    """Every failure of a required service is on port 80: the URL lists call those URLs required,
    the FAQ calls port-80 services non-critical. `failed` are those results; the two sentences
    are quoted exactly from the catalog's `port80_conflict`."""

    failed: tuple[Result, ...]
    conflict: Port80Conflict

    def explanation(self) -> str:
        """The finding's text: what failed, and both of the guide's sentences, quoted."""
        urls = ", ".join(dict.fromkeys(r.endpoint for r in self.failed))
        return (
            f"Only port-80 endpoints of required services fail ({urls}). The guide's URL lists put them "
            f"under Required URLs: \"{self.conflict.url_lists}\" Its FAQ says: \"{self.conflict.faq}\" "
            "The guide contradicts itself here: the meter's funds and mailing may work, but the guide's "
            "own URL lists are not met; open port 80 for these hosts or confirm with Pitney Bowes."
        )


def _on_port_80(url: str) -> bool:
    """For a result the catalog does not list: its URL's port, 80 by default for http://."""
    try:
        parts = urlsplit(url)
        return (parts.port or (80 if parts.scheme == "http" else None)) == 80
    except ValueError:
        return False


def port80_only(results: Iterable[Result], catalog: Catalog) -> Port80Only | None:
    """`Port80Only` when some required service fails (by its rule) and every non-ok endpoint of
    the failing required services is on port 80; None otherwise, or when the catalog records no
    port-80 conflict."""
    if catalog.port80_conflict is None:
        return None
    rs = list(results)
    failed: list[Result] = []
    for name, score in score_services(rs, catalog).items():
        if not catalog.services[name].required or score.outcome.ok:
            continue
        for r in rs:
            if r.service != name or r.outcome.ok:
                continue
            ep = catalog.endpoint(name, r.endpoint)
            if not (ep.port == 80 if ep is not None else _on_port_80(r.endpoint)):
                return None
            failed.append(r)
    return Port80Only(tuple(failed), catalog.port80_conflict) if failed else None
