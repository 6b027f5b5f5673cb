"""`proxy-lab serve` as a real process: it serves the status and the page, follows a fault put in
force through the API, and SIGTERM stops it with exit 0 and no process or port left behind."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from proxy_lab.cli import main
from proxy_lab.client import LabClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_bind(port: int) -> bool:
    """True when nothing listens on the port (SO_REUSEADDR, as servers bind: closed connections in
    TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
        return True


def wait_for_line(proc: subprocess.Popen[bytes], stderr: Path, timeout_s: float = 120) -> str:
    """The first line serve prints on stdout (where it listens), read without blocking past the timeout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    buf = b""
    while b"\n" not in buf:
        if proc.poll() is not None:
            raise AssertionError(f"proxy-lab serve exited with {proc.returncode}: {stderr.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"proxy-lab serve printed no address line within {timeout_s:g} s")
        if select.select([proc.stdout], [], [], 0.2)[0]:
            buf += os.read(proc.stdout.fileno(), 4096)
    return buf.decode().splitlines()[0]


def test_serve_follows_tls_inspection_and_stops_on_sigterm_with_exit_0_and_nothing_left(tmp_path: Path):
    listen, ui = free_port(), free_port()
    stderr = tmp_path / "serve.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy_lab.cli", "--certs", str(tmp_path / "certs"), "serve",
         "--listen", f"127.0.0.1:{listen}", "--ui", f"127.0.0.1:{ui}", "--interval", "1"],
        stdout=subprocess.PIPE, stderr=stderr.open("wb"), start_new_session=True,
    )  # fmt: skip
    try:
        line = wait_for_line(proc, stderr)
        assert line == f"proxy http://127.0.0.1:{listen} dashboard http://127.0.0.1:{ui}"
        lab = LabClient(f"http://127.0.0.1:{ui}")
        lab.wait_for("funds", "pass", timeout_s=60)
        assert set(lab.outcomes().values()) == {"pass"}
        entry = lab.add_fault("tls_inspect")
        lab.wait_for("funds", "tls_intercepted", timeout_s=30)
        lab.remove_fault(entry["id"])
        lab.wait_for("funds", "pass", timeout_s=30)
        assert not can_bind(listen) and not can_bind(ui)  # negative control: both are held while serving
        # A browser following the event stream must not hold the stop up.
        events: list[dict] = []
        follower = threading.Thread(target=lambda: events.extend(lab.events(timeout_s=60)), daemon=True)
        follower.start()
        deadline = time.monotonic() + 30
        while not events and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, stderr.read_text()
        follower.join(30)
        assert events and not follower.is_alive()  # the stream carried events, then ended with the lab
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no process of its group is left
    assert can_bind(listen) and can_bind(ui)


def test_a_non_loopback_ui_without_a_token_exits_2_with_a_one_line_reason(capsys):
    assert main(["serve", "--ui", "0.0.0.0:8080"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ui-token" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--fault", "no_such_fault"], "unknown fault 'no_such_fault'"),
        (["--fault", "throttle:rate_kbps=-1"], "rate_kbps"),
        (["--interval", "0"], "--interval"),
        (["--interval", "soon"], "--interval"),
        (["--listen", "10.1.2.3:3128"], "open proxy"),
        (["--ui-token", "short", "--ui", "127.0.0.1:0"], "--ui-token"),
    ],
)
def test_bad_serve_options_exit_2_naming_the_option(capsys, args, says):
    assert main(["serve", *args]) == 2
    assert says in capsys.readouterr().err
