"""Link shaping for the timing faults: token bucket and delay line schedules, passing held bytes on.

`TokenBucket` and `DelayLine` are sans-IO: they map "n bytes offered at time t" to the time they
may leave and never read a clock themselves, so tests drive them with a virtual one and check
exact byte counts against time (tests/proxy/faults/test_throttle.py).

`pass_on` is for stages that hold bytes and release them later (throttle, latency): the bytes go
through the stages configured after the holding one, in the relay's order, then to the socket.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator

from proxy_lab.proxy.faults.base import Direction, Stage

MSS_BYTES = 1460  # one Ethernet TCP segment's payload
MAX_HELD_BYTES = 4 * 1024 * 1024  # above this the delay line stops taking bytes (back-pressure)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """A token bucket of `bucket_bytes` filled at `rate_bytes_per_s`, kept as a deadline schedule (GCRA).

    Each slice books its cost on a theoretical arrival time (`tat += cost / rate`) and may leave
    once the bucket holds enough tokens: `tat - bucket / rate`. The schedule advances by the bytes
    booked, not by when the caller woke up, so sleep overshoot does not accumulate (`next_time +=
    n/rate`, never `sleep(n/rate)` after each write); a sender late by less than one bucket's time
    loses nothing. `overhead_bytes` is charged per slice, as tbf's `overhead`.
    """

    def __init__(
        self, rate_bytes_per_s: float, bucket_bytes: int = MSS_BYTES, overhead_bytes: int = 0
    ) -> None:
        if rate_bytes_per_s <= 0:
            raise ValueError(f"rate {rate_bytes_per_s} B/s must be > 0")
        if bucket_bytes < 1 or overhead_bytes < 0:
            raise ValueError(f"bucket {bucket_bytes} B must be >= 1 and overhead {overhead_bytes} B >= 0")
        self.rate = rate_bytes_per_s
        self.slice_bytes = bucket_bytes
        self.capacity = bucket_bytes + overhead_bytes  # the cost of one full slice
        self.overhead = overhead_bytes
        self.tat: float | None = None  # when the bucket is full again; None: full now

    def slices(self, data: bytes) -> Iterator[bytes]:
        """`data` cut into slices no larger than the bucket (a larger write would be a burst)."""
        for i in range(0, len(data), self.slice_bytes):
            yield data[i : i + self.slice_bytes]

    def reserve(self, n: int, now: float) -> float:
        """Book a slice of `n` bytes offered at `now`; the time at which it may leave (>= now)."""
        start = now if self.tat is None else max(self.tat, now)
        self.tat = start + (n + self.overhead) / self.rate
        return max(now, self.tat - self.capacity / self.rate)


class DelayLine:
    """One direction's schedule: a chunk arriving at t leaves at t + delay (± jitter), never before
    the chunk ahead of it (TCP delivers in order). Sans-IO: the caller gives the time."""

    def __init__(self, delay_s: float, jitter_s: float, rng: random.Random) -> None:
        self.delay_s, self.jitter_s, self.rng = delay_s, jitter_s, rng
        self.items: deque[tuple[float, bytes]] = deque()
        self.held = 0
        self.last_s = float("-inf")
        self.changed = asyncio.Event()

    def due(self, now: float) -> float:
        jitter = self.rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0
        self.last_s = max(now + max(0.0, self.delay_s + jitter), self.last_s)
        return self.last_s

    def push(self, data: bytes, now: float) -> None:
        self.items.append((self.due(now), data))
        self.held += len(data)
        self.changed.set()

    def pop(self) -> None:
        self.held -= len(self.items.popleft()[1])
        self.changed.set()


async def sleep_until(deadline: float, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
    """Sleep until `clock()` reaches `deadline` (no-op when it already has)."""
    delay = deadline - clock()
    if delay > 0:
        await sleep(delay)


async def pass_on(stage: Stage, direction: Direction, data: bytes) -> None:
    """Send `data` through the stages after `stage` on its tunnel, then to the socket.

    A transform's return value goes through the later stages by itself; bytes a stage releases
    later (from a timer) would skip them with a bare `tunnel.send`. The relay's `Tunnel` keeps its
    stages in order (`Tunnel.stages`); without that list the bytes go straight to the socket.
    """
    stages: list[Stage] = list(getattr(stage.tunnel, "stages", None) or [])
    later = stages[stages.index(stage) + 1 :] if stage in stages else []
    for other in later:
        transform = other.transform(direction)
        if transform is not None:
            data = await transform(data)
            if not data:
                return
    stage.tunnel.send(direction, data)
