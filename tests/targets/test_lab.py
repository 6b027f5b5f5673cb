"""The lab target with a scenario's `[proxy.upstream]`: the lab proxy chained to a corporate proxy in
the lab, the corporate proxy's own answers reaching the meter, and the other targets skipping it."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome
from proxy_lab.runner import run_scenario
from proxy_lab.scenarios import UpstreamSpec, load_scenario, parse_scenario
from proxy_lab.targets.registry import get_target

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CHAINED = "chained-corporate-port-rule"


def _chained(**upstream: Any) -> Any:
    s = load_scenario(SCENARIOS / f"{CHAINED}.toml")
    assert s.proxy.upstream is not None
    up = dataclasses.replace(s.proxy.upstream, **upstream)
    s = dataclasses.replace(s, proxy=dataclasses.replace(s.proxy, upstream=up))
    return dataclasses.replace(s, device=dataclasses.replace(s.device, services=("distributor", "funds")))


def test_the_corporate_proxys_port_rule_refuses_port_80_behind_a_lab_proxy_that_refuses_nothing(
    proxy_lab_session: Any, tmp_path: Path
) -> None:
    run = proxy_lab_session.call(run_scenario(_chained(), proxy_lab_session.lab, get_target("lab"), workdir=tmp_path))
    assert run.observed == {"distributor": Outcome.REFUSED, "funds": Outcome.PASS}
    refused = [r for r in run.results if r.service == "distributor" and r.outcome is Outcome.REFUSED]
    assert refused and "X-Squid-Error: ERR_ACCESS_DENIED" in refused[0].detail  # the corporate proxy's own 403
    # negative control: the same chain with the corporate port rule gone passes both
    open_corp = _chained(faults=())
    run = proxy_lab_session.call(run_scenario(open_corp, proxy_lab_session.lab, get_target("lab"), workdir=tmp_path))
    assert run.observed == {"distributor": Outcome.PASS, "funds": Outcome.PASS}


def test_without_the_lab_proxys_credentials_the_meter_meets_the_corporate_proxys_407(
    proxy_lab_session: Any, tmp_path: Path
) -> None:
    run = proxy_lab_session.call(
        run_scenario(_chained(credentials=None, faults=()), proxy_lab_session.lab, get_target("lab"), workdir=tmp_path)
    )
    assert set(run.observed.values()) == {Outcome.AUTH_REQUIRED}
    wrong = _chained(credentials="lab-bench:wrong", faults=())
    run = proxy_lab_session.call(run_scenario(wrong, proxy_lab_session.lab, get_target("lab"), workdir=tmp_path))
    assert set(run.observed.values()) == {Outcome.AUTH_REQUIRED}


@pytest.mark.parametrize("target", ["squid", "tinyproxy", "mitmproxy", "proxypy", "http://127.0.0.1:3128"])
def test_every_other_target_skips_a_chained_scenario_saying_why(target: str) -> None:
    reason = get_target(target).skip_reason(load_scenario(SCENARIOS / f"{CHAINED}.toml"))
    assert reason is not None and "[proxy.upstream]" in reason and "--target lab" in reason


@pytest.mark.parametrize(
    ("upstream", "named"),
    [
        ('credentials = "no-colon"', "proxy.upstream.credentials"),
        ('credentials = ":pw"', "proxy.upstream.credentials"),
        ('colour = "red"', "proxy.upstream"),
        ('[[proxy.upstream.faults]]\nname = "allow_portz"', "proxy.upstream.faults[0]"),
        ('[[proxy.upstream.faults]]\nname = "allow_ports"\nports_allowed = "443"', "proxy.upstream.faults[0]"),
    ],
)
def test_a_broken_upstream_table_is_refused_naming_its_key(upstream: str, named: str) -> None:
    text = f"id = 'x'\ntitle = 't'\nlesson = 'l'\n[proxy.upstream]\n{upstream}\n"
    with pytest.raises(ConfigError) as info:
        parse_scenario(tomllib.loads(text), "x.toml")
    assert str(info.value).startswith(f"x.toml: {named}"), str(info.value)


def test_an_upstream_with_a_product_preset_is_refused() -> None:
    text = "id = 'x'\ntitle = 't'\nlesson = 'l'\n[proxy]\npreset = 'squid-stock'\n[proxy.upstream]\n"
    with pytest.raises(ConfigError, match=r"proxy\.upstream: a chained corporate proxy is a lab setting"):
        parse_scenario(tomllib.loads(text), "x.toml")
    ok = parse_scenario(tomllib.loads("id = 'x'\ntitle = 't'\nlesson = 'l'\n[proxy.upstream]\n"), "x.toml")
    assert ok.proxy.upstream == UpstreamSpec()  # negative control: an empty table is an open corporate proxy
