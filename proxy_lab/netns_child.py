"""The child of namespace mode: cloud, real proxy and device together, inside the lab's namespace.

Started by `proxy_lab.netns.run_in_namespace` as `ip netns exec <ns> python -m proxy_lab.netns_child
PAYLOAD.json`. It binds the cloud on the real ports (80, 443, 5228, 5938, 53) of the namespace's
cloud address, runs the scenarios against the target with the runner (`proxy_lab.runner` hands a batch to
`proxy_lab.netns`, which starts this process; of the two, only this child imports the runner), and reports on
stdout, one JSON object per line: `{"kind": "start", "index": i}`, `{"kind": "done", "index": i,
"run": {...}}`, `{"kind": "event", "line": "..."}` and, when the lab cannot start,
`{"kind": "fatal", "message": "..."}`. Logs go to stderr.

It dies with its parent (PR_SET_PDEATHSIG), and SIGTERM or SIGINT cancel the run, so the target's
`finally` stops the product before the child exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """Ask the kernel for SIGTERM when the parent dies; False when it has died already."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == parent_pid


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def cloud_bind(kinds: tuple[str, ...], address: str) -> dict[str, tuple[str, int]]:
    """Every listener of the cloud on its real port at `address` (https 443, http 80, tcp:N N, dns 53)."""
    ports = {"https": 443, "http": 80, "dns": 53}
    bind: dict[str, tuple[str, int]] = {}
    for kind in kinds:
        port = int(kind[4:]) if kind.startswith("tcp:") else ports[kind]
        bind[kind] = (address, port)
    return bind


async def _run(payload: dict[str, Any]) -> int:
    from proxy_lab.catalog import load_catalog
    from proxy_lab.cloud import Cloud
    from proxy_lab.lab import Lab
    from proxy_lab.pki import PKI
    from proxy_lab.runner import run_scenarios
    from proxy_lab.runs import ScenarioRun, encode_run
    from proxy_lab.scenarios import Scenario
    from proxy_lab.targets.registry import get_target
    from proxy_lab.typed import decode

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)

    scenarios: list[Scenario] = [decode(Scenario, s) for s in payload["scenarios"]]
    index = {id(s): i for i, s in enumerate(scenarios)}
    try:
        pki = PKI.load(Path(payload["certs_dir"]))
        catalog = load_catalog()
        probe = Cloud(pki, catalog)
        cloud = Cloud(pki, catalog, host=payload["cloud_address"], bind=cloud_bind(probe.kinds, payload["cloud_address"]))
        lab = Lab(pki, catalog, cloud)
        target = get_target(payload["target"])
    except Exception as exc:
        emit({"kind": "fatal", "message": f"the lab could not be set up: {type(exc).__name__}: {exc}"})
        return 1

    def on_progress(stage: str, scenario: Any, run: ScenarioRun | None) -> None:
        i = index[id(scenario)]
        if stage == "start":
            emit({"kind": "start", "index": i})
        elif run is not None:
            emit({"kind": "done", "index": i, "run": encode_run(run)})

    def on_event(line: str) -> None:
        emit({"kind": "event", "line": line})

    try:
        async with lab:
            await run_scenarios(
                scenarios, target=target, lab=lab, on_progress=on_progress, on_event=on_event if payload.get("verbose") else None
            )
    except OSError as exc:
        emit({"kind": "fatal", "message": f"the lab could not start in the namespace: {exc}"})
        return 1
    return 0


def child_main(
    argv: list[str] | None, run: Callable[[dict[str, Any]], Coroutine[Any, Any, int]], usage: str
) -> int:
    """A namespace child's entry point: read the payload, die with the parent, run `run(payload)`.

    Exit 2 on a usage error, 3 when the parent is gone already, 130 on Ctrl-C or cancellation.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    payload = json.loads(Path(args[0]).read_text("utf-8"))
    if not die_with_parent(int(payload["parent_pid"])):
        return 3
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(run(payload))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130


def main(argv: list[str] | None = None) -> int:
    return child_main(argv, _run, "python -m proxy_lab.netns_child PAYLOAD.json (started by proxy_lab.netns)")


if __name__ == "__main__":
    sys.exit(main())
