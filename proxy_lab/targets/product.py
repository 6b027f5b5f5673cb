"""What a real product is asked to do, and how it is started: `Policy`, `LabFacts` and `Launch`.

A scenario's `[proxy]` table (users and faults, or a preset's) is first reduced to a `Policy`: the
product-neutral meaning of its settings (who may log in, which CONNECT ports are allowed, which
hosts are denied, whether TLS is inspected). Each product module (`squid`, `tinyproxy`,
`mitmproxy_target`, `proxypy`) turns a Policy into a `Launch` (argv and files) or raises
`TargetSkipped` naming what it cannot express. A fault or a setting with no Policy meaning
(`socks_only`, `latency`, a fault scoped to some hosts...) is kept in `Policy.unexpressed`, so every
product skips it: a real product is never reported as passing a fault it was not configured with.
A `throttle` is a rate each way, which only Squid can apply, and only to downloads
(`Policy.skip_unexpressed(shapes_downloads=...)`).

Everything here is pure: no process is started and no file is written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy_lab.errors import TargetSkipped
from proxy_lab.scenarios import FaultSpec, ProxySpec

# Squid's shipped SSL_ports (Debian /etc/squid/squid.conf: `acl SSL_ports port 443`); the lab's
# `allow_ports` preset "ssl_ports_only" models the same rule.
SSL_PORTS_ONLY: tuple[int, ...] = (443,)
PORT_PRESETS: dict[str, tuple[int, ...]] = {"ssl_ports_only": SSL_PORTS_ONLY}

# Fault settings every fault has (proxy_lab.proxy.faults.base.Fault): they scope the fault to some
# hosts or ports. A scoped fault is not translated (see Policy.unexpressed).
_SCOPE_KEYS = ("hosts", "ports")


@dataclass(frozen=True)
class Policy:
    """The product-neutral meaning of a scenario's proxy settings."""

    users: dict[str, str] = field(default_factory=dict)
    realm: str = "proxy-lab"
    username_case_sensitive: bool = True
    connect_ports: tuple[int, ...] | None = None  # None: CONNECT to every port
    port_refusal: str = "403"  # how a port outside connect_ports is refused: "403", "405", "close", "reset"
    deny_hosts: tuple[str, ...] = ()  # fnmatch patterns (case-insensitive)
    allow_hosts: tuple[str, ...] | None = None  # None: every host not denied
    tls_inspect: bool = False
    tls_bypass: tuple[str, ...] = ()  # fnmatch patterns passed through uninspected
    # `throttle`: payload rate each way in kbit/s (None: not shaped). Only Squid shapes (delay_pools),
    # and only what servers send.
    shape_down_kbps: float | None = None
    shape_up_kbps: float | None = None
    unexpressed: tuple[str, ...] = ()  # what no product translation covers, one phrase each

    def skip_unexpressed(self, product: str, *, shapes_downloads: bool = False) -> None:
        """Raise TargetSkipped when something of the scenario has no meaning for `product`: a setting
        no product expresses, or a bandwidth limit the product cannot apply."""
        if self.unexpressed:
            raise TargetSkipped(f"{product} cannot express {'; '.join(self.unexpressed)}")
        if self.shape_up_kbps is not None or (self.shape_down_kbps is not None and not shapes_downloads):
            what = "uploads" if shapes_downloads else "bandwidth"
            raise TargetSkipped(
                f"{product} cannot express fault 'throttle' on {what}"
                + (": delay_pools shape only what servers send (up_kbps = 0 shapes downloads alone)" if shapes_downloads else "")
            )


@dataclass(frozen=True)
class LabFacts:
    """What a product's configuration needs to know about the lab it runs in."""

    listen_host: str  # where the product listens (inside the namespace)
    listen_port: int
    dns_server: str  # the cloud's DNS address inside the namespace
    pb_root: Path  # the lab PB root certificate (PEM): the upstream trust anchor
    corp_confdir: Path  # mitmproxy confdir holding the corporate inspection CA
    workdir: Path  # a private directory for configuration, pid and log files


@dataclass(frozen=True)
class Launch:
    """How to start one product: its argv, the files to write first, and where it will listen."""

    argv: tuple[str, ...]
    port: int
    files: Mapping[str, str] = field(default_factory=dict)  # file name under workdir -> content
    file_modes: Mapping[str, int] = field(default_factory=dict)  # file name -> mode (default 0o644)
    copies: Mapping[str, Path] = field(default_factory=dict)  # file name under workdir -> file to copy there
    prepare: tuple[tuple[str, ...], ...] = ()  # commands run (as `owner`) before the product starts
    owner: str | None = None  # user that must own workdir and its files (squid: "proxy")
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 20.0
    log_files: tuple[str, ...] = ()  # files under workdir worth quoting when the product fails


def _ports(where: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(p, int) and 0 < p < 65536 for p in value):
        raise TargetSkipped(f"{where}: expected a non-empty list of ports, got {value!r}")
    return tuple(sorted(set(value)))


def _patterns(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise TargetSkipped(f"{where}: expected a list of host patterns, got {value!r}")
    return tuple(p.lower() for p in value)


def _scoped(f: FaultSpec) -> str | None:
    keys = [k for k in _SCOPE_KEYS if f.settings.get(k)]
    return f"fault {f.name!r} scoped by {', '.join(keys)}" if keys else None


def _leftover(f: FaultSpec, known: set[str]) -> str | None:
    extra = sorted(k for k, v in f.settings.items() if k not in known and k not in _SCOPE_KEYS and v)  # a falsy setting is "off"
    return f"fault {f.name!r} setting(s) {', '.join(extra)}" if extra else None


def policy_from_spec(spec: ProxySpec) -> Policy:
    """Reduce users and faults to a Policy; what has no product-neutral meaning goes to `unexpressed`.

    Known translations (proxy_lab/proxy/faults/*.py): `allow_ports` (`preset`, `ports_allowed`,
    `action`), `deny_hosts` and `allow_hosts` (`patterns`; `category` only labels the block page),
    `tls_inspect` (`bypass`), `throttle` (`rate_kbps`, `down_kbps`, `up_kbps`; 0 = not shaped).
    """
    unexpressed: list[str] = []
    connect_ports: tuple[int, ...] | None = None
    port_refusal = "403"
    deny: list[str] = []
    allow: list[str] | None = None
    inspect = False
    bypass: list[str] = []
    shape: dict[str, float | None] = {"down_kbps": None, "up_kbps": None}
    for f in spec.faults:
        where = f"fault {f.name!r}"
        s = f.settings
        if f.name == "allow_ports":
            if (msg := _scoped(f)) or (msg := _leftover(f, {"preset", "ports_allowed", "action"})):
                unexpressed.append(msg)
                continue
            preset = s.get("preset", "")
            if preset and preset not in PORT_PRESETS:
                unexpressed.append(f"{where}: preset {preset!r}")
                continue
            # the lab's allow_ports allows the preset's ports and ports_allowed together
            ports = set(PORT_PRESETS.get(preset, ()))
            if "ports_allowed" in s:
                ports |= set(_ports(f"{where}: ports_allowed", s["ports_allowed"]))
            if not ports:
                raise TargetSkipped(f"{where}: gives neither ports_allowed nor a preset")
            connect_ports = tuple(sorted(ports)) if connect_ports is None else tuple(p for p in connect_ports if p in ports)
            port_refusal = str(s.get("action", "403"))
        elif f.name in ("deny_hosts", "allow_hosts"):
            # `category` only names the block page's category: every product answers 403 all the same
            if (msg := _scoped(f)) or (msg := _leftover(f, {"patterns", "category"})):
                unexpressed.append(msg)
                continue
            patterns = _patterns(f"{where}: patterns", s.get("patterns", []))
            if f.name == "deny_hosts":
                deny.extend(patterns)
            else:
                allow = list(patterns) if allow is None else [p for p in allow if p in patterns]
        elif f.name == "exclusions":
            # hosts a PAC file would send DIRECT, refused by the proxy with a 403: a deny list
            if (msg := _scoped(f)) or (msg := _leftover(f, {"direct_hosts", "internal_addresses"})):
                unexpressed.append(msg)
                continue
            if s.get("internal_addresses"):
                unexpressed.append(f"{where} setting internal_addresses")
                continue
            deny.extend(_patterns(f"{where}: direct_hosts", s.get("direct_hosts", [])))
        elif f.name == "tls_inspect":
            if (msg := _scoped(f)) or (msg := _leftover(f, {"bypass"})):
                unexpressed.append(msg)
                continue
            inspect = True
            bypass.extend(_patterns(f"{where}: bypass", s.get("bypass", [])))
        elif f.name == "throttle":
            if (msg := _scoped(f)) or (msg := _leftover(f, {"rate_kbps", "down_kbps", "up_kbps"})):
                unexpressed.append(msg)
                continue
            for key in ("rate_kbps", *shape):
                value = s.get(key, 0)
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise TargetSkipped(f"{where}: {key} must be a number of kbit/s, got {value!r}")
            rate = float(s.get("rate_kbps", 384.0))  # the fault's default
            for key in shape:
                shape[key] = float(s.get(key, rate)) or None  # 0: not shaped
        else:
            unexpressed.append(f"fault {f.name!r}")
    return Policy(
        users=dict(spec.users),
        realm=spec.realm,
        username_case_sensitive=spec.username_case_sensitive,
        connect_ports=connect_ports,
        port_refusal=port_refusal,
        deny_hosts=tuple(deny),
        allow_hosts=tuple(allow) if allow is not None else None,
        tls_inspect=inspect,
        tls_bypass=tuple(bypass),
        shape_down_kbps=shape["down_kbps"],
        shape_up_kbps=shape["up_kbps"],
        unexpressed=tuple(unexpressed),
    )


def fnmatch_to_regex(pattern: str) -> str:
    """An fnmatch host pattern as a regex for a search, valid in POSIX ERE and Python alike.

    `*.pb.com` -> `\\.pb\\.com$`, `pb.com` -> `^pb\\.com$`. `*` and `?` become `.*` and `.`, `[...]`
    sets are kept (`[!x]` becomes `[^x]`), every other character is matched literally. (`fnmatch.translate` is not used:
    since Python 3.12 it emits atomic groups, which POSIX regex engines reject.)
    """
    out: list[str] = []
    i, p = 0, pattern.lower()
    while i < len(p):
        c = p[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and (end := p.find("]", i + 2)) > 0:
            body = p[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        elif c.isalnum() or c in "-_":
            out.append(c)
        else:
            out.append("\\" + c)
        i += 1
    # A leading or trailing `.*` is left unanchored instead: the same match under a search, and
    # Squid warns about "unnecessary wildcard(s)" otherwise.
    head = "" if out[:1] == [".*"] else "^"
    tail = "" if out[-1:] == [".*"] else "$"
    body = "".join(out[1 if head == "" else 0 : -1 if tail == "" else None])
    return f"{head}{body}{tail}" or "."


def find_binary(env: str, *candidates: str | Path) -> str | None:
    """The product's program: `$<env>` when set (a test or a site's own build), else the first
    candidate that exists (a path) or is on PATH (a bare name)."""
    if override := os.environ.get(env):
        return override
    for c in candidates:
        if isinstance(c, Path) or "/" in c:
            if os.access(c, os.X_OK):
                return str(c)
        elif found := shutil.which(c):
            return found
    return None
