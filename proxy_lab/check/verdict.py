"""The field check's verdict: failing results grouped into findings by cause, and the one-line verdict.

`diagnose` groups every failing result by the cause `proxy_lab.advice.cause_of` reads in its evidence
(the same causes and remedy sentences the scenario reports give); `summarize` turns a probe's results
into a `CheckReport`: the outcome per service, whether the guide calls it required, the findings, and
the verdict (the meter will work, will work with reduced support, or will not work).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy_lab.advice import CAUSES, Cause, Scope, cause_of, guide_rule, remedy
from proxy_lab.catalog import Catalog
from proxy_lab.outcomes import Outcome, Result, worst

VERDICT_WORKS = "the meter will work: every required service passes"
VERDICT_REDUCED = "the meter will work with reduced support"
VERDICT_FAILS = "the meter will NOT work"


@dataclass
class Finding:
    cause: Cause
    services: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    evidence: str = ""
    results: list[Result] = field(default_factory=list, repr=False)  # the failing results grouped here

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

    @property
    def verdict(self) -> str:
        if any(not self.services[s].ok for s, req in self.required.items() if req and s in self.services):
            return VERDICT_FAILS
        if any(o != Outcome.PASS for o in self.services.values()) or (
            self.bandwidth_kbps is not None and self.bandwidth_kbps < 384
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
            "services": {s: {"outcome": o.value, "required": self.required[s]} for s, o in self.services.items()},
            "findings": [
                {"cause": f.cause.id, "title": f.cause.title, "services": f.services, "endpoints": f.endpoints,
                 "evidence": f.evidence, "remedy": specific_remedy(f)}
                for f in self.findings
            ],
            "bandwidth_kbps": self.bandwidth_kbps,
            "bandwidth_note": self.bandwidth_note,
            "results": [
                {**r.to_dict(), "guide_rule": guide_rule(r), "remedy": remedy(r)} for r in self.results
            ],
            "elapsed_s": round(self.elapsed_s, 3),
        }


def summarize(proxy: str, model: str, catalog: Catalog, results: list[Result]) -> CheckReport:
    by_service: dict[str, list[Outcome]] = {}
    for r in results:
        by_service.setdefault(r.service, []).append(r.outcome)
    services = {s: worst(o) for s, o in by_service.items()}
    required = {s.name: s.required for s in catalog.for_model(model)}
    return CheckReport(proxy, model, results, services, required, diagnose(results))
