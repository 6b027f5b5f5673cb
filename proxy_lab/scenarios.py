"""Scenarios: the TOML files under scenarios/ that say what to run and what the device should see.

A scenario names the guide section it demonstrates, its lesson and remedy, the target proxy's
configuration (users, faults), the device's settings, and the expected outcome per service. It is
validated completely when it loads: a bad file is rejected with the file, the key and what was
expected (ConfigError), never on first use deep in a run.

    id = "basic-auth"
    title = "Proxy with Basic authentication, meter configured with the right credentials"
    guide_section = "Proxy"
    lesson = "Two sentences."
    remedy = "What to change on the proxy."

    [proxy]
    users = { meter = "S3cret-Pass" }
    username_case_sensitive = true
    [[proxy.faults]]
    name = "allow_ports"
    preset = "ssl_ports_only"

    [device]
    model = "sendpro-plus"
    username = "meter"
    password = "S3cret-Pass"

    [expect]
    default = "pass"
    services = { online_help = "refused", remote_access = ["refused", "reset"] }
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy_lab.catalog import MODELS, Catalog, load_catalog
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome

_OUTCOMES = {o.value for o in Outcome}
_TOP_KEYS = {"id", "title", "guide_section", "lesson", "remedy", "tags", "proxy", "device", "cloud", "expect", "target", "followup"}
_PROXY_KEYS = {"users", "realm", "username_case_sensitive", "faults", "close_after_407", "connect_timeout_s", "preset"}
_DEVICE_KEYS = {
    "model", "mode", "username", "password", "connect_timeout_s", "read_timeout_s", "concurrency",
    "slow_setup_s", "teamviewer_hold_s", "preemptive_auth", "transactions", "services",
}  # fmt: skip
_CLOUD_KEYS = {"download_bytes", "drop_receipts", "corrupt_downloads"}
_EXPECT_KEYS = {"default", "services"}


@dataclass(frozen=True)
class FaultSpec:
    name: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class ProxySpec:
    users: dict[str, str] = field(default_factory=dict)
    realm: str = "proxy-lab"
    username_case_sensitive: bool = True
    close_after_407: bool = False
    connect_timeout_s: float = 5.0
    faults: tuple[FaultSpec, ...] = ()
    preset: str | None = None  # a real-product preset name (targets), e.g. "squid-stock"


@dataclass(frozen=True)
class DeviceSpec:
    model: str = "sendpro-plus"
    mode: str = "proxy"  # "proxy" or "direct"
    username: str | None = None
    password: str | None = None
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 3.0
    concurrency: int = 16
    slow_setup_s: float = 2.0
    teamviewer_hold_s: float = 0.3
    preemptive_auth: bool = False
    transactions: int = 3  # mail pieces printed before the run: records in the journal to upload
    services: tuple[str, ...] | None = None  # restrict to these services (default: all of the model)


@dataclass(frozen=True)
class CloudSpec:
    download_bytes: int = 24 * 1024
    drop_receipts: bool = False
    corrupt_downloads: bool = False


@dataclass(frozen=True)
class Expectation:
    default: tuple[Outcome, ...] = (Outcome.PASS,)
    services: dict[str, tuple[Outcome, ...]] = field(default_factory=dict)

    def for_service(self, service: str) -> tuple[Outcome, ...]:
        return self.services.get(service, self.default)


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    guide_section: str
    lesson: str
    remedy: str
    path: Path | None
    proxy: ProxySpec
    device: DeviceSpec
    cloud: CloudSpec
    expect: Expectation
    target: str = "lab"
    tags: tuple[str, ...] = ()
    followup: bool = False  # run the device a second time without faults (journal carry-over)


def _err(src: str, key: str, expected: str, got: object) -> ConfigError:
    return ConfigError(f"{src}: {key}: expected {expected}, got {got!r}")


def _check_keys(src: str, where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{src}: {where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _typed(src: str, key: str, value: Any, typ: type | tuple[type, ...], expected: str) -> Any:
    if isinstance(value, bool) and typ in (int, float, (int, float)):
        raise _err(src, key, expected, value)
    if not isinstance(value, typ):
        raise _err(src, key, expected, value)
    return value


def _outcomes(src: str, key: str, value: Any) -> tuple[Outcome, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or any(v not in _OUTCOMES for v in values):
        raise _err(src, key, f"an outcome or a list of outcomes among {', '.join(sorted(_OUTCOMES))}", value)
    return tuple(Outcome(v) for v in values)


def _table(src: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise _err(src, f"[{key}]", "a table", value)
    return value


def parse_scenario(data: dict[str, Any], src: str, catalog: Catalog | None = None, path: Path | None = None) -> Scenario:
    catalog = catalog or load_catalog()
    _check_keys(src, "top level", data, _TOP_KEYS)
    for key in ("id", "title", "lesson"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise _err(src, key, "a non-empty string", data.get(key))
    sid = data["id"]
    if not all(c.isalnum() or c in "-_" for c in sid):
        raise _err(src, "id", "letters, digits, '-' and '_' only", sid)

    raw_proxy = _table(src, data, "proxy")
    _check_keys(src, "[proxy]", raw_proxy, _PROXY_KEYS)
    users = raw_proxy.get("users", {})
    if not isinstance(users, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
        raise _err(src, "proxy.users", "a table of user = \"password\" strings", users)
    faults: list[FaultSpec] = []
    raw_faults = raw_proxy.get("faults", [])
    if not isinstance(raw_faults, list):
        raise _err(src, "proxy.faults", "an array of tables ([[proxy.faults]])", raw_faults)
    for i, f in enumerate(raw_faults):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise _err(src, f"proxy.faults[{i}]", "a table with a string 'name'", f)
        faults.append(FaultSpec(f["name"], {k: v for k, v in f.items() if k != "name"}))
    proxy = ProxySpec(
        users=dict(users),
        realm=_typed(src, "proxy.realm", raw_proxy.get("realm", "proxy-lab"), str, "a string"),
        username_case_sensitive=_typed(
            src, "proxy.username_case_sensitive", raw_proxy.get("username_case_sensitive", True), bool, "true or false"
        ),
        close_after_407=_typed(src, "proxy.close_after_407", raw_proxy.get("close_after_407", False), bool, "true or false"),
        connect_timeout_s=float(
            _typed(src, "proxy.connect_timeout_s", raw_proxy.get("connect_timeout_s", 5.0), (int, float), "seconds")
        ),
        faults=tuple(faults),
        preset=raw_proxy.get("preset"),
    )

    raw_device = _table(src, data, "device")
    _check_keys(src, "[device]", raw_device, _DEVICE_KEYS)
    model = raw_device.get("model", "sendpro-plus")
    if model not in MODELS:
        raise _err(src, "device.model", " or ".join(MODELS), model)
    mode = raw_device.get("mode", "proxy")
    if mode not in ("proxy", "direct"):
        raise _err(src, "device.mode", "'proxy' or 'direct'", mode)
    dev_kwargs: dict[str, Any] = {"model": model, "mode": mode}
    for key in ("username", "password"):
        if key in raw_device:
            dev_kwargs[key] = _typed(src, f"device.{key}", raw_device[key], str, "a string")
    for key in ("connect_timeout_s", "read_timeout_s", "slow_setup_s", "teamviewer_hold_s"):
        if key in raw_device:
            v = _typed(src, f"device.{key}", raw_device[key], (int, float), "a number of seconds")
            if v <= 0:
                raise _err(src, f"device.{key}", "a positive number of seconds", v)
            dev_kwargs[key] = float(v)
    for key in ("concurrency", "transactions"):
        if key in raw_device:
            v = _typed(src, f"device.{key}", raw_device[key], int, "an integer")
            if v < (1 if key == "concurrency" else 0):
                raise _err(src, f"device.{key}", "a positive integer", v)
            dev_kwargs[key] = v
    if "preemptive_auth" in raw_device:
        dev_kwargs["preemptive_auth"] = _typed(src, "device.preemptive_auth", raw_device["preemptive_auth"], bool, "true or false")
    if "services" in raw_device:
        svc = raw_device["services"]
        if not isinstance(svc, list) or any(s not in catalog.services for s in svc):
            raise _err(src, "device.services", f"a list of services among {', '.join(catalog.services)}", svc)
        dev_kwargs["services"] = tuple(svc)
    device = DeviceSpec(**dev_kwargs)

    raw_cloud = _table(src, data, "cloud")
    _check_keys(src, "[cloud]", raw_cloud, _CLOUD_KEYS)
    cloud_kwargs: dict[str, Any] = {}
    if "download_bytes" in raw_cloud:
        v = _typed(src, "cloud.download_bytes", raw_cloud["download_bytes"], int, "a number of bytes")
        if not 0 < v <= 64 * 1024 * 1024:
            raise _err(src, "cloud.download_bytes", "1 to 67108864 bytes", v)
        cloud_kwargs["download_bytes"] = v
    for key in ("drop_receipts", "corrupt_downloads"):
        if key in raw_cloud:
            cloud_kwargs[key] = _typed(src, f"cloud.{key}", raw_cloud[key], bool, "true or false")
    cloud = CloudSpec(**cloud_kwargs)

    raw_expect = _table(src, data, "expect")
    _check_keys(src, "[expect]", raw_expect, _EXPECT_KEYS)
    default = _outcomes(src, "expect.default", raw_expect.get("default", "pass"))
    raw_services = raw_expect.get("services", {})
    if not isinstance(raw_services, dict):
        raise _err(src, "expect.services", "a table of service = outcome", raw_services)
    services: dict[str, tuple[Outcome, ...]] = {}
    for name, value in raw_services.items():
        if name not in catalog.services:
            raise _err(src, f"expect.services.{name}", f"a service among {', '.join(catalog.services)}", name)
        services[name] = _outcomes(src, f"expect.services.{name}", value)

    target = data.get("target", "lab")
    if not isinstance(target, str):
        raise _err(src, "target", "a target name", target)
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _err(src, "tags", "a list of strings", tags)
    return Scenario(
        id=sid,
        title=data["title"].strip(),
        guide_section=str(data.get("guide_section", "")),
        lesson=" ".join(data["lesson"].split()),
        remedy=" ".join(str(data.get("remedy", "")).split()),
        path=path,
        proxy=proxy,
        device=device,
        cloud=cloud,
        expect=Expectation(default, services),
        target=target,
        tags=tuple(tags),
        followup=_typed(src, "followup", data.get("followup", False), bool, "true or false"),
    )


def load_scenario(path: Path, catalog: Catalog | None = None) -> Scenario:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_scenario(data, str(path), catalog, path)


def load_scenarios(paths: list[Path], catalog: Catalog | None = None, only: list[str] | None = None) -> list[Scenario]:
    """Load scenario files and directories (sorted); `only` keeps the given ids, in any order."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.glob("*.toml")))
        elif p.exists():
            files.append(p)
        else:
            raise ConfigError(f"{p}: no such scenario file or directory")
    scenarios = [load_scenario(f, catalog) for f in files]
    seen: dict[str, Path | None] = {}
    for s in scenarios:
        if s.id in seen:
            raise ConfigError(f"{s.path}: id {s.id!r} is already used by {seen[s.id]}")
        seen[s.id] = s.path
    if only:
        missing = [i for i in only if i not in seen]
        if missing:
            raise ConfigError(f"no scenario with id {', '.join(missing)}; known: {', '.join(seen)}")
        scenarios = [s for s in scenarios if s.id in only]
    return scenarios
