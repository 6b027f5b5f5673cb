"""The Device: the SendPro-style client that tunnels everything through HTTP CONNECT.

Public surface: `Device`, `DeviceSettings`, `ProxySettings`, `Journal`, `Record`. Internals:
`transport` (CONNECT and 407), `tls` (MemoryBIO handshake), `client` and `response` (HTTP/1.1),
`workflows` (the exchanges of docs/cloud-protocol.md), `dnsprobe`, `classify` (observations to
Outcomes), `journal` (durable transaction records).
"""

from proxy_lab.device.device import Device
from proxy_lab.device.journal import Journal, Record
from proxy_lab.device.settings import DeviceSettings, ProxySettings

__all__ = ["Device", "DeviceSettings", "Journal", "ProxySettings", "Record"]
