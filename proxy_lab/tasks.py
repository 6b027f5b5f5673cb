"""One helper spawns asyncio tasks and keeps a strong reference to each until it ends.

A bare `asyncio.create_task` may be garbage-collected mid-flight (mitmproxy's
`asyncio_utils.create_task` exists for the same reason).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_tasks: set[asyncio.Task[Any]] = set()


def create_task[T](coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def running_tasks() -> set[asyncio.Task[Any]]:
    return set(_tasks)
