"""The runner itself: one scenario or a batch on a target, and the four ways a run ends."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.errors import SetupError
from proxy_lab.outcomes import Outcome
from proxy_lab.runner import run_scenario, run_scenarios
from proxy_lab.scenarios import Expectation, Scenario, load_scenario
from proxy_lab.targets.registry import get_target

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def quick(name: str, **expect: Any) -> Scenario:
    """A shipped scenario on two services only (funds over TLS, distributor over 80 and 443)."""
    s = load_scenario(SCENARIOS / f"{name}.toml")
    s = dataclasses.replace(s, device=dataclasses.replace(s.device, services=("distributor", "funds")))
    return dataclasses.replace(s, expect=Expectation(**expect)) if expect else s


def test_a_scenario_whose_expectation_holds_is_met(proxy_lab_session: Any, tmp_path: Path) -> None:
    run = proxy_lab_session.call(run_scenario(quick("baseline"), proxy_lab_session.lab, get_target("lab"), workdir=tmp_path))
    assert run.status == "met" and run.met and run.unmet() == []
    assert run.observed == {"distributor": Outcome.PASS, "funds": Outcome.PASS}
    assert run.journal_before == 3 and run.journal_after == 0  # the meter uploaded its transactions
    assert {r.scenario for r in run.results} == {"baseline"}


def test_a_scenario_whose_expectation_fails_is_not_met_and_says_where(proxy_lab_session: Any, tmp_path: Path) -> None:
    wrong = quick("baseline", default=(Outcome.AUTH_REQUIRED,))
    run = proxy_lab_session.call(run_scenario(wrong, proxy_lab_session.lab, get_target("lab"), workdir=tmp_path))
    assert run.status == "not_met" and not run.met
    assert run.mismatches == {
        "distributor": (Outcome.PASS, (Outcome.AUTH_REQUIRED,)),
        "funds": (Outcome.PASS, (Outcome.AUTH_REQUIRED,)),
    }
    assert any(line.startswith("funds: expected auth_required, observed pass at https://") for line in run.unmet())


def test_a_target_that_cannot_start_gives_a_setup_error_and_no_outcomes(
    proxy_lab_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # proxy.py can express the baseline, but outside a namespace it must not start (names would not
    # resolve to the lab's cloud): a setup failure, not an outcome.
    monkeypatch.delenv("PROXY_LAB_NETNS", raising=False)
    run = proxy_lab_session.call(run_scenario(quick("baseline"), proxy_lab_session.lab, get_target("proxypy"), workdir=tmp_path))
    assert run.status == "setup_error" and "runs only in namespace mode" in (run.setup_error or "")
    assert run.results == [] and run.observed == {} and not run.met


def test_a_scenario_the_target_cannot_express_is_skipped_before_anything_starts(proxy_lab_session: Any, tmp_path: Path) -> None:
    squid_preset = load_scenario(SCENARIOS / "preset-squid-stock.toml")
    run = proxy_lab_session.call(run_scenario(squid_preset, proxy_lab_session.lab, get_target("proxypy"), workdir=tmp_path))
    assert run.status == "skipped" and run.skipped == "preset 'squid-stock' is a squid configuration, not one of proxypy"
    assert run.results == [] and not run.met


def test_a_batch_keeps_scenario_order_and_reports_progress(proxy_lab_session: Any) -> None:
    seen: list[tuple[str, str, str | None]] = []
    batch = [quick("basic-auth-missing"), quick("baseline")]
    runs = proxy_lab_session.call(
        run_scenarios(
            batch, target="lab", lab=proxy_lab_session.lab,
            on_progress=lambda stage, s, run: seen.append((stage, s.id, run.status if run else None)),
        )
    )  # fmt: skip
    assert [r.scenario.id for r in runs] == ["basic-auth-missing", "baseline"]
    assert [r.status for r in runs] == ["met", "met"]
    assert set(runs[0].observed.values()) == {Outcome.AUTH_REQUIRED} and set(runs[1].observed.values()) == {Outcome.PASS}
    assert seen == [
        ("start", "basic-auth-missing", None), ("done", "basic-auth-missing", "met"),
        ("start", "baseline", None), ("done", "baseline", "met"),
    ]  # fmt: skip


def test_a_batch_a_real_product_cannot_run_needs_no_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without root, a namespace cannot be made: the runner must decide the skips before asking for one.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    batch = [load_scenario(SCENARIOS / "preset-squid-stock.toml"), load_scenario(SCENARIOS / "preset-mitmproxy-default.toml")]
    runs = asyncio.run(run_scenarios(batch, target="proxypy"))
    assert [r.status for r in runs] == ["skipped", "skipped"]
    assert "squid configuration" in (runs[0].skipped or "") and "mitmproxy configuration" in (runs[1].skipped or "")
    with pytest.raises(SetupError, match="needs root"):  # negative control: one it can run asks for the namespace
        asyncio.run(run_scenarios([load_scenario(SCENARIOS / "baseline.toml")], target="proxypy"))


def test_a_lab_that_cannot_be_set_up_is_one_setup_error_for_the_batch(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "certs"
    not_a_dir.write_text("a file where the certificate directory should be")
    with pytest.raises(SetupError, match="the lab could not be set up"):
        asyncio.run(run_scenarios([quick("baseline")], target="lab", certs_dir=not_a_dir))


def test_shards_deal_untimed_scenarios_round_robin_and_keep_timed_ones_apart() -> None:
    from proxy_lab.runner import shards, timed

    names = ["baseline", "throttle-384k", "basic-auth", "latency-satellite", "tls-inspect", "exclusions", "preset-squid-stock"]
    batch = [load_scenario(SCENARIOS / f"{n}.toml") for n in names]
    parts, alone = shards(batch, 2)
    assert [batch[i].id for i in alone] == ["throttle-384k", "latency-satellite"]
    assert parts == [[0, 4, 6], [2, 5]]
    assert sorted(i for p in parts for i in p) + alone == [0, 2, 4, 5, 6, 1, 3]  # every scenario exactly once
    assert not timed(batch[0]) and timed(batch[1])  # negative control: the baseline is not timed


@pytest.mark.slow
def test_a_batch_split_across_processes_comes_back_in_order_with_the_same_verdicts(tmp_path: Path) -> None:
    names = [
        "baseline", "basic-auth-missing", "basic-auth", "exclusions", "throttle-384k", "preset-squid-stock",
        "basic-auth-wrong-password", "socks-only",
    ]  # fmt: skip
    batch = [quick(n) for n in names]
    seen: list[tuple[str, str]] = []
    runs = asyncio.run(
        run_scenarios(batch, target="lab", certs_dir=tmp_path / "certs", workers=2,
                      on_progress=lambda stage, s, run: seen.append((stage, s.id)))
    )  # fmt: skip
    assert [r.scenario.id for r in runs] == names
    assert [r.status for r in runs] == ["met"] * len(names), [r.unmet() for r in runs]
    assert runs[3].observed["funds"] == Outcome.REFUSED and runs[0].observed["funds"] == Outcome.PASS
    assert sorted(seen) == sorted([(stage, n) for n in names for stage in ("start", "done")])
    assert seen[-1] == ("done", "throttle-384k")  # the timed scenario ran last, alone
