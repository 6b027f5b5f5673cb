"""Zero-copy relaying for busy plain tunnels: os.splice through a pipe, one thread per direction (Linux).

Relaying through the event loop copies every byte three times in the proxy (kernel to libuv's
buffer, buffer to a `bytes`, `bytes` to the kernel). `splice(2)` moves socket pages into a pipe and
from the pipe to the other socket without copying them to user space: on loopback it halves the CPU
a bulk transfer costs and lifts throughput to haproxy's (haproxy's `option splice-*` does the same).

A plain tunnel (fastpath.py) hands itself over once it has carried `SPLICE_AFTER_BYTES` in one
direction, at a moment when no bytes wait in the proxy for either side: the sockets leave the
proxy's epoll set, their descriptors are handed over, and a thread per live direction loops on
blocking splices. The GIL is
released in each splice, so the event loop carries on meanwhile.

The rules stay those of the event-loop relay (RFC 9110 §9.3.6): EOF on one side is passed on as a
half-close (shutdown SHUT_WR) while the other direction keeps flowing; an error on one side ends
both directions after the bytes already written; when both threads are done the sockets are closed
and the tunnel's bookkeeping runs on the event loop. Interactive tunnels never get here.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Callable

SPLICE_AFTER_BYTES = 1 << 20  # a direction that carried this much is a bulk transfer
PIPE_BYTES = 1 << 20  # pipe capacity asked for (F_SETPIPE_SZ); Linux caps it at /proc/sys/fs/pipe-max-size
MAX_SPLICED = 64  # tunnels relayed by threads at once; beyond, they stay on the event loop
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

AVAILABLE = hasattr(os, "splice")
_active = 0  # spliced tunnels (+1 on the plain path's thread, -1 on the event loop's: atomic under the GIL)


def can_splice() -> bool:
    return AVAILABLE and _active < MAX_SPLICED


class SplicedPair:
    """The two sockets of one tunnel, relayed by threads once `start`ed; `on_done(up, down, why)` runs
    on the loop when both directions are over."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client_fd: int,
        upstream_fd: int,
        directions: tuple[bool, bool],
        on_done: Callable[[int, int, str], None],
    ) -> None:
        global _active
        _active += 1
        self.loop = loop
        self.client = socket.socket(fileno=client_fd)
        self.upstream = socket.socket(fileno=upstream_fd)
        self.on_done = on_done
        self.moved = [0, 0]  # client_to_upstream, upstream_to_client
        self.why = ""
        self._lock = threading.Lock()
        self._running = 0
        live = [
            (0, self.client, self.upstream, "client"),
            (1, self.upstream, self.client, "upstream"),
        ]
        self._threads = [
            threading.Thread(target=self._pump, args=spec, name=f"proxy-splice-{spec[3]}", daemon=True)
            for spec, on in zip(live, directions, strict=True)
            if on
        ]
        self._running = len(self._threads)

    def start(self) -> None:
        """Relay; call once the event loop has let go of the sockets (blocking mode is shared)."""
        for sock in (self.client, self.upstream):
            sock.setblocking(True)
        if not self._threads:
            self.loop.call_soon_threadsafe(self._finish)
        for thread in self._threads:
            thread.start()

    def abort(self) -> None:
        """End both directions now (proxy shutdown): the blocked splices return."""
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _pump(self, index: int, src: socket.socket, dst: socket.socket, name: str) -> None:
        moved = 0
        why = ""
        r, w = os.pipe()
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_BYTES)
            src_fd, dst_fd = src.fileno(), dst.fileno()
            while True:
                n = os.splice(src_fd, w, PIPE_BYTES, flags=os.SPLICE_F_MOVE)
                if n == 0:
                    break  # EOF from src: pass it on as a half-close below
                while n:
                    # no SPLICE_F_MORE: it corks the socket, and the last bytes of a reply would wait
                    k = os.splice(r, dst_fd, n, flags=os.SPLICE_F_MOVE)
                    moved += k
                    n -= k
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        except OSError as exc:
            why = f"{name} connection lost: {exc!r}"
            # an error on one side ends the tunnel: both directions stop, after what was written
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        finally:
            os.close(r)
            os.close(w)
        with self._lock:
            self.moved[index] += moved
            self.why = self.why or why
            self._running -= 1
            last = self._running == 0
        if last:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is left to tell
                self.loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        global _active
        _active -= 1
        for sock in (self.client, self.upstream):
            sock.close()
        self.on_done(self.moved[0], self.moved[1], self.why)
