"""Namespace runs leave nothing behind: no namespace, no /etc/netns entry, no process.

After a normal run, after a run whose product fails to start, after Ctrl-C (SIGINT) or SIGTERM to a
`proxy-lab run`, and, for a run killed outright (SIGKILL), after the next start's cleanup.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy_lab import netns
from proxy_lab.targets import tinyproxy

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "preset-tinyproxy-stock.toml"

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.usefixtures("as_root")]


@pytest.fixture(autouse=True)
def _tinyproxy() -> None:
    if tinyproxy.binary() is None:
        pytest.skip("tinyproxy is not installed")


def leftovers(pid: int) -> list[str]:
    """Namespaces and /etc/netns entries of the run with process id `pid`."""
    names = [n for n in netns.list_namespaces() if netns.owner_pid(n) == pid]
    if netns.NETNS_ETC.is_dir():
        names += [f"/etc/netns/{p.name}" for p in netns.NETNS_ETC.iterdir() if netns.owner_pid(p.name) == pid]
    return names


def alive(pids: list[int]) -> list[int]:
    return [p for p in pids if netns.pid_alive(p) and not netns._is_zombie(p)]


def small(scenario_path: Path) -> object:
    from proxy_lab.scenarios import load_scenario

    s = load_scenario(scenario_path)
    return dataclasses.replace(s, device=dataclasses.replace(s.device, services=("funds", "online_help"), transactions=1))


def test_a_normal_run_leaves_nothing(tmp_path: Path) -> None:
    from proxy_lab.runner import run_scenarios

    runs = asyncio.run(run_scenarios([small(SCENARIO)], target="tinyproxy", certs_dir=ROOT / "certs"))  # type: ignore[list-item]
    assert runs[0].status == "met", (runs[0].setup_error, runs[0].observed)
    assert leftovers(os.getpid()) == []


def test_a_run_whose_product_fails_to_start_reports_it_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy_lab.runner import run_scenarios

    monkeypatch.setenv("PROXY_LAB_TINYPROXY_BIN", "/bin/false")  # exits 1 at once
    runs = asyncio.run(run_scenarios([small(SCENARIO)], target="tinyproxy", certs_dir=ROOT / "certs"))  # type: ignore[list-item]
    assert runs[0].status == "setup_error" and "tinyproxy exited with status 1 at start" in (runs[0].setup_error or "")
    assert runs[0].results == []  # a setup failure is not an outcome
    assert leftovers(os.getpid()) == []


def _start_run(tmp_path: Path) -> subprocess.Popen[bytes]:
    # a scenario slow enough to be interrupted: TeamViewer sessions held for 20 s
    text = SCENARIO.read_text().replace('model = "sendpro-plus"', 'model = "sendpro-plus"\nteamviewer_hold_s = 20.0\nread_timeout_s = 30.0')
    path = tmp_path / "slow.toml"
    path.write_text(text)
    return subprocess.Popen(
        [sys.executable, "-m", "proxy_lab.cli", "--certs", str(ROOT / "certs"), "run", str(path), "--target", "tinyproxy"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_product(pid: int, timeout_s: float = 60.0) -> list[int]:
    """Pids inside the run's namespace once the product and the child both run there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name in netns.list_namespaces():
            if netns.owner_pid(name) == pid:
                pids = netns.namespace_pids(name)
                comms = {Path(f"/proc/{p}/comm").read_text().strip() for p in pids if Path(f"/proc/{p}/comm").exists()}
                if "tinyproxy" in comms:
                    return pids
        time.sleep(0.2)
    raise AssertionError(f"no tinyproxy in a namespace of pid {pid} within {timeout_s} s")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_leaves_nothing(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    proc = _start_run(tmp_path)
    try:
        inside = _wait_for_product(proc.pid)
        assert leftovers(proc.pid)  # the control: while it runs, there is something to clean up
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == code, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
    assert leftovers(proc.pid) == []
    deadline = time.monotonic() + 5
    while alive(inside) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(inside) == []


def test_a_killed_run_is_cleaned_up_by_the_next_start(tmp_path: Path) -> None:
    proc = _start_run(tmp_path)
    try:
        inside = _wait_for_product(proc.pid)
        proc.kill()  # SIGKILL: no finally runs in the parent
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert leftovers(proc.pid)  # the namespace outlives a killed run...
    removed = netns.cleanup_stale()  # ...until the next start
    assert any(netns.owner_pid(n) == proc.pid for n in removed)
    assert leftovers(proc.pid) == []
    deadline = time.monotonic() + 5
    while alive(inside) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(inside) == []
