"""One helper spawns asyncio tasks and keeps a strong reference to each until it ends; one base
gives a service with `start()` and `stop()` its `async with`.

A bare `asyncio.create_task` may be garbage-collected mid-flight (mitmproxy's
`asyncio_utils.create_task` exists for the same reason).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Self

_tasks: set[asyncio.Task[Any]] = set()


def create_task[T](coro: Coroutine[Any, Any, T], *, name: str, eager: bool = False) -> asyncio.Task[T]:
    """A task for `coro`, referenced until it ends. `eager`: run it now, inside this call, up to its
    first real wait (a coroutine that finishes without waiting never reaches the event loop)."""
    loop = asyncio.get_running_loop()
    if eager:
        task: asyncio.Task[T] = asyncio.Task(coro, loop=loop, name=name, eager_start=True)
        if task.done():
            return task
    else:
        task = loop.create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def running_tasks() -> set[asyncio.Task[Any]]:
    return set(_tasks)


class Service:
    """`async with service:` starts it and stops it on the way out; subclasses define both."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
