"""The field check's verdict: failing results grouped into findings by cause, and the one-line verdict.

`diagnose` groups every failing result by the cause `proxy_lab.advice.cause_of` reads in its evidence
(the same causes and remedy sentences the scenario reports give); `summarize` turns a probe's results
into a `CheckReport`: the outcome per service by the rule its catalog entry declares (`score_services`:
its worst endpoint's, or for remote access the way that worked, with the sentence that says so),
whether the guide calls it required, the findings, and the verdict (the meter will work, will work
with reduced support, will not work, or, when only port-80 endpoints of required services fail,
`VERDICT_PORT80_ONLY` with a finding that quotes both of the guide's sentences about port 80:
docs/assumptions.md, `port80_verdict`). Below the guide's 384 kbit/s floor the meter will not work,
between the floor and the recommended 1 Mbit/s it works with reduced support (`bandwidth_floor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy_lab.advice import CAUSES, Cause, Scope, cause_of, guide_rule, remedy
from proxy_lab.catalog import Catalog
from proxy_lab.outcomes import (
    VERDICT_PORT80_ONLY,
    Outcome,
    Port80Only,
    Result,
    ServiceScore,
    port80_only,
    score_services,
    worst,
)

VERDICT_WORKS = "the meter will work: every required service passes"
VERDICT_REDUCED = "the meter will work with reduced support"
VERDICT_FAILS = "the meter will NOT work"
__all__ = [
    "VERDICT_FAILS", "VERDICT_PORT80_ONLY", "VERDICT_REDUCED", "VERDICT_WORKS", "CheckReport", "Finding",
    "diagnose", "port80_finding", "specific_remedy", "summarize",
]  # fmt: skip

# Not a proxy feature read in the evidence but the guide's own contradiction: its finding quotes both
# sentences (`Finding.quote`) and names the port-80 URLs that fail.
PORT80_CONFLICT = Cause(
    "port80_conflict",
    "only port 80 fails: the guide's URL lists require it, its FAQ calls it non-critical",
    "open port 80 for {these_hosts} ({hosts}), or confirm with Pitney Bowes that the meter works without them",
)


@dataclass
class Finding:
    cause: Cause
    services: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    evidence: str = ""
    results: list[Result] = field(default_factory=list, repr=False)  # the failing results grouped here
    quote: str = ""  # the guide's own words this finding rests on, quoted exactly (port80_conflict)

    def line(self) -> str:
        return f"{self.cause.title}: {specific_remedy(self)}"


def diagnose(results: Sequence[Result]) -> list[Finding]:
    """Group failing results by cause, most important first."""
    findings: dict[str, Finding] = {}
    for r in results:
        if r.outcome == Outcome.PASS:
            continue
        cid, seen = cause_of(r)
        f = findings.setdefault(cid, Finding(CAUSES[cid], evidence=seen))
        if r.service not in f.services:
            f.services.append(r.service)
        f.endpoints.append(r.endpoint)
        f.results.append(r)
    order = list(CAUSES)
    return sorted(findings.values(), key=lambda f: order.index(f.cause.id))


def specific_remedy(f: Finding) -> str:
    """The finding's remedy: its cause's one sentence in `CAUSES`, said for every host and port it groups."""
    scope = Scope.of(f.results) if f.results else Scope.of_urls(f.endpoints, f.evidence)
    return f.cause.remedy_for(scope)


@dataclass
class CheckReport:
    proxy: str
    model: str
    results: list[Result]
    services: dict[str, Outcome]
    required: dict[str, bool]
    findings: list[Finding]
    bandwidth_kbps: float | None = None
    bandwidth_note: str = ""
    elapsed_s: float = 0.0
    scores: dict[str, ServiceScore] = field(default_factory=dict)  # by the catalog's rule, with the sentence
    port80: Port80Only | None = None  # only port-80 endpoints of required services fail
    min_kbps: int = 384  # the guide's floor: "a minimum network bandwidth of 384 kbps"
    recommended_kbps: int = 1000  # "we recommend 1 Mbit/sec for best performance"

    def sentence(self, service: str) -> str:
        """How a service's outcome was reached, for a service the guide lets work in several ways
        (`pass via the DynGate fallback on port 80 at ...; port 5938 refused`); else empty."""
        score = self.scores.get(service)
        return score.sentence if score is not None and score.rule == "any" else ""

    @property
    def verdict(self) -> str:
        below_floor = self.bandwidth_kbps is not None and self.bandwidth_kbps < self.min_kbps
        if any(not self.services[s].ok for s, req in self.required.items() if req and s in self.services):
            return VERDICT_PORT80_ONLY if self.port80 is not None and not below_floor else VERDICT_FAILS
        if below_floor:
            return VERDICT_FAILS  # docs/assumptions.md, bandwidth_floor: "requires ... to operate"
        # A failing endpoint is reduced support even where its service passed by another way (port
        # 5938 reset while the DynGate fallback carries remote access): there is a finding to act on.
        if any(o != Outcome.PASS for o in self.services.values()) or any(r.outcome != Outcome.PASS for r in self.results) or (
            self.bandwidth_kbps is not None and self.bandwidth_kbps < self.recommended_kbps
        ):
            return VERDICT_REDUCED
        return VERDICT_WORKS

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == VERDICT_WORKS else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "proxy": self.proxy,
            "model": self.model,
            "verdict": self.verdict,
            "services": {
                s: {
                    "outcome": o.value, "required": self.required.get(s, False),
                    "rule": sc.rule if (sc := self.scores.get(s)) else "worst",
                    "sentence": sc.sentence if sc else "", "way": sc.way if sc else None,
                }
                for s, o in self.services.items()
            },
            "findings": [
                {"cause": f.cause.id, "title": f.cause.title, "services": f.services, "endpoints": f.endpoints,
                 "evidence": f.evidence, "remedy": specific_remedy(f), "quote": f.quote}
                for f in self.findings
            ],
            "bandwidth_kbps": self.bandwidth_kbps,
            "bandwidth_note": self.bandwidth_note,
            "results": [
                {**r.to_dict(), "guide_rule": guide_rule(r), "remedy": remedy(r)} for r in self.results
            ],
            "elapsed_s": round(self.elapsed_s, 3),
        }


def port80_finding(conflict: Port80Only) -> Finding:
    """The finding for the guide's port-80 contradiction: the failing port-80 URLs, and both of the
    guide's sentences quoted exactly (`Port80Only.explanation`)."""
    services = list(dict.fromkeys(r.service for r in conflict.failed))
    endpoints = list(dict.fromkeys(r.endpoint for r in conflict.failed))
    seen = f"{len(endpoints)} port-80 URL(s) of required services fail; nothing else of a required service does"
    return Finding(PORT80_CONFLICT, services, endpoints, seen, list(conflict.failed), conflict.explanation())


def summarize(proxy: str, model: str, catalog: Catalog, results: list[Result]) -> CheckReport:
    """The report of one probe: each service scored by its catalog rule (a service the catalog lacks
    by its worst endpoint), the findings, and the port-80 conflict when it is all that fails."""
    scores = score_services(results, catalog)
    services = {
        s: scores[s].outcome if s in scores else worst_of(results, s) for s in dict.fromkeys(r.service for r in results)
    }
    required = {s.name: s.required for s in catalog.for_model(model)}
    conflict = port80_only(results, catalog)
    found = diagnose(results)
    if conflict is not None:
        found.insert(0, port80_finding(conflict))
    return CheckReport(
        proxy, model, results, services, required, found, scores=scores, port80=conflict,
        min_kbps=catalog.min_kbps, recommended_kbps=catalog.recommended_kbps,
    )  # fmt: skip


def worst_of(results: Sequence[Result], service: str) -> Outcome:
    return worst(r.outcome for r in results if r.service == service)
