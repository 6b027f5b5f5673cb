"""What the lab proxy remembers: counters (`ProxyStats`) and structured log records (`ProxyLogRecord`).

Both of the proxy's paths (the general one on the event loop, the plain one on its own thread)
write their records through the builders here (`tunnel_opened`, `tunnel_closed`, `refused`), so
a record says the same whichever path carried the tunnel. Each thread counts into a `ProxyStats`
of its own, and `ProxyStats.merged` sums them when they are read; `ProxyLog` keeps each path's
records and merges them by time when they are read.

Records never hold credentials: no password, no raw `Proxy-Authorization`, no unknown user name.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from proxy_lab.proxy.events import Refusal

LOG_SIZE = 2000  # records kept, the most recent

Event = Literal["listening", "refused", "tunnel_open", "tunnel_closed", "client_error", "stopped"]


@dataclass
class ProxyStats:
    """Counters since the proxy started."""

    connections: int = 0  # client connections accepted
    connections_open: int = 0
    requests: int = 0  # CONNECT requests parsed (a 407 retry counts again)
    tunnels: int = 0  # tunnels established
    tunnels_open: int = 0
    bytes_client_to_upstream: int = 0
    bytes_upstream_to_client: int = 0
    refusals: Counter[int] = field(default_factory=Counter)  # by status; 0 = closed or reset without answer

    def count_up(self, n: int) -> None:
        self.bytes_client_to_upstream += n

    def count_down(self, n: int) -> None:
        self.bytes_upstream_to_client += n

    def merged(self, other: ProxyStats) -> ProxyStats:
        """The sum of two threads' counters (a snapshot: each side may move on meanwhile)."""
        refusals = self.refusals.copy()
        refusals.update(other.refusals)
        return ProxyStats(
            self.connections + other.connections,
            self.connections_open + other.connections_open,
            self.requests + other.requests,
            self.tunnels + other.tunnels,
            self.tunnels_open + other.tunnels_open,
            self.bytes_client_to_upstream + other.bytes_client_to_upstream,
            self.bytes_upstream_to_client + other.bytes_upstream_to_client,
            refusals,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "connections": self.connections,
            "connections_open": self.connections_open,
            "requests": self.requests,
            "tunnels": self.tunnels,
            "tunnels_open": self.tunnels_open,
            "bytes_client_to_upstream": self.bytes_client_to_upstream,
            "bytes_upstream_to_client": self.bytes_upstream_to_client,
            "refusals": dict(self.refusals),
        }


@dataclass(frozen=True)
class ProxyLogRecord:
    """One line of the proxy's log, kept structured so tests and reports need not parse text."""

    event: Event
    message: str
    client: str = ""  # "127.0.0.1:50000"
    target: str = ""  # "host:port" as requested
    status: int | None = None
    reason: str = ""  # the rule or failure behind a refusal
    time: float = field(default_factory=time.time)

    def __str__(self) -> str:
        return self.message

    @classmethod
    def now(
        cls,
        event: Event,
        message: str,
        client: str = "",
        target: str = "",
        status: int | None = None,
        reason: str = "",
        at: float | None = None,
    ) -> ProxyLogRecord:
        """The same record as `ProxyLogRecord(...)`, made at a third of the cost (the proxy writes two
        per tunnel): a frozen dataclass's __init__ sets each field through object.__setattr__; this
        fills the new instance's __dict__ at once, as copy and pickle do. The result is equal, frozen
        and hashable like any other. `at`: when it happened, for a record built later (default: now)."""
        record = _new(cls)
        fields = record.__dict__
        fields["event"] = event
        fields["message"] = message
        fields["client"] = client
        fields["target"] = target
        fields["status"] = status
        fields["reason"] = reason
        fields["time"] = time.time() if at is None else at
        return record


_new = object.__new__


# -- the records both paths write ---------------------------------------------------------------------
def tunnel_opened(authority: str, client: str, user: str | None, at: float | None = None) -> ProxyLogRecord:
    """A tunnel to `authority` for `client` (its address) was announced with a 200."""
    message = f"tunnel {authority} for {client} open" + (f" (user {user!r})" if user else "")
    return ProxyLogRecord.now("tunnel_open", message, client, authority, 200, "", at)


def tunnel_closed(
    authority: str, client: str, up: int, down: int, why: str, at: float | None = None
) -> ProxyLogRecord:
    """A tunnel ended after carrying `up` bytes to the upstream and `down` back; `why` says why, if known."""
    message = f"tunnel {authority} for {client} closed: {up} B up, {down} B down" + (f" ({why})" if why else "")
    return ProxyLogRecord.now("tunnel_closed", message, client, authority, None, why, at)


def refused(client: str, target: str, refusal: Refusal) -> ProxyLogRecord:
    """The proxy answered `client`'s request for `target` ("" before a target was known) with `refusal`."""
    status = refusal.status if refusal.action == "respond" else 0
    what = f"CONNECT {target}" if target else "request"
    message = f"refused {what} from {client}: {refusal.describe()} - {refusal.why or 'no reason given'}"
    return ProxyLogRecord.now("refused", message, client, target, status, refusal.why)


class ProxyLog:
    """The proxy's recent records, oldest first: the general path's, kept here as they happen, and
    those of another thread (the plain path), taken from `source` and merged by time when read."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._own: deque[ProxyLogRecord] = deque(maxlen=LOG_SIZE)
        self._taken: deque[ProxyLogRecord] = deque(maxlen=LOG_SIZE)
        self._source: Callable[[], Iterable[ProxyLogRecord]] | None = None

    def follow(self, source: Callable[[], Iterable[ProxyLogRecord]] | None) -> None:
        """Merge the records `source()` gives up (each once) into this log from now on."""
        self._source = source

    def add(self, record: ProxyLogRecord, level: int = logging.INFO) -> None:
        """Keep `record` and say it on the logger at `level` (when that level is enabled)."""
        self._own.append(record)
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s", record.message)

    def records(self) -> deque[ProxyLogRecord]:
        """At most `LOG_SIZE` records, oldest first (a copy when another thread's are merged in)."""
        if self._source is None:
            return self._own
        self._taken.extend(self._source())
        if not self._taken:
            return self._own
        merged = heapq.merge(self._own, self._taken, key=_time)
        return deque(merged, maxlen=LOG_SIZE)


def _time(record: ProxyLogRecord) -> float:
    return record.time
