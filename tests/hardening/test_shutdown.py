"""Graceful shutdown of `proxy-lab proxy`: SIGTERM closes the listener at once, lets tunnels in flight
carry data for a grace period, then closes them, and the process exits 0.

The proxy runs as a real subprocess on 127.0.0.1; its tunnels go to an echo server in this process,
addressed by IP literal (`CONNECT 127.0.0.1:PORT`), so its system resolver never queries DNS.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxy.proxy_testkit import open_tunnel

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 5.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT_S)
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def proxy_process(port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy_lab.cli", "proxy", "--listen", f"127.0.0.1:{port}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 15
        while True:  # wait until it accepts, bounded
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"proxy did not start: {proc.communicate(timeout=5)}") from None
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def tunnel(port: int, target_port: int) -> socket.socket:
    s, rest = open_tunnel(port, target_port, TIMEOUT_S)
    assert rest == b"", rest  # nothing sent yet: nothing may come back
    return s


def echo_roundtrip(s: socket.socket, payload: bytes) -> bytes:
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def closed_within(s: socket.socket, seconds: float) -> float | None:
    """Seconds until the proxy closes `s` (EOF or reset), or None if it stays open."""
    started = time.monotonic()
    s.settimeout(0.1)
    while time.monotonic() - started < seconds:
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionError:
            return time.monotonic() - started
    return None


@pytest.mark.timeout(60)
def test_sigterm_closes_the_listener_at_once_lets_tunnels_finish_then_exits_0() -> None:
    port = free_port()
    with echo_server() as echo_port, proxy_process(port) as proc:
        busy = tunnel(port, echo_port)
        assert echo_roundtrip(busy, b"before") == b"before"
        half = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        half.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n")  # a head still arriving at SIGTERM
        time.sleep(0.1)

        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)

        refused_after = None
        while time.monotonic() - sent < 3:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except ConnectionRefusedError:
                refused_after = time.monotonic() - sent
                break
            time.sleep(0.02)
        assert refused_after is not None and refused_after < 1.0, "the listener stayed open after SIGTERM"

        # the tunnel in flight still carries data inside the grace period
        assert echo_roundtrip(busy, b"after SIGTERM") == b"after SIGTERM"
        assert closed_within(half, 1.0) is not None  # an unfinished head is not worth waiting for

        # then the proxy closes the tunnel itself (grace 2 s) and exits 0
        closed = closed_within(busy, 6.0)
        assert closed is not None, "the tunnel was never closed"
        assert time.monotonic() - sent > 1.0  # it was given time, not cut at once
        assert proc.wait(timeout=10) == 0
        busy.close()
        half.close()
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in stderr
        assert "stopped" in stderr  # the proxy says it stopped


@pytest.mark.timeout(60)
def test_sigterm_with_no_tunnel_open_exits_0_at_once() -> None:
    port = free_port()
    with proxy_process(port) as proc:
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - sent < 3.0
