"""Real targets decide before any namespace what they cannot run, and need root for the rest."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from proxy_lab.errors import SetupError
from proxy_lab.scenarios import load_scenario
from proxy_lab.targets.real import PRODUCTS, RealTarget, product_version
from proxy_lab.targets.registry import get_target

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_every_product_is_a_registered_target(name: str) -> None:
    target = get_target(name)
    assert isinstance(target, RealTarget) and target.name == name


def test_a_preset_of_another_product_is_skipped_without_a_namespace() -> None:
    target = get_target("tinyproxy")
    assert isinstance(target, RealTarget)
    reason = target.skip_reason(load_scenario(SCENARIOS / "preset-squid-stock.toml"))
    assert reason == "preset 'squid-stock' is a squid configuration, not one of tinyproxy"


def test_a_scenario_without_a_proxy_is_skipped_on_a_real_product() -> None:
    target = get_target("squid")
    assert isinstance(target, RealTarget)
    if not PRODUCTS["squid"].module.binary():
        pytest.skip("squid is not installed")
    assert "device.mode = direct" in (target.skip_reason(load_scenario(SCENARIOS / "direct.toml")) or "")


def test_a_scenario_the_product_can_run_has_no_skip_reason() -> None:
    target = get_target("squid")
    assert isinstance(target, RealTarget)
    if not PRODUCTS["squid"].module.binary():
        pytest.skip("squid is not installed")
    assert target.skip_reason(load_scenario(SCENARIOS / "preset-squid-stock.toml")) is None  # negative control


def test_only_skipped_scenarios_need_neither_root_nor_a_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy_lab.runner import run_scenarios

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    runs = asyncio.run(run_scenarios([load_scenario(SCENARIOS / "preset-squid-stock.toml")], target="mitmproxy"))
    assert runs[0].status == "skipped" and "squid configuration" in (runs[0].skipped or "")


def test_without_root_a_real_target_run_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy_lab.cli import main

    if not PRODUCTS["tinyproxy"].module.binary():
        pytest.skip("tinyproxy is not installed")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code = main(["run", str(SCENARIOS / "preset-tinyproxy-stock.toml"), "--target", "tinyproxy"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "needs root" in err


def test_a_real_target_outside_a_namespace_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # A product started without the namespace would resolve the guide's hosts through the machine's resolver.
    monkeypatch.delenv("PROXY_LAB_NETNS", raising=False)
    target = get_target("proxypy")

    async def attempt() -> None:
        async with target.proxy_for(load_scenario(SCENARIOS / "baseline.toml"), object()):  # type: ignore[arg-type]
            pass

    with pytest.raises(SetupError, match="runs only in namespace mode"):
        asyncio.run(attempt())


# How each product says its own version, read here apart from product_version's code.
VERSION_ARGV = {"squid": ["-v"], "tinyproxy": ["-v"], "mitmproxy": ["--version"], "proxypy": ["--version"]}


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_a_products_version_is_the_one_its_program_reports(name: str) -> None:
    import re
    import subprocess

    exe = PRODUCTS[name].module.binary()
    if exe is None:
        assert product_version(name) == "not installed"
        pytest.skip(f"{name} is not installed: only 'not installed' can be checked")
    version = product_version(name)
    number = re.match(r"\d+(\.\d+)+", version)
    assert number is not None, f"{name}: {version!r} does not start with a version number"
    done = subprocess.run([exe, *VERSION_ARGV[name]], capture_output=True, text=True, timeout=60, check=False)
    assert number.group() in done.stdout + done.stderr, f"{name}: {version!r} not in its own --version output"
