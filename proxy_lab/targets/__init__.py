"""Targets: what is under test, started for one scenario and handed to the device as a proxy address.

A target turns a scenario's `[proxy]` table into a running proxy: `lab` (the lab proxy with the
scenario's faults) or `url` (an existing proxy, nothing started). Real products (`squid`,
`tinyproxy`, `mitmproxy`, `proxypy`) register here too. A target that cannot express a scenario
raises TargetSkipped with the reason (reported as skipped, never as passed); one that fails to
start raises SetupError (reported apart from outcomes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from proxy_lab.lab import Lab
    from proxy_lab.scenarios import Scenario


class TargetSkipped(Exception):
    """The target cannot express this scenario; the message says what it lacks."""


class SetupError(Exception):
    """The target or the lab could not be set up (not an outcome of the device)."""


@dataclass(frozen=True)
class ProxyEndpoint:
    host: str
    port: int
    description: str = ""


class Target(Protocol):
    name: str

    def proxy_for(self, scenario: Scenario, lab: Lab) -> AbstractAsyncContextManager[ProxyEndpoint]:
        """Start (or point at) the proxy configured for `scenario`; stop it on exit."""
        ...


TARGETS: dict[str, Callable[[], Target]] = {}


def register(name: str) -> Callable[[Callable[[], Target]], Callable[[], Target]]:
    def deco(factory: Callable[[], Target]) -> Callable[[], Target]:
        TARGETS[name] = factory
        return factory

    return deco


def get_target(name: str) -> Target:
    from proxy_lab.targets import lab as _lab  # noqa: F401  (registers "lab")
    from proxy_lab.targets import url as _url

    try:
        from proxy_lab.targets import real as _real  # noqa: F401  (registers the real products)
    except ImportError:
        pass
    if name.startswith(("http://", "https://")):
        return _url.UrlTarget(name)
    factory = TARGETS.get(name)
    if factory is None:
        from proxy_lab.errors import ConfigError

        raise ConfigError(f"unknown target {name!r}: expected one of {', '.join(sorted(TARGETS))} or a proxy URL")
    return factory()


__all__ = ["TARGETS", "AsyncIterator", "ProxyEndpoint", "SetupError", "Target", "TargetSkipped", "get_target", "register"]
