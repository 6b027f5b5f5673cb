"""The inspection stage: an embedded mitmproxy 12 that terminates TLS with the lab's corporate CA.

One job per module: stage.py (`InspectionStage`, what the `tls_inspect` fault uses, and its CONNECT
client), engine.py (the one mitmproxy per process, its thread and lifecycle), addons.py (the
mitmproxy addons: which tunnels it serves, what it inspects or splices, what chain it shows),
relay.py (the upstream proxy mitmproxy sends every tunnel to, which hands it the socket the lab
proxy opened), tunnels.py (what those threads share: the stages' options and announced tunnels).
"""

from __future__ import annotations

from proxy_lab.proxy.inspection.engine import engine_counts, warm_up
from proxy_lab.proxy.inspection.stage import InspectionStage
from proxy_lab.proxy.inspection.tunnels import InspectionError, ignore_hosts_regex

__all__ = ["InspectionError", "InspectionStage", "engine_counts", "ignore_hosts_regex", "warm_up"]
