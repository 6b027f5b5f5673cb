"""One epoll set of the proxy's own, served by a thread of its own, for the plain path's sockets (Linux).

The plain path (plainpath.py, plaintunnel.py) watches two sockets per tunnel and changes what it waits for on them
a few times in a tunnel's life (connecting, reading, a write the peer did not take yet, EOF).
Through the event loop's `add_reader`/`add_writer` each of those changes costs uvloop a handle and
up to four system calls (it probes the descriptor, and its first epoll_ctl fails on every new
socket), and every event a handle object. Here each change is one epoll_ctl.

The set is served by a thread that blocks in `epoll_wait` on it and runs each ready socket's
handler: a wake-up of the plain path is one system call and no event-loop iteration. (Nested in
the event loop's own set, as it first was, each wake-up cost a second `epoll_wait` and the
event loop's iteration, and the kernel's wake-up went through two sets: 3-4% of the sequential
setup rate on 2 cores.) The thread and the event loop's share the interpreter lock; the plain
path's handlers touch only the plain path's own sockets, tunnels, counters and records, which
nothing on the event loop's thread writes. What belongs to the event loop (a connection handed to
the general path, a future to resolve) goes there with `loop.call_soon_threadsafe`; what the event
loop's thread asks of the plain path goes through `call`. Timers of the plain path (the connect
timeout, a pause in accepting) are this thread's own (`call_later`).

Level-triggered: a handler that does not consume its event is called again on the next wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("proxy_lab.proxy")

AVAILABLE = hasattr(select, "epoll") and hasattr(os, "eventfd")
IN = getattr(select, "EPOLLIN", 1)
OUT = getattr(select, "EPOLLOUT", 4)
ERR = getattr(select, "EPOLLERR", 8)
HUP = getattr(select, "EPOLLHUP", 16)
MAX_EVENTS = 256  # per wake-up; the rest are still ready at the next one
READ_SIZE = 256 * 1024  # one read from a socket at most (asyncio's transports read 256 KiB too)

Handler = Callable[[int], None]  # called with the epoll event mask


class Timer:
    """A call that `Poller.call_later` will make, unless cancelled first (on the poller's thread)."""

    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[object, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def __lt__(self, other: Timer) -> bool:
        return self.when < other.when

    def cancel(self) -> None:
        self.cancelled = True


class Poller:
    """Sockets watched by one epoll set and a thread that runs `handler(events)` per ready socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_size: int = READ_SIZE) -> None:
        self.loop = loop  # the event loop of the proxy that owns this poller
        # One read buffer for every socket of this poller (its handlers run one at a time, on its
        # thread): `recv(n)` would allocate n bytes per call, and glibc serves 128 KiB and more
        # with mmap and munmap, ~15 us per read here, more than the read itself.
        self.read_buffer = memoryview(bytearray(read_size))
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._calls: deque[tuple[Callable[..., object], tuple[object, ...]]] = deque()
        self._timers: list[Timer] = []  # a heap, on the poller's thread only
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake, IN)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="proxy-plain-path", daemon=True)
        self._thread.start()

    def __contains__(self, fd: int) -> bool:
        return fd in self._handlers

    @property
    def running(self) -> bool:
        """Whether its thread still runs (until `close` returns)."""
        return self._thread.is_alive()

    @property
    def on_thread(self) -> bool:
        """Whether the caller runs on the poller's thread."""
        return threading.current_thread() is self._thread

    # -- from any thread ----------------------------------------------------------------------------
    def call(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the poller's thread: now when called there, else soon, in order."""
        if self.on_thread:
            callback(*args)
            return
        self._calls.append((callback, args))
        with contextlib.suppress(OSError):  # closed: the poller is gone, and the call with it
            os.eventfd_write(self._wake, 1)

    def to_loop(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the event loop's thread (nothing when the loop is closed)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(callback, *args)

    # -- on the poller's thread ---------------------------------------------------------------------
    def register(self, fd: int, events: int, handler: Handler) -> None:
        self._epoll.register(fd, events)
        self._handlers[fd] = handler

    def modify(self, fd: int, events: int, handler: Handler | None = None) -> None:
        self._epoll.modify(fd, events)
        if handler is not None:
            self._handlers[fd] = handler

    def forget(self, fd: int) -> None:
        """Stop dispatching for `fd`, which is about to be closed: closing the last descriptor of a
        socket takes it out of the epoll set (no system call here)."""
        self._handlers.pop(fd, None)

    def unregister(self, fd: int) -> None:
        """Stop watching `fd`; call it before closing the socket (a descriptor it shares with a
        duplicate would otherwise stay in the set)."""
        if self._handlers.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Timer:
        timer = Timer(time.monotonic() + delay, callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    def _run(self) -> None:
        handlers, epoll, wake, timers = self._handlers, self._epoll, self._wake, self._timers
        while self._running:
            timeout = -1.0
            if timers:
                timeout = max(0.0, timers[0].when - time.monotonic())
            try:
                ready = epoll.poll(timeout, MAX_EVENTS)
            except InterruptedError:
                continue
            except OSError:  # the set was closed under us: nothing is left to serve
                return
            for fd, events in ready:
                if fd == wake:
                    self._run_calls()
                    continue
                handler = handlers.get(fd)  # None: closed by an earlier handler of this round
                if handler is None:
                    continue
                try:
                    handler(events)
                except Exception:  # one socket's failure must not stop the others' events
                    log.exception("lab proxy: handler of descriptor %d failed", fd)
                    self.unregister(fd)
            if timers:
                self._run_timers()

    def _run_calls(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake)
        calls = self._calls
        while calls:
            callback, args = calls.popleft()
            try:
                callback(*args)
            except Exception:
                log.exception("lab proxy: call %r on the plain path's thread failed", callback)

    def _run_timers(self) -> None:
        timers, now = self._timers, time.monotonic()
        while timers and timers[0].when <= now:
            timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            try:
                timer.callback(*timer.args)
            except Exception:
                log.exception("lab proxy: timer %r on the plain path's thread failed", timer.callback)

    def _stop(self) -> None:
        self._running = False

    def close(self) -> None:
        """Stop the thread (after the calls made before this one) and close the set; from the event
        loop's thread."""
        if not self._thread.is_alive():
            return
        self.call(self._stop)
        self._thread.join(5.0)
        self._handlers.clear()
        self._epoll.close()
        os.close(self._wake)
