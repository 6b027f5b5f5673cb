"""The tunnel relay: bytes both ways between the client's socket and the upstream's, until both close.

Built on asyncio Protocols, not Streams. On the fast path (no stage inspects a direction) each chunk
the loop reads (up to 256 KiB) is written straight to the other transport; back-pressure pauses
reading on one side while the other side's write buffer is above its high-water mark. A direction
that a `Stage` inspects goes through a small queue and a pump task that awaits each transform.

Closing follows RFC 9110 §9.3.6: "A tunnel is closed when a tunnel intermediary detects that either
side has closed its connection: the intermediary MUST attempt to send any outstanding data that came
from the closed side to the other side, close both connections, and then discard any remaining data
left undelivered." A FIN from one side is passed on as a half-close (write_eof) so the other
direction keeps flowing; a reset or error on one side closes the other after its outstanding bytes.

`Tunnel` owns both sockets from `attach_*` to `done`, and nothing else in the server touches the
bytes. It relays every tunnel of the general path, which is every tunnel unless the plain path is
on (`ProxyConfig.plain_path`): then a tunnel no fault touches takes the leaner
`proxy_lab.proxy.plaintunnel.PlainTunnel`, which hands bulk transfers to os.splice
(`proxy_lab.proxy.splice`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, cast

from proxy_lab.proxy.faults.base import Ctx, Direction, Stage, TunnelControl
from proxy_lab.proxy.records import ProxyStats
from proxy_lab.tasks import create_task

log = logging.getLogger("proxy_lab.proxy")

HIGH_WATER = 256 * 1024  # queue size (slow path) or held bytes above which reading pauses
LOW_WATER = 64 * 1024
WRITE_HIGH_WATER = 512 * 1024  # a socket's write buffer above which the other side stops reading
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def set_linger_reset(transport: asyncio.BaseTransport) -> None:
    """Make the next close of `transport`'s socket a TCP reset (SO_LINGER 0)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


class _Side(asyncio.Protocol):
    """The protocol of one of the tunnel's two sockets."""

    __slots__ = ("eof", "fast_to", "held", "held_size", "into", "lost", "name", "out", "transport", "tunnel")

    def __init__(self, tunnel: Tunnel, name: Literal["client", "upstream"]) -> None:
        self.tunnel = tunnel
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.out: Flow | None = None  # the flow this side's bytes feed
        self.into: Flow | None = None  # the flow that writes to this side
        self.held: list[bytes] | None = []  # bytes read before the tunnel starts
        self.held_size = 0
        self.eof = False
        self.lost = False
        self.fast_to: Flow | None = None  # `out` once the tunnel started, when no stage inspects it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        # asyncio's default high-water mark (64 KiB) is below one read (256 KiB): every chunk would
        # pause and resume the other side. Room for two reads keeps the pipe full.
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        flow = self.fast_to
        if flow is not None:  # the plain path: count and write, nothing else per chunk
            n = len(data)
            flow.bytes += n
            flow.counter(n)
            transport = flow.dst.transport
            if transport is not None and not transport.is_closing():
                transport.write(data)
            return
        if self.held is not None:
            self.held.append(data)
            self.held_size += len(data)
            if self.held_size > HIGH_WATER and self.transport is not None:
                self.transport.pause_reading()
            return
        assert self.out is not None
        self.out.feed(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.held is None and self.out is not None:
            self.out.finish("eof")
        return True  # keep the socket open for the other direction (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        self.tunnel._side_lost(self, exc)

    def pause_writing(self) -> None:
        if self.into is not None:
            self.into.set_dst_full(True)

    def resume_writing(self) -> None:
        if self.into is not None:
            self.into.set_dst_full(False)


class Flow:
    """One direction of a tunnel: from `src`'s reads to `dst`'s writes, through the stages."""

    __slots__ = (
        "bytes",
        "counter",
        "direction",
        "done",
        "dst",
        "dst_full",
        "end",
        "fast",
        "may_finish",
        "queue",
        "queue_full",
        "queued",
        "reading_paused",
        "src",
        "tails",
        "task",
        "transforms",
        "tunnel",
        "wake",
    )  # fmt: skip

    def __init__(
        self, tunnel: Tunnel, direction: Direction, src: _Side, dst: _Side, stages: list[Stage]
    ) -> None:
        self.tunnel = tunnel
        self.direction = direction
        self.src = src
        self.dst = dst
        self.transforms: list[Callable[[bytes], Awaitable[bytes]]] = (
            [t for s in stages if (t := s.transform(direction)) is not None] if stages else []
        )
        self.tails = [s for s in stages if s.inspects(direction)] if stages else []
        self.fast = not self.tails
        # Whether `Stage.finished` can ever hold: only stages that override it are asked, per chunk.
        self.may_finish = bool(self.tails) and all(type(s).finished is not Stage.finished for s in self.tails)
        self.bytes = 0
        self.done = False
        self.end: str | None = None
        self.queued = 0
        self.dst_full = False
        self.queue_full = False
        self.reading_paused = False
        self.task: asyncio.Task[None] | None = None
        self.counter = tunnel.stats.count_up if direction == "client_to_upstream" else tunnel.stats.count_down
        # The queue and its wake-up exist only where a stage inspects this direction.
        self.queue: deque[bytes] | None = None if self.fast else deque()
        self.wake: asyncio.Event | None = None if self.fast else asyncio.Event()

    def start(self) -> None:
        if not self.fast:
            self.task = create_task(
                self._pump(), name=f"proxy-pump-{self.tunnel.ctx.conn_id}-{self.direction}"
            )

    def feed(self, data: bytes) -> None:
        n = len(data)
        self.bytes += n
        self.counter(n)
        if self.fast:
            transport = self.dst.transport
            if transport is not None and not transport.is_closing():
                transport.write(data)
            return
        if self.done or self.end is not None:
            return
        assert self.queue is not None and self.wake is not None
        self.queue.append(data)
        self.queued += n
        if self.queued > HIGH_WATER and not self.queue_full:
            self.queue_full = True
            self._update_reading()
        self.wake.set()

    def finish(self, how: Literal["eof", "close"]) -> None:
        """No more bytes will come from `src`: pass the end on once the outstanding bytes are out."""
        if self.done or self.end is not None:
            return
        if self.tunnel.first_end is None:
            self.tunnel.first_end = self.direction
        if self.fast:
            self._end(how)
        else:
            assert self.wake is not None
            self.end = how
            self.wake.set()

    def abandon(self) -> None:
        """`dst` is gone: drop whatever is left undelivered."""
        self.done = True
        if self.queue is not None:
            self.queue.clear()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    def set_dst_full(self, full: bool) -> None:
        self.dst_full = full
        self._update_reading()

    def _update_reading(self) -> None:
        want_pause = self.dst_full or self.queue_full
        transport = self.src.transport
        if want_pause == self.reading_paused or transport is None or transport.is_closing() or self.src.eof:
            return
        self.reading_paused = want_pause
        if want_pause:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def _write(self, data: bytes) -> None:
        transport = self.dst.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _end(self, how: str) -> None:
        self.done = True
        transport = self.dst.transport
        if transport is not None and not transport.is_closing():
            # When the other direction has ended too, the close below sends the FIN (after the
            # buffered bytes): a shutdown() first would be a syscall for nothing.
            other = self.tunnel.down if self is self.tunnel.up else self.tunnel.up
            if how == "eof" and not other.done and transport.can_write_eof():
                try:
                    transport.write_eof()
                except (OSError, RuntimeError):
                    transport.close()
            else:
                transport.close()
        self.tunnel._flow_done()

    def _go_fast(self) -> None:
        """Every stage of this direction is finished: from now on each chunk goes straight across."""
        self.fast, self.queue, self.wake, self.task = True, None, None, None
        self.transforms, self.tails = [], []
        if self.queue_full:
            self.queue_full = False
            self._update_reading()
        if self.src.held is None:
            self.src.fast_to = self

    async def _pump(self) -> None:
        assert self.queue is not None and self.wake is not None
        try:
            while True:
                if not self.queue:
                    if self.end is not None:
                        break
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                data = self.queue.popleft()
                self.queued -= len(data)
                if self.queue_full and self.queued <= LOW_WATER:
                    self.queue_full = False
                    self._update_reading()
                for transform in self.transforms:
                    data = await transform(data)
                    if not data:
                        break
                if data:
                    self._write(data)
                if self.may_finish and not self.queue and self.end is None and all(
                    s.finished(self.direction) for s in self.tails
                ):
                    self._go_fast()
                    return
            for stage in self.tails:
                tail = await stage.at_eof(self.direction)
                if tail:
                    self._write(tail)
            self._end(self.end or "close")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a stage failed: the tunnel cannot go on coherently
            log.exception("stage failed on %s %s", self.tunnel.ctx.authority, self.direction)
            self.tunnel.reset(f"stage failed on {self.direction}: {exc!r}")


class Tunnel:
    """Both sockets of one established tunnel; implements the `TunnelControl` that stages use."""

    __slots__ = (
        "_tasks", "client", "ctx", "done", "down", "first_end", "stages", "stats", "up", "upstream", "why_closed",
    )  # fmt: skip

    def __init__(self, ctx: Ctx, stats: ProxyStats, stages: list[Stage]) -> None:
        self.ctx = ctx
        self.stats = stats
        self.stages = stages
        self.client = _Side(self, "client")
        self.upstream = _Side(self, "upstream")
        self.up = Flow(self, "client_to_upstream", self.client, self.upstream, stages)
        self.down = Flow(self, "upstream_to_client", self.upstream, self.client, stages)
        self.client.out, self.client.into = self.up, self.down
        self.upstream.out, self.upstream.into = self.down, self.up
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.why_closed = ""
        self.first_end: Direction | None = None
        self._tasks: list[asyncio.Task[None]] = []
        for stage in stages:
            stage.bind(self)

    # -- TunnelControl ------------------------------------------------------------------------------
    @property
    def bytes_client_to_upstream(self) -> int:
        return self.up.bytes

    @property
    def bytes_upstream_to_client(self) -> int:
        return self.down.bytes

    @property
    def closed(self) -> bool:
        return self.done.done()

    def send(self, direction: Direction, data: bytes) -> None:
        (self.up if direction == "client_to_upstream" else self.down)._write(data)

    async def flush(self, timeout_s: float = 2.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            sizes = [
                s.transport.get_write_buffer_size()
                for s in (self.client, self.upstream)
                if s.transport is not None and not s.lost
            ]
            if not any(sizes):
                return
            await asyncio.sleep(0.005)

    def close(self, why: str) -> None:
        self.why_closed = self.why_closed or why
        for side in (self.client, self.upstream):
            if side.transport is not None:
                side.transport.close()

    def reset(self, why: str) -> None:
        self.why_closed = self.why_closed or why
        for side in (self.client, self.upstream):
            if side.transport is not None and not side.lost:
                set_linger_reset(side.transport)
                side.transport.abort()

    # -- wiring -------------------------------------------------------------------------------------
    def attach_client(self, transport: asyncio.Transport, leftover: bytes, eof: bool) -> None:
        """Take over the client's transport; `leftover` are bytes it pipelined after its CONNECT head."""
        transport.set_protocol(self.client)
        self.client.connection_made(transport)
        if leftover:
            self.client.held = [leftover, *(self.client.held or [])]
        self.client.eof = self.client.eof or eof
        if transport.is_closing():
            self.client.lost = True

    def start(self) -> None:
        """Deliver what each side sent before the tunnel was announced, then relay."""
        if self.done.done():
            return
        for flow in (self.up, self.down):
            flow.start()
        for stage in self.stages:
            if type(stage).run is not Stage.run:
                self._tasks.append(create_task(stage.run(), name=f"proxy-stage-{self.ctx.conn_id}"))
        for side in (self.client, self.upstream):
            held, side.held = side.held or [], None
            assert side.out is not None
            if side.out.fast:
                side.fast_to = side.out
            for chunk in held:
                side.out.feed(chunk)
            if side.transport is not None and not side.transport.is_closing() and not side.eof:
                side.transport.resume_reading()
            if side.eof and not side.lost:
                side.out.finish("eof")
        if self.client.lost or self.upstream.lost:
            self.close("a side closed before the tunnel started")

    def _flow_done(self) -> None:
        if self.up.done and self.down.done:
            self.close("both sides closed")

    def _side_lost(self, side: _Side, exc: Exception | None) -> None:
        if exc is not None and not self.why_closed:
            self.why_closed = f"{side.name} connection lost: {exc!r}"
        if side.into is not None:
            side.into.abandon()
        if side.out is not None and side.held is None:
            side.out.finish("close")
        other = self.upstream if side is self.client else self.client
        if side.held is not None and other.transport is not None and not other.lost:
            other.transport.close()  # lost before the tunnel started: nothing to deliver
        if self.client.lost and self.upstream.lost and not self.done.done():
            for flow in (self.up, self.down):
                if flow.task is not None:
                    flow.task.cancel()
            for task in self._tasks:
                task.cancel()
            self.done.set_result(None)

    def abort(self) -> None:
        """Drop both sides at once (proxy shutdown)."""
        self.why_closed = self.why_closed or "proxy stopping"
        for side in (self.client, self.upstream):
            if side.transport is not None:
                side.transport.abort()


if TYPE_CHECKING:  # Tunnel is what a Stage's `self.tunnel` is

    def _conforms(tunnel: Tunnel) -> TunnelControl:
        return tunnel
