"""Every proxy the bench measures, each started with a generated config under the run's temp directory.

A peer is skipped with a note (`PeerSkipped`) when its program is absent or it fails to start or
to tunnel one echo byte (the note carries the tail of its output). Settings are chosen to be fair
and are recorded in results.json (`Peer.settings`):

- direct: no proxy, the client connects to the target servers (the ceiling).
- lab: `proxy-lab proxy --listen 127.0.0.1:PORT` (+ `--fault ...` for the throttle runs), as a user
  starts it: one worker process per core (at most 4) without faults, one process with a fault.
- tinyproxy: foreground, `MaxClients 2048` (a thread per connection), `ConnectPort` for the targets.
- squid: `-N` (one process, no SMP workers), no cache, no access log, `max_filedescriptors 4096`.
- mitmproxy: `mitmdump --mode regular --ignore-hosts '.*'` (passthrough: no interception).
- proxypy: proxy.py as shipped (threadless; one worker and one acceptor process per core),
  logging at ERROR.
- haproxy: a plain TCP forwarder (not CONNECT) with splice in both directions, one frontend per
  target, threads as shipped (one per core): the reference for the zero-copy goal.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import sys
import time
from pathlib import Path

from bench import client, procs
from bench.client import Route
from bench.servers import TargetPorts

VENV_BIN = Path(sys.executable).parent


class PeerSkipped(Exception):
    """This peer cannot be measured on this machine; the message says why."""


def _find(program: str) -> str | None:
    local = VENV_BIN / program
    if local.exists():
        return str(local)
    return shutil.which(program) or (f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None)


class Peer:
    """One proxy (or the direct baseline) under measurement."""

    name = "?"
    kind = "connect"  # "connect" (HTTP CONNECT proxy), "forward" (TCP forwarder) or "direct"
    program = ""
    settings = ""

    def __init__(self) -> None:
        self.proc: procs.Managed | None = None
        self.port = 0
        self.targets: TargetPorts | None = None
        self.workdir: Path | None = None

    def missing(self) -> str | None:
        """Why this peer cannot run here, or None."""
        if self.program and _find(self.program) is None:
            return f"{self.program} is not installed"
        return None

    def version(self) -> str:
        return ""

    def argv(self, workdir: Path, targets: TargetPorts) -> list[str]:
        raise NotImplementedError

    def route(self, target: str) -> Route:
        assert self.targets is not None
        return Route(self.port, f"{procs.LOOPBACK}:{getattr(self.targets, target)}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.alive() else None

    def extra_logs(self) -> list[Path]:
        return []

    def tail(self) -> str:
        parts = [self.proc.tail()] if self.proc is not None else []
        for path in self.extra_logs():
            with contextlib.suppress(OSError):
                parts.append("\n".join(path.read_text(errors="replace").strip().splitlines()[-8:]))
        return "\n".join(p for p in parts if p)

    def start(self, workdir: Path, targets: TargetPorts) -> None:
        reason = self.missing()
        if reason:
            raise PeerSkipped(reason)
        self.targets = targets
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = procs.free_port()
        argv = self.argv(self.workdir, targets)
        self.proc = procs.Managed(self.name, argv, self.workdir, env=self.env())
        try:
            self.proc.start()
        except OSError as exc:
            raise PeerSkipped(f"{self.name} could not be started: {exc}") from exc
        try:
            self.wait_ready()
        except (RuntimeError, OSError, client.TunnelError) as exc:
            tail = self.tail()
            self.stop()
            raise PeerSkipped(f"{self.name} failed to start: {exc}" + (f"\n{tail}" if tail else "")) from exc

    def env(self) -> dict[str, str] | None:
        return None

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Listening, and one echo byte made it through a tunnel (retried while the proxy warms up)."""
        assert self.proc is not None
        procs.wait_for_port(self.port, self.proc, timeout_s)
        deadline = time.monotonic() + 10.0
        while True:
            try:
                sock = client.open_tunnel(self.route("echo"), timeout_s=5.0)
                try:
                    client.echo_once(sock)
                finally:
                    sock.close()
                return
            except (OSError, client.TunnelError):
                if time.monotonic() > deadline or not self.proc.alive():
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


class Direct(Peer):
    name = "direct"
    kind = "direct"
    settings = "no proxy: the client connects to the target servers"

    def start(self, workdir: Path, targets: TargetPorts) -> None:
        self.targets = targets

    def route(self, target: str) -> Route:
        assert self.targets is not None
        return Route(getattr(self.targets, target))

    def version(self) -> str:
        return "loopback"


class Lab(Peer):
    name = "lab"
    program = "proxy-lab"

    def __init__(self, faults: list[str] | None = None, name: str | None = None) -> None:
        super().__init__()
        self.faults = faults or []
        self.name = name or "lab"
        self.settings = "proxy-lab proxy --listen 127.0.0.1:PORT" + "".join(f" --fault {f}" for f in self.faults)
        self.settings += " (one process)" if self.faults else " (as shipped: one worker process per core, at most 4, each on a CPU of its own)"

    def missing(self) -> str | None:
        return None  # started as `python -m proxy_lab.cli` when the console script is absent

    def command(self) -> list[str]:
        script = VENV_BIN / "proxy-lab"
        return [str(script)] if script.exists() else [sys.executable, "-m", "proxy_lab.cli"]

    def argv(self, workdir: Path, targets: TargetPorts) -> list[str]:
        argv = [*self.command(), "proxy", "--listen", f"{procs.LOOPBACK}:{self.port}"]
        for fault in self.faults:
            argv += ["--fault", fault]
        return argv

    def version(self) -> str:
        try:
            from importlib.metadata import version

            return f"proxy-lab {version('proxy-lab')}"
        except Exception:
            return "proxy-lab"


class Tinyproxy(Peer):
    name = "tinyproxy"
    program = "tinyproxy"
    settings = "tinyproxy -d -c CONF: MaxClients 2048, ConnectPort per target, LogLevel Error, no Via header"

    def version(self) -> str:
        return procs.run_for_output([_find(self.program) or self.program, "-v"])

    def argv(self, workdir: Path, targets: TargetPorts) -> list[str]:
        lines = [
            f"Port {self.port}",
            f"Listen {procs.LOOPBACK}",
            "Timeout 600",
            "MaxClients 2048",
            f"Allow {procs.LOOPBACK}",
            *(f"ConnectPort {port}" for port in targets.as_dict().values()),
            "LogLevel Error",
            f'PidFile "{workdir}/tinyproxy.pid"',
            "DisableViaHeader Yes",
        ]
        user = _unprivileged_user(workdir)
        if user:
            lines += [f"User {user[0]}", f"Group {user[1]}"]
        conf = workdir / "tinyproxy.conf"
        conf.write_text("\n".join(lines) + "\n")
        return [_find(self.program) or self.program, "-d", "-c", str(conf)]


class Squid(Peer):
    name = "squid"
    program = "squid"
    settings = "squid -N -f CONF: one process, cache deny all, no access log, max_filedescriptors 4096"

    def version(self) -> str:
        return procs.run_for_output([_find(self.program) or self.program, "-v"])

    def extra_logs(self) -> list[Path]:
        return [self.workdir / "cache.log"] if self.workdir else []

    def argv(self, workdir: Path, targets: TargetPorts) -> list[str]:
        user = _unprivileged_user(workdir)
        lines = [
            f"http_port {procs.LOOPBACK}:{self.port}",
            "visible_hostname localhost",  # no lookup of this machine's own name
            "dns_nameservers 127.0.0.1",  # targets are IP literals; any stray query stays on loopback
            "http_access allow localhost",  # any method, CONNECT to any port
            "http_access deny all",
            "cache deny all",
            "cache_mem 8 MB",
            f"pid_filename {workdir}/squid.pid",
            "access_log none",
            "cache_store_log none",
            f"cache_log {workdir}/cache.log",
            f"coredump_dir {workdir}",
            "max_filedescriptors 4096",
            "shutdown_lifetime 0 seconds",
            "pinger_enable off",
            "netdb_filename none",
            "client_db off",
            "logfile_rotate 0",
        ]
        if user:
            lines.append(f"cache_effective_user {user[0]}")
        conf = workdir / "squid.conf"
        conf.write_text("\n".join(lines) + "\n")
        return [_find(self.program) or self.program, "-N", "-f", str(conf)]


class Mitmproxy(Peer):
    name = "mitmproxy"
    program = "mitmdump"
    settings = "mitmdump --mode regular --ignore-hosts '.*' -q (passthrough, no interception)"

    def version(self) -> str:
        return procs.run_for_output([_find(self.program) or self.program, "--version"])

    def argv(self, workdir: Path, targets: TargetPorts) -> list[str]:
        return [
            _find(self.program) or self.program, "--mode", "regular", "--listen-host", procs.LOOPBACK,
            "-p", str(self.port), "--ignore-hosts", ".*", "-q", "--set", f"confdir={workdir}",
        ]  # fmt: skip


class ProxyPy(Peer):
    name = "proxypy"
    program = "proxy"
    settings = "proxy --hostname 127.0.0.1 --port PORT --log-level ERROR (as shipped: threadless, workers and acceptors = cores)"

    def version(self) -> str:
        return "proxy.py " + procs.run_for_output([_find(self.program) or self.program, "--version"])

    def argv(self, workdir: Path, targets: TargetPorts) -> list[str]:
        return [
            _find(self.program) or self.program, "--hostname", procs.LOOPBACK, "--port", str(self.port),
            "--log-level", "ERROR", "--data-dir", str(workdir), "--open-file-limit", "16384",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        assert self.workdir is not None
        return dict(os.environ, HOME=str(self.workdir))


class Haproxy(Peer):
    name = "haproxy"
    kind = "forward"
    program = "haproxy"
    settings = "haproxy -db: mode tcp, option splice-request + splice-response, one frontend per target"

    def __init__(self) -> None:
        super().__init__()
        self.frontends: dict[str, int] = {}

    def version(self) -> str:
        # "HAProxy version 2.6.12-1+deb12u4 2023/12/16 - https://haproxy.org/": keep the part before " - "
        return procs.run_for_output([_find(self.program) or self.program, "-v"]).split(" - ")[0]

    def argv(self, workdir: Path, targets: TargetPorts) -> list[str]:
        self.frontends = {name: procs.free_port() for name in targets.as_dict()}
        self.port = self.frontends["echo"]
        lines = [
            "global", "    maxconn 4096",
            "defaults", "    mode tcp", "    timeout connect 5s", "    timeout client 120s",
            "    timeout server 120s", "    option splice-request", "    option splice-response",
        ]  # fmt: skip
        for name, port in targets.as_dict().items():
            lines += [
                f"frontend fe_{name}", f"    bind {procs.LOOPBACK}:{self.frontends[name]}",
                f"    default_backend be_{name}",
                f"backend be_{name}", f"    server {name} {procs.LOOPBACK}:{port}",
            ]  # fmt: skip
        conf = workdir / "haproxy.cfg"
        conf.write_text("\n".join(lines) + "\n")
        return [_find(self.program) or self.program, "-db", "-f", str(conf)]

    def route(self, target: str) -> Route:
        return Route(self.frontends[target])


def _unprivileged_user(workdir: Path) -> tuple[str, str] | None:
    """As root, the user a C proxy drops to (`proxy` as Debian's Squid does, else `nobody`), owning `workdir`."""
    if os.geteuid() != 0:
        return None
    for name in ("proxy", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
        group = next((g for g in _group_names(entry.pw_gid)), name)
        return name, group
    return None


def _group_names(gid: int) -> list[str]:
    import grp

    try:
        return [grp.getgrgid(gid).gr_name]
    except KeyError:
        return []


ALL_PEERS = ("direct", "lab", "haproxy", "tinyproxy", "squid", "mitmproxy", "proxypy")


def make_peer(name: str) -> Peer:
    classes: dict[str, type[Peer]] = {
        "direct": Direct, "lab": Lab, "haproxy": Haproxy, "tinyproxy": Tinyproxy,
        "squid": Squid, "mitmproxy": Mitmproxy, "proxypy": ProxyPy,
    }  # fmt: skip
    if name not in classes:
        raise ValueError(f"unknown peer {name!r}: expected one of {', '.join(ALL_PEERS)}")
    return classes[name]()

