"""What the inspection engine knows about the stages' tunnels, shared by its threads.

Each stage registers a `Profile` (its bypass patterns and `send_root`); each tunnel a stage opens is
announced as a `Pending` under a random token, with the upstream socket waiting for it. mitmproxy's
client connection is bound to the token when its CONNECT arrives (the addons, addons.py), and the
relay (relay.py) takes the upstream socket when mitmproxy's own upstream CONNECT carries the same
token. `Tunnels` holds all of that behind one lock: the stages call it from their event loops,
mitmproxy and the relay from the engine's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import itertools
import re
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

TUNNEL_HEADER = "X-Proxy-Lab-Tunnel"

OpenFn = Callable[[str, int], Awaitable[socket.socket]]


class InspectionError(RuntimeError):
    """The inspection engine could not start, or could not give a tunnel; the message says which."""


def ignore_hosts_regex(pattern: str) -> str:
    """An fnmatch host pattern as a mitmproxy `ignore_hosts` regex over `host:port`.

    `*.pb.com` -> a regex matching `dlsdlp1.pb.com:443` but not `pb.com:443` or `xpb.com:443`;
    case-insensitive matching is the caller's (mitmproxy compiles with re.IGNORECASE).
    """
    core = fnmatch.translate(pattern.lower())  # '(?s:...)\\Z'
    if not core.endswith("\\Z"):  # pragma: no cover - fnmatch's format since Python 3.6
        raise ValueError(f"unexpected fnmatch translation {core!r}")
    return "^" + core[: -len("\\Z")] + r":\d+\Z"


@dataclass(frozen=True)
class Profile:
    """One stage's options as the engine applies them per tunnel."""

    bypass: tuple[re.Pattern[str], ...]
    send_root: bool

    @classmethod
    def of(cls, bypass: Sequence[str], send_root: bool) -> Profile:
        return cls(tuple(re.compile(ignore_hosts_regex(p), re.IGNORECASE) for p in bypass), send_root)

    def bypasses(self, names: Sequence[str]) -> bool:
        return any(rx.search(n) for rx in self.bypass for n in names)


@dataclass
class Pending:
    """A tunnel announced by a stage: where it goes and the upstream socket waiting for it."""

    profile: int
    host: str
    port: int
    loop: asyncio.AbstractEventLoop  # the owner's loop, where `reopen` runs
    sock: socket.socket | None
    reopen: OpenFn
    created: float = dataclasses.field(default_factory=time.monotonic)


class Tunnels:
    """Profiles, announced tunnels and mitmproxy's connections bound to them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._profiles: dict[int, Profile] = {}
        self._tunnels: dict[str, Pending] = {}
        self._clients: dict[str, str] = {}  # mitmproxy client connection id -> token

    def add_profile(self, profile: Profile) -> int:
        with self._lock:
            pid = next(self._ids)
            self._profiles[pid] = profile
            return pid

    def remove_profile(self, pid: int) -> None:
        """Forget a stage, and close the upstream sockets of its tunnels that nobody took."""
        with self._lock:
            self._profiles.pop(pid, None)
            gone = [t for t, p in self._tunnels.items() if p.profile == pid]
            socks = [self._tunnels.pop(t).sock for t in gone]
        for sock in socks:
            if sock is not None:
                sock.close()

    def announce(self, pending: Pending) -> str:
        """The token under which `pending` is known from now on."""
        token = f"{pending.profile}.{secrets.token_hex(8)}"
        with self._lock:
            self._tunnels[token] = pending
        return token

    def forget(self, token: str) -> None:
        with self._lock:
            pending = self._tunnels.pop(token, None)
        if pending is not None and pending.sock is not None:
            pending.sock.close()

    def take(self, token: str) -> Pending | None:
        """The tunnel announced under `token`, its waiting socket handed over (None afterwards)."""
        with self._lock:
            pending = self._tunnels.get(token)
            if pending is None:
                return None
            taken = dataclasses.replace(pending)
            pending.sock = None
        return taken

    def bind_client(self, client_id: str, token: str) -> bool:
        with self._lock:
            if token not in self._tunnels:
                return False
            self._clients[client_id] = token
            return True

    def unbind_client(self, client_id: str) -> None:
        with self._lock:
            token = self._clients.pop(client_id, None)
        if token is not None:
            self.forget(token)

    def token_of(self, client_id: str) -> str | None:
        with self._lock:
            return self._clients.get(client_id)

    def profile_of(self, client_id: str) -> Profile | None:
        with self._lock:
            token = self._clients.get(client_id)
            pending = self._tunnels.get(token) if token is not None else None
            return self._profiles.get(pending.profile) if pending is not None else None

    def counts(self) -> tuple[int, int]:
        """(tunnels announced and not closed, mitmproxy client connections bound): for tests."""
        with self._lock:
            return len(self._tunnels), len(self._clients)
