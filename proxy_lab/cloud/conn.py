"""Connection bookkeeping shared by the cloud's stream listeners.

`Connections` holds every open transport so `Cloud.stop()` can abort them; `StreamConnection`
is the base asyncio Protocol that registers itself, closes after `idle_timeout_s` without
traffic, and pauses reading while the peer is not reading what it was sent. The listeners are
Protocols (not tasks), so a stopped cloud leaves no task behind.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast


class Connections:
    """The set of open transports of one cloud."""

    def __init__(self) -> None:
        self._open: set[asyncio.BaseTransport] = set()

    def add(self, transport: asyncio.BaseTransport) -> None:
        self._open.add(transport)

    def discard(self, transport: asyncio.BaseTransport) -> None:
        self._open.discard(transport)

    def __len__(self) -> int:
        return len(self._open)

    def abort_all(self) -> None:
        for transport in list(self._open):
            abort = getattr(transport, "abort", None)
            if abort is not None:
                abort()
            else:  # pragma: no cover - every stream transport has abort()
                transport.close()
        self._open.clear()


class StreamConnection(asyncio.Protocol):
    """Registers with `Connections`, times out when idle, and applies write back-pressure."""

    def __init__(self, registry: Connections, idle_timeout_s: float) -> None:
        self.registry = registry
        self.idle_timeout_s = idle_timeout_s
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self._loop = asyncio.get_running_loop()
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport's methods without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.registry.add(self.transport)
        self.touch()
        self._timer = self._loop.call_later(self.idle_timeout_s, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.registry.discard(self.transport)

    def pause_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # -- helpers ----------------------------------------------------------------------------------
    def touch(self) -> None:
        self._last = self._loop.time()

    def on_idle(self) -> None:
        """Called once the connection has been idle for `idle_timeout_s`; default: close it."""
        self.close()

    def _check_idle(self) -> None:
        self._timer = None
        if self.closing:
            return
        left = self._last + self.idle_timeout_s - self._loop.time()
        if left > 0:
            self._timer = self._loop.call_later(left, self._check_idle)
            return
        self.on_idle()

    def write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.closing:
            self.transport.write(data)

    def close(self) -> None:
        """Close after flushing what was written (TLS: with close_notify)."""
        if self.transport is not None and not self.closing:
            self.closing = True
            self.transport.close()

    def extra(self, name: str) -> Any:
        return self.transport.get_extra_info(name) if self.transport is not None else None
