"""The pytest plugin, tested with pytester: a project's own test runs a scenario against a target."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


def test_a_project_test_uses_proxy_lab_run_and_sees_met_and_not_met(pytester: pytest.Pytester, proxy_lab_certs_dir: Path) -> None:
    pytester.makeini(f"[pytest]\nproxy_lab_certs = {proxy_lab_certs_dir}\n")
    pytester.makepyfile(
        f"""
        def test_baseline_is_met(proxy_lab_run):
            run = proxy_lab_run(r"{ROOT / 'scenarios' / 'baseline.toml'}")
            assert run.met, run.mismatches

        def test_a_wrong_expectation_is_reported(proxy_lab_run):
            run = proxy_lab_run(r"{ROOT / 'scenarios' / 'basic-auth-missing.toml'}")
            assert run.met
            assert set(o.value for o in run.observed.values()) == {{"auth_required"}}

        def test_the_lab_fixture_resets_cloud_knobs(proxy_lab):
            proxy_lab.cloud.state.drop_receipts = True

        def test_after_which_the_knob_is_off(proxy_lab):
            assert proxy_lab.cloud.state.drop_receipts is False
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(passed=4)
