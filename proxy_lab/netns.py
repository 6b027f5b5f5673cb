"""Namespace mode: a network namespace of the run's own, where real proxies meet the simulated cloud.

`Namespace` creates `proxylab-<pid>-<n>` with `ip netns`, brings its loopback up, adds the cloud's
address (`CLOUD_ADDRESS`) to it, and writes `/etc/netns/<name>/hosts` (every catalog host -> the
cloud), `resolv.conf` (the cloud's DNS, inside the namespace) and `nsswitch.conf` (`hosts: files
dns`). `ip netns exec` bind-mounts those files over /etc for whatever runs inside, so unmodified
Squid, tinyproxy, mitmproxy and proxy.py resolve the guide's hosts to the cloud and no lookup ever
leaves the namespace (ip-netns(8): "ip netns exec automates handling of this configuration ... by
bind mounting").

`run_in_namespace` (called by the runner for a target that `needs_namespace`) runs a whole batch of
scenarios (cloud, product and device together) in a child process inside the namespace
(`python -m proxy_lab.netns_child`, which runs them with the runner), reads the runs back as JSON lines,
and tears everything down in `finally`: on success, failure, Ctrl-C (the asyncio task is cancelled)
or SIGTERM (turned into the same cancellation). Teardown kills what still runs in the namespace,
deletes it and removes `/etc/netns/<name>`. A namespace left by a run that was killed outright
(SIGKILL) is found at the next start by its name: the pid in it no longer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from proxy_lab.catalog import Catalog, load_catalog
from proxy_lab.errors import SetupError
from proxy_lab.pki import DEFAULT_CERTS_DIR
from proxy_lab.runs import EventSink, Progress, ScenarioRun, decode_run
from proxy_lab.typed import encode

if TYPE_CHECKING:
    from proxy_lab.scenarios import Scenario

PREFIX = "proxylab-"
NETNS_ETC = Path("/etc/netns")
CLOUD_ADDRESS = "127.1.0.1"  # on the namespace's own loopback: the cloud binds 80, 443, 5228, 5938, 53 here
PROXY_HOST = "127.0.0.1"  # where the product listens, inside the namespace
ENV_NAME = "PROXY_LAB_NETNS"  # set for the child: the namespace it runs in
ENV_CLOUD = "PROXY_LAB_NETNS_CLOUD"

_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)(?:-\d+)?$")
_IP_TIMEOUT_S = 15.0
_KILL_WAIT_S = 5.0
_counter = itertools.count(1)


def require_root() -> None:
    """Raise SetupError with a one-line explanation when namespace mode cannot work here."""
    if sys.platform != "linux":
        raise SetupError("namespace mode needs Linux network namespaces (ip netns); use --target lab")
    if os.geteuid() != 0:
        raise SetupError(
            "real proxies run in a network namespace of their own (ip netns), which needs root: "
            "run as root, or use --target lab"
        )
    if shutil.which("ip") is None:
        raise SetupError("namespace mode needs the `ip` command (Debian package iproute2)")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"`ip {' '.join(args)}` failed: {exc}") from exc
    if check and done.returncode != 0:
        raise SetupError(f"`ip {' '.join(args)}` failed (exit {done.returncode}): {done.stderr.strip()}")
    return done


def list_namespaces() -> list[str]:
    """Names of every network namespace `ip netns` knows (`name` or `name (id: 3)` lines)."""
    done = _ip("netns", "list", check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def namespace_pids(name: str) -> list[int]:
    done = _ip("netns", "pids", name, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def owner_pid(name: str) -> int | None:
    """The pid of the run that made namespace `name`, or None when the name is not one of ours."""
    m = _NAME.match(name)
    return int(m.group(1)) if m else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all(pids: Sequence[int], wait_s: float = _KILL_WAIT_S) -> None:
    """SIGTERM the given pids (they run in one of our namespaces), then SIGKILL those still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in pids if pid_alive(p)]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while alive and time.monotonic() < deadline:  # bounded by wait_s
            time.sleep(0.05)
            alive = [p for p in alive if pid_alive(p) and not _is_zombie(p)]
        if not alive:
            return


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def teardown(name: str) -> None:
    """Kill what runs in namespace `name`, delete it and its /etc/netns directory; idempotent."""
    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to tear down {name!r}: not a proxy-lab namespace ({PREFIX}*)")
    if name in list_namespaces():
        _kill_all(namespace_pids(name))
        _ip("netns", "del", name, check=False)
    shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def cleanup_stale() -> list[str]:
    """Remove namespaces and /etc/netns entries left by proxy-lab runs that no longer run."""
    removed: list[str] = []
    names = set(list_namespaces())
    if NETNS_ETC.is_dir():
        names |= {p.name for p in NETNS_ETC.iterdir() if p.name.startswith(PREFIX)}
    for name in sorted(names):
        pid = owner_pid(name)
        if pid is not None and not pid_alive(pid):
            teardown(name)
            removed.append(name)
    return removed


def hosts_file(catalog: Catalog, address: str = CLOUD_ADDRESS) -> str:
    lines = [
        "# proxy-lab namespace: every host of the guide resolves to the simulated cloud",
        "127.0.0.1 localhost",
        "::1 localhost ip6-localhost ip6-loopback",
    ]
    # The machine's own name, as on a real proxy host: Squid refuses to start when it cannot resolve
    # it ("Could not determine this machines public hostname") and the user's file sets no
    # visible_hostname.
    own = socket.gethostname()
    if own and own != "localhost" and own not in catalog.hosts():
        lines.append(f"127.0.1.1 {own}")
    for host in catalog.hosts():
        try:
            ipaddress.ip_address(host)
        except ValueError:
            lines.append(f"{address} {host}")
    return "\n".join(lines) + "\n"


def resolv_conf(address: str = CLOUD_ADDRESS) -> str:
    return f"# proxy-lab namespace: the cloud's DNS, inside the namespace\nnameserver {address}\noptions timeout:1 attempts:2\n"


def nsswitch_conf(original: str) -> str:
    """The machine's nsswitch.conf with `hosts: files dns` (no mdns or myhostname lookups)."""
    out = [line for line in original.splitlines() if not line.strip().startswith("hosts:")]
    out.append("hosts:          files dns")
    return "\n".join(out) + "\n"


class Namespace:
    """A proxy-lab network namespace: `with Namespace() as ns: ... ns.exec_argv([...])`."""

    def __init__(self, catalog: Catalog | None = None, name: str | None = None) -> None:
        self.catalog = catalog or load_catalog()
        self.name = name or f"{PREFIX}{os.getpid()}-{next(_counter)}"
        if owner_pid(self.name) is None:
            raise ValueError(f"namespace name {self.name!r} must look like {PREFIX}<pid>[-<n>]")
        self.etc = NETNS_ETC / self.name
        self.created = False

    def create(self) -> Namespace:
        require_root()
        cleanup_stale()
        if self.name in list_namespaces():
            teardown(self.name)
        self.created = True  # from here on, delete() has something to undo
        try:
            _ip("netns", "add", self.name)
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "addr", "add", f"{CLOUD_ADDRESS}/32", "dev", "lo")
            self.etc.mkdir(parents=True, exist_ok=True)
            (self.etc / "hosts").write_text(hosts_file(self.catalog))
            (self.etc / "resolv.conf").write_text(resolv_conf())
            try:
                original = Path("/etc/nsswitch.conf").read_text()
            except OSError:
                original = "passwd: files\ngroup: files\n"
            (self.etc / "nsswitch.conf").write_text(nsswitch_conf(original))
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        if self.created:
            teardown(self.name)
            self.created = False

    def add_client(self, client_ip: str, server_ip: str) -> None:
        """Put a client (the meter) at `client_ip` and a server (the proxy) at `server_ip`, both on the
        namespace's loopback, so that a connection to `server_ip` leaves from `client_ip`.

        Both are host addresses on `lo` (IPv4 /32 or IPv6 /128, one family); the kernel's local route
        to `server_ip` is given `client_ip` as its preferred source (ip-route(8) `src`), which is the
        address a socket that does not bind gets: a proxy rule keyed on the client's address (`acl
        ... src`, tinyproxy `Allow`) sees the meter's address, as in production. For IPv6 the route the
        kernel made for the address (metric 0, which a replace cannot reach) is deleted first: source
        address selection would otherwise pick `server_ip` itself (RFC 6724 rule 1).
        """
        v6 = ":" in server_ip
        if v6 != (":" in client_ip):
            raise ValueError(f"client {client_ip} and server {server_ip}: one address family, please")
        for address in dict.fromkeys((client_ip, server_ip)):
            _ip("-n", self.name, *(["-6"] if v6 else []), "addr", "replace", f"{address}/{128 if v6 else 32}", "dev", "lo")
        if client_ip == server_ip:
            return
        if v6:
            _ip("-n", self.name, "-6", "route", "del", "table", "local", "local", server_ip, "dev", "lo")
            _ip("-n", self.name, "-6", "route", "replace", "table", "local", "local", server_ip, "dev", "lo",
                "proto", "kernel", "src", client_ip)  # fmt: skip
        else:
            _ip("-n", self.name, "route", "replace", "table", "local", "local", server_ip, "dev", "lo",
                "proto", "kernel", "scope", "host", "src", client_ip)  # fmt: skip

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def __enter__(self) -> Namespace:
        return self.create()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.delete()


# -- running scenarios in a child inside the namespace ---------------------------------------------
def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text("utf-8", "replace")
    except OSError:
        return ""
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))  # the child runs elsewhere in the process tree, same cwd


async def _stop_child(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # the child leads its own session and process group
        try:
            await asyncio.wait_for(proc.wait(), _KILL_WAIT_S)
            return
        except TimeoutError:
            continue


async def run_in_namespace(
    scenarios: Sequence[Scenario],
    target: str,
    *,
    certs_dir: Path | None = None,
    on_progress: Progress | None = None,
    on_event: EventSink | None = None,
    timeout_s: float | None = None,
) -> list[ScenarioRun]:
    """Run `scenarios` against `target` in a fresh namespace; the runs come back in scenario order.

    Raises SetupError when the namespace or the child cannot start; a child that dies midway leaves
    the remaining runs with a `setup_error`. Ctrl-C cancels the run (KeyboardInterrupt follows, as
    asyncio.run raises it); SIGTERM cancels it too and then exits with status 143 (128 + SIGTERM),
    both after the teardown.
    """
    require_root()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    previous = signal.getsignal(signal.SIGTERM)
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    hooked = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        hooked = True
    try:
        return await _run_child(scenarios, target, certs_dir, on_progress, on_event, timeout_s)
    except asyncio.CancelledError:
        if terminated:
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        if hooked:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)


async def _run_child(
    scenarios: Sequence[Scenario],
    target: str,
    certs_dir: Path | None,
    on_progress: Progress | None,
    on_event: EventSink | None,
    timeout_s: float | None,
) -> list[ScenarioRun]:
    budget = timeout_s if timeout_s is not None else 120.0 + 90.0 * len(scenarios)
    certs = _absolute(certs_dir if certs_dir is not None else DEFAULT_CERTS_DIR)
    runs: dict[int, ScenarioRun] = {}
    ns = Namespace()
    with tempfile.TemporaryDirectory(prefix="proxy-lab-netns-") as tmp:
        payload_path = Path(tmp) / "payload.json"
        stderr_path = Path(tmp) / "child.stderr"
        payload = {
            "target": target,
            "certs_dir": str(certs),
            "parent_pid": os.getpid(),
            "cloud_address": CLOUD_ADDRESS,
            "proxy_host": PROXY_HOST,
            "verbose": on_event is not None,
            "scenarios": [encode(s) for s in scenarios],
        }
        fd = os.open(payload_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        proc: asyncio.subprocess.Process | None = None
        try:
            ns.create()
            env = {**os.environ, ENV_NAME: ns.name, ENV_CLOUD: CLOUD_ADDRESS, "PYTHONUNBUFFERED": "1"}
            with stderr_path.open("wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    *ns.exec_argv([sys.executable, "-m", "proxy_lab.netns_child", str(payload_path)]),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    env=env,
                    start_new_session=True,  # Ctrl-C reaches the parent only; it stops the child
                    limit=64 * 1024 * 1024,  # one JSON line carries a whole run's evidence
                )
            assert proc.stdout is not None
            deadline = time.monotonic() + budget
            fatal: str | None = None
            while True:  # one line per event; ends at EOF or at the deadline
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SetupError(f"{target}: the namespace run took longer than {budget:.0f} s")
                line = await asyncio.wait_for(proc.stdout.readline(), remaining)
                if not line:
                    break
                try:
                    msg: dict[str, Any] = json.loads(line)
                except json.JSONDecodeError:
                    continue  # not ours (a stray print): the protocol is one JSON object per line
                kind = msg.get("kind")
                if kind == "event" and on_event is not None:
                    on_event(str(msg.get("line", "")))
                elif kind == "start" and on_progress is not None:
                    on_progress("start", scenarios[msg["index"]], None)
                elif kind == "done":
                    i = int(msg["index"])
                    runs[i] = decode_run(msg["run"], scenarios[i])
                    if on_progress is not None:
                        on_progress("done", scenarios[i], runs[i])
                elif kind == "fatal":
                    fatal = str(msg.get("message", "unknown error"))
            await asyncio.wait_for(proc.wait(), _KILL_WAIT_S)
            if fatal is not None and not runs:
                raise SetupError(f"{target} in namespace {ns.name}: {fatal}")
            if len(runs) < len(scenarios):
                why = fatal or f"the namespace child ended (exit {proc.returncode}) before this scenario: {_tail(stderr_path)}"
                for i, scenario in enumerate(scenarios):
                    if i not in runs:
                        runs[i] = ScenarioRun(scenario, target, setup_error=why)
        except TimeoutError as exc:
            raise SetupError(f"{target}: no word from the namespace child within {budget:.0f} s: {_tail(stderr_path)}") from exc
        finally:
            if proc is not None:
                await asyncio.shield(_stop_child(proc))
            ns.delete()  # synchronous: it must finish even when the task is cancelled again
    return [runs[i] for i in range(len(scenarios))]
