"""workers.py: how many processes `run_proxy` uses, their sockets, and real workers serving tunnels.

The multi-process test runs `run_proxy` in a child Python process (forking inside pytest's own
process would copy its threads); the tunnels go to an echo server here, by IP literal, so the
proxy's system resolver looks nothing up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.workers import listening_sockets, worker_count
from tests.proxy.proxy_testkit import open_tunnel, run, upstream

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 5.0


def test_worker_count_is_what_was_asked_else_one_with_faults_else_one_per_core_up_to_four() -> None:
    assert worker_count(ProxyConfig(workers=3)) == 3
    assert worker_count(ProxyConfig(faults=[make_fault("latency", {"delay_ms": 1})])) == 1  # faults keep state
    assert worker_count(ProxyConfig()) == max(1, min(len(os.sched_getaffinity(0)), 4))


def test_each_worker_gets_a_socket_of_its_own_on_one_shared_port() -> None:
    socks = listening_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(socks) == 3 and len(ports) == 1
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)
        with socket.create_connection(socks[0].getsockname(), timeout=TIMEOUT_S):
            pass  # the group accepts connections
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVE = """
import sys
from proxy_lab.proxy import ProxyConfig, run_proxy
from proxy_lab.resolver import SystemResolver
config = ProxyConfig(listen=("127.0.0.1", int(sys.argv[1])), workers=2, cpu_affinity=False, plain_path=True)
sys.exit(run_proxy(config, SystemResolver()))
"""


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def tunnel_roundtrip(port: int, echo_port: int, payload: bytes) -> bytes:
    s, got = open_tunnel(port, echo_port, TIMEOUT_S)
    with s:
        s.sendall(payload)
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


@pytest.mark.timeout(60)
def test_two_worker_processes_serve_tunnels_and_stop_on_sigterm_with_exit_code_0() -> None:
    async def scenario() -> str:
        async with upstream() as echo:  # an echo server on this test's loop
            return await asyncio.to_thread(serve_and_stop, echo.port)

    stderr = run(scenario(), timeout_s=50)
    assert "Traceback" not in stderr, stderr


def serve_and_stop(echo_port: int) -> str:
    """Start `run_proxy` with two workers, tunnel through it, SIGTERM it; its stderr."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=REPO, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while len(children_of(proc.pid)) < 2 or not _accepts(port):  # bounded wait for both workers
            assert proc.poll() is None, "the proxy exited before serving"
            assert time.monotonic() < deadline, "the workers did not start within 15 s"
            time.sleep(0.05)
        workers = children_of(proc.pid)
        assert len(workers) == 2
        for n in range(20):  # the kernel spreads them over both workers; each must relay both ways
            payload = f"tunnel {n} ".encode() * 100
            assert tunnel_roundtrip(port, echo_port, payload) == payload
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # no worker left behind
        assert not _accepts(port)  # negative control: nothing serves the port any more
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return proc.stderr.read().decode() if proc.stderr else ""


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True
