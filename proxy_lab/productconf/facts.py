"""What the lab gives a user's configuration (`LabFacts`), and the check of `--meter-ip`.

The meter's address matters because real rules key on the client's source address (`acl meter src
10.20.30.40`, tinyproxy `Allow`); it must be an address a device can have, outside the meter's own
internal subnets, which the guide states in one sentence (quoted exactly in `INTERNAL_SUBNETS_RULE`).
"""

from __future__ import annotations

import grp
import ipaddress
import pwd
from dataclasses import dataclass
from pathlib import Path

from proxy_lab.catalog import INTERNAL_RANGES
from proxy_lab.errors import ConfigError

# Guide, Advanced Network Requirements, verbatim.
INTERNAL_SUBNETS_RULE = (
    "SendPro C, SendPro+ internal base and tablet communication uses a subnet that consists of IPs from the "
    "192.168.10.240 to 192.168.10.255 and 192.168.10.96 to 192.168.10.111 ranges."
)


@dataclass(frozen=True)
class LabFacts:
    """Where the user's product runs in the lab: the lab rewrite (`for_lab`) needs nothing else.

    `proxy_host`: the namespace address the product listens on and the meter sends CONNECT to;
    `workdir`: a private temporary directory for the product's cache, logs, pid and certificate
    database (and the rewritten configuration); `dns_server`: the lab's DNS server (an IP address),
    which answers for the guide's hosts; `pb_root`: the lab PB root certificate (PEM), the upstream
    trust anchor; `port`: the port the meter is set to (`--port N`; None: the file's first);
    `meter_ip`: the meter's address in the namespace (used by the fix, not by the rewrite);
    `bind_port`: a number to listen on instead of the meter's port (validation on loopback takes a
    free one; None in a namespace, where the file's own number is free).
    """

    proxy_host: str
    workdir: Path
    dns_server: str
    pb_root: Path
    port: int | None = None
    meter_ip: str | None = None
    hosts_file: str = "/etc/hosts"  # inside the namespace: the lab's, mapping the guide's hosts to the cloud
    bind_port: int | None = None  # listen for the meter on this number instead of the file's (a check on loopback)

    def __post_init__(self) -> None:
        for name in ("proxy_host", "dns_server"):
            try:
                ipaddress.ip_address(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"LabFacts.{name} {getattr(self, name)!r}: expected an IP address") from exc
        if self.meter_ip is not None:
            check_meter_ip(self.meter_ip)

    @property
    def proxy_authority(self) -> str:
        """`host:port`-ready form of the proxy address (IPv6 in brackets)."""
        return f"[{self.proxy_host}]" if ":" in self.proxy_host else self.proxy_host


def check_meter_ip(value: str, option: str = "--meter-ip") -> str:
    """The meter's address, normalised; raises ConfigError (exit 2) naming the option and why."""
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError as exc:
        raise ConfigError(f"{option} {value!r}: not an IP address (expected e.g. 10.20.30.40)") from exc
    if addr.is_unspecified or addr.is_multicast or (isinstance(addr, ipaddress.IPv4Address) and addr == ipaddress.IPv4Address("255.255.255.255")):
        raise ConfigError(f"{option} {value}: not an address a device can have (unspecified, multicast or broadcast)")
    if isinstance(addr, ipaddress.IPv4Address):
        for lo, hi in INTERNAL_RANGES:
            if lo <= addr <= hi:
                raise ConfigError(
                    f"{option} {value}: inside the meter's internal subnet {lo}-{str(hi).rsplit('.', 1)[1]}: "
                    f"the guide says \"{INTERNAL_SUBNETS_RULE}\""
                )
    return str(addr)


def account_exists(name: str, group: bool = False) -> bool:
    """Whether this machine has the user (or group) a product is told to run as."""
    try:
        (grp.getgrnam if group else pwd.getpwnam)(name)
    except KeyError:
        return False
    return True
