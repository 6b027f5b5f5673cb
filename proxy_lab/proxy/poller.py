"""One epoll set of the proxy's own inside the event loop, for the plain path's sockets (Linux).

The plain path (fastpath.py) watches two sockets per tunnel and changes what it waits for on them
a few times in a tunnel's life (connecting, reading, a write the peer did not take yet, EOF).
Through the event loop's `add_reader`/`add_writer` each of those changes costs uvloop a handle and
up to four system calls (it probes the descriptor, and its first epoll_ctl fails on every new
socket), and every event a handle object. Here each change is one epoll_ctl, and each wake-up of
the event loop one `epoll.poll(0)` that hands back every ready socket. The event loop watches this
epoll set's descriptor like any other socket. (A nested set cannot make EPOLLEXCLUSIVE work: the
kernel wakes every set that watches a shared listening socket, which is why run_proxy's workers
each listen on a socket of their own, workers.py.)

Level-triggered: a handler that does not consume its event is called again on the next wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
from collections.abc import Callable

log = logging.getLogger("proxy_lab.proxy")

AVAILABLE = hasattr(select, "epoll")
IN = getattr(select, "EPOLLIN", 1)
OUT = getattr(select, "EPOLLOUT", 4)
ERR = getattr(select, "EPOLLERR", 8)
HUP = getattr(select, "EPOLLHUP", 16)
MAX_EVENTS = 256  # per wake-up; the rest are still ready at the next one
READ_SIZE = 256 * 1024  # one read from a socket at most (asyncio's transports read 256 KiB too)

Handler = Callable[[int], None]  # called with the epoll event mask


class Poller:
    """Sockets watched by one epoll set that the event loop polls; `handler(events)` per ready socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_size: int = READ_SIZE) -> None:
        self.loop = loop
        # One read buffer for every socket of this poller (its handlers run one at a time, on the
        # loop's thread): `recv(n)` would allocate n bytes per call, and glibc serves 128 KiB and
        # more with mmap and munmap, ~15 us per read here, more than the read itself.
        self.read_buffer = memoryview(bytearray(read_size))
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        loop.add_reader(self._epoll.fileno(), self._dispatch)

    def __contains__(self, fd: int) -> bool:
        return fd in self._handlers

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

    def _dispatch(self) -> None:
        handlers = self._handlers
        try:
            ready = self._epoll.poll(0, MAX_EVENTS)
        except InterruptedError:
            return
        for fd, events in ready:
            handler = handlers.get(fd)  # None: closed by an earlier handler of this round
            if handler is None:
                continue
            try:
                handler(events)
            except Exception:  # one socket's failure must not stop the others' events
                log.exception("lab proxy: handler of descriptor %d failed", fd)
                self.unregister(fd)

    def close(self) -> None:
        if self._epoll.closed:
            return
        self.loop.remove_reader(self._epoll.fileno())
        self._handlers.clear()
        self._epoll.close()
