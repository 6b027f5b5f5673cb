"""The check's summary scores services by the catalog rule, says which way of remote access worked,
reads the port-80 conflict as docs/assumptions.md decided, names hosts exactly, and holds the guide's
384 kbit/s floor as lint does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.catalog import load_catalog
from proxy_lab.check import VERDICT_FAILS, VERDICT_REDUCED, VERDICT_WORKS, render, run_check, summarize
from proxy_lab.check.verdict import CheckReport
from proxy_lab.guide import is_quoted
from proxy_lab.lint import SiteSettings, lint_site
from proxy_lab.outcomes import VERDICT_PORT80_ONLY, Evidence, Outcome, Result


def lab_check(faults: list[tuple[str, dict[str, Any]]], certs: Path, model: str = "sendpro-plus") -> CheckReport:
    return asyncio.run(
        run_check(
            proxy_url=None, model=model, trust="lab", timeout_s=3.0, concurrency=16,
            lab_faults=faults, resolve={}, certs_dir=certs, bandwidth_url=None,
        )
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("check-verdict")) / "certs"


@pytest.fixture(scope="module")
def only_443(certs: Path) -> CheckReport:
    return lab_check([("allow_ports", {"ports_allowed": [443]})], certs)


def test_with_5938_closed_the_check_says_remote_access_passes_via_the_dyngate_fallback(certs: Path) -> None:
    report = lab_check([("allow_ports", {"ports_allowed": [80, 443, 5228]})], certs)
    assert report.services["remote_access"] == Outcome.PASS
    text = render(report, "terminal")
    assert "pass via the DynGate fallback on port 80" in text and "port 5938 refused" in text
    assert report.to_dict()["services"]["remote_access"]["way"] in ("dyngate_teamviewer", "dyngate_dyngate")
    # a way failed: the meter works, but not fully (there is a finding to act on), and says so
    assert report.verdict == VERDICT_REDUCED and report.exit_code == 1


def test_with_only_443_open_remote_access_does_not_pass_and_says_no_way_worked(only_443: CheckReport) -> None:
    assert not only_443.services["remote_access"].ok
    assert "no way worked" in render(only_443, "terminal")


def test_when_only_port_80_fails_the_verdict_and_finding_quote_both_of_the_guides_sentences(only_443: CheckReport) -> None:
    conflict = load_catalog().port80_conflict
    assert conflict is not None
    assert only_443.verdict == VERDICT_PORT80_ONLY and only_443.exit_code == 1
    [finding] = [f for f in only_443.findings if f.cause.id == "port80_conflict"]
    assert is_quoted(conflict.url_lists) and is_quoted(conflict.faq)
    for fmt in ("terminal", "markdown", "json"):
        text = render(only_443, fmt)
        assert VERDICT_PORT80_ONLY in text
        assert conflict.url_lists in text and conflict.faq in text, fmt
        assert "http://distservp1.pb.com/csd/dstproduct" in text
    assert "distservp1.pb.com" in finding.line()


def test_a_failure_on_port_443_is_a_plain_will_not_work_without_the_port_80_finding(certs: Path) -> None:
    report = lab_check([("exclusions", {"direct_hosts": ["*.pb.com"]})], certs)  # negative control
    assert report.verdict == VERDICT_FAILS and report.port80 is None
    assert "port80_conflict" not in {f.cause.id for f in report.findings}


def test_the_ssl_inspection_remedy_names_exact_hosts_by_service_and_no_wildcard(certs: Path) -> None:
    report = lab_check([("tls_inspect", {})], certs)
    [finding] = [f for f in report.findings if f.cause.id == "tls_inspect"]
    text = finding.line()
    for wildcard in ("*.google.com", "*.amazonaws.com", "*.googleapis.com"):
        assert wildcard not in text
    assert "*" not in text
    assert "health_data: s3.amazonaws.com" in text and "csd-launcher.s3.amazonaws.com" in text
    assert "cloudconfig.googleapis.com" in text and "funds: decometlb20.pb.com" in text


def all_pass(model: str = "sendpro-plus") -> list[Result]:
    return [
        Result("", e.service, e.url, Outcome.PASS, "", Evidence()) for e in load_catalog().endpoints(model)
    ]


@pytest.mark.parametrize(
    ("kbps", "verdict", "lint_rule"),
    [
        (300, VERDICT_FAILS, ("bandwidth-floor", "error")),
        (500, VERDICT_REDUCED, ("bandwidth-recommended", "warning")),
        (2000, VERDICT_WORKS, None),
    ],
)
def test_check_and_lint_agree_on_the_guides_384_kbps_floor(kbps: int, verdict: str, lint_rule: Any) -> None:
    report = summarize("lab", "sendpro-plus", load_catalog(), all_pass())
    report.bandwidth_kbps = float(kbps)
    assert report.verdict == verdict
    found = [(f.rule, f.level) for f in lint_site(SiteSettings(gateway="10.0.0.1", bandwidth_kbps=kbps)) if f.rule.startswith("bandwidth")]
    assert found == ([lint_rule] if lint_rule else [])
