"""The JSON report: every run, cell and endpoint result with its evidence, for machines.

The shape is documented, and checked by the tests, in `docs/results-schema.json` (JSON Schema draft
2020-12). Result ids are stable across runs: `scenario/service/endpoint`, the endpoint being the
catalog URL (`funds/https://decometlb20.pb.com/` under the scenario id). Setup failures and skipped
runs are statuses of their own, never outcomes, as in mnot's cache-tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import proxy_lab
from proxy_lab.catalog import load_catalog
from proxy_lab.outcomes import CertSummary, Evidence, Outcome, Result
from proxy_lab.report.cells import (
    cells,
    redact,
    remedy_for,
    rule_for,
    run_model,
    run_problems,
    services_of,
    summary,
    target_label,
)

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun

SCHEMA_VERSION = "1.0"


def _cert(c: CertSummary) -> dict[str, str]:
    return asdict(c)


def evidence_dict(ev: Evidence) -> dict[str, Any]:
    return {
        "transcript": [redact(line) for line in ev.transcript],
        "connect_status": ev.connect_status,
        "connect_reason": ev.connect_reason,
        "connect_headers": [{"name": k, "value": v} for k, v in ev.connect_headers],
        "auth_schemes": list(ev.auth_schemes),
        "tls_error": ev.tls_error,
        "tls_alert": ev.tls_alert,
        "chain_shown": [_cert(c) for c in ev.chain_shown],
        "chain_expected": [_cert(c) for c in ev.chain_expected],
        "http_status": ev.http_status,
        "bytes_sent": ev.bytes_sent,
        "bytes_received": ev.bytes_received,
        "kbps": ev.kbps,
        "attempts": ev.attempts,
        "one_line": ev.one_line(),
    }


def result_dict(run: ScenarioRun, r: Result) -> dict[str, Any]:
    return {
        "id": f"{run.scenario.id}/{r.service}/{r.endpoint}",
        "service": r.service,
        "endpoint": r.endpoint,
        "outcome": r.outcome.value,
        "detail": r.detail,
        "elapsed_s": round(r.elapsed_s, 6),
        "evidence": evidence_dict(r.evidence),
        "guide_rule": rule_for(r) if r.outcome != Outcome.PASS else "",
        "remedy": remedy_for(run, r),  # for the cause diagnosed from this result's evidence
    }


def run_dict(run: ScenarioRun, services: Sequence[str]) -> dict[str, Any]:
    s = run.scenario
    return {
        "scenario": {
            "id": s.id,
            "title": s.title,
            "guide_section": s.guide_section,
            "lesson": s.lesson,
            "remedy": s.remedy,
            "path": str(s.path) if s.path is not None else None,
        },
        "target": target_label(run.target),
        "model": run_model(run),
        "status": run.status,
        "setup_error": run.setup_error,
        "skipped": run.skipped,
        "elapsed_s": round(run.elapsed_s, 6),
        "services": [
            {
                "service": c.service,
                "expected": [o.value for o in c.expected],
                "observed": c.observed.value if c.observed is not None else None,
                "met": c.status == "met",
                "status": c.status,
                "worst_result": f"{run.scenario.id}/{w.service}/{w.endpoint}" if (w := c.worst) else None,
                "rule": c.score.rule if c.score is not None else None,
                "sentence": c.score.sentence if c.score is not None else "",
                "way": c.score.way if c.score is not None else None,
            }
            for c in cells(run, services)
        ],
        "results": [result_dict(run, r) for r in run.results],
        "followup_results": [result_dict(run, r) for r in getattr(run, "followup_results", []) or []],
        "journal": {
            "before": getattr(run, "journal_before", 0),
            "after": getattr(run, "journal_after", 0),
            "after_followup": getattr(run, "journal_after_followup", None),
        },
        "problems": run_problems(run),
    }


def report_dict(runs: Sequence[ScenarioRun], generated_at: datetime | None = None) -> dict[str, Any]:
    catalog = load_catalog()
    services = services_of(runs, catalog)
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "tool": {"name": "proxy-lab", "version": proxy_lab.__version__},
        "guide": catalog.guide,
        "legend": [{"outcome": o.value, "symbol": o.symbol, "meaning": o.meaning} for o in Outcome],
        "services": services,
        "runs": [run_dict(run, services) for run in runs],
        "summary": summary(runs),
    }


def render(runs: Sequence[ScenarioRun]) -> str:
    return json.dumps(report_dict(runs), indent=2, ensure_ascii=False) + "\n"
