"""Processes the bench starts: spawning in their own process group, stopping, and metering via /proc.

Every process runs in a new session (its own process group) with its output in a log file under
the run's temp directory, so a full pipe never stalls it and its last lines explain a failure.
`stop()` ends the whole group: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"
PR_SET_PDEATHSIG = 1


def raise_nofile_limit(want: int = 16384) -> int:
    """Raise RLIMIT_NOFILE towards `want` (bounded by the hard limit); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop where installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the kernel's choice; released before returning)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: receive SIGKILL if the bench dies without cleaning up (best effort)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Managed:
    """One started process (and its process group) with its combined output in `log`."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, *, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.name = name
        self.argv = list(argv)
        self.log = workdir / f"{name}.log"
        self.cwd = cwd or workdir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd,
                env=self.env, start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, grace_s: float = 5.0) -> None:
        """Idempotent: a second killpg could reach an unrelated group that reused the number."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        stop_group(self.proc, grace_s)


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the process group led by `proc`, SIGKILL it after `grace_s`, and reap `proc`."""
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no member of its group outlives it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        return


def wait_for_port(port: int, proc: Managed, timeout_s: float = 20.0) -> None:
    """Until something accepts on 127.0.0.1:`port`; raises RuntimeError if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited (code {proc.proc.returncode if proc.proc else '?'})")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on {LOOPBACK}:{port} within {timeout_s:.0f} s")


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # the command name is in parentheses and may contain spaces or parentheses itself
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo and len(tree) < 10_000:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_rss_bytes(root: int) -> int:
    """Resident set size summed over the process tree (threads share their process's RSS)."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    return total


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by the live processes of the tree (all their threads)."""
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(pid)
            # after the command name: field 14 utime and 15 stime are at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def run_for_output(argv: Sequence[str], timeout_s: float = 10.0) -> str:
    """First non-empty line of a short command's output (for versions), or '' on any failure."""
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    text = (done.stdout + done.stderr).decode(errors="replace")
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
