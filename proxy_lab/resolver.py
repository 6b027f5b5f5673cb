"""The Resolver: maps a CONNECT target (host, port) to the address that really answers it.

In embedded mode the lab proxy, the device's direct mode and the DNS stub use a `MapResolver`
filled by the Cloud, so no name ever reaches the machine's resolver. `proxy-lab proxy` uses the
`SystemResolver`, as a real proxy would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from typing import Protocol

Address = tuple[str, int]


def address_of(raw: object) -> Address:
    """(host, port) of a socket address as the socket module gives it (IPv6: 4 items); ("?", 0) if none."""
    if isinstance(raw, tuple) and len(raw) >= 2:
        return (str(raw[0]), int(raw[1]))
    return ("?", 0)


class ResolveError(LookupError):
    """A name could not be resolved; `host` names what was asked."""

    def __init__(self, host: str, reason: str = "name does not resolve") -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[Address]:
        """Addresses to try in order for (host, port); raises ResolveError."""
        ...


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class MapResolver:
    """A fixed table: (host, port) -> address, with (host, None) as a per-host default."""

    def __init__(self, table: Mapping[tuple[str, int | None], Address] | None = None) -> None:
        self.table: dict[tuple[str, int | None], Address] = dict(table or {})

    def add(self, host: str, port: int | None, address: Address) -> None:
        self.table[(host.lower(), port)] = address

    def lookup(self, host: str, port: int) -> Address:
        host = host.lower().rstrip(".")
        found = self.table.get((host, port)) or self.table.get((host, None))
        if found is None:
            if host in ("localhost", "127.0.0.1", "::1") or (is_ip(host) and ipaddress.ip_address(host).is_loopback):
                return (host if host != "localhost" else "127.0.0.1", port)
            raise ResolveError(host, "not a host of the lab (no entry in the lab's resolver)")
        return found

    async def resolve(self, host: str, port: int) -> list[Address]:
        return [self.lookup(host, port)]


class SystemResolver:
    """The machine's resolver, as a real proxy uses it (for `proxy-lab proxy` only)."""

    async def resolve(self, host: str, port: int) -> list[Address]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ResolveError(host, exc.strerror or str(exc)) from exc
        return [(str(i[4][0]), int(i[4][1])) for i in infos]
