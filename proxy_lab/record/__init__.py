"""Recording what a real client did through the lab proxy: one JSON line per tunnel.

`Recorder` (recorder.py) is the lab proxy's `TunnelWatcher`; `tlssniff` reads the first TLS bytes
each way, sans-IO. `proxy-lab observe` (proxy_lab/observe.py) reads the lines back.
"""

from __future__ import annotations

from proxy_lab.record.recorder import DEFAULT_MAX_BYTES, NOT_IN_GUIDE, CatalogIndex, Recorder

__all__ = ["DEFAULT_MAX_BYTES", "NOT_IN_GUIDE", "CatalogIndex", "Recorder"]
