"""`proxy-lab matrix`: which target runs what, and that what cannot run is skipped with its reason."""

from __future__ import annotations

import asyncio
import datetime
import io
from pathlib import Path

import pytest

from proxy_lab import matrix
from proxy_lab.errors import SetupError

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def ids(scenarios: list) -> list[str]:  # type: ignore[type-arg]
    return [s.id for s in scenarios]


def test_the_matrix_loads_the_core_scenarios_first_then_every_preset() -> None:
    loaded = ids(matrix.load_matrix_scenarios(SCENARIOS))
    assert loaded[:4] == ["baseline", "sendpro-c-baseline", "basic-auth", "basic-auth-missing"]
    assert {f"preset-{p.stem.removeprefix('preset-')}" for p in SCENARIOS.glob("preset-*.toml")} == set(loaded[4:])


def test_the_lab_runs_every_preset_and_a_product_only_its_own() -> None:
    scenarios = matrix.load_matrix_scenarios(SCENARIOS)
    assert ids(matrix.plan(scenarios, "lab")) == ids(scenarios)
    squid = ids(matrix.plan(scenarios, "squid"))
    assert squid == ["baseline", "sendpro-c-baseline", "basic-auth", "basic-auth-missing", "preset-squid-basic-auth", "preset-squid-compliant", "preset-squid-ssl-bump", "preset-squid-stock"]
    assert "preset-squid-stock" not in ids(matrix.plan(scenarios, "tinyproxy"))


def test_the_header_names_the_date_and_every_products_version() -> None:
    head = matrix.header(datetime.datetime(2026, 11, 27, tzinfo=datetime.UTC))
    assert head.startswith("proxy-lab matrix, 2026-11-27: squid ")
    assert all(f"{name} " in head for name in ("squid", "tinyproxy", "mitmproxy", "proxypy"))


def test_a_product_that_is_not_installed_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("proxy_lab.targets.real.installed", lambda name: False)
    scenarios = matrix.load_matrix_scenarios(SCENARIOS, ["baseline"])
    runs = asyncio.run(matrix.run_matrix(scenarios, ["squid", "tinyproxy"]))
    assert [(r.target, r.status, r.skipped) for r in runs] == [
        ("squid", "skipped", "squid is not installed"),
        ("tinyproxy", "skipped", "tinyproxy is not installed"),
    ]


def test_without_root_the_real_products_are_skipped_with_the_one_line_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_root() -> None:
        raise SetupError("real proxies run in a network namespace of their own (ip netns), which needs root")

    monkeypatch.setattr("proxy_lab.netns.require_root", no_root)
    monkeypatch.setattr("proxy_lab.targets.real.installed", lambda name: True)
    runs = asyncio.run(matrix.run_matrix(matrix.load_matrix_scenarios(SCENARIOS, ["baseline"]), ["mitmproxy"]))
    assert runs[0].status == "skipped" and "needs root" in (runs[0].skipped or "")


@pytest.mark.slow
def test_matrix_over_the_lab_alone_meets_every_core_expectation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy_lab.cli import main

    code = main(["--certs", str(ROOT / "certs"), "matrix", "--target", "lab", "--only", "baseline", "--only", "basic-auth-missing",
                 "--output", str(tmp_path / "m.txt")])  # fmt: skip
    assert code == 0
    text = (tmp_path / "m.txt").read_text()
    assert text.startswith("proxy-lab matrix, ") and "2 of 2 runs met their expectation" in text


def test_the_matrix_table_has_a_target_column_and_marks_skipped_runs() -> None:
    from rich.console import Console

    from proxy_lab.outcomes import Outcome
    from proxy_lab.runs import ScenarioRun

    baseline = matrix.load_matrix_scenarios(SCENARIOS, ["baseline"])[0]
    met = ScenarioRun(baseline, "lab", observed={"funds": Outcome.PASS}, expected={"funds": (Outcome.PASS,)})
    wrong = ScenarioRun(baseline, "squid", observed={"funds": Outcome.REFUSED}, expected={"funds": (Outcome.PASS,)})
    skipped = ScenarioRun(baseline, "tinyproxy", skipped="tinyproxy is not installed")
    console = Console(record=True, width=220, force_terminal=False, file=io.StringIO())
    matrix.print_matrix([met, wrong, skipped], console, "head")
    text = console.export_text()
    rows = {line.split("│")[2].strip(): line for line in text.splitlines() if line.count("│") > 3}
    assert "✓ pass" in rows["lab"] and "! ⛔ refused" in rows["squid"] and "skip" in rows["tinyproxy"]
    assert "tinyproxy is not installed" in text
    assert "1 of 3 runs met their expectation; 1 skipped with a reason; 1 not met" in text
