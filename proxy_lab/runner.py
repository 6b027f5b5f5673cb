"""The runner: start the lab and a target per scenario, run the device through it, compare.

The runner never declares an outcome. It hands the device a proxy address and reads back what the
device observed; the comparison with the scenario's expectation is the only judgement made here.
It also decides where a batch runs: a target that needs a network namespace (`needs_namespace`, the
real products) has what it cannot run skipped first, then the rest run in a namespace of their own
(`proxy_lab.netns`), whose child process calls `run_scenarios` again with the namespace's lab.
The records it returns (`ScenarioRun`) live in `proxy_lab.runs`.

Speed: a lab run is CPU-bound in one process (the cloud, the lab proxy and the device share one
event loop: TLS handshakes on both sides), so a large batch on the lab it makes itself is split into
`workers` shards (`shards`), one per CPU up to `MAX_WORKERS`: the first runs here, each other one in
a child process with a lab of its own (`_run_shard`), and the runs come back in scenario order.
Scenarios whose verdict rests on timing (`TIMED_FAULTS`: a shaped rate, a delay, an idle timeout,
a slow IPv6 fallback) never share the CPU with a child: they run here, one after another, once
every child has finished, as they would in a sequential batch. A batch with a lab given, a wire log
to stream (`on_event`) or fewer than `MIN_PARALLEL` scenarios runs here, one scenario after another.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from proxy_lab.device import Device, DeviceSettings, ProxySettings
from proxy_lab.errors import ConfigError, SetupError, TargetSkipped
from proxy_lab.lab import Lab
from proxy_lab.netns import run_in_namespace
from proxy_lab.outcomes import service_outcomes
from proxy_lab.protocol.messages import Record
from proxy_lab.runs import EventSink, Progress, ScenarioRun, decode_run, encode_run
from proxy_lab.scenarios import Scenario
from proxy_lab.targets.base import ProxyEndpoint, Target
from proxy_lab.targets.lab import LabTarget
from proxy_lab.targets.presets import effective_spec
from proxy_lab.targets.registry import get_target

__all__ = [
    "MAX_WORKERS", "MIN_PARALLEL", "TIMED_FAULTS", "ScenarioRun", "device_settings", "run_scenario", "run_scenarios",
    "shards", "timed",
]  # fmt: skip

MAX_WORKERS = 2  # processes for one batch at most: a lab run is CPU-bound, one process per core
MIN_PARALLEL = 8  # below this many scenarios a child's start-up (imports, its own lab) does not pay
# Faults whose verdict rests on time measured by the device (kbit/s, seconds): run without a child beside.
TIMED_FAULTS = frozenset({"throttle", "latency", "idle_timeout", "ipv6_broken"})


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


def timed(scenario: Scenario) -> bool:
    """The scenario's verdict rests on timing: its lab proxy (or its preset's emulation) has a timed fault."""
    try:
        spec = effective_spec(scenario.proxy)
    except ConfigError:  # an unknown preset: the target reports it when the scenario runs
        return False
    return any(f.name in TIMED_FAULTS for f in spec.faults)


def shards(scenarios: Sequence[Scenario], workers: int) -> tuple[list[list[int]], list[int]]:
    """(shards, alone): indexes of the untimed `scenarios` dealt round-robin into `workers` shards
    (file order spreads the slow families across them), and the timed ones, run after the shards."""
    alone = [i for i, s in enumerate(scenarios) if timed(s)]
    rest = [i for i in range(len(scenarios)) if i not in set(alone)]
    n = max(1, min(workers, len(rest)))
    return [rest[k::n] for k in range(n)], alone


def _default_workers(count: int) -> int:
    """One per CPU up to MAX_WORKERS for MIN_PARALLEL scenarios or more; PROXY_LAB_WORKERS=N overrides
    (1: everything in this process, one scenario after another)."""
    if (given := os.environ.get("PROXY_LAB_WORKERS", "").strip()).isdigit() and int(given) >= 1:
        return min(int(given), count) or 1
    if count < MIN_PARALLEL:
        return 1
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _run_shard(scenarios: list[Scenario], target: str, certs_dir: Path | None) -> list[dict[str, Any]]:
    """In a child process: the shard's runs on a lab of its own, as JSON-ready dicts (`encode_run`)."""
    runs = asyncio.run(run_scenarios(scenarios, target=target, certs_dir=certs_dir, workers=1))
    return [encode_run(r) for r in runs]


async def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    target: str | Target = "lab",
    certs_dir: Path | None = None,
    lab: Lab | None = None,
    on_progress: Progress | None = None,
    on_event: EventSink | None = None,
    workers: int | None = None,
) -> list[ScenarioRun]:
    """Run every scenario against one target; results in scenario order.

    Without `lab`, the runner makes one (on loopback), or, for a target that needs a namespace,
    runs the batch in a namespace with a lab of its own. Raises SetupError when that lab or
    namespace cannot be set up; a scenario that cannot run comes back skipped or with a setup error.
    `workers` (default: one per CPU, up to MAX_WORKERS, for a batch of MIN_PARALLEL or more on the
    lab target) splits the batch into shards run in parallel, each on a lab of its own.
    """
    tgt = get_target(target) if isinstance(target, str) else target
    if tgt.needs_namespace and lab is None:
        return await _in_namespace(scenarios, tgt, certs_dir, on_progress, on_event)
    n_workers = _default_workers(len(scenarios)) if workers is None else workers
    parallel = n_workers > 1 and lab is None and on_event is None and isinstance(tgt, LabTarget) and len(scenarios) > 1
    parts, alone = shards(scenarios, n_workers) if parallel else ([list(range(len(scenarios)))], [])
    runs: dict[int, ScenarioRun] = {}
    with tempfile.TemporaryDirectory(prefix="proxy-lab-") as tmp:
        workdir = Path(tmp)

        async def _all(the_lab: Lab, indexes: list[int]) -> None:
            for i in indexes:
                scenario = scenarios[i]
                if on_progress:
                    on_progress("start", scenario, None)
                run = await run_scenario(scenario, the_lab, tgt, workdir=workdir, on_event=on_event)
                runs[i] = run
                if on_progress:
                    on_progress("done", scenario, run)

        if lab is not None:
            await _all(lab, parts[0])
        else:
            try:
                new_lab = Lab.create(certs_dir)
            except Exception as exc:  # PKIError, OSError: a setup failure for every scenario
                raise SetupError(f"the lab could not be set up: {exc}") from exc
            async with new_lab:
                # The children start once this lab exists: its certificates are on disk for them.
                children = _start_shards(scenarios, parts[1:], certs_dir)
                try:
                    await _all(new_lab, parts[0])
                    await _collect(scenarios, parts[1:], children, runs, on_progress)
                    await _all(new_lab, alone)  # the timed scenarios, with no child beside them
                finally:
                    for child in children:
                        child.cancel()
    return [runs[i] for i in range(len(scenarios))]


def _start_shards(scenarios: Sequence[Scenario], parts: list[list[int]], certs_dir: Path | None) -> list[asyncio.Future[Any]]:
    if not parts:
        return []
    loop = asyncio.get_running_loop()
    # spawn, not fork: this process runs an event loop and threads (the inspection engine).
    pool = ProcessPoolExecutor(max_workers=len(parts), mp_context=multiprocessing.get_context("spawn"))
    futures = [
        loop.run_in_executor(pool, _run_shard, [scenarios[i] for i in part], "lab", certs_dir) for part in parts
    ]
    pool.shutdown(wait=False)  # the workers exit once their shard is done
    return futures


async def _collect(
    scenarios: Sequence[Scenario],
    parts: list[list[int]],
    children: list[asyncio.Future[Any]],
    runs: dict[int, ScenarioRun],
    on_progress: Progress | None,
) -> None:
    """The child shards' runs, joined to this process's scenarios; a child that failed gives each of
    its scenarios a setup error (not an outcome)."""
    for part, child in zip(parts, children, strict=True):
        try:
            encoded: list[dict[str, Any]] | None = await child
            error = ""
        except Exception as exc:  # the child died or could not set up its lab
            encoded, error = None, f"the child process running this scenario failed: {type(exc).__name__}: {exc}"
        for k, i in enumerate(part):
            scenario = scenarios[i]
            if on_progress:
                on_progress("start", scenario, None)
            if encoded is not None and k < len(encoded):
                runs[i] = decode_run(encoded[k], scenario)
            else:
                runs[i] = ScenarioRun(scenario, "lab", setup_error=error or "the child process returned no run")
            if on_progress:
                on_progress("done", scenario, runs[i])


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
