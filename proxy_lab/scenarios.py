"""Scenarios: the TOML files under scenarios/ that say what to run and what the device should see.

A scenario names the guide section it demonstrates, its lesson and remedy, the target proxy's
configuration (users, faults), the device's settings, and the expected outcome per service. It is
validated completely when it loads, fault settings included (`make_fault`): a bad file is rejected
with the file, the key and what was expected (ConfigError), never on first use deep in a run. The
dataclasses below declare each key's type, and the phrase and condition its errors say
(`proxy_lab.typed.spec`); `proxy_lab.typed` converts and checks them.

`tags` group scenarios (`proxy-lab run --tag tls`). The target is not a scenario's choice: it is
given to the run (`--target`); a scenario written for one product names a preset
(`proxy.preset`), and the other products skip it.

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

`[proxy.upstream]` puts a corporate proxy behind the lab proxy (the lab target only): a second lab
proxy with its own `users`, `realm` and `[[proxy.upstream.faults]]`, to which the first chains every
CONNECT (`proxy-lab proxy --upstream`), sending `credentials = "name:password"` when given. The
meter then meets the scenario's own faults first and the corporate proxy's answers behind them.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from proxy_lab.catalog import MODELS, Catalog, load_catalog
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome
from proxy_lab.typed import Invalid, build, convert, spec

_OUTCOMES = ", ".join(o.value for o in Outcome)
_SECTIONS = ("proxy", "device", "cloud", "expect")
_BOOL = spec("true or false")
_SECONDS = spec("a number of seconds", (lambda v: v > 0, "a positive number of seconds"))


def _name_like(value: str) -> bool:
    return bool(value) and all(c.isalnum() or c in "-_" for c in value)


@dataclass(frozen=True)
class FaultSpec:
    name: str
    settings: dict[str, Any]


def _credentials(value: str) -> bool:
    name, sep, _ = value.partition(":")
    return bool(sep and name)


@dataclass(frozen=True)
class UpstreamSpec:
    """A corporate proxy chained behind the lab proxy (see the module docstring)."""

    users: dict[str, str] = field(default_factory=dict, metadata=spec('a table of user = "password" strings'))
    realm: str = "corporate-proxy"
    credentials: str | None = field(
        default=None, metadata=spec('"name:password"', (_credentials, '"name:password" with a non-empty name'))
    )
    faults: tuple[FaultSpec, ...] = ()

    @property
    def user_password(self) -> tuple[str | None, str | None]:
        if self.credentials is None:
            return None, None
        name, _, password = self.credentials.partition(":")
        return name, password


@dataclass(frozen=True)
class ProxySpec:
    users: dict[str, str] = field(default_factory=dict, metadata=spec('a table of user = "password" strings'))
    realm: str = "proxy-lab"
    username_case_sensitive: bool = field(default=True, metadata=_BOOL)
    close_after_407: bool = field(default=False, metadata=_BOOL)
    connect_timeout_s: float = field(default=5.0, metadata=_SECONDS)
    faults: tuple[FaultSpec, ...] = ()
    preset: str | None = None  # a real-product preset name (proxy_lab.targets.presets), e.g. "squid-stock"
    upstream: UpstreamSpec | None = None  # a corporate proxy the lab proxy chains to (lab target only)


@dataclass(frozen=True)
class DeviceSpec:
    model: str = field(default="sendpro-plus", metadata=spec(" or ".join(MODELS), (lambda m: m in MODELS, " or ".join(MODELS))))
    mode: Literal["proxy", "direct"] = "proxy"
    username: str | None = None
    password: str | None = None
    connect_timeout_s: float = field(default=3.0, metadata=_SECONDS)
    read_timeout_s: float = field(default=3.0, metadata=_SECONDS)
    concurrency: int = field(default=16, metadata=spec(check=(lambda v: v >= 1, "a positive integer")))
    slow_setup_s: float = field(default=2.0, metadata=_SECONDS)
    teamviewer_hold_s: float = field(default=0.3, metadata=_SECONDS)
    preemptive_auth: bool = field(default=False, metadata=_BOOL)
    # mail pieces printed before the run: records in the journal to upload
    transactions: int = field(default=3, metadata=spec(check=(lambda v: v >= 0, "zero or more")))
    services: tuple[str, ...] | None = None  # restrict to these services (default: all of the model)


@dataclass(frozen=True)
class CloudSpec:
    download_bytes: int = field(
        default=24 * 1024, metadata=spec("a number of bytes", (lambda v: 0 < v <= 64 * 1024 * 1024, "1 to 67108864 bytes"))
    )
    drop_receipts: bool = field(default=False, metadata=_BOOL)
    corrupt_downloads: bool = field(default=False, metadata=_BOOL)


@dataclass(frozen=True)
class Expectation:
    default: tuple[Outcome, ...] = (Outcome.PASS,)
    services: dict[str, tuple[Outcome, ...]] = field(default_factory=dict)

    def for_service(self, service: str) -> tuple[Outcome, ...]:
        return self.services.get(service, self.default)


@dataclass(frozen=True)
class Scenario:
    id: str = field(metadata=spec("a non-empty string", (_name_like, "letters, digits, '-' and '_' only")))
    title: str = field(metadata=spec("a non-empty string", (lambda t: bool(t.strip()), "a non-empty string")))
    guide_section: str
    lesson: str = field(metadata=spec("a non-empty string", (lambda t: bool(t.strip()), "a non-empty string")))
    remedy: str
    path: Path | None
    proxy: ProxySpec
    device: DeviceSpec
    cloud: CloudSpec
    expect: Expectation
    tags: tuple[str, ...] = field(default=(), metadata=spec("a list of tags", (lambda ts: all(map(_name_like, ts)), "a list of tags (letters, digits, '-' and '_')")))
    followup: bool = field(default=False, metadata=_BOOL)  # run the device a second time without faults (journal carry-over)


# Keys of a scenario file; `target` is not one (see the module docstring).
_TOP_KEYS = ("id", "title", "guide_section", "lesson", "remedy", "tags", *_SECTIONS, "followup")


def _outcomes(key: str, value: Any) -> tuple[Outcome, ...]:
    values = value if isinstance(value, list) else [value]
    try:
        out: tuple[Outcome, ...] = convert(tuple[Outcome, ...], values, key)
    except Invalid:
        out = ()
    if not out:
        raise Invalid(key, f"an outcome or a list of outcomes among {_OUTCOMES}", value)
    return out


def _faults(raw: Any, key: str = "proxy.faults") -> tuple[FaultSpec, ...]:
    """`[[proxy.faults]]` tables, each a fault's name and settings, checked as the lab proxy builds them."""
    from proxy_lab.proxy.faults.base import make_fault

    if not isinstance(raw, list):
        raise Invalid(key, f"an array of tables ([[{key}]])", raw)
    faults = []
    for i, table in enumerate(raw):
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise Invalid(f"{key}[{i}]", "a table with a string 'name'", table)
        spec_ = FaultSpec(table["name"], {k: v for k, v in table.items() if k != "name"})
        try:
            make_fault(spec_.name, spec_.settings)
        except ConfigError as exc:
            raise ConfigError(f"{key}[{i}]: {exc}") from exc
        faults.append(spec_)
    return tuple(faults)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise Invalid(f"[{key}]", "a table", value)
    return dict(value)


def _parse(data: dict[str, Any], catalog: Catalog, path: Path | None) -> Scenario:
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        hint = " (the target is chosen by `--target`; a product's configuration by proxy.preset)" if "target" in unknown else ""
        raise ConfigError(f"top level: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_TOP_KEYS)}{hint}")
    raw_proxy = _section(data, "proxy")
    faults = _faults(raw_proxy.pop("faults", []))
    upstream = None
    if "upstream" in raw_proxy:
        raw_up = raw_proxy.pop("upstream")
        if not isinstance(raw_up, dict):
            raise Invalid("proxy.upstream", "a table ([proxy.upstream])", raw_up)
        up_faults = _faults(raw_up.pop("faults", []), "proxy.upstream.faults")
        upstream = build(UpstreamSpec, raw_up, "proxy.upstream", given={"faults": up_faults})
    proxy = build(ProxySpec, raw_proxy, "proxy", given={"faults": faults, "upstream": upstream})
    if upstream is not None and proxy.preset:
        raise ConfigError("proxy.upstream: a chained corporate proxy is a lab setting; it cannot go with proxy.preset")
    device = build(DeviceSpec, _section(data, "device"), "device")
    if device.services is not None and (bad := [s for s in device.services if s not in catalog.services]):
        raise Invalid("device.services", f"a list of services among {', '.join(catalog.services)}", bad)
    cloud = build(CloudSpec, _section(data, "cloud"), "cloud")
    raw_expect = _section(data, "expect")
    services: dict[str, tuple[Outcome, ...]] = {}
    raw_services = raw_expect.pop("services", {})
    if not isinstance(raw_services, dict):
        raise Invalid("expect.services", "a table of service = outcome", raw_services)
    for name, value in raw_services.items():
        if name not in catalog.services:
            raise Invalid(f"expect.services.{name}", f"a service among {', '.join(catalog.services)}", name)
        services[name] = _outcomes(f"expect.services.{name}", value)
    default = _outcomes("expect.default", raw_expect.pop("default", "pass"))
    if raw_expect:
        raise ConfigError(f"[expect]: unknown key(s) {', '.join(sorted(raw_expect))}; allowed: default, services")
    top = {k: v for k, v in data.items() if k not in _SECTIONS}
    top.setdefault("guide_section", "")
    top.setdefault("remedy", "")
    sections = {"path": path, "proxy": proxy, "device": device, "cloud": cloud, "expect": Expectation(default, services)}
    scenario = build(Scenario, top, given=sections)
    return dataclasses.replace(
        scenario,
        title=scenario.title.strip(),
        lesson=" ".join(scenario.lesson.split()),
        remedy=" ".join(scenario.remedy.split()),
    )


def parse_scenario(data: dict[str, Any], src: str, catalog: Catalog | None = None, path: Path | None = None) -> Scenario:
    """A scenario from a TOML document; ConfigError names `src`, the key and what was expected."""
    try:
        return _parse(data, catalog or load_catalog(), path)
    except (Invalid, ConfigError) as exc:
        raise ConfigError(f"{src}: {exc}") from exc


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


def load_scenarios(
    paths: list[Path], catalog: Catalog | None = None, only: list[str] | None = None, tags: list[str] | None = None
) -> list[Scenario]:
    """Load scenario files and directories (sorted); `only` keeps the given ids, in any order, and
    `tags` the scenarios with at least one of the given tags."""
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
    if tags:
        known = sorted({t for s in scenarios for t in s.tags})
        if missing := [t for t in tags if t not in known]:
            raise ConfigError(f"no scenario has tag {', '.join(missing)}; tags in use: {', '.join(known) or 'none'}")
        scenarios = [s for s in scenarios if set(tags) & set(s.tags)]
    return scenarios


