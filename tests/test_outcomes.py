"""A service's outcome follows its catalog rule; only-port-80 failures are told apart.

The unit tests score Results written out here (what a device would report); the end-to-end ones
score what the real device saw through the lab proxy with a port rule, as `check --lab` runs it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.catalog import load_catalog
from proxy_lab.check import run_check
from proxy_lab.guide import is_quoted
from proxy_lab.outcomes import (
    VERDICT_PORT80_ONLY,
    Outcome,
    Result,
    ServiceScore,
    port80_only,
    score_service,
    score_services,
    service_outcomes,
)

PASS, REFUSED, DEGRADED, RESET = Outcome.PASS, Outcome.REFUSED, Outcome.DEGRADED, Outcome.RESET
TV_5938 = "tcp://master3.teamviewer.com:5938/"
TV_IN = "http://master3.teamviewer.com/din.aspx?s=00000001&id=0&client=DynGate"
TV_OUT = "http://master3.teamviewer.com/dout.aspx?s=00000001&client=DynGate"
DG_IN = "http://ping3.dyngate.com/din.aspx?s=00000001&id=0&client=DynGate"
DG_OUT = "http://ping3.dyngate.com/dout.aspx?s=00000001&client=DynGate"


def result(service: str, url: str, outcome: Outcome) -> Result:
    return Result("t", service, url, outcome, f"{url}: {outcome.value}")


def remote(o5938: Outcome, tv: tuple[Outcome, Outcome], dg: tuple[Outcome, Outcome]) -> list[Result]:
    return [
        result("remote_access", TV_5938, o5938),
        result("remote_access", TV_IN, tv[0]), result("remote_access", TV_OUT, tv[1]),
        result("remote_access", DG_IN, dg[0]), result("remote_access", DG_OUT, dg[1]),
    ]  # fmt: skip


def score(results: list[Result]) -> ServiceScore:
    return score_service(load_catalog().services["remote_access"], results)


def test_remote_access_passes_via_the_dyngate_fallback_when_port_5938_is_refused() -> None:
    s = score(remote(REFUSED, (PASS, PASS), (PASS, PASS)))
    assert (s.outcome, s.rule, s.way) == (PASS, "any", "dyngate_teamviewer")
    assert s.sentence.startswith("pass via the DynGate fallback on port 80 at master3.teamviewer.com; port 5938 refused")


def test_remote_access_passes_via_port_5938_when_port_80_is_refused() -> None:
    s = score(remote(PASS, (REFUSED, REFUSED), (REFUSED, REFUSED)))
    assert (s.outcome, s.way) == (PASS, "port_5938")
    assert s.sentence == (
        "pass via port 5938; the DynGate fallback on port 80 at master3.teamviewer.com refused; "
        "the DynGate fallback on port 80 at ping3.dyngate.com refused"
    )


def test_a_way_works_only_when_all_its_endpoints_do() -> None:
    # the DynGate GET passes but its POST is refused on both hosts: no half-way counts
    s = score(remote(RESET, (PASS, REFUSED), (PASS, REFUSED)))
    assert s.outcome == REFUSED and s.way is None
    assert s.sentence.startswith("refused: no way worked (port 5938 reset; ")


def test_with_no_working_way_the_outcome_is_the_worst_endpoints_as_before() -> None:
    rs = remote(REFUSED, (RESET, RESET), (REFUSED, REFUSED))
    assert score(rs).outcome == service_outcomes(rs)["remote_access"] == REFUSED


def test_the_best_working_way_is_named_when_one_is_only_degraded() -> None:
    s = score(remote(DEGRADED, (REFUSED, REFUSED), (PASS, PASS)))
    assert (s.outcome, s.way) == (PASS, "dyngate_dyngate")
    s = score(remote(DEGRADED, (REFUSED, REFUSED), (REFUSED, REFUSED)))
    assert (s.outcome, s.way) == (DEGRADED, "port_5938")


def test_service_outcomes_keeps_the_old_rule_without_a_catalog_and_follows_it_with_one() -> None:
    rs = [*remote(REFUSED, (PASS, PASS), (PASS, PASS)), result("funds", "https://decometlb20.pb.com/", PASS)]
    assert service_outcomes(rs) == {"remote_access": REFUSED, "funds": PASS}
    assert service_outcomes(rs, load_catalog()) == {"remote_access": PASS, "funds": PASS}
    odd = [*rs, result("made_up", "https://x.example/", RESET)]
    assert service_outcomes(odd, load_catalog())["made_up"] == RESET  # not in the catalog: worst


def test_a_worst_rule_service_names_what_did_not_pass() -> None:
    pbws = load_catalog().services["pb_web_services"]
    rs = [result("pb_web_services", e.url, REFUSED if e.port == 80 else PASS) for e in pbws.endpoints]
    s = score_service(pbws, rs)
    assert (s.outcome, s.rule, s.way) == (REFUSED, "worst", None)
    assert s.sentence == "refused: 2 of 6 endpoints did not pass (http://microsoft.com/ refused, http://mail.o365.pb.com/ refused)"
    ok = score_service(pbws, [result("pb_web_services", e.url, PASS) for e in pbws.endpoints])
    assert ok.sentence == "pass: all 6 endpoints passed"


def test_a_service_without_results_cannot_be_scored() -> None:
    with pytest.raises(ValueError, match="no result for service 'remote_access'"):
        score([result("funds", "https://decometlb20.pb.com/", PASS)])


def test_a_score_never_names_a_way_for_a_failure() -> None:
    with pytest.raises(ValueError, match="a way is named only when it worked"):
        ServiceScore("remote_access", REFUSED, "any", "x", way="port_5938")


def all_of(model: str, outcome_of: Any) -> list[Result]:
    return [result(e.service, e.url, outcome_of(e)) for e in load_catalog().endpoints(model)]


def test_port80_only_when_every_failure_of_a_required_service_is_on_port_80() -> None:
    rs = all_of("sendpro-c", lambda e: REFUSED if e.port in (80, 5938, 5228) else PASS)
    found = port80_only(rs, load_catalog())
    assert found is not None
    assert {r.service for r in found.failed} == {"distributor", "online_help", "connectivity_check", "pb_web_services"}
    assert all(r.endpoint.startswith("http://") for r in found.failed)
    text = found.explanation()
    conflict = load_catalog().port80_conflict
    assert conflict is not None and f'"{conflict.url_lists}"' in text and f'"{conflict.faq}"' in text
    assert is_quoted(conflict.url_lists) and is_quoted(conflict.faq)
    assert "NOT work" in VERDICT_PORT80_ONLY and "non-critical" in VERDICT_PORT80_ONLY


def test_not_port80_only_when_a_required_service_fails_elsewhere_or_nothing_required_fails() -> None:
    cat = load_catalog()
    on_443 = all_of("sendpro-c", lambda e: REFUSED if e.port in (80, 443) else PASS)
    assert port80_only(on_443, cat) is None
    dns = all_of("sendpro-c", lambda e: REFUSED if e.port == 80 or e.transport == "dns" else PASS)
    assert port80_only(dns, cat) is None
    recommended_only = all_of("sendpro-c", lambda e: REFUSED if not cat.services[e.service].required else PASS)
    assert port80_only(recommended_only, cat) is None
    assert port80_only(all_of("sendpro-c", lambda e: PASS), cat) is None


# -- end to end: the real device through the lab proxy, as `check --lab --fault` runs it ------------
def lab_check(fault: tuple[str, dict[str, Any]], certs: Path) -> list[Result]:
    report = asyncio.run(
        run_check(
            proxy_url=None, model="sendpro-c", trust="lab", timeout_s=3.0, concurrency=16,
            lab_faults=[fault], resolve={}, certs_dir=certs, bandwidth_url=None,
        )
    )  # fmt: skip
    return list(report.results)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("outcomes")) / "certs"


@pytest.mark.slow
def test_with_port_5938_closed_and_port_80_open_remote_access_passes_via_dyngate(certs: Path) -> None:
    results = lab_check(("allow_ports", {"ports_allowed": [80, 443, 5228]}), certs)
    scores = score_services(results, load_catalog())
    ra = scores["remote_access"]
    assert ra.outcome == PASS and ra.way in ("dyngate_teamviewer", "dyngate_dyngate"), ra.sentence
    assert "DynGate fallback on port 80" in ra.sentence and "port 5938 refused" in ra.sentence
    assert service_outcomes(results)["remote_access"] == REFUSED  # the old rule, for contrast
    assert port80_only(results, load_catalog()) is None  # nothing required fails


@pytest.mark.slow
def test_with_only_port_443_open_remote_access_fails_and_only_port_80_breaks_required_services(certs: Path) -> None:
    results = lab_check(("allow_ports", {"ports_allowed": [443]}), certs)
    cat = load_catalog()
    ra = score_services(results, cat)["remote_access"]
    assert ra.outcome == REFUSED and ra.way is None and ra.sentence.startswith("refused: no way worked")
    found = port80_only(results, cat)
    assert found is not None and {r.service for r in found.failed} >= {"distributor", "online_help"}
    # negative control: SSL inspection breaks 443, which the FAQ calls critical
    assert port80_only(lab_check(("tls_inspect", {}), certs), cat) is None
