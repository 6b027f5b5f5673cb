"""The plain path: a switch (`ProxyConfig.plain_path`) that sets up plain tunnels on bare sockets.

`proxy-lab proxy` and the bench turn it on; embedded proxies leave it off, so a scenario's verdict
never depends on which relay carried it. When it is on, a request that no fault, refusal or slow
resolver concerns (decided by the host from the parsed head, `PlainHost.plain_target`) is set up
and relayed by a `PlainTunnel` (plaintunnel.py) on a thread of the proxy's own that blocks in
`epoll_wait` on the plain path's sockets (poller.py), with no asyncio transport, task or future:

    accept (listener.py: the proxy's own, with TCP_DEFER_ACCEPT, so woken once the head is in)
    -> recv, parse, decide -> connect upstream -> `200 Connection established` -> relay.

Anything else goes to the general path, with the bytes read so far (`PlainHost.adopt`): a head
not complete in the first read, a fault in scope, credentials to answer, a name to resolve. A head
that arrives in pieces is parsed by the general path's connection and may still come back here
(`take`). An upstream that does not answer is answered by the general path too
(`PlainHost.answer_connect_failure`), with the same Squid ERR_CONNECT_FAIL that the general path's
own connect loop gives (`proxy_lab.proxy.upstream.ConnectFailure`).

A tunnel chained through an upstream proxy is opened by the general path (chain.py speaks to the
upstream) and, when nothing on the lab side watches it, handed here open (`take_open`) to be relayed.

So the plain path never answers anything but a 200, and the records it keeps are built by the
same functions as the general path's (`proxy_lab.proxy.records.tunnel_opened`/`tunnel_closed`).
Everything it does runs on its thread: it counts in a `ProxyStats` of its own (the host sums both
when they are read), and keeps its records as tuples until the host takes them (building two
records per tunnel would cost a tenth of a setup). The event loop's thread reaches it only
through `take`, `take_records`, `idle`, `abort_all` and `close`, which hand work to its thread.
"""

from __future__ import annotations

import _socket
import asyncio
import logging
import socket
import time
from collections import deque
from typing import Protocol

from proxy_lab.proxy.events import ConnectRequest
from proxy_lab.proxy.listener import Listener
from proxy_lab.proxy.plaintunnel import DONTWAIT, Client, PlainTunnel
from proxy_lab.proxy.poller import Poller
from proxy_lab.proxy.records import LOG_SIZE, ProxyLogRecord, ProxyStats, tunnel_closed, tunnel_opened
from proxy_lab.proxy.upstream import ConnectFailure
from proxy_lab.resolver import Address

logger = logging.getLogger("proxy_lab.proxy")

FIRST_READ = 65536  # bytes read on accept: more than the largest head allowed by default

# A tunnel's record before it is built: (time, opened, request, client address, user, bytes up,
# bytes down, why closed).
_Entry = tuple[float, bool, ConnectRequest, Address, str | None, int, int, str]


class PlainHost(Protocol):
    """What the plain path asks of the proxy it serves (`proxy_lab.proxy.server.LabProxy`)."""

    def parse_head(self, buf: bytes | bytearray) -> tuple[ConnectRequest, int] | None:
        """The proxy's CONNECT head parser (any thread; raises RemoteProtocolError)."""

    def plain_target(self, request: ConnectRequest) -> tuple[Address, str | None] | None:
        """Where a first request goes and for which user when the plain path may take it, else None
        (any thread; decided from the head alone, without side effects)."""

    def connections_open(self) -> int:
        """Client connections open now, on both paths (any thread)."""

    def adopt(self, sock: _socket.socket, data: bytes) -> None:
        """Serve an accepted connection on the general path, `data` already read from it (event loop)."""

    def answer_connect_failure(self, sock: _socket.socket, request: ConnectRequest, failure: ConnectFailure) -> None:
        """Answer a CONNECT whose upstream did not answer, as the general path would (event loop)."""


class PlainPath:
    """The plain path of one proxy: its thread and epoll set, its tunnels, counters and records."""

    def __init__(
        self,
        host: PlainHost,
        loop: asyncio.AbstractEventLoop,
        *,
        max_connections: int,
        connect_timeout_s: float,
    ) -> None:
        self.host = host
        self.poller = Poller(loop)
        self.stats = ProxyStats()  # written on the poller's thread only
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self._tunnels: set[PlainTunnel] = set()  # on the poller's thread only
        self._idle: list[asyncio.Future[None]] = []  # waiting for _tunnels to empty (see `idle`)
        self._entries: deque[_Entry] = deque(maxlen=LOG_SIZE)  # appended here, taken by the event loop

    # -- the event loop's thread ----------------------------------------------------------------------
    def listen(self, sock: socket.socket, *, defer: bool) -> Listener:
        """Accept on `sock` (on the poller's thread); the Listener stands in for asyncio.Server."""
        return Listener(self.poller, sock, self._accept, defer=defer)

    def take(
        self, client: Client, request: ConnectRequest, user: str | None, address: Address, peer: Address
    ) -> None:
        """Tunnel a connection the general path accepted and parsed, already counted as a request."""
        self.poller.call(self._connect, client, request, user, address, peer)

    def take_open(
        self, client: Client, upstream: _socket.socket, request: ConnectRequest, user: str | None, peer: Address
    ) -> None:
        """Relay a connection the general path accepted, parsed and counted, whose upstream socket it
        opened too (a tunnel chained through an upstream proxy): the 200, then bytes as for any
        plain tunnel. The client connection's end is counted here from now on."""
        self.poller.call(self._adopt, client, upstream, request, user, peer)

    def take_records(self) -> list[ProxyLogRecord]:
        """The records of the tunnels opened and closed since the last call, oldest first."""
        entries = self._entries
        taken: list[ProxyLogRecord] = []
        while entries:
            taken.append(_record(entries.popleft()))  # the poller's thread only appends
        return taken

    def idle(self) -> asyncio.Future[None]:
        """A future done once no plain tunnel is open (or connecting)."""
        done = self.poller.loop.create_future()
        self.poller.call(self._when_idle, done)
        return done

    def abort_all(self) -> None:
        """Drop every plain tunnel now, on the poller's thread (proxy shutdown)."""
        self.poller.call(self._abort_all)

    def close(self) -> None:
        """Abort what is left, then stop the thread (after the calls made before this one)."""
        self.abort_all()
        self.poller.close()

    # -- the poller's thread --------------------------------------------------------------------------
    def _accept(self, sock: _socket.socket, peer: Address) -> None:
        """One accepted connection (the Listener's callback): a plain tunnel when its first read
        holds a head that the host lets the plain path take, else the general path with what was read."""
        stats = self.stats
        stats.connections += 1
        stats.connections_open += 1
        try:
            data = sock.recv(FIRST_READ, DONTWAIT)
        except OSError:  # nothing yet (no TCP_DEFER_ACCEPT), or a reset: the general path waits or records it
            data = b""
        host = self.host
        if data and host.connections_open() <= self.max_connections:
            try:
                parsed = host.parse_head(data)
            except Exception:  # the general path answers it (400, 405, ...)
                parsed = None
            if parsed is not None:
                request, size = parsed
                target = host.plain_target(request)
                if target is not None:
                    stats.requests += 1
                    self._connect((sock, data[size:]), request, target[1], target[0], peer)
                    return
        self.poller.to_loop(host.adopt, sock, data)

    def _connect(
        self, client: Client, request: ConnectRequest, user: str | None, address: Address, peer: Address
    ) -> None:
        PlainTunnel(self, self.poller, request, user, peer).connect(address, client, self._connect_failed)

    def _adopt(
        self, client: Client, upstream: _socket.socket, request: ConnectRequest, user: str | None, peer: Address
    ) -> None:
        self.stats.connections_open += 1  # `ended` counts the connection's end (the general path did not)
        host, port = upstream.getpeername()[:2]
        PlainTunnel(self, self.poller, request, user, peer).adopt(upstream, (host, port), client)

    def _connect_failed(self, tunnel: PlainTunnel, failure: ConnectFailure) -> None:
        assert tunnel.waiting is not None
        sock, _ = tunnel.waiting
        self.poller.to_loop(self.host.answer_connect_failure, sock, tunnel.request, failure)

    def _when_idle(self, done: asyncio.Future[None]) -> None:
        if self._tunnels:
            self._idle.append(done)
        else:
            self.poller.to_loop(_resolve, done)

    def _abort_all(self) -> None:
        for tunnel in list(self._tunnels):
            tunnel.abort()

    # -- TunnelOwner (the poller's thread) ------------------------------------------------------------
    def track(self, tunnel: PlainTunnel) -> None:
        self._tunnels.add(tunnel)

    def untrack(self, tunnel: PlainTunnel) -> None:
        self._tunnels.discard(tunnel)
        if not self._tunnels and self._idle:
            waiting, self._idle = self._idle, []
            for done in waiting:
                self.poller.to_loop(_resolve, done)

    def opened(self, tunnel: PlainTunnel) -> None:
        stats = self.stats
        stats.tunnels += 1
        stats.tunnels_open += 1
        self._remember(tunnel, True)

    def ended(self, tunnel: PlainTunnel) -> None:
        stats = self.stats
        stats.tunnels_open -= 1
        stats.connections_open -= 1  # the client connection ends with its tunnel
        self._remember(tunnel, False)
        self.untrack(tunnel)

    def dropped(self, tunnel: PlainTunnel, failure: ConnectFailure) -> None:
        if tunnel.waiting is not None:
            tunnel.waiting[0].close()
        self.stats.connections_open -= 1

    def _remember(self, tunnel: PlainTunnel, opened: bool) -> None:
        up, down = tunnel.moved
        entry: _Entry = (time.time(), opened, tunnel.request, tunnel.peer, tunnel.user, up, down, tunnel.why_closed)
        self._entries.append(entry)
        if logger.isEnabledFor(logging.DEBUG):  # tunnels are said at DEBUG, as on the general path
            logger.debug("%s", _record(entry).message)


def _record(entry: _Entry) -> ProxyLogRecord:
    at, opened, request, peer, user, up, down, why = entry
    client = f"{peer[0]}:{peer[1]}"
    if opened:
        return tunnel_opened(request.authority, client, user, at)
    return tunnel_closed(request.authority, client, up, down, why, at)


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
