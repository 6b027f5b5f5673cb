"""For each preset, the real product and the lab proxy configured the same way agree cell by cell.

The real product runs the preset scenario in namespace mode (one namespace per product, its presets
together); the lab runs `lab_scenario_for_preset` of the same file on loopback. Every service must
show the same outcome on both, and both must meet the scenario's expectation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.targets.presets import PRESETS, lab_scenario_for_preset

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.root, pytest.mark.slow]

# Every service but device_management, whose ~70 TLS hosts triple the time without adding a case:
# ports 80, 443 and 5938, Basic auth, TLS inspection and its *.pb.com bypass all stay covered.
SERVICES = (
    "distributor", "funds", "downloads", "os_updates", "accounting", "online_help", "health_data",
    "connectivity_check", "pb_web_services", "parcel_shipping", "remote_access",
)  # fmt: skip


def _skip_unless_root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2: real products run in a network namespace")


def _scenarios() -> dict[str, Any]:
    from proxy_lab.scenarios import load_scenario

    out = {}
    for name in PRESETS:
        s = load_scenario(ROOT / "scenarios" / f"preset-{name}.toml")
        out[name] = dataclasses.replace(s, device=dataclasses.replace(s.device, services=SERVICES))
    return out


@pytest.fixture(scope="module")
def product_runs() -> dict[str, Any]:
    _skip_unless_root()
    from proxy_lab.runner import run_scenarios

    scenarios = _scenarios()
    by_product: dict[str, list[str]] = defaultdict(list)
    for name, preset in PRESETS.items():
        by_product[preset.product].append(name)
    runs: dict[str, Any] = {}
    for product, names in by_product.items():
        done = asyncio.run(run_scenarios([scenarios[n] for n in names], target=product, certs_dir=ROOT / "certs"))
        runs.update(zip(names, done, strict=True))
    return runs


@pytest.fixture(scope="module")
def lab_runs() -> dict[str, Any]:
    _skip_unless_root()
    from proxy_lab.proxy.faults import FAULTS, load_all
    from proxy_lab.runner import run_scenarios

    load_all()
    scenarios = _scenarios()
    names = [n for n in PRESETS if all(f.name in FAULTS for f in PRESETS[n].spec.faults)]
    done = asyncio.run(run_scenarios([lab_scenario_for_preset(scenarios[n]) for n in names], target="lab", certs_dir=ROOT / "certs"))
    return dict(zip(names, done, strict=True))


def _table(real: Any, lab: Any) -> str:
    services = sorted(set(real.observed) | set(lab.observed))
    return "\n".join(
        f"  {s:<20} {real.target}: {getattr(real.observed.get(s), 'value', '-'):<16} lab: {getattr(lab.observed.get(s), 'value', '-')}"
        for s in services
    )


@pytest.mark.parametrize("name", list(PRESETS))
def test_the_real_product_and_the_lab_agree_on_every_service(name: str, product_runs: dict[str, Any], lab_runs: dict[str, Any]) -> None:
    real = product_runs[name]
    if real.skipped:
        pytest.skip(f"{real.target}: {real.skipped}")
    if name not in lab_runs:
        pytest.skip(f"the lab has no fault of preset {name} yet")
    lab = lab_runs[name]
    assert real.setup_error is None, real.setup_error
    assert lab.setup_error is None and lab.skipped is None, lab.setup_error or lab.skipped
    assert real.observed == lab.observed, f"preset {name}: real product and lab disagree\n{_table(real, lab)}"
    assert real.met, f"preset {name}: {real.mismatches}"
    assert lab.met, f"preset {name} on the lab: {lab.mismatches}"


def test_the_comparison_would_notice_a_difference(product_runs: dict[str, Any]) -> None:
    # negative control: the stock and the compliant Squid, the same product with one ACL apart, differ
    stock, compliant = product_runs["squid-stock"], product_runs["squid-compliant"]
    if stock.skipped or compliant.skipped:
        pytest.skip(stock.skipped or compliant.skipped)
    assert stock.observed != compliant.observed
    assert stock.observed["remote_access"].value == "refused" and compliant.observed["remote_access"].value == "pass"
