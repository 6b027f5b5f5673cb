"""The real products as targets: `squid`, `tinyproxy`, `mitmproxy` and `proxypy` (`PRODUCTS`).

A `RealTarget` needs a network namespace (`needs_namespace`): the runner first asks it, in its own
process, what it cannot run (`skip_reason`: a preset of another product, a setting it cannot
express, a product not installed; skipped with the reason, no namespace needed), then runs the rest
in a namespace of their own (`proxy_lab.netns`). There, `proxy_for` writes the product's
configuration (`proxy_lab.targets.<product>`), starts the product in its own process group, waits
until its port accepts, and stops it (SIGTERM to the group, then SIGKILL) when the scenario is done.

With a user's own configuration (`proxy-lab run --target squid --config FILE`: `use_config`, which
sets `ENV_CONFIG` so the namespace child sees it too), the product runs that file instead, rewritten
only where the lab must (`proxy_lab.productconf.for_lab`), and the scenarios' device settings
(credentials, model) are checked against it; a scenario whose `[proxy]` table configures faults or a
preset is skipped with the reason (the file is the proxy). The meter connects from 127.0.0.1 there
(`check --product --meter-ip` is the way to put it at its own address).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from proxy_lab.errors import SetupError, TargetSkipped
from proxy_lab.netns import CLOUD_ADDRESS, ENV_CLOUD, ENV_NAME, PROXY_HOST
from proxy_lab.targets import mitmproxy_target, proxypy, squid, tinyproxy
from proxy_lab.targets.base import ProxyEndpoint, lab_only_reason
from proxy_lab.targets.presets import check_product, effective_spec
from proxy_lab.targets.product import LabFacts, Launch, policy_from_spec

if TYPE_CHECKING:
    from proxy_lab.lab import Lab
    from proxy_lab.scenarios import Scenario

_POLL_S = 0.1
_STOP_WAIT_S = 5.0
ENV_CONFIG = "PROXY_LAB_PRODUCT_CONFIG"  # the user's configuration file the real product runs instead of ours


def use_config(product: str, path: str | Path) -> Path:
    """Make `product`'s target run the user's file `path` (in this process and its namespace child).

    Checks it first: ConfigError (exit 2) for a target that is not squid or tinyproxy, or a file the
    product cannot use (unreadable, the other product's, no TCP port, files it names missing, the
    product not installed)."""
    from proxy_lab.errors import ConfigError
    from proxy_lab.productconf import parse_config
    from proxy_lab.productconf.validation import require_product, require_references

    if product not in ("squid", "tinyproxy"):
        raise ConfigError(f"--config FILE goes with --target squid or --target tinyproxy, not {product!r}")
    model = parse_config(Path(path), product)  # type: ignore[arg-type]
    require_product(model)
    require_references(model)
    absolute = Path(os.path.abspath(path))
    os.environ[ENV_CONFIG] = str(absolute)
    return absolute


@dataclass(frozen=True)
class Product:
    name: str  # the target name
    module: ModuleType  # has launch(policy, facts, scenario_id=) and binary()
    port: int
    version: Callable[[], str]


def _first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "unknown"


def _squid_version() -> str:
    exe = squid.binary()
    if exe is None:
        return "not installed"
    version = _first_line([exe, "-v"]).removeprefix("Squid Cache: Version ")
    return f"{version} with OpenSSL" if squid.supports_ssl_bump(exe) else version


def _tinyproxy_version() -> str:
    exe = tinyproxy.binary()
    return _first_line([exe, "-v"]).removeprefix("tinyproxy ") if exe else "not installed"


def _dist_version(dist: str) -> Callable[[], str]:
    def version() -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return version


PRODUCTS: dict[str, Product] = {
    p.name: p
    for p in (
        Product("squid", squid, squid.DEFAULT_PORT, _squid_version),
        Product("tinyproxy", tinyproxy, tinyproxy.DEFAULT_PORT, _tinyproxy_version),
        Product("mitmproxy", mitmproxy_target, mitmproxy_target.DEFAULT_PORT, _dist_version("mitmproxy")),
        Product("proxypy", proxypy, proxypy.DEFAULT_PORT, _dist_version("proxy.py")),
    )
}


@cache
def product_version(name: str) -> str:
    """The installed version of a product ("5.7", "1.11.1", ...) or "not installed"."""
    return PRODUCTS[name].version()


def installed(name: str) -> bool:
    return PRODUCTS[name].module.binary() is not None


def _facts(port: int, lab: Lab | None, workdir: Path) -> LabFacts:
    if lab is not None:
        dns = lab.cloud.dns_address[0]
        pb_root, confdir = lab.pki.pb_root.cert, lab.pki.corp_ca_combined()
    else:  # a dry run in the parent: only the shape of the configuration matters
        dns = os.environ.get(ENV_CLOUD, CLOUD_ADDRESS)
        pb_root, confdir = Path("pb-root.pem"), Path("mitmproxy")
    return LabFacts(PROXY_HOST, port, dns, pb_root, confdir, workdir)


def _write_files(launch: Launch, workdir: Path) -> None:
    """Write and copy the product's files into `workdir`, owned by its user; run its prepare steps."""
    uid = gid = -1
    if launch.owner is not None:
        try:
            entry = pwd.getpwnam(launch.owner)
        except KeyError as exc:
            raise SetupError(f"user {launch.owner!r} does not exist (the product runs as it)") from exc
        uid, gid = entry.pw_uid, entry.pw_gid
    contents: dict[str, bytes] = {name: text.encode("utf-8") for name, text in launch.files.items()}
    for name, source in launch.copies.items():
        try:
            contents[name] = source.read_bytes()
        except OSError as exc:
            raise SetupError(f"cannot read {source} for the product: {exc}") from exc
    for name, data in contents.items():
        path = workdir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, launch.file_modes.get(name, 0o644))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if uid >= 0:
            os.chown(path, uid, gid)
    if uid >= 0:
        os.chown(workdir, uid, gid)
        workdir.chmod(0o750)
    for argv in launch.prepare:
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=30, check=False, cwd=workdir,
                user=uid if uid >= 0 else None, group=gid if gid >= 0 else None,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SetupError(f"preparing the product failed: {' '.join(argv)}: {exc}") from exc
        if done.returncode != 0:
            raise SetupError(f"preparing the product failed: {' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()[-300:]}")


def _tail(workdir: Path, names: Sequence[str], lines: int = 8) -> str:
    out: list[str] = []
    for name in names:
        try:
            text = (workdir / name).read_text("utf-8", "replace")
        except OSError:
            continue
        out += [line.strip() for line in text.strip().splitlines()[-lines:] if line.strip()]
    return " | ".join(out[-lines:]) or "(no output)"


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the product's process group, then SIGKILL whatever of it is left (helpers too)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # the product leads its own group: squid's helpers go with it
        try:
            await asyncio.wait_for(proc.wait(), _STOP_WAIT_S)
        except TimeoutError:
            pass


def _reachable_tempdir(prefix: str) -> Path:
    """A temporary directory the product's own account can enter (mkdtemp gives mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class RealTarget:
    """One real product as a target; see the module docstring for where each half runs."""

    needs_namespace = True

    def __init__(self, product: Product, config: Path | None = None) -> None:
        self.product = product
        self.name = product.name
        configured = os.environ.get(ENV_CONFIG)
        self.config = config or (Path(configured) if configured and product.name in ("squid", "tinyproxy") else None)

    def launch_for(self, scenario: Scenario, lab: Lab | None, workdir: Path) -> Launch:
        """The product's Launch for `scenario`; raises TargetSkipped (preset of another product,
        something it cannot express, not installed)."""
        check_product(scenario, self.name)
        where = f"{scenario.path or scenario.id}: proxy.preset"
        policy = policy_from_spec(effective_spec(scenario.proxy, where))
        launch: Launch = self.product.module.launch(policy, _facts(self.product.port, lab, workdir), scenario_id=scenario.id)
        return launch

    def skip_reason(self, scenario: Scenario) -> str | None:
        """Why this product cannot run `scenario` at all (decided without starting anything)."""
        if (lab_only := lab_only_reason(scenario)) is not None:
            return lab_only
        if self.config is not None:
            return self._config_skip_reason(scenario)
        try:
            self.launch_for(scenario, None, Path(tempfile.gettempdir()) / "proxy-lab-dry-run")
        except TargetSkipped as exc:
            return str(exc)
        if scenario.device.mode == "direct":
            return f"scenario {scenario.id!r} runs without a proxy (device.mode = direct): nothing of {self.name} is exercised"
        return None

    def _config_skip_reason(self, scenario: Scenario) -> str | None:
        if scenario.proxy.faults or scenario.proxy.preset:
            what = "faults " + ", ".join(f.name for f in scenario.proxy.faults) if scenario.proxy.faults else f"preset {scenario.proxy.preset!r}"
            return f"scenario {scenario.id!r} configures the proxy ({what}); with --config your file is the proxy"
        if scenario.device.mode == "direct":
            return f"scenario {scenario.id!r} runs without a proxy (device.mode = direct): nothing of {self.config} is exercised"
        return None

    @asynccontextmanager
    async def _user_config(self, lab: Lab) -> AsyncIterator[ProxyEndpoint]:
        """The product running the user's file, rewritten for the namespace (127.0.0.1, the cloud's DNS)."""
        from proxy_lab.productconf import LabFacts as ConfigFacts
        from proxy_lab.productconf import for_lab, parse_config, started
        from proxy_lab.productconf.validation import require_product

        assert self.config is not None
        workdir = _reachable_tempdir(f"proxy-lab-{self.name}-config-")
        try:
            model = parse_config(self.config, self.name)  # type: ignore[arg-type]
            facts = ConfigFacts(PROXY_HOST, workdir / "product", lab.cloud.dns_address[0], lab.pki.pb_root.cert)
            config = for_lab(model, facts)
            product = started(config, require_product(model))
            running = await asyncio.to_thread(product.__enter__)
            try:
                host, port = config.listen
                yield ProxyEndpoint(host, port, f"{self.name} {product_version(self.name)} with {self.config} (pid {running.pid})")
            finally:
                await asyncio.shield(asyncio.to_thread(product.__exit__, None, None, None))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    @asynccontextmanager
    async def proxy_for(self, scenario: Scenario, lab: Lab) -> AsyncIterator[ProxyEndpoint]:
        if self.config is not None:
            if reason := self._config_skip_reason(scenario):
                raise TargetSkipped(reason)
            async with self._user_config(lab) as endpoint:
                yield endpoint
            return
        if scenario.device.mode == "direct":
            raise TargetSkipped(f"scenario {scenario.id!r} runs without a proxy: nothing of {self.name} is exercised")
        if not os.environ.get(ENV_NAME):
            raise SetupError(
                f"{self.name} runs only in namespace mode (its names must resolve to the lab's cloud): "
                "use run_scenarios without a lab, or `proxy-lab run --target " + self.name + "` as root"
            )
        workdir = Path(tempfile.mkdtemp(prefix=f"proxy-lab-{self.name}-"))
        proc: asyncio.subprocess.Process | None = None
        try:
            launch = self.launch_for(scenario, lab, workdir)
            await asyncio.to_thread(_write_files, launch, workdir)
            with (workdir / "output.log").open("wb") as out:
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *launch.argv,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=workdir,
                        env={**os.environ, **launch.env},
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise SetupError(f"{self.name} could not be started ({launch.argv[0]}): {exc}") from exc
            await self._wait_ready(proc, launch, workdir)
            version = product_version(self.name)
            yield ProxyEndpoint("127.0.0.1", launch.port, f"{self.name} {version} (pid {proc.pid}) in {os.environ[ENV_NAME]}")
        finally:
            if proc is not None:
                await asyncio.shield(_stop(proc))
            shutil.rmtree(workdir, ignore_errors=True)

    async def _wait_ready(self, proc: asyncio.subprocess.Process, launch: Launch, workdir: Path) -> None:
        deadline = time.monotonic() + launch.ready_timeout_s
        logs = ("output.log", *launch.log_files)
        while time.monotonic() < deadline:  # bounded by the product's ready timeout
            if proc.returncode is not None:
                raise SetupError(f"{self.name} exited with status {proc.returncode} at start: {_tail(workdir, logs)}")
            if await _accepts("127.0.0.1", launch.port):
                return
            try:
                await asyncio.wait_for(proc.wait(), _POLL_S)
            except TimeoutError:
                pass
        raise SetupError(
            f"{self.name} did not accept connections on 127.0.0.1:{launch.port} within "
            f"{launch.ready_timeout_s:g} s: {_tail(workdir, logs)}"
        )
