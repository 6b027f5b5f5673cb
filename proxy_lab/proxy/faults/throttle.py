"""throttle: a slow link, a token bucket per tunnel and direction (shaping.py `TokenBucket`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from proxy_lab.proxy.faults.base import DIRECTIONS, Ctx, Direction, Fault, Stage, doc
from proxy_lab.proxy.shaping import MSS_BYTES, Clock, Sleep, TokenBucket, pass_on, sleep_until


class _ThrottleStage(Stage):
    def __init__(self, buckets: dict[Direction, TokenBucket], clock: Clock, sleep: Sleep) -> None:
        self.buckets = buckets
        self.directions = tuple(buckets)
        self.clock = clock
        self.sleep = sleep

    async def _shape(self, direction: Direction, data: bytes) -> bytes:
        # One slice per deadline; all but the last are passed on here, the last is returned.
        bucket = self.buckets[direction]
        last = b""
        for piece in bucket.slices(data):
            if last:
                await pass_on(self, direction, last)
            await sleep_until(bucket.reserve(len(piece), self.clock()), self.clock, self.sleep)
            last = piece
        return last

    async def client_to_upstream(self, data: bytes) -> bytes:
        return await self._shape("client_to_upstream", data)

    async def upstream_to_client(self, data: bytes) -> bytes:
        return await self._shape("upstream_to_client", data)


@dataclass(kw_only=True)
class Throttle(Fault, name="throttle"):
    """Limits each tunnel's payload rate with a token bucket of one segment in each direction."""

    # kbit = 1000 bits; the rate is goodput (payload) unless overhead_bytes charges headers too.
    rate_kbps: float = field(default=384.0, metadata=doc("payload rate each way", "kbit/s"))
    down_kbps: float | None = field(
        default=None, metadata=doc("upstream->client rate instead of rate_kbps (0: not shaped)", "kbit/s")
    )
    up_kbps: float | None = field(
        default=None, metadata=doc("client->upstream rate instead of rate_kbps (0: not shaped)", "kbit/s")
    )
    bucket_bytes: int = field(
        default=MSS_BYTES, metadata=doc("bucket size = largest burst and slice (tbf 'burst')", "bytes")
    )
    overhead_bytes: int = field(
        default=0,
        metadata=doc("charged per slice, e.g. 40 for TCP/IPv4 headers: line rate, not goodput", "bytes"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.rate_kbps > 0:
            raise ValueError(f"rate_kbps: {self.rate_kbps} must be > 0")
        for key in ("down_kbps", "up_kbps"):
            if (value := getattr(self, key)) is not None and value < 0:
                raise ValueError(f"{key}: {value} is negative")
        if not 1 <= self.bucket_bytes <= 1 << 20:
            raise ValueError(f"bucket_bytes: {self.bucket_bytes} outside 1-1048576")
        if self.overhead_bytes < 0:
            raise ValueError(f"overhead_bytes: {self.overhead_bytes} is negative")

    def kbps(self, direction: Direction) -> float:
        override = self.down_kbps if direction == "upstream_to_client" else self.up_kbps
        return self.rate_kbps if override is None else override

    def stream(self, ctx: Ctx, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> Stage | None:
        buckets = {
            d: TokenBucket(self.kbps(d) * 1000 / 8, self.bucket_bytes, self.overhead_bytes)
            for d in DIRECTIONS
            if self.kbps(d) > 0
        }
        return _ThrottleStage(buckets, clock, sleep) if buckets else None
