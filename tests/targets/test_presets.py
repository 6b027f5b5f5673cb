"""Presets: each names a product, runs on it and on the lab, and has its scenario file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from proxy_lab.errors import ConfigError, TargetSkipped
from proxy_lab.scenarios import load_scenario
from proxy_lab.targets import mitmproxy_target, proxypy, squid, tinyproxy
from proxy_lab.targets.presets import PRESETS, check_product, effective_spec, lab_scenario_for_preset
from proxy_lab.targets.product import LabFacts, policy_from_spec

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CONFIGURE = {
    "squid": lambda policy, facts: squid.squid_conf(policy, facts, ssl_bump=True),  # as squid-openssl can
    "tinyproxy": tinyproxy.tinyproxy_conf,
    "mitmproxy": mitmproxy_target.mitmdump_args,
    "proxypy": proxypy.proxy_args,
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_has_its_scenario_file(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"preset-{name}.toml")
    assert scenario.id == f"preset-{name}" and scenario.proxy.preset == name
    assert scenario.lesson and scenario.title


def test_every_preset_scenario_file_names_a_known_preset() -> None:
    for path in SCENARIOS.glob("preset-*.toml"):
        assert path.stem.removeprefix("preset-") in PRESETS, path


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_can_be_expressed_by_its_own_product(name: str, facts: LabFacts) -> None:
    preset = PRESETS[name]
    CONFIGURE[preset.product](policy_from_spec(preset.spec), facts)  # raises TargetSkipped if not


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_presets_lab_faults_are_valid_lab_faults(name: str) -> None:
    from proxy_lab.proxy.faults import make_fault

    for f in PRESETS[name].spec.faults:
        make_fault(f.name, f.settings)  # an unknown fault or setting is the drift this catches: ConfigError


def test_a_preset_naming_a_fault_the_lab_lacks_would_be_caught() -> None:
    # negative control for the test above: make_fault refuses what no lab fault declares
    from proxy_lab.proxy.faults import make_fault

    with pytest.raises(ConfigError, match="unknown fault 'ssl_bump'"):
        make_fault("ssl_bump", {})
    with pytest.raises(ConfigError, match="fault allow_ports: unknown setting 'port_list'"):
        make_fault("allow_ports", {"port_list": [1]})


def test_the_lab_scenario_of_a_preset_carries_its_users_and_faults_and_no_preset_name() -> None:
    scenario = load_scenario(SCENARIOS / "preset-squid-basic-auth.toml")
    lab = lab_scenario_for_preset(scenario)
    assert lab.proxy.preset is None
    assert lab.proxy.users == {"meter": "Postage-2020!"} and not lab.proxy.username_case_sensitive
    assert [f.name for f in lab.proxy.faults] == ["allow_ports"]
    assert lab.expect == scenario.expect and lab.device == scenario.device


def test_a_scenario_without_a_preset_is_its_own_lab_scenario() -> None:
    scenario = load_scenario(SCENARIOS / "baseline.toml")
    assert lab_scenario_for_preset(scenario) is scenario


def test_the_scenarios_own_users_and_faults_add_to_the_presets() -> None:
    scenario = load_scenario(SCENARIOS / "preset-squid-stock.toml")
    spec = dataclasses.replace(scenario.proxy, users={"x": "y"})
    eff = effective_spec(spec)
    assert eff.users == {"x": "y"} and [f.name for f in eff.faults] == ["allow_ports"]


def test_a_preset_of_another_product_is_skipped() -> None:
    scenario = load_scenario(SCENARIOS / "preset-squid-stock.toml")
    check_product(scenario, "squid")
    with pytest.raises(TargetSkipped, match="preset 'squid-stock' is a squid configuration, not one of tinyproxy"):
        check_product(scenario, "tinyproxy")


def test_an_unknown_preset_is_a_configuration_error_listing_the_known_ones() -> None:
    scenario = load_scenario(SCENARIOS / "baseline.toml")
    bad = dataclasses.replace(scenario, proxy=dataclasses.replace(scenario.proxy, preset="squid-stok"))
    with pytest.raises(ConfigError, match="unknown preset 'squid-stok'; expected one of squid-stock"):
        lab_scenario_for_preset(bad)


def test_squid_stock_and_tinyproxy_connectport_443_expect_the_same_cells() -> None:
    # Same rule (CONNECT to 443 only) in two products: the same services must be refused.
    a = load_scenario(SCENARIOS / "preset-squid-stock.toml").expect
    b = load_scenario(SCENARIOS / "preset-tinyproxy-connectport-443.toml").expect
    assert a == b
