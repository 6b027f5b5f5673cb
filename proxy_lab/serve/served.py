"""The served lab: the cloud, the lab proxy (built once with a `Switchboard`), the meter probing on
an interval, the event hub, and the web app on uvicorn, started and stopped together.

    async with ServedLab(ServeConfig(listen=("127.0.0.1", 3128), ui=("127.0.0.1", 8080))) as served:
        await served.wait_closed()      # until stop() (the CLI: SIGTERM / Ctrl-C)

Fault changes go through the methods here (`add_fault`, `update_fault`, `remove_fault`,
`apply_preset`), which change the switchboard and publish one `FaultChanged` event each.
The proxy resolves through the lab's Resolver, as in every scenario: a client of the served proxy
(curl, a browser, a real meter) reaches the simulated cloud for the guide's hosts and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import uvicorn

from proxy_lab.catalog import MODELS
from proxy_lab.cloud import Cloud
from proxy_lab.device import DeviceSettings, ProxySettings
from proxy_lab.errors import ConfigError
from proxy_lab.lab import Lab
from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.resolver import is_ip
from proxy_lab.serve.app import create_app
from proxy_lab.serve.events import EventHub, FaultAction, FaultChanged
from proxy_lab.serve.meter import Meter
from proxy_lab.serve.presets import Preset, presets
from proxy_lab.serve.switchboard import FaultEntry, Switchboard, UnknownFault, build_fault
from proxy_lab.tasks import Service

STOP_WAIT_S = 5  # the web server's grace for open requests (event streams are ended first)


def is_loopback(host: str) -> bool:
    return host == "localhost" or (is_ip(host) and ipaddress.ip_address(host).is_loopback)


@dataclass
class ServeConfig:
    """`proxy-lab serve`'s options; validated when made (ConfigError names the option)."""

    listen: tuple[str, int] = ("127.0.0.1", 0)
    ui: tuple[str, int] = ("127.0.0.1", 0)
    model: str = "sendpro-c"
    users: dict[str, str] = field(default_factory=dict)
    faults: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    interval_s: float = 5.0
    ui_token: str | None = None
    allow_open: bool = False
    certs_dir: Path | None = None
    # The meter probes through this existing proxy instead of the lab's (a hardware appliance in a
    # lab network); the cloud then serves the guide's real ports and its DNS on `cloud_address`.
    proxy_url: str | None = None
    cloud_address: str | None = None

    def __post_init__(self) -> None:
        if self.proxy_url is not None:
            meter_proxy(self.proxy_url)  # raises ConfigError naming --proxy
            if self.cloud_address is None:
                raise ConfigError("--proxy needs --cloud-address: the address where that proxy can reach the cloud and its DNS")
        if self.cloud_address is not None and not is_ip(self.cloud_address):
            raise ConfigError(f"--cloud-address {self.cloud_address!r}: expected an IP address of this machine")
        if self.model not in MODELS:
            raise ConfigError(f"--model {self.model!r}: expected one of {', '.join(MODELS)}")
        if not 0.2 <= self.interval_s <= 3600:
            raise ConfigError(f"--interval {self.interval_s:g}: expected seconds between 0.2 and 3600")
        if self.ui_token is not None and (len(self.ui_token) < 8 or any(c.isspace() for c in self.ui_token)):
            raise ConfigError("--ui-token: expected at least 8 characters and no spaces")
        if not is_loopback(self.ui[0]) and not self.ui_token:
            raise ConfigError(
                f"--ui {self.ui[0]}:{self.ui[1]} is not a loopback address: the fault API would be open "
                "to the network; add --ui-token TOKEN (every API call then needs it)"
            )
        for name, settings in self.faults:
            try:
                build_fault(name, settings)
            except (UnknownFault, ValueError) as exc:
                raise ConfigError(f"--fault {name}: {exc}") from exc


def meter_proxy(url: str) -> ProxySettings:
    """The meter's proxy settings from `http://[user:password@]host:port` (--proxy)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--proxy {url!r}: {exc}") from exc
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(f"--proxy {url!r}: expected http://[USER:PASSWORD@]HOST:PORT (the meter speaks HTTP CONNECT)")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password or "") if user is not None else None
    return ProxySettings(parts.hostname, port, user, password)


def cloud_ports(cloud: Cloud, address: str) -> dict[str, tuple[str, int]]:
    """Every listener of the cloud on `address` at the port the guide names (443, 80, raw TCP ports, 53)."""
    real = {"https": 443, "http": 80, "dns": 53}
    return {kind: (address, real[kind] if kind in real else int(kind.split(":")[1])) for kind in cloud.kinds}


def _bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{what} {host}:{port}: cannot listen there ({exc.strerror or exc})") from exc
    sock.setblocking(False)
    return sock


class _UiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the served lab decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ServedLab(Service):
    """Cloud + lab proxy + meter + API/dashboard; `async with` or start()/stop()."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.events = EventHub()
        self.started_at = time.time()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.lab: Lab | None = None
        self.switchboard: Switchboard | None = None
        self.proxy: LabProxy | None = None
        self.meter: Meter | None = None
        self._ui: _UiServer | None = None
        self._ui_task: asyncio.Task[None] | None = None
        self.ui_address: tuple[str, int] | None = None
        self._closed = asyncio.Event()
        self.presets: dict[str, Preset] = {}
        self.preset = ""  # the preset whose faults are in force, unchanged since ("" when none)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        c = self.config
        ProxyConfig(listen=c.listen, users=dict(c.users), allow_open=c.allow_open).check_exposure()
        ui_sock = _bind(*c.ui, "--ui")
        try:
            await self._start_lab()
            await self._start_ui(ui_sock)
        except BaseException:
            ui_sock.close()
            await self.stop()
            raise

    async def _start_lab(self) -> None:
        c = self.config
        self._tmp = tempfile.TemporaryDirectory(prefix="proxy-lab-serve-")
        self.lab = Lab.create(c.certs_dir)
        if c.cloud_address is not None:
            pki, catalog = self.lab.pki, self.lab.catalog
            bind = cloud_ports(Cloud(pki, catalog), c.cloud_address)
            self.lab = Lab(pki, catalog, Cloud(pki, catalog, host=c.cloud_address, bind=bind))
        try:
            await self.lab.__aenter__()
        except OSError as exc:
            self.lab = None
            raise ConfigError(f"--cloud-address {c.cloud_address}: {exc.strerror or exc}") from exc
        self.presets = presets(self.lab.catalog)
        self.switchboard = Switchboard(self.lab)
        await self.switchboard.replace(c.faults)
        self.proxy = LabProxy(ProxyConfig(listen=c.listen, users=dict(c.users), allow_open=c.allow_open,
                                          faults=[self.switchboard]), self.lab.resolver)  # fmt: skip
        try:
            await self.proxy.start()
        except OSError as exc:
            self.proxy = None
            raise ConfigError(f"--listen {c.listen[0]}:{c.listen[1]}: cannot listen there ({exc.strerror or exc})") from exc
        host, port = self.proxy.address
        user, password = next(iter(c.users.items()), (None, None))
        through = meter_proxy(c.proxy_url) if c.proxy_url else ProxySettings(host, port, user, password)
        settings = DeviceSettings(model=c.model, proxy=through)
        self.meter = Meter(
            settings, self.lab.pki, self.lab.resolver, self.lab.catalog, self.events,
            journal_path=Path(self._tmp.name) / "meter.journal.sqlite3", interval_s=c.interval_s,
        )  # fmt: skip
        self.meter.start()

    async def _start_ui(self, sock: socket.socket) -> None:
        app = create_app(self, token=self.config.ui_token)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=STOP_WAIT_S,
                                access_log=False)  # fmt: skip
        self._ui = _UiServer(config)
        self.ui_address = sock.getsockname()[:2]
        self._ui_task = asyncio.get_running_loop().create_task(self._ui.serve(sockets=[sock]), name="serve ui")
        deadline = time.monotonic() + 30
        while not self._ui.started:
            if self._ui_task.done():
                self._ui_task.result()
                raise ConfigError("--ui: the web server stopped while starting")
            if time.monotonic() > deadline:
                raise ConfigError("--ui: the web server did not start within 30 s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call twice."""
        self.events.close()
        if self._ui is not None and self._ui_task is not None:
            self._ui.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ui_task, STOP_WAIT_S + 5)
            self._ui = self._ui_task = None
        if self.meter is not None:
            await self.meter.stop()
            self.meter = None
        if self.proxy is not None:
            await self.proxy.stop()
            self.proxy = None
        if self.lab is not None:
            await self.lab.__aexit__(None, None, None)
            self.lab = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


    # -- addresses ------------------------------------------------------------------------------
    @property
    def proxy_url(self) -> str:
        assert self.proxy is not None, "ServedLab.proxy_url read before start()"
        return self.proxy.url

    @property
    def ui_url(self) -> str:
        assert self.ui_address is not None, "ServedLab.ui_url read before start()"
        host, port = self.ui_address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # -- fault changes: the switchboard, then one event -------------------------------------------
    def _board(self) -> Switchboard:
        assert self.switchboard is not None, "the served lab is not running"
        return self.switchboard

    def faults(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self._board().entries]

    def _changed(self, action: FaultAction, entries: list[FaultEntry], cut_before: int, preset: str = "") -> None:
        self.preset = preset
        self.events.publish(FaultChanged(
            action=action, faults=tuple(e.to_dict() for e in entries), in_force=tuple(self.faults()),
            cut=cut_before, preset=preset,
        ))  # fmt: skip
        if self.meter is not None:
            self.meter.nudge()

    async def add_fault(self, name: str, settings: dict[str, Any], *, cut: bool = False) -> FaultEntry:
        board = self._board()
        open_now = board.open_tunnels if cut else 0
        entry = await board.add(name, settings, cut=cut)
        self._changed("added", [entry], open_now)
        return entry

    async def update_fault(self, fault_id: str, settings: dict[str, Any], *, cut: bool = False) -> FaultEntry:
        board = self._board()
        open_now = board.open_tunnels if cut else 0
        entry = await board.update(fault_id, settings, cut=cut)
        self._changed("changed", [entry], open_now)
        return entry

    async def remove_fault(self, fault_id: str, *, cut: bool = False) -> FaultEntry:
        board = self._board()
        open_now = board.open_tunnels if cut else 0
        entry = await board.remove(fault_id, cut=cut)
        self._changed("removed", [entry], open_now)
        return entry

    async def apply_preset(self, name: str, *, cut: bool = False) -> list[FaultEntry]:
        preset = self.presets.get(name)
        if preset is None:
            raise UnknownFault(f"unknown preset {name!r}: expected one of {', '.join(self.presets)}")
        board = self._board()
        open_now = board.open_tunnels if cut else 0
        entries = await board.replace(preset.faults, cut=cut)
        self._changed("replaced", entries, open_now, preset=name)
        return entries

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        meter, proxy = self.meter, self.proxy
        assert meter is not None and proxy is not None, "the served lab is not running"
        host, port = proxy.address
        return {
            "model": self.config.model,
            "proxy": {"url": proxy.url, "host": host, "port": port, "auth": bool(self.config.users),
                      "open_tunnels": self._board().open_tunnels},
            "faults": self.faults(),
            "preset": self.preset,
            "meter": {"proxy": f"http://{meter.settings.proxy.address}" if meter.settings.proxy else "",
                      "external": self.config.proxy_url is not None, "cloud_address": self.config.cloud_address},
            "probe": {"runs": meter.runs, "running": meter.running, "last_run_at": meter.last_run_at,
                      "interval_s": meter.interval_s},
            "services": meter.status(),
            "started_at": self.started_at,
            "last_event": self.events.recent[-1].seq if self.events.recent else 0,
        }  # fmt: skip
