"""The targets by name: the one place that lists them (`lab`, the real products, a proxy URL)."""

from __future__ import annotations

from proxy_lab.errors import ConfigError
from proxy_lab.targets.base import Target
from proxy_lab.targets.lab import LabTarget
from proxy_lab.targets.real import PRODUCTS, RealTarget
from proxy_lab.targets.url import UrlTarget


def target_names() -> tuple[str, ...]:
    """Every named target: `lab`, then the real products."""
    return ("lab", *PRODUCTS)


def get_target(name: str) -> Target:
    """The target called `name`, or a `UrlTarget` for `http://host:port`; ConfigError otherwise."""
    if name.startswith(("http://", "https://")):
        return UrlTarget(name)
    if name == "lab":
        return LabTarget()
    if name in PRODUCTS:
        return RealTarget(PRODUCTS[name])
    raise ConfigError(f"unknown target {name!r}: expected one of {', '.join(target_names())} or a proxy URL")
