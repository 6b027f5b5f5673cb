"""Many timeouts of one fixed length on one timer handle: the proxy's header and connect timeouts.

Every connection the proxy accepts gets a header deadline and every upstream connect a connect
deadline; almost all of them are met and cancelled. A timer handle per deadline (`loop.call_at`,
`asyncio.timeout`) is an allocation, a heap push and a cancel per setup, which shows in a profile at
thousands of setups per second. Deadlines of one fixed length expire in the order they were set, so
they can live in an insertion-ordered dict with a single timer armed for the oldest one: setting
and clearing a deadline is a dict store and a dict pop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class Deadlines:
    """Call `on_expire(key)` for each key still set `timeout_s` after it was set (loop time)."""

    def __init__(self, timeout_s: float, on_expire: Callable[[Any], None]) -> None:
        self.timeout_s = timeout_s
        self.on_expire = on_expire
        self._due: dict[Hashable, float] = {}  # insertion order is deadline order (fixed length)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def set(self, key: Hashable) -> float:
        """Start `key`'s deadline now; returns it (loop time)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        due = loop.time() + self.timeout_s
        self._due[key] = due
        if self._timer is None:
            self._timer = loop.call_at(due, self._fire)
        return due

    def clear(self, key: Hashable) -> None:
        """Forget `key`'s deadline (met or no longer relevant); the timer is re-armed lazily."""
        self._due.pop(key, None)

    def close(self) -> None:
        """Drop every deadline without calling back (the owner is shutting down)."""
        self._due.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due = self._due
        expired = []
        for key, when in due.items():
            if when > now:
                self._timer = loop.call_at(when, self._fire)
                break
            expired.append(key)
        for key in expired:
            del due[key]
        for key in expired:
            self.on_expire(key)


class _Expiry:
    """One `within` call's state: the task to cancel, and whether the deadline cancelled it."""

    __slots__ = ("expired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.expired = False


def _cancel(expiry: _Expiry) -> None:
    expiry.expired = True
    expiry.task.cancel()


class Timeouts(Deadlines):
    """`await timeouts.within(aw)`: `asyncio.timeout(timeout_s)` around one await, on shared deadlines.

    Where even a coroutine frame counts (the plain path's connect), the same steps inline:
    `expiry = timeouts.arm(task)`, await, `timeouts.expired(expiry, cancelling)` on CancelledError,
    and `timeouts.clear(expiry)` in `finally`.
    """

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout_s, _cancel)

    def arm(self, task: asyncio.Task[Any]) -> _Expiry:
        expiry = _Expiry(task)
        self.set(expiry)
        return expiry

    @staticmethod
    def expired(expiry: _Expiry, cancelling: int) -> bool:
        """On CancelledError: whether it was this deadline's (then it is TimeoutError), as asyncio.timeout decides."""
        return expiry.expired and expiry.task.uncancel() <= cancelling

    async def within[T](self, aw: Awaitable[T]) -> T:
        """Await `aw`; TimeoutError when `timeout_s` passes first. As with asyncio.timeout, only a
        cancellation of our own turns into TimeoutError; any other cancel propagates."""
        task = asyncio.current_task()
        assert task is not None, "Timeouts.within needs a task"
        cancelling = task.cancelling()
        expiry = self.arm(task)
        try:
            return await aw
        except asyncio.CancelledError:
            if self.expired(expiry, cancelling):
                raise TimeoutError from None
            raise
        finally:
            self.clear(expiry)
