"""Recording what a real client did through the lab proxy: one JSON line per tunnel.

`Recorder` (recorder.py) is the lab proxy's `TunnelWatcher`; `tlssniff` reads the first TLS bytes
each way, sans-IO; `index` matches a target to the guide's endpoints. `proxy-lab observe`
(proxy_lab/observe.py) reads the lines back. The names below are imported on first use (PEP 562),
so reading a record does not load the proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy_lab.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_MAX_BYTES": "proxy_lab.record.recorder",
    "Recorder": "proxy_lab.record.recorder",
    "NOT_IN_GUIDE": "proxy_lab.record.index",
    "CatalogIndex": "proxy_lab.record.index",
}

__all__ = ["DEFAULT_MAX_BYTES", "NOT_IN_GUIDE", "CatalogIndex", "Recorder"]

if TYPE_CHECKING:
    from proxy_lab.record.index import NOT_IN_GUIDE, CatalogIndex
    from proxy_lab.record.recorder import DEFAULT_MAX_BYTES, Recorder


__getattr__ = lazy_exports(__name__, _EXPORTS)
