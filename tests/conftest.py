"""Checks for every test: traffic stays on loopback, and no inspection engine outlives its module.

Loopback only (the brief's network rule): in this process a connect (TCP, or UDP's connect before a
send) to an address that is not loopback, or a system-resolver lookup of a name other than
`localhost`, is refused with EACCES and fails the test that made it, naming the address. It covers
Python's `socket.socket` (asyncio's default loop, the device, the cloud, clients); uvloop's and the
plain path's C sockets, and child processes (the real products run in namespaces of our own), are
out of its reach.

The inspection engine is one per process (its options are process-global), so one left running
makes every later module that inspects with another CA fail far from the cause; this names the cause.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from proxy_lab.proxy.inspection.engine import engine_counts

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_refused: list[str] = []


def _loopback(host: object) -> bool:
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and not _loopback(address[0]):
        _refused.append(f"connect to {address[0]}:{address[1]}")
        raise PermissionError(errno.EACCES, f"test guard: {address[0]} is not loopback")


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[None]:
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _loopback(name) and str(name).lower().rstrip(".") not in _LOCAL_NAMES:
            _refused.append(f"system resolver asked for {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: {name!r} is not looked up outside the lab")
        return real_getaddrinfo(host, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", connect)
    mp.setattr(socket.socket, "connect_ex", connect_ex)
    mp.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        yield
    finally:
        mp.undo()


@pytest.fixture(autouse=True)
def no_traffic_off_loopback() -> Iterator[None]:
    _refused.clear()
    yield
    refused, _refused[:] = list(_refused), []
    assert not refused, f"this test tried to leave loopback: {'; '.join(sorted(set(refused)))}"


@pytest.fixture(scope="module", autouse=True)
def no_inspection_engine_outlives_the_module(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    assert engine_counts() is None, f"{request.module.__name__} left the inspection engine running"
