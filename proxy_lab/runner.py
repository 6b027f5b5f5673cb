"""The runner: start the lab and a target per scenario, run the device through it, compare.

The runner never declares an outcome. It hands the device a proxy address and reads back what the
device observed; the comparison with the scenario's expectation is the only judgement made here.
It also decides where a batch runs: a target that needs a network namespace (`needs_namespace`, the
real products) has what it cannot run skipped first, then the rest run in a namespace of their own
(`proxy_lab.netns`), whose child process calls `run_scenarios` again with the namespace's lab.
The records it returns (`ScenarioRun`) live in `proxy_lab.runs`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from proxy_lab.device import Device, DeviceSettings, ProxySettings
from proxy_lab.errors import SetupError, TargetSkipped
from proxy_lab.lab import Lab
from proxy_lab.netns import run_in_namespace
from proxy_lab.outcomes import service_outcomes
from proxy_lab.protocol.messages import Record
from proxy_lab.runs import EventSink, Progress, ScenarioRun
from proxy_lab.scenarios import Scenario
from proxy_lab.targets.base import ProxyEndpoint, Target
from proxy_lab.targets.lab import LabTarget
from proxy_lab.targets.registry import get_target

__all__ = ["ScenarioRun", "device_settings", "run_scenario", "run_scenarios"]


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
    scenario: Scenario, lab: Lab, target: Target, *, workdir: Path, on_event: EventSink | None = None
) -> ScenarioRun:
    """Run one scenario on `target` inside `lab`; a target that cannot run it gives a skipped run,
    one that cannot start a run with a setup error (neither has outcomes)."""
    run = ScenarioRun(scenario, target.name)
    if (reason := target.skip_reason(scenario)) is not None:
        run.skipped = reason  # decided before anything starts
        return run
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
    run.observed = service_outcomes(run.results, lab.catalog)
    run.elapsed_s = time.monotonic() - started
    return run


async def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    target: str | Target = "lab",
    certs_dir: Path | None = None,
    lab: Lab | None = None,
    on_progress: Progress | None = None,
    on_event: EventSink | None = None,
) -> list[ScenarioRun]:
    """Run every scenario against one target with one shared lab; results in scenario order.

    Without `lab`, the runner makes one (on loopback), or, for a target that needs a namespace,
    runs the batch in a namespace with a lab of its own. Raises SetupError when that lab or
    namespace cannot be set up; a scenario that cannot run comes back skipped or with a setup error.
    """
    tgt = get_target(target) if isinstance(target, str) else target
    if tgt.needs_namespace and lab is None:
        return await _in_namespace(scenarios, tgt, certs_dir, on_progress, on_event)
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


async def _in_namespace(
    scenarios: Sequence[Scenario],
    tgt: Target,
    certs_dir: Path | None,
    on_progress: Progress | None,
    on_event: EventSink | None,
) -> list[ScenarioRun]:
    """Skip what the target cannot run (no namespace needed for those), run the rest in a namespace
    of their own; the runs in scenario order."""
    runs: dict[int, ScenarioRun] = {}
    todo: list[int] = []
    for i, scenario in enumerate(scenarios):
        reason = tgt.skip_reason(scenario)
        if reason is None:
            todo.append(i)
            continue
        if on_progress:
            on_progress("start", scenario, None)
        runs[i] = ScenarioRun(scenario, tgt.name, skipped=reason)
        if on_progress:
            on_progress("done", scenario, runs[i])
    if todo:
        done = await run_in_namespace(
            [scenarios[i] for i in todo], tgt.name, certs_dir=certs_dir, on_progress=on_progress, on_event=on_event
        )
        runs.update(zip(todo, done, strict=True))
    return [runs[i] for i in range(len(scenarios))]
