"""The served lab (`proxy-lab serve`): cloud, lab proxy and meter with a runtime fault API and a dashboard.

    async with ServedLab(ServeConfig(interval_s=1)) as served:
        print(served.proxy_url, served.ui_url)

Modules: `switchboard` (the one Fault the proxy is built with, delegating to the faults in force),
`stack` (its per-tunnel stage), `meter` (the Device on an interval), `events` (SSE fan-out),
`presets`, `app` (FastAPI), `served` (all of it together), `command` (the CLI).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ServeConfig", "ServedLab"]

if TYPE_CHECKING:
    from proxy_lab.serve.served import ServeConfig, ServedLab


def __getattr__(name: str) -> Any:
    """Lazy: the CLI imports `serve.command` for every command, and FastAPI takes a third of a second."""
    if name in __all__:
        return getattr(importlib.import_module("proxy_lab.serve.served"), name)
    raise AttributeError(f"module 'proxy_lab.serve' has no attribute {name!r}")
