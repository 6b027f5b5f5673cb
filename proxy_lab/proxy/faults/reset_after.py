"""reset_after: cuts the tunnel with a TCP reset after a number of bytes (an inline device killing the flow)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.proxy.faults.base import DIRECTIONS, Ctx, Direction, Fault, Stage, doc


class _ResetAfterStage(Stage):
    def __init__(self, after_bytes: int, directions: tuple[Direction, ...]) -> None:
        self.after_bytes = after_bytes
        self.left = after_bytes
        self.directions = directions

    async def _cut(self, direction: Direction, data: bytes) -> bytes:
        if len(data) < self.left:
            self.left -= len(data)
            return data
        head, self.left = data[: self.left], 0
        if head:
            self.tunnel.send(direction, head)
        await self.tunnel.flush()  # deliver the bytes before the limit, then reset
        self.tunnel.reset(f"reset_after: {self.after_bytes} bytes ({', '.join(self.directions)})")
        return b""

    async def client_to_upstream(self, data: bytes) -> bytes:
        return await self._cut("client_to_upstream", data)

    async def upstream_to_client(self, data: bytes) -> bytes:
        return await self._cut("upstream_to_client", data)


@dataclass(kw_only=True)
class ResetAfter(Fault, name="reset_after"):
    """Resets both sides of a tunnel (SO_LINGER 0) once after_bytes have passed in the chosen direction."""

    after_bytes: int = field(
        default=0,
        metadata=doc("bytes let through before the reset (counted over both directions for 'both')", "bytes"),
    )
    direction: Literal["upstream_to_client", "client_to_upstream", "both"] = field(
        default="upstream_to_client", metadata=doc("which bytes count")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.after_bytes < 0:
            raise ValueError(f"after_bytes: {self.after_bytes} is negative")

    def stream(self, ctx: Ctx) -> Stage | None:
        directions = DIRECTIONS if self.direction == "both" else (self.direction,)
        return _ResetAfterStage(self.after_bytes, directions)
