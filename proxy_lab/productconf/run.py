"""Starting a rewritten configuration with the real product, and stopping it with everything it began.

`started(lab, exe)` writes the LabConfig's files into the lab's temporary directory (owned by the
account the product switches to), runs its preparation commands (`squid -z`, the SslBump
certificate database), starts the product in the foreground in a process group of its own, waits
until `lab.listen` accepts, and on leaving stops the group (SIGTERM, then SIGKILL). A product that
exits or never listens raises `ProductStartError` with the product's own last words. Used by
validation (tinyproxy has no parse mode: starting it is its check) and by the lab's checks; it binds
only `lab.listen`, which the caller chooses (loopback or a namespace address).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from proxy_lab.productconf.lab import LabConfig
from proxy_lab.productconf.model import ProductConfigError

_STOP_WAIT_S = 5.0
_POLL_S = 0.05
OUTPUT = "output.log"


class ProductStartError(ProductConfigError):
    """The product would not start with the configuration: the message quotes the product."""


@dataclass
class Running:
    lab: LabConfig
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid


def argv(lab: LabConfig, exe: str) -> tuple[str, ...]:
    """How the product is started in the foreground with the rewritten file."""
    if lab.product == "squid":
        # -N: no daemon (and no SMP kids); -d 1: level-1 messages on stderr, to quote a failed start
        return (exe, "-N", "-d", "1", "-f", str(lab.path))
    return (exe, "-d", "-c", str(lab.path))


def _account(name: str | None) -> tuple[int, int]:
    if name is None or os.geteuid() != 0:
        return -1, -1
    try:
        entry = pwd.getpwnam(name)
    except KeyError as exc:
        raise ProductStartError(f"user {name!r} does not exist (the product runs as it)") from exc
    return entry.pw_uid, entry.pw_gid


def write_files(lab: LabConfig) -> None:
    """Write the lab's files into its temporary directory, owned by the product's account."""
    workdir = lab.path.parent
    workdir.mkdir(parents=True, exist_ok=True)
    uid, gid = _account(lab.run_as)
    for path, content in lab.files.items():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        if uid >= 0:
            os.chown(path, uid, gid)
    if uid >= 0:
        os.chown(workdir, uid, gid)
        workdir.chmod(0o750)


def prepare(lab: LabConfig, exe: str) -> None:
    uid, gid = _account(lab.run_as)
    for cmd in lab.prepare:
        full = [exe if cmd[0] == lab.product else cmd[0], *(str(lab.path) if a == "{config}" else a for a in cmd[1:])]
        try:
            done = subprocess.run(
                full, capture_output=True, text=True, timeout=60, check=False, cwd=lab.cwd,
                user=uid if uid >= 0 else None, group=gid if gid >= 0 else None,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProductStartError(f"preparing {lab.product} failed: {' '.join(full)}: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ProductStartError(f"preparing {lab.product} failed: {' '.join(full)}: exit {done.returncode}: {tail[0]}")


def accepts(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def last_words(lab: LabConfig, lines: int = 6) -> list[str]:
    """The product's last meaningful lines (its output, then Squid's cache.log)."""
    out: list[str] = []
    for name in (OUTPUT, "cache.log"):
        with contextlib.suppress(OSError):
            text = (lab.path.parent / name).read_text("utf-8", "replace")
            out += [line.strip() for line in text.splitlines() if line.strip()]
    return out[-lines:]


def _exited(pid: int) -> bool:
    """Whether the leader has exited, without reaping it: while it is a zombie its process group id
    cannot be reused, so signalling the group reaches only what the product started."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the product's process group, then SIGKILL what is left of it (helpers included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_WAIT_S
    while not _exited(proc.pid) and time.monotonic() < deadline:  # bounded by the deadline
        time.sleep(_POLL_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(_STOP_WAIT_S)


@contextlib.contextmanager
def started(lab: LabConfig, exe: str, *, ready_timeout_s: float = 30.0) -> Iterator[Running]:
    """The product running with `lab`'s files until the block ends; raises ProductStartError."""
    write_files(lab)
    prepare(lab, exe)
    with (lab.path.parent / OUTPUT).open("wb") as out:
        try:
            proc = subprocess.Popen(
                argv(lab, exe), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=lab.cwd,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise ProductStartError(f"{lab.product} could not be started ({exe}): {exc}") from exc
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:  # bounded by the deadline
            if proc.poll() is not None:
                raise ProductStartError(f"{lab.product} exited with status {proc.returncode} at start: {' | '.join(last_words(lab))}")
            if accepts(*lab.listen, timeout_s=0.5):
                break
            if time.monotonic() > deadline:
                raise ProductStartError(
                    f"{lab.product} did not accept connections on {lab.listen[0]}:{lab.listen[1]} within "
                    f"{ready_timeout_s:g} s: {' | '.join(last_words(lab))}"
                )
            time.sleep(_POLL_S)
        yield Running(lab, proc)
    finally:
        stop(proc)

