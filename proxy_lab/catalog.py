"""The Catalog: the connectivity guide's traffic profile as validated data.

Owns the `Service`, `Way`, `Endpoint` and `Catalog` types and the loader of
`proxy_lab/data/sendpro.toml`. Every fact in that file is transcribed from the guide; what the
project decides beyond it is an *assumption*, declared once in the file's `[assumptions]` table,
named by id on the services and endpoints it applies to, and explained in docs/assumptions.md.
This module only checks the file's shape and expands what the file writes compactly (a list of
bare host names probed on each of the ports the guide gives them).
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Transport = Literal["http", "tls", "tcp", "dns"]
Level = Literal["required", "recommended"]
Rule = Literal["worst", "any"]

MODELS = ("sendpro-c", "sendpro-plus")
RULES: tuple[Rule, ...] = ("worst", "any")
EXCHANGES = frozenset(
    {
        "authenticate", "refill", "audit", "psd_config", "transactions", "download_index", "download",
        "ota", "get", "accounting", "help_page", "health_upload", "generate_204", "dns", "teamviewer",
        "dyngate_in", "dyngate_out", "mtalk",
    }
)  # fmt: skip
_SCHEMES: dict[str, tuple[Transport, int]] = {
    "http": ("http", 80),
    "https": ("tls", 443),
    "tcp": ("tcp", 0),
    "dns+udp": ("dns", 53),
    "dns+tcp": ("dns", 53),
}
# A bare host name of the guide on a port: the URL the device probes there.
_BARE_SCHEME = {80: "http", 443: "https"}
_SERVICE_KEYS = {
    "title", "summary", "level", "models", "endpoints", "rule", "ways", "section", "item",
    "assumption", "patterns", "bare_hosts",
}  # fmt: skip
_ENDPOINT_KEYS = {"url", "exchange", "way", "assumption", "guide_host"}


class CatalogError(ValueError):
    """The catalog file is malformed: the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class Endpoint:
    """One place the device talks to: a URL of the guide and what the device does there.

    `way` names the alternative it belongs to in a service scored by the `any` rule;
    `assumptions` the ids of what the project assumes about it beyond the guide; `guide_host` the
    host as the guide spells it where that differs from `host` (case, or a likely typo)."""

    service: str
    scheme: str
    host: str
    port: int
    path: str
    exchange: str
    way: str = ""
    assumptions: tuple[str, ...] = ()
    guide_host: str = ""

    @property
    def transport(self) -> Transport:
        return _SCHEMES[self.scheme][0]

    @property
    def via_proxy(self) -> bool:
        """DNS is sent direct; everything else tunnels through the proxy when one is set."""
        return self.transport != "dns"

    @property
    def dns_protocol(self) -> Literal["udp", "tcp"]:
        return "tcp" if self.scheme == "dns+tcp" else "udp"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        default = _SCHEMES[self.scheme][1]
        netloc = self.host if self.port == default else self.authority
        return f"{self.scheme}://{netloc}{self.path}"

    @property
    def id(self) -> str:
        """Stable id used in reports: `service/scheme://host:port/path`."""
        return f"{self.service}/{self.scheme}://{self.authority}{self.path}"


@dataclass(frozen=True)
class Way:
    """One alternative of a service the guide lets work in several ways ("There are two ways to
    unblock TeamViewer"): working endpoints of any one way are enough under the `any` rule."""

    id: str
    title: str  # said after "pass via": "port 5938", "the DynGate fallback on port 80 at ..."


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    summary: str
    level: Level
    models: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]
    rule: Rule = "worst"
    ways: tuple[Way, ...] = ()
    section: str = ""  # the guide's heading: "Required URLs", "Recommended URLs"
    item: str = ""  # the guide's own words for this entry of its list, quoted exactly
    assumptions: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()  # wildcards the guide itself writes ("*.TeamViewer.com"), as written

    @property
    def required(self) -> bool:
        return self.level == "required"

    def way(self, way_id: str) -> Way:
        for w in self.ways:
            if w.id == way_id:
                return w
        raise KeyError(f"service {self.name} has no way {way_id!r}; ways: {', '.join(w.id for w in self.ways)}")

    def endpoints_of(self, way_id: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.way == way_id)


@dataclass(frozen=True)
class Port80Conflict:
    """The guide's two sentences about port 80 that disagree, each quoted exactly: the URL lists put
    port-80 URLs under "Required URLs", the FAQ calls port-80 services non-critical."""

    url_lists: str
    faq: str


@dataclass(frozen=True)
class Catalog:
    profile: str
    guide: str
    min_kbps: int
    recommended_kbps: int
    proxy_ports: tuple[int, ...]
    services: dict[str, Service] = field(default_factory=dict)
    assumptions: dict[str, str] = field(default_factory=dict)  # id -> the assumption in one sentence
    port80_conflict: Port80Conflict | None = None

    def for_model(self, model: str) -> list[Service]:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}: expected one of {', '.join(MODELS)}")
        return [s for s in self.services.values() if model in s.models]

    def endpoints(self, model: str = "sendpro-plus") -> list[Endpoint]:
        return [e for s in self.for_model(model) for e in s.endpoints]

    def hosts(self, transport: Transport | None = None) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.services.values():
            for e in s.endpoints:
                if transport is None or e.transport == transport:
                    seen.setdefault(e.host)
        return list(seen)

    def ports(self, model: str | None = None) -> tuple[int, ...]:
        """The ports the device tunnels to through a proxy (all models, or one), ascending."""
        services = self.services.values() if model is None else self.for_model(model)
        return tuple(sorted({e.port for s in services for e in s.endpoints if e.via_proxy}))

    def endpoint(self, service: str, url: str) -> Endpoint | None:
        """The catalog endpoint a Result names (its service and `Endpoint.url`), if any."""
        svc = self.services.get(service)
        if svc is None:
            return None
        return next((e for e in svc.endpoints if e.url == url), None)

    def assumptions_of(self, endpoint: Endpoint) -> tuple[str, ...]:
        """Ids of every assumption behind an endpoint: its service's, then its own."""
        svc = self.services.get(endpoint.service)
        own = svc.assumptions if svc is not None else ()
        return tuple(dict.fromkeys(own + endpoint.assumptions))


# -- parsing -------------------------------------------------------------------------------------
def _ids(where: str, raw: object, known: dict[str, str]) -> tuple[str, ...]:
    """`assumption = "id"` or `assumption = ["id", ...]`, each declared in [assumptions]."""
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise CatalogError(f"{where}.assumption: expected an id or a list of ids, got {raw!r}")
    if unknown := [i for i in items if i not in known]:
        raise CatalogError(
            f"{where}.assumption: {', '.join(unknown)} not declared in [assumptions]; "
            f"declared: {', '.join(known) or 'none'}"
        )
    return tuple(items)


def _parse_endpoint(where: str, service: str, raw: object, known: dict[str, str]) -> Endpoint:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        raise CatalogError(f"{where}: each endpoint needs a string 'url'")
    if extra := sorted(set(raw) - _ENDPOINT_KEYS):
        raise CatalogError(f"{where}: unknown key(s) {extra}; expected some of {sorted(_ENDPOINT_KEYS)}")
    url = urlsplit(raw["url"])
    if url.scheme not in _SCHEMES:
        raise CatalogError(f"{where}: url {raw['url']!r}: scheme must be one of {', '.join(_SCHEMES)}")
    if not url.hostname:
        raise CatalogError(f"{where}: url {raw['url']!r} has no host")
    try:
        port = url.port or _SCHEMES[url.scheme][1]
    except ValueError as exc:
        raise CatalogError(f"{where}: url {raw['url']!r}: {exc}") from exc
    if not 0 < port < 65536:
        raise CatalogError(f"{where}: url {raw['url']!r} needs a port 1-65535")
    exchange = raw.get("exchange")
    if exchange not in EXCHANGES:
        raise CatalogError(f"{where}: exchange {exchange!r} is not one of {', '.join(sorted(EXCHANGES))}")
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    if url.scheme.startswith("dns") and not url.path.strip("/"):
        raise CatalogError(f"{where}: a dns url names the query in its path (dns+udp://8.8.8.8:53/NAME)")
    written = url.netloc.rsplit("@", 1)[-1].split(":", 1)[0] if not url.netloc.startswith("[") else ""
    guide_host = raw.get("guide_host", written if written and written != url.hostname else "")
    if not isinstance(guide_host, str):
        raise CatalogError(f"{where}.guide_host: expected a string, got {guide_host!r}")
    way = raw.get("way", "")
    if not isinstance(way, str):
        raise CatalogError(f"{where}.way: expected a way id, got {way!r}")
    assumptions = _ids(where, raw.get("assumption"), known)
    return Endpoint(service, url.scheme, url.hostname.lower(), port, path, exchange, way, assumptions, guide_host)


def _bare_hosts(where: str, raw: object, known: dict[str, str]) -> list[dict[str, object]]:
    """`[services.X.bare_hosts]`: host names the guide lists without a scheme, probed on each of
    `ports` (443 as https://, 80 as http://), each carrying the table's assumption."""
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected a table with 'ports' and 'hosts'")
    ports, hosts = raw.get("ports"), raw.get("hosts")
    if not isinstance(ports, list) or not ports or any(p not in _BARE_SCHEME for p in ports):
        raise CatalogError(f"{where}.ports: expected a non-empty list of {sorted(_BARE_SCHEME)}, got {ports!r}")
    if not isinstance(hosts, list) or not hosts:
        raise CatalogError(f"{where}.hosts: expected a non-empty list of host names or tables")
    shared = list(_ids(where, raw.get("assumption"), known))
    out: list[dict[str, object]] = []
    for i, h in enumerate(hosts):
        entry = {"host": h} if isinstance(h, str) else h
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str) or not entry["host"]:
            raise CatalogError(f"{where}.hosts[{i}]: expected a host name or {{ host = ..., ... }}, got {h!r}")
        if extra := sorted(set(entry) - {"host", "guide_host", "assumption"}):
            raise CatalogError(f"{where}.hosts[{i}]: unknown key(s) {extra}")
        own = list(_ids(f"{where}.hosts[{i}]", entry.get("assumption"), known))
        for port in ports:
            ep: dict[str, object] = {
                "url": f"{_BARE_SCHEME[port]}://{entry['host']}/",
                "exchange": "get",
                "assumption": list(dict.fromkeys(shared + own)),
            }
            if "guide_host" in entry:
                ep["guide_host"] = entry["guide_host"]
            out.append(ep)
    return out


def _ways(where: str, raw: object) -> tuple[Way, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(w, dict) for w in raw):
        raise CatalogError(f"{where}.ways: expected a list of {{ id = ..., title = ... }}")
    ways = []
    for i, w in enumerate(raw):
        if not isinstance(w.get("id"), str) or not isinstance(w.get("title"), str):
            raise CatalogError(f"{where}.ways[{i}]: needs a string 'id' and a string 'title'")
        ways.append(Way(w["id"], w["title"]))
    if len({w.id for w in ways}) != len(ways):
        raise CatalogError(f"{where}.ways: way ids must be unique")
    return tuple(ways)


def _parse_service(where: str, name: str, raw: object, known: dict[str, str]) -> Service:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected a table")
    if extra := sorted(set(raw) - _SERVICE_KEYS):
        raise CatalogError(f"{where}: unknown key(s) {extra}; expected some of {sorted(_SERVICE_KEYS)}")
    level = raw.get("level")
    if level not in ("required", "recommended"):
        raise CatalogError(f"{where}.level: expected 'required' or 'recommended', got {level!r}")
    models = tuple(raw.get("models", MODELS))
    if bad := [m for m in models if m not in MODELS]:
        raise CatalogError(f"{where}.models: unknown model(s) {bad}; expected {list(MODELS)}")
    rule = raw.get("rule", "worst")
    if rule not in RULES:
        raise CatalogError(f"{where}.rule: expected one of {', '.join(RULES)}, got {rule!r}")
    raw_eps = raw.get("endpoints", [])
    if not isinstance(raw_eps, list):
        raise CatalogError(f"{where}.endpoints: expected a list")
    eps = [_parse_endpoint(f"{where}.endpoints[{i}]", name, e, known) for i, e in enumerate(raw_eps)]
    if "bare_hosts" in raw:
        bare = _bare_hosts(f"{where}.bare_hosts", raw["bare_hosts"], known)
        eps += [_parse_endpoint(f"{where}.bare_hosts", name, e, known) for e in bare]
    if not eps:
        raise CatalogError(f"{where}.endpoints: expected a non-empty list")
    if len({e.url for e in eps}) != len(eps):
        dup = sorted({e.url for e in eps if sum(o.url == e.url for o in eps) > 1})
        raise CatalogError(f"{where}: endpoint(s) listed twice: {', '.join(dup)}")
    ways = _ways(where, raw.get("ways"))
    if rule == "any":
        if len(ways) < 2:
            raise CatalogError(f"{where}.ways: rule 'any' needs at least two ways (the alternatives)")
        ids = {w.id for w in ways}
        if stray := [e.url for e in eps if e.way not in ids]:
            raise CatalogError(f"{where}: under rule 'any' every endpoint names one of the ways {sorted(ids)}: {stray}")
        if empty := [w.id for w in ways if not any(e.way == w.id for e in eps)]:
            raise CatalogError(f"{where}.ways: way(s) {empty} have no endpoint")
    elif ways or any(e.way for e in eps):
        raise CatalogError(f"{where}: ways apply only with rule = 'any'")
    patterns = raw.get("patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p.startswith("*.") for p in patterns):
        raise CatalogError(f"{where}.patterns: expected a list of '*.domain' wildcards, got {patterns!r}")
    return Service(
        name, str(raw.get("title", name)), str(raw.get("summary", "")), level, models, tuple(eps),
        rule, ways, str(raw.get("section", "")), str(raw.get("item", "")),
        _ids(where, raw.get("assumption"), known), tuple(patterns),
    )  # fmt: skip


def _strings(where: str, raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
        raise CatalogError(f"{where}: expected a table of id = \"one sentence\"")
    return dict(raw)


def parse_catalog(data: dict[str, object], source: str = "<catalog>") -> Catalog:
    known = _strings(f"{source}: [assumptions]", data.get("assumptions"))
    raw_services = data.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        raise CatalogError(f"{source}: [services] is missing or empty")
    services = {
        name: _parse_service(f"{source}: services.{name}", name, raw, known) for name, raw in raw_services.items()
    }
    used = {e.port for s in services.values() for e in s.endpoints if e.via_proxy}
    # Without `proxy_ports` (a small catalog built for a test), the ports its endpoints tunnel to.
    raw_ports = data.get("proxy_ports", tuple(sorted(used)))
    if not isinstance(raw_ports, list | tuple) or not all(isinstance(p, int) and 0 < p < 65536 for p in raw_ports):
        raise CatalogError(f"{source}: proxy_ports: expected a list of ports 1-65535, got {raw_ports!r}")
    if missing := sorted(used - set(raw_ports)):
        raise CatalogError(f"{source}: proxy_ports {list(raw_ports)} lacks port(s) {missing} that endpoints use")
    conflict = None
    raw_conflict = data.get("port80_conflict")
    if raw_conflict is not None:
        texts = _strings(f"{source}: [port80_conflict]", raw_conflict)
        if set(texts) != {"url_lists", "faq"}:
            raise CatalogError(f"{source}: [port80_conflict]: expected exactly 'url_lists' and 'faq'")
        conflict = Port80Conflict(texts["url_lists"], texts["faq"])
    return Catalog(
        profile=str(data.get("profile", "sendpro")),
        guide=str(data.get("guide", "")),
        min_kbps=int(data.get("min_kbps", 384)),  # type: ignore[call-overload]
        recommended_kbps=int(data.get("recommended_kbps", 1000)),  # type: ignore[call-overload]
        proxy_ports=tuple(sorted(raw_ports)),
        services=services,
        assumptions=known,
        port80_conflict=conflict,
    )


_DEFAULT: Catalog | None = None


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate a catalog file; without a path, the packaged SendPro catalog (cached)."""
    global _DEFAULT
    if path is None:
        if _DEFAULT is None:
            text = resources.files("proxy_lab").joinpath("data/sendpro.toml").read_text("utf-8")
            _DEFAULT = parse_catalog(tomllib.loads(text), "proxy_lab/data/sendpro.toml")
        return _DEFAULT
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    return parse_catalog(data, str(path))


# The guide, Advanced Network Requirements: "SendPro C, SendPro+ internal base and tablet communication
# uses a subnet that consists of IPs from
# the 192.168.10.240 to 192.168.10.255 and 192.168.10.96 to 192.168.10.111 ranges."
INTERNAL_RANGES = (
    (ipaddress.IPv4Address("192.168.10.240"), ipaddress.IPv4Address("192.168.10.255")),
    (ipaddress.IPv4Address("192.168.10.96"), ipaddress.IPv4Address("192.168.10.111")),
)
"""The meter's own internal subnets (lint refuses them as a gateway, check as a meter address)."""
