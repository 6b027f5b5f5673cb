"""The runner: start the lab and a target per scenario, run the device through it, compare.

The runner never declares an outcome. It hands the device a proxy address and reads back what the
device observed; the comparison with the scenario's expectation is the only judgement made here.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from proxy_lab.device import Device, DeviceSettings, ProxySettings
from proxy_lab.lab import Lab
from proxy_lab.outcomes import Outcome, Result, service_outcomes
from proxy_lab.protocol.messages import Record
from proxy_lab.scenarios import Scenario
from proxy_lab.targets import ProxyEndpoint, SetupError, Target, TargetSkipped, get_target
from proxy_lab.targets.lab import LabTarget

Progress = Callable[[str, Scenario, "ScenarioRun | None"], None]


@dataclass
class ScenarioRun:
    """One scenario run against one target: what the device saw, what was expected."""

    scenario: Scenario
    target: str
    results: list[Result] = field(default_factory=list)
    observed: dict[str, Outcome] = field(default_factory=dict)
    expected: dict[str, tuple[Outcome, ...]] = field(default_factory=dict)
    setup_error: str | None = None
    skipped: str | None = None
    elapsed_s: float = 0.0
    journal_before: int = 0
    journal_after: int = 0
    followup_results: list[Result] = field(default_factory=list)
    journal_after_followup: int | None = None

    @property
    def mismatches(self) -> dict[str, tuple[Outcome, tuple[Outcome, ...]]]:
        return {
            s: (o, self.expected[s])
            for s, o in self.observed.items()
            if s in self.expected and o not in self.expected[s]
        }

    @property
    def met(self) -> bool:
        if self.setup_error or self.skipped:
            return False
        if self.followup_results and any(not r.outcome.ok for r in self.followup_results):
            return False
        if self.journal_after_followup not in (None, 0):
            return False
        return not self.mismatches and set(self.observed) == set(self.expected)

    @property
    def status(self) -> str:
        if self.setup_error:
            return "setup_error"
        if self.skipped:
            return "skipped"
        return "met" if self.met else "not_met"


def device_settings(scenario: Scenario, proxy: ProxyEndpoint | None) -> DeviceSettings:
    d = scenario.device
    proxy_settings = None
    if d.mode == "proxy" and proxy is not None:
        proxy_settings = ProxySettings(proxy.host, proxy.port, d.username, d.password)
    return DeviceSettings(
        model=d.model,
        proxy=proxy_settings,
        connect_timeout_s=d.connect_timeout_s,
        read_timeout_s=d.read_timeout_s,
        concurrency=d.concurrency,
        slow_setup_s=d.slow_setup_s,
        teamviewer_hold_s=d.teamviewer_hold_s,
        preemptive_auth=d.preemptive_auth,
    )


async def run_scenario(
    scenario: Scenario,
    lab: Lab,
    target: Target,
    *,
    workdir: Path,
    on_event: Callable[[str], None] | None = None,
) -> ScenarioRun:
    run = ScenarioRun(scenario, target.name)
    services = [s.name for s in lab.catalog.for_model(scenario.device.model)]
    if scenario.device.services:
        services = [s for s in services if s in scenario.device.services]
    run.expected = {s: scenario.expect.for_service(s) for s in services}
    started = time.monotonic()
    journal = workdir / f"{scenario.id}-{target.name}.journal.sqlite3"
    journal.unlink(missing_ok=True)
    def meter(proxy: ProxyEndpoint) -> Device:
        """The scenario's meter behind `proxy`; the same journal file every time (its memory)."""
        return Device(
            device_settings(scenario, proxy), lab.pki, lab.resolver,
            journal_path=journal, catalog=lab.catalog, scenario=scenario.id, on_event=on_event,
        )  # fmt: skip

    try:
        lab.cloud.configure(scenario.cloud)
        async with target.proxy_for(scenario, lab) as proxy:
            with meter(proxy) as device:
                for i in range(scenario.device.transactions):  # mail printed before the run
                    device.journal.add(Record("new", weight_g=20 + 10 * i, fee="0.85", date=time.strftime("%Y-%m-%d")))
                run.journal_before = device.journal.count()
                run.results = await device.run(services)
                run.journal_after = device.journal.count()
        if scenario.followup:
            # The same meter later, on a path without the faults: nothing may be lost or sent twice.
            lab.cloud.reset()
            async with LabTarget().proxy_for(scenario, lab, with_faults=False) as proxy:
                with meter(proxy) as device:
                    run.followup_results = await device.run(["funds"])
                    run.journal_after_followup = device.journal.count()
    except TargetSkipped as exc:
        run.skipped = str(exc)
    except SetupError as exc:
        run.setup_error = str(exc)
    finally:
        lab.cloud.reset()
    for r in run.results:
        r.scenario = scenario.id
    run.observed = service_outcomes(run.results)
    run.elapsed_s = time.monotonic() - started
    return run


async def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    target: str | Target = "lab",
    certs_dir: Path | None = None,
    lab: Lab | None = None,
    on_progress: Progress | None = None,
    on_event: Callable[[str], None] | None = None,
) -> list[ScenarioRun]:
    """Run every scenario against one target with one shared lab; results in scenario order."""
    tgt = get_target(target) if isinstance(target, str) else target
    in_namespace = getattr(tgt, "run_in_namespace", None)
    if in_namespace is not None and lab is None:
        # Real products (proxy_lab.targets.real) run with the cloud and the device in a network
        # namespace of their own (proxy_lab.netns); the runs come back from that child process.
        ns_runs: list[ScenarioRun] = await in_namespace(
            scenarios, certs_dir=certs_dir, on_progress=on_progress, on_event=on_event
        )
        return ns_runs
    runs: list[ScenarioRun] = []
    with tempfile.TemporaryDirectory(prefix="proxy-lab-") as tmp:
        workdir = Path(tmp)

        async def _all(the_lab: Lab) -> None:
            for scenario in scenarios:
                if on_progress:
                    on_progress("start", scenario, None)
                run = await run_scenario(scenario, the_lab, tgt, workdir=workdir, on_event=on_event)
                runs.append(run)
                if on_progress:
                    on_progress("done", scenario, run)

        if lab is not None:
            await _all(lab)
        else:
            try:
                new_lab = Lab.create(certs_dir)
            except Exception as exc:  # PKIError, OSError: a setup failure for every scenario
                raise SetupError(f"the lab could not be set up: {exc}") from exc
            async with new_lab:
                await _all(new_lab)
    return runs
