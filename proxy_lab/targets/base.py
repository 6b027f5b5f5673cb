"""What every target is: for one scenario it hands the device a `ProxyEndpoint`, and says what it needs.

`needs_namespace` is True for targets that must run where the guide's host names resolve to the
lab's cloud (the real products, `proxy_lab.netns`); the runner then runs them in a namespace of their
own. `skip_reason` says, before anything starts, why a scenario cannot run on the target (None when
it can); `proxy_for` raises TargetSkipped or SetupError (`proxy_lab.errors`) for what only shows once
it starts.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from proxy_lab.lab import Lab
    from proxy_lab.scenarios import Scenario


@dataclass(frozen=True)
class ProxyEndpoint:
    host: str
    port: int
    description: str = ""


class Target(Protocol):
    name: str
    needs_namespace: bool

    def skip_reason(self, scenario: Scenario) -> str | None:
        """Why `scenario` cannot run on this target, decided without starting anything; None if it can."""
        ...

    def proxy_for(self, scenario: Scenario, lab: Lab) -> AbstractAsyncContextManager[ProxyEndpoint]:
        """Start (or point at) the proxy configured for `scenario`; stop it on exit."""
        ...


def lab_only_reason(scenario: Scenario) -> str | None:
    """Why a target other than the lab cannot run `scenario`: it chains to a corporate proxy in the lab."""
    if scenario.proxy.upstream is None:
        return None
    return (
        f"scenario {scenario.id!r} chains the lab proxy to a corporate proxy ([proxy.upstream]): "
        "a lab setting, run it with --target lab"
    )
