"""The Device: the SendPro-style client that tunnels everything through HTTP CONNECT.

Public surface: `Device`, `DeviceSettings`, `ProxySettings`, `Journal`, `Record`. Internals:
`transport` (CONNECT and 407), `tls` (MemoryBIO handshake), `client` and `response` (HTTP/1.1),
`workflows` (the exchanges of docs/cloud-protocol.md), `dnsprobe`, `classify` (observations to
Outcomes), `journal` (durable transaction records). The names below are imported on first use
(PEP 562), so a reader of one module (`proxy-lab observe` uses `classify`) does not load the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy_lab.lazy import lazy_exports

_EXPORTS = {
    "Device": "proxy_lab.device.device",
    "Journal": "proxy_lab.device.journal",
    "Record": "proxy_lab.device.journal",
    "DeviceSettings": "proxy_lab.device.settings",
    "ProxySettings": "proxy_lab.device.settings",
}

__all__ = ["Device", "DeviceSettings", "Journal", "ProxySettings", "Record"]

if TYPE_CHECKING:
    from proxy_lab.device.device import Device
    from proxy_lab.device.journal import Journal, Record
    from proxy_lab.device.settings import DeviceSettings, ProxySettings


__getattr__ = lazy_exports(__name__, _EXPORTS)
