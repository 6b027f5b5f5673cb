"""The Catalog: the connectivity guide's traffic profile as validated data.

Owns the `Service` and `Endpoint` types and the loader of `proxy_lab/data/sendpro.toml`.
Every fact in that file is transcribed from the guide; this module only checks its shape.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Transport = Literal["http", "tls", "tcp", "dns"]
Level = Literal["required", "recommended"]

MODELS = ("sendpro-c", "sendpro-plus")
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


class CatalogError(ValueError):
    """The catalog file is malformed: the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class Endpoint:
    """One place the device talks to: a URL of the guide and what the device does there."""

    service: str
    scheme: str
    host: str
    port: int
    path: str
    exchange: str

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
class Service:
    name: str
    title: str
    summary: str
    level: Level
    models: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]

    @property
    def required(self) -> bool:
        return self.level == "required"


@dataclass(frozen=True)
class Catalog:
    profile: str
    guide: str
    min_kbps: int
    recommended_kbps: int
    proxy_ports: tuple[int, ...]
    services: dict[str, Service] = field(default_factory=dict)

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


def _parse_endpoint(where: str, service: str, raw: object) -> Endpoint:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        raise CatalogError(f"{where}: each endpoint needs a string 'url'")
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
    return Endpoint(service, url.scheme, url.hostname.lower(), port, path, exchange)


def parse_catalog(data: dict[str, object], source: str = "<catalog>") -> Catalog:
    services: dict[str, Service] = {}
    raw_services = data.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        raise CatalogError(f"{source}: [services] is missing or empty")
    for name, raw in raw_services.items():
        where = f"{source}: services.{name}"
        if not isinstance(raw, dict):
            raise CatalogError(f"{where}: expected a table")
        level = raw.get("level")
        if level not in ("required", "recommended"):
            raise CatalogError(f"{where}.level: expected 'required' or 'recommended', got {level!r}")
        models = tuple(raw.get("models", MODELS))
        if bad := [m for m in models if m not in MODELS]:
            raise CatalogError(f"{where}.models: unknown model(s) {bad}; expected {list(MODELS)}")
        raw_eps = raw.get("endpoints")
        if not isinstance(raw_eps, list) or not raw_eps:
            raise CatalogError(f"{where}.endpoints: expected a non-empty list")
        eps = tuple(_parse_endpoint(f"{where}.endpoints[{i}]", name, e) for i, e in enumerate(raw_eps))
        services[name] = Service(
            name, str(raw.get("title", name)), str(raw.get("summary", "")), level, models, eps
        )
    return Catalog(
        profile=str(data.get("profile", "sendpro")),
        guide=str(data.get("guide", "")),
        min_kbps=int(data.get("min_kbps", 384)),  # type: ignore[call-overload]
        recommended_kbps=int(data.get("recommended_kbps", 1000)),  # type: ignore[call-overload]
        proxy_ports=tuple(data.get("proxy_ports", (80, 443, 5938))),  # type: ignore[arg-type]
        services=services,
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
