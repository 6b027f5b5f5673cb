"""The switchboard's per-tunnel stage: the stages of the faults in force, run as one, and a handle
on the tunnel so a fault change can cut it.

`LabProxy` asks a fault's `stream(ctx)` for one `Stage`; the switchboard stands for a list of faults,
so `StageStack` holds theirs and behaves toward the relay as the relay itself treats a list of
stages: transforms chained in order, `at_eof` tails in order, every `run` alongside the tunnel. A
stage releasing bytes from a timer (`proxy_lab.proxy.shaping.pass_on`) finds the stages after it in
`self.tunnel.stages`: each held stage is bound to a `_Within` view of the tunnel that lists the
stack's stages, so those bytes still pass the later ones. A stack whose stages leave a direction
alone leaves it on the relay's fast path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from proxy_lab.proxy.faults.base import Ctx, Direction, Stage, TunnelControl

Transform = Callable[[bytes], Awaitable[bytes]]


class _Within:
    """The tunnel as a held stage sees it: the real tunnel, with the stack's stages as `stages`."""

    def __init__(self, tunnel: TunnelControl, stages: list[Stage]) -> None:
        self._tunnel = tunnel
        self.stages = stages

    @property
    def ctx(self) -> Ctx:
        return self._tunnel.ctx

    @property
    def bytes_client_to_upstream(self) -> int:
        return self._tunnel.bytes_client_to_upstream

    @property
    def bytes_upstream_to_client(self) -> int:
        return self._tunnel.bytes_upstream_to_client

    @property
    def closed(self) -> bool:
        return self._tunnel.closed

    def send(self, direction: Direction, data: bytes) -> None:
        self._tunnel.send(direction, data)

    async def flush(self, timeout_s: float = 2.0) -> None:
        await self._tunnel.flush(timeout_s)

    def close(self, why: str) -> None:
        self._tunnel.close(why)

    def reset(self, why: str) -> None:
        self._tunnel.reset(why)


def _chain(transforms: list[Transform]) -> Transform:
    async def chained(data: bytes) -> bytes:
        for transform in transforms:
            data = await transform(data)
            if not data:
                return b""
        return data

    return chained


class StageStack(Stage):
    """The stages of the faults in force for one tunnel; `on_bind`/`on_end` tell the switchboard
    the tunnel exists and when it ended (its `run` is cancelled by the relay then)."""

    def __init__(
        self,
        stages: list[Stage],
        on_bind: Callable[[TunnelControl], None],
        on_end: Callable[[TunnelControl], None],
    ) -> None:
        self.stages = stages
        self._on_bind = on_bind
        self._on_end = on_end

    def bind(self, tunnel: TunnelControl) -> None:
        super().bind(tunnel)
        within = _Within(tunnel, self.stages)
        for stage in self.stages:
            stage.bind(within)  # type: ignore[arg-type]  # _Within is a TunnelControl with `stages`
        self._on_bind(tunnel)

    def transform(self, direction: Direction) -> Transform | None:
        found = [t for s in self.stages if (t := s.transform(direction)) is not None]
        if not found:
            return None
        return found[0] if len(found) == 1 else _chain(found)

    def inspects(self, direction: Direction) -> bool:
        return any(s.inspects(direction) for s in self.stages)

    async def at_eof(self, direction: Direction) -> bytes:
        tail = b""
        for stage in self.stages:
            if stage.inspects(direction):
                tail += await stage.at_eof(direction)
        return tail

    async def run(self) -> None:
        """Runs for as long as the tunnel: the held stages' `run`s, then waits to be cancelled."""
        runs = [s.run() for s in self.stages if type(s).run is not Stage.run]
        try:
            if runs:
                await asyncio.gather(*runs)
            await asyncio.Event().wait()
        finally:
            self._on_end(self.tunnel)
