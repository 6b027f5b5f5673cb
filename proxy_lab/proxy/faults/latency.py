"""latency: a long link, a delay line each way (shaping.py `DelayLine`)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from dataclasses import dataclass, field

from proxy_lab.proxy.faults.base import DIRECTIONS, Ctx, Direction, Fault, OpenNext, Stage, doc
from proxy_lab.proxy.shaping import MAX_HELD_BYTES, Clock, DelayLine, Sleep, pass_on, sleep_until


class _LatencyStage(Stage):
    def __init__(self, lines: dict[Direction, DelayLine], clock: Clock, sleep: Sleep) -> None:
        self.lines, self.clock, self.sleep = lines, clock, sleep

    async def _hold(self, direction: Direction, data: bytes) -> bytes:
        line = self.lines[direction]
        while line.held > MAX_HELD_BYTES:
            line.changed.clear()
            await line.changed.wait()
        line.push(data, self.clock())
        return b""  # released by run(), in order, at its time

    async def client_to_upstream(self, data: bytes) -> bytes:
        return await self._hold("client_to_upstream", data)

    async def upstream_to_client(self, data: bytes) -> bytes:
        return await self._hold("upstream_to_client", data)

    async def at_eof(self, direction: Direction) -> bytes:
        line = self.lines[direction]
        fin_s = line.due(self.clock())  # the FIN crosses the link too, behind the last byte
        while line.items:
            line.changed.clear()
            await line.changed.wait()
        await sleep_until(fin_s, self.clock, self.sleep)
        return b""

    async def _release(self, direction: Direction) -> None:
        line = self.lines[direction]
        while True:
            if not line.items:
                line.changed.clear()
                await line.changed.wait()
                continue
            due_s, data = line.items[0]
            await sleep_until(due_s, self.clock, self.sleep)
            await pass_on(self, direction, data)
            line.pop()  # only now: at_eof waits for an empty line before the FIN goes

    async def run(self) -> None:
        await asyncio.gather(*(self._release(d) for d in DIRECTIONS))


@dataclass(kw_only=True)
class Latency(Fault, name="latency"):
    """Delays every byte by delay_ms (± jitter_ms) in each direction, keeping their order."""

    delay_ms: int = field(default=100, metadata=doc("one-way delay added each direction", "ms"))
    jitter_ms: int = field(default=0, metadata=doc("each chunk's delay varies uniformly by ± this", "ms"))
    seed: int = field(default=0, metadata=doc("seed of the jitter (same seed, target: same delays)"))
    delay_connect: bool = field(
        default=True,
        metadata=doc("the upstream TCP handshake crosses the link too: the 200 comes 2 × delay_ms later"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.delay_ms <= 600_000 or not 0 <= self.jitter_ms <= 600_000:
            raise ValueError(f"delay_ms {self.delay_ms} and jitter_ms {self.jitter_ms}: expected 0-600000")

    async def open_upstream(self, ctx: Ctx, host: str, port: int, next: OpenNext) -> socket.socket:
        if self.delay_connect and self.delay_ms:
            await asyncio.sleep(2 * self.delay_ms / 1000)  # SYN out, SYN-ACK back
        return await next(host, port)

    def stream(self, ctx: Ctx, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> Stage | None:
        if not (self.delay_ms or self.jitter_ms):
            return None
        delay_s, jitter_s = self.delay_ms / 1000, self.jitter_ms / 1000
        rngs = {d: random.Random(f"{self.seed}:{ctx.authority}:{d}") for d in DIRECTIONS}
        lines = {d: DelayLine(delay_s, jitter_s, rngs[d]) for d in DIRECTIONS}
        return _LatencyStage(lines, clock, sleep)
