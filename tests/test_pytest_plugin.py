"""The pytest plugin, tested with pytester: a project's own test runs a scenario against a target."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


def test_a_project_test_uses_proxy_lab_run_and_sees_met_and_not_met(pytester: pytest.Pytester, proxy_lab_certs_dir: Path) -> None:
    pytester.makeini(f"[pytest]\nproxy_lab_certs = {proxy_lab_certs_dir}\n")
    # basic-auth-missing as written (the meter has no credentials: auth_required everywhere) and a
    # copy that wrongly hopes for a pass: the second must fail, naming what it expected and saw.
    text = (ROOT / "scenarios" / "basic-auth-missing.toml").read_text()
    head, _, _ = text.partition("[expect]")
    wrong = head.replace('id = "basic-auth-missing"', 'id = "wrong-hope"') + '[expect]\ndefault = "pass"\n'
    (pytester.path / "wrong-hope.toml").write_text(wrong)
    pytester.makepyfile(
        f"""
        def test_baseline_is_met(proxy_lab_run):
            run = proxy_lab_run(r"{ROOT / 'scenarios' / 'baseline.toml'}")
            assert run.met

        def test_the_shipped_expectation_is_met(proxy_lab_run):
            run = proxy_lab_run(r"{ROOT / 'scenarios' / 'basic-auth-missing.toml'}")
            assert set(o.value for o in run.observed.values()) == {{"auth_required"}}

        def test_a_wrong_expectation_fails_the_test(proxy_lab_run):
            proxy_lab_run("wrong-hope.toml")

        def test_check_false_returns_the_run_that_missed(proxy_lab_run):
            run = proxy_lab_run("wrong-hope.toml", check=False)
            assert not run.met and run.mismatches["funds"][0].value == "auth_required"

        def test_the_lab_fixture_resets_cloud_knobs(proxy_lab):
            proxy_lab.cloud.state.drop_receipts = True

        def test_after_which_the_knob_is_off(proxy_lab):
            assert proxy_lab.cloud.state.drop_receipts is False
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=5, failed=1)
    out = result.stdout.str()
    assert "test_a_wrong_expectation_fails_the_test" in out
    assert "scenario wrong-hope on lab did not meet its expectation" in out
    assert "funds: expected pass, observed auth_required at https://" in out
    assert "distributor: expected pass, observed auth_required" in out


def test_a_run_the_target_cannot_express_is_skipped_with_its_reason(pytester: pytest.Pytester, proxy_lab_certs_dir: Path) -> None:
    pytester.makeini(f"[pytest]\nproxy_lab_certs = {proxy_lab_certs_dir}\n")
    pytester.makepyfile(
        f"""
        def test_a_squid_preset_on_tinyproxy(proxy_lab_run):
            proxy_lab_run(r"{ROOT / 'scenarios' / 'preset-squid-stock.toml'}", target="tinyproxy")
        """
    )
    result = pytester.runpytest_subprocess("-q", "-rs", "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(skipped=1)
    assert "preset 'squid-stock' is a squid configuration, not one of tinyproxy" in result.stdout.str()
