"""idle_timeout: tunnels quiet for too long are closed, as a proxy's idle or read timeout closes them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.proxy.faults.base import Ctx, Direction, Fault, Stage, doc
from proxy_lab.proxy.shaping import Clock, Sleep


class _IdleStage(Stage):
    # No transform: both directions stay on the relay's fast path; run() watches the byte counters.
    directions: tuple[Direction, ...] = ()

    def __init__(self, idle_s: float, action: str, clock: Clock, sleep: Sleep) -> None:
        self.idle_s, self.action, self.clock, self.sleep = idle_s, action, clock, sleep
        # Activity is seen at the next poll, so a cut comes idle_s to idle_s + 2 * tick_s after the last byte.
        self.tick_s = min(max(idle_s / 10, 0.005), 1.0)

    async def run(self) -> None:
        seen, since = -1, self.clock()
        while not self.tunnel.closed:
            moved = self.tunnel.bytes_client_to_upstream + self.tunnel.bytes_upstream_to_client
            now = self.clock()
            if moved != seen:
                seen, since = moved, now
            elif now - since >= self.idle_s:
                why = f"idle_timeout: no byte either way for {now - since:.2f} s (limit {self.idle_s:g} s)"
                self.tunnel.ctx.notes["idle_timeout"] = why
                if self.action == "reset":
                    self.tunnel.reset(why)
                else:
                    self.tunnel.close(why)
                return
            await self.sleep(max(min(self.tick_s, since + self.idle_s - now), 0.001))


@dataclass(kw_only=True)
class IdleTimeout(Fault, name="idle_timeout"):
    """Closes a tunnel once no byte has crossed it in either direction for idle_s."""

    idle_s: float = field(default=30.0, metadata=doc("longest silence a tunnel survives", "s"))
    action: Literal["close", "reset"] = field(
        default="close", metadata=doc("'close': FIN to both sides; 'reset': TCP reset (SO_LINGER 0)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.idle_s <= 86_400:
            raise ValueError(f"idle_s: {self.idle_s} outside (0, 86400]")

    def stream(self, ctx: Ctx, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> Stage | None:
        return _IdleStage(self.idle_s, self.action, clock, sleep)
