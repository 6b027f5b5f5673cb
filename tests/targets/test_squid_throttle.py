"""A download throttle on a real Squid (delay_pools) and on the lab: the same services fall below the floor.

The scenario is throttle-128k with the upload direction left unshaped (`up_kbps = 0`), the part of
the lab's `throttle` that Squid's delay pools can express. Squid's pool is one bucket for every
tunnel of the meter and the lab's throttle one per tunnel, so the measured rates differ; the
verdicts must not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.outcomes import Outcome
from proxy_lab.scenarios import FaultSpec, load_scenario

ROOT = Path(__file__).resolve().parents[2]
RATE_KBPS = 128
SERVICES = ("funds", "downloads", "os_updates")

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _scenario() -> Any:
    s = load_scenario(ROOT / "scenarios" / "throttle-128k.toml")
    (fault,) = s.proxy.faults
    assert fault.name == "throttle" and fault.settings["rate_kbps"] == RATE_KBPS
    proxy = dataclasses.replace(s.proxy, faults=(FaultSpec("throttle", {"rate_kbps": RATE_KBPS, "up_kbps": 0}),))
    device = dataclasses.replace(s.device, services=SERVICES)
    return dataclasses.replace(s, proxy=proxy, device=device)


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2: real products run in a network namespace")
    from proxy_lab.runner import run_scenarios
    from proxy_lab.targets import squid

    if squid.binary() is None:
        pytest.skip("squid is not installed")
    scenario = _scenario()
    out = {}
    for target in ("squid", "lab"):
        (out[target],) = asyncio.run(run_scenarios([scenario], target=target, certs_dir=ROOT / "certs"))
    return out


@pytest.mark.parametrize("target", ["squid", "lab"])
def test_downloads_fall_below_the_floor_and_small_exchanges_pass(target: str, runs: dict[str, Any]) -> None:
    run = runs[target]
    assert run.skipped is None and run.setup_error is None, run.skipped or run.setup_error
    assert run.observed == {
        "funds": Outcome.PASS, "downloads": Outcome.DEGRADED, "os_updates": Outcome.DEGRADED,
    }, run.observed  # fmt: skip
    assert run.met, run.mismatches
    # every timed download ran at or below the shaped rate (Squid's pool is shared: well below)
    rates = [r.evidence.kbps for r in run.results if r.service in ("downloads", "os_updates") and r.evidence.kbps]
    assert rates and all(0 < k <= RATE_KBPS * 1.1 for k in rates), rates


def test_squid_and_the_lab_agree(runs: dict[str, Any]) -> None:
    assert runs["squid"].observed == runs["lab"].observed
