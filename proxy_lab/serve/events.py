"""The served lab's events and their fan-out: what happened (a fault change, a probe run), numbered,
to every subscriber of `GET /api/events` as Server-Sent Events.

Events are small frozen dataclasses named for what happened; `EventHub.publish` numbers and stamps
them and gives each subscriber its own bounded queue, so a slow reader loses its oldest events
(and is told how many) instead of holding the lab up. `EventHub.close` ends every stream, so the
web server can stop without waiting for browsers to hang up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

QUEUE_EVENTS = 256  # events kept for one subscriber that reads slowly
RECENT_EVENTS = 200  # events kept for late subscribers (`since`) and the status page
KEEPALIVE_S = 15.0  # an SSE comment this often, so proxies and browsers keep the stream open

FaultAction = Literal["added", "changed", "removed", "replaced"]


@dataclass(frozen=True)
class FaultChanged:
    """The faults in force changed through the API (or a preset)."""

    action: FaultAction
    faults: tuple[dict[str, Any], ...]  # the faults the change concerns: {id, name, settings}
    in_force: tuple[dict[str, Any], ...]  # every fault in force after it
    cut: int = 0  # tunnels cut by the change
    preset: str = ""
    kind: str = field(default="fault", init=False)


@dataclass(frozen=True)
class ProbeFinished:
    """The meter finished a run through the proxy: every service's status after it."""

    run: int
    trigger: Literal["interval", "api", "start"]
    services: tuple[dict[str, Any], ...]
    changed: tuple[str, ...]  # services whose outcome differs from the run before
    elapsed_s: float
    kind: str = field(default="probe", init=False)


Event = FaultChanged | ProbeFinished


@dataclass(frozen=True)
class Stamped:
    """An event with its number (SSE `id`) and time (Unix seconds)."""

    seq: int
    at: float
    event: Event

    def to_dict(self) -> dict[str, Any]:
        body = {k: getattr(self.event, k) for k in self.event.__dataclass_fields__}
        return {"seq": self.seq, "at": self.at, **body}

    def sse(self) -> bytes:
        data = json.dumps(self.to_dict(), separators=(",", ":"), default=str)
        return f"id: {self.seq}\nevent: {self.event.kind}\ndata: {data}\n\n".encode()


class _Subscriber:
    def __init__(self) -> None:
        self.queue: deque[Stamped | None] = deque(maxlen=QUEUE_EVENTS)
        self.wake = asyncio.Event()
        self.dropped = 0


class EventHub:
    """Numbered events to every subscriber, oldest first; `close()` ends every stream."""

    def __init__(self) -> None:
        self._seq = 0
        self._subscribers: set[_Subscriber] = set()
        self.recent: deque[Stamped] = deque(maxlen=RECENT_EVENTS)
        self.closed = False

    def publish(self, event: Event) -> Stamped:
        self._seq += 1
        stamped = Stamped(self._seq, time.time(), event)
        self.recent.append(stamped)
        for sub in self._subscribers:
            if len(sub.queue) == sub.queue.maxlen:
                sub.dropped += 1
            sub.queue.append(stamped)
            sub.wake.set()
        return stamped

    def close(self) -> None:
        self.closed = True
        for sub in self._subscribers:
            sub.queue.append(None)
            sub.wake.set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def stream(self, since: int | None = None, keepalive_s: float = KEEPALIVE_S) -> AsyncIterator[bytes]:
        """SSE bytes: the events after `since` still kept, then each new one; ends on `close()`."""
        sub = _Subscriber()
        self._subscribers.add(sub)
        try:
            yield b"retry: 1000\n\n"
            if since is not None:
                for stamped in self.recent:
                    if stamped.seq > since:
                        yield stamped.sse()
            while not self.closed:
                if not sub.queue:
                    sub.wake.clear()
                    try:
                        await asyncio.wait_for(sub.wake.wait(), keepalive_s)
                    except TimeoutError:
                        yield b": keepalive\n\n"
                    continue
                if sub.dropped:
                    yield f": {sub.dropped} events dropped (slow reader)\n\n".encode()
                    sub.dropped = 0
                item = sub.queue.popleft()
                if item is None:
                    return
                yield item.sse()
        finally:
            self._subscribers.discard(sub)
