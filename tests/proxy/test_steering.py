"""CPU-local steering of new connections over the workers' SO_REUSEPORT group (steering.py), on the
real kernel: a client thread pinned to a CPU connects, and the test sees which socket of the group
the kernel queued the connection on. Loopback only."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_lab.proxy import steering
from proxy_lab.proxy.steering import HEAVY, SETTLE_S, Steering
from proxy_lab.proxy.workers import listening_sockets

REPO = Path(__file__).resolve().parents[2]
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
pytestmark = pytest.mark.skipif(len(CPUS) < 2, reason="steering needs two CPUs this process may run on")


@pytest.fixture
def group() -> Iterator[list[socket.socket]]:
    socks = listening_sockets("127.0.0.1", 0, 2)
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def accepted_by(socks: list[socket.socket], cpu: int) -> int:
    """Connect from a thread that runs on `cpu` only; the index of the socket that got the connection."""
    port = socks[0].getsockname()[1]
    client: list[socket.socket] = []

    def connect() -> None:
        os.sched_setaffinity(0, {cpu})  # this thread only
        client.append(socket.create_connection(("127.0.0.1", port), timeout=5))

    thread = threading.Thread(target=connect)
    thread.start()
    thread.join(10)
    try:
        ready, _, _ = select.select(socks, [], [], 5)
        assert len(ready) == 1, ready
        conn, _ = ready[0].accept()
        conn.close()
        return socks.index(ready[0])
    finally:
        for sock in client:
            sock.close()


def spread(socks: list[socket.socket], cpu: int, count: int = 32) -> set[int]:
    return {accepted_by(socks, cpu) for _ in range(count)}


def test_a_connection_goes_to_the_socket_of_the_cpu_it_arrived_on(group):
    steered = Steering.start(group)
    assert steered is not None and steered.cpus == CPUS[:2]
    for _ in range(4):
        assert accepted_by(group, CPUS[0]) == 0
        assert accepted_by(group, CPUS[1]) == 1


def test_without_the_program_the_hash_spreads_one_cpus_connections(group):
    assert spread(group, CPUS[0]) == {0, 1}  # the kernel's hash of the ports: both, in 32 tries
    Steering.start(group)
    assert spread(group, CPUS[0], 8) == {0}
    steering.detach(group[0])
    assert spread(group, CPUS[0]) == {0, 1}


def test_a_heavy_worker_spreads_connections_and_the_first_attaches_again_once_all_are_light(group):
    steered = Steering.start(group)
    assert steered is not None
    load = [0, 0]
    first = steered.worker(0, group[0], lambda: load[0])
    second = steered.worker(1, group[1], lambda: load[1])

    load[1] = HEAVY + 1  # the second worker is busy: new connections are spread by hash
    second.check(now=0.0)
    assert spread(group, CPUS[0]) == {0, 1}

    load[1] = 0
    second.check(now=1.0)
    first.check(now=1.0)  # calm from now on...
    first.check(now=1.0 + SETTLE_S / 2)
    assert spread(group, CPUS[0]) == {0, 1}  # ...but not yet for SETTLE_S
    second.check(now=1.0 + SETTLE_S)  # only the first worker attaches again
    assert spread(group, CPUS[0]) == {0, 1}
    first.check(now=1.0 + SETTLE_S)
    assert spread(group, CPUS[0], 8) == {0}
    assert spread(group, CPUS[1], 8) == {1}


def test_a_heavy_worker_keeps_the_program_off_while_another_is_light(group):
    steered = Steering.start(group)
    assert steered is not None
    load = [0, HEAVY + 1]
    first = steered.worker(0, group[0], lambda: load[0])
    second = steered.worker(1, group[1], lambda: load[1])
    second.check(now=0.0)
    for now in (0.0, SETTLE_S, 2 * SETTLE_S, 3 * SETTLE_S):
        first.check(now=now)
        second.check(now=now)
    assert spread(group, CPUS[0]) == {0, 1}


def test_the_program_maps_each_cpu_to_its_socket_and_any_other_to_none():
    program = steering.cpu_program([3, 7])
    insns = [program[i : i + 8] for i in range(0, len(program), 8)]
    assert len(insns) == 6
    # jeq #3 -> ret #0, jeq #7 -> ret #1, else ret #NO_SOCKET (the kernel's hash)
    assert [int.from_bytes(i[4:], "little") for i in insns[1:]] == [3, 0, 7, 1, steering.NO_SOCKET]


def _cpus_allowed(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("affinity", [True, False])
def test_the_cli_pins_each_worker_to_a_cpu_of_its_own_unless_told_not_to(affinity):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "proxy_lab.cli", "proxy", "--listen", f"127.0.0.1:{port}", "--workers", "2"]
    proc = subprocess.Popen([*argv, *([] if affinity else ["--no-cpu-affinity"])], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        children: list[int] = []
        while len(children) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            found = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            children = [int(pid) for pid in found.read_text().split()] if found.exists() else []
        assert len(children) == 2, proc.stderr
        everything = _cpus_allowed(proc.pid)
        want = [str(CPUS[0]), str(CPUS[1])] if affinity else [everything, everything]
        # A worker pins itself just after the fork: a busy machine may list it a moment before it has.
        allowed = sorted(_cpus_allowed(pid) for pid in children)
        while allowed != want and time.monotonic() < deadline + 10:
            time.sleep(0.1)
            allowed = sorted(_cpus_allowed(pid) for pid in children)
        assert allowed == want
        time.sleep(0.5)  # and it stays so: a pin that came late would show now
        assert sorted(_cpus_allowed(pid) for pid in children) == want
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
