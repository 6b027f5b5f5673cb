"""The plain tunnel: a CONNECT that no fault touches, set up and relayed with as little Python as possible.

Issue 6 asks the lab proxy to set up tunnels as fast as tinyproxy, a C proxy with a thread per
client. Most of what `LabProxy._serve` does per request exists for faults: a `Ctx`, the hook
chains, a `Tunnel` with two `Flow`s whose stages may hold bytes back. When the proxy decides from
the parsed head that none of that applies (`LabProxy._plain_route`: no fault in scope, credentials
fine, an address known without waiting), the connection takes this path instead:

    head parsed (ClientProtocol) -> `serve_plain` task: connect the upstream straight into a
    `PlainTunnel` (connect timeout; 503/504 as Squid's ERR_CONNECT_FAIL) -> in the tunnel's
    `connection_made`: the client's transport gets the tunnel's `_ClientEnd`, `200 Connection
    established` -> both ends relay.

The tunnel is announced from `connection_made` rather than when the connecting task resumes, one
event-loop iteration earlier on every setup. It answers, logs and counts exactly what the general
path does for the same request (the same `tunnel_open`/`tunnel_closed` records, `ProxyStats`,
refusals), relays with the same rules (RFC 9110 §9.3.6 close handling, half-close passed on as
write_eof, back-pressure by pausing the other side's reading), and costs one task per connection,
which ends when the tunnel is up. Per chunk it counts the bytes and writes them on: nothing else.
Bulk transfers move to splice.py's threads.
"""

from __future__ import annotations

import asyncio
import errno as errno_mod
import os
from typing import TYPE_CHECKING, cast

from proxy_lab.proxy import splice
from proxy_lab.proxy.events import ConnectRequest
from proxy_lab.proxy.relay import WRITE_HIGH_WATER
from proxy_lab.proxy.responses import squid_connect_fail
from proxy_lab.proxy.splice import SPLICE_AFTER_BYTES
from proxy_lab.resolver import Address

if TYPE_CHECKING:
    from proxy_lab.proxy.conn import ClientProtocol
    from proxy_lab.proxy.server import LabProxy

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


class _ClientEnd(asyncio.Protocol):
    """The client's transport's protocol once the tunnel is up: hands every event to the tunnel."""

    __slots__ = ("tunnel",)

    def __init__(self, tunnel: PlainTunnel) -> None:
        self.tunnel = tunnel

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        n = len(data)
        tunnel.bytes_client_to_upstream += n
        tunnel.stats.bytes_client_to_upstream += n
        transport = tunnel.upstream
        if transport is not None and not transport.is_closing():
            transport.write(data)
        if tunnel.bytes_client_to_upstream >= SPLICE_AFTER_BYTES and tunnel.splice_ok:
            tunnel.splice()

    def eof_received(self) -> bool:
        self.tunnel.end_of("client")
        return True  # keep the socket open: the other direction may still flow (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.lost("client", exc)

    def pause_writing(self) -> None:
        self.tunnel.pause("upstream", True)

    def resume_writing(self) -> None:
        self.tunnel.pause("upstream", False)


class PlainTunnel(asyncio.Protocol):
    """One plain tunnel; also the upstream transport's protocol. Its bookkeeping is LabProxy's."""

    __slots__ = (
        "bytes_client_to_upstream",
        "bytes_upstream_to_client",
        "client",
        "client_eof",
        "client_lost",
        "conn",
        "done",
        "peer",
        "proxy",
        "request",
        "splice_ok",
        "spliced",
        "stats",
        "upstream",
        "upstream_eof",
        "upstream_lost",
        "user",
        "why_closed",
    )

    def __init__(self, proxy: LabProxy, conn: ClientProtocol, request: ConnectRequest, user: str | None) -> None:
        self.proxy = proxy
        self.stats = proxy.stats
        self.conn = conn
        self.request = request
        self.user = user
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.client_eof = self.upstream_eof = False
        self.client_lost = self.upstream_lost = False
        self.bytes_client_to_upstream = 0
        self.bytes_upstream_to_client = 0
        self.why_closed = ""
        self.done: asyncio.Future[None] | None = None  # made on demand (LabProxy.stop waits on it)
        self.peer: Address = ("?", 0)  # the client's address, for the log records
        self.splice_ok = splice.AVAILABLE  # may still move to splice.py's threads
        self.spliced: splice.SplicedPair | None = None

    # -- the upstream transport's protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The upstream answered: announce the tunnel here rather than when the connecting task
        resumes, one event-loop iteration later."""
        self.upstream = upstream = cast(asyncio.Transport, transport)
        # asyncio's default high-water mark (64 KiB) is below one read (256 KiB): room for two reads
        # keeps the pipe full (as relay.py's tunnels do).
        upstream.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        conn = self.conn
        if conn.lost or conn.transport is None:
            return  # the client left while we connected: serve_plain drops the upstream
        self.announce()

    def announce(self) -> None:
        """Take over the client's transport and send the 200; forward what it pipelined after its head.

        The 200 goes out after the bookkeeping: the client, woken by it, often runs on this CPU
        only once the proxy waits again, so work done after the write would delay it.
        """
        transport, leftover, eof = self.conn.detach()
        transport.set_protocol(_ClientEnd(self))
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.client = transport
        self.proxy._plain_opened(self)
        upstream = self.upstream
        assert upstream is not None
        if leftover:
            n = len(leftover)
            self.bytes_client_to_upstream += n
            self.stats.bytes_client_to_upstream += n
            upstream.write(leftover)
        if transport.is_closing():  # the client left while we connected
            self.lost("client", None)
            return
        transport.write(ESTABLISHED)
        if eof:
            self.end_of("client")

    def data_received(self, data: bytes) -> None:
        n = len(data)
        self.bytes_upstream_to_client += n
        self.stats.bytes_upstream_to_client += n
        transport = self.client
        if transport is not None and not transport.is_closing():
            transport.write(data)
            if self.bytes_upstream_to_client >= SPLICE_AFTER_BYTES and self.splice_ok:
                self.splice()

    def eof_received(self) -> bool:
        self.end_of("upstream")
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost("upstream", exc)

    def pause_writing(self) -> None:
        self.pause("client", True)

    def resume_writing(self) -> None:
        self.pause("client", False)

    # -- both ends ----------------------------------------------------------------------------------
    def end_of(self, side: str) -> None:
        """`side` sent FIN: pass it on as a half-close, or close both once both directions ended.

        RFC 9110 §9.3.6: "A tunnel is closed when a tunnel intermediary detects that either side has
        closed its connection: the intermediary MUST attempt to send any outstanding data that came
        from the closed side to the other side, close both connections, and then discard any
        remaining data left undelivered." A FIN alone is a half-close, passed on as one.
        """
        if self.spliced is not None:
            return
        if side == "client":
            self.client_eof = True
            other, other_ended = self.upstream, self.upstream_eof
        else:
            self.upstream_eof = True
            other, other_ended = self.client, self.client_eof
        if other is None or other.is_closing():
            return
        if other_ended:
            self.close("both sides closed")  # close() sends the FIN after the buffered bytes
        elif other.can_write_eof():
            try:
                other.write_eof()
            except (OSError, RuntimeError):
                other.close()
        else:
            other.close()

    def lost(self, side: str, exc: Exception | None) -> None:
        if self.spliced is not None:
            return  # the transports were let go on purpose; the threads report the end
        if exc is not None and not self.why_closed:
            self.why_closed = f"{side} connection lost: {exc!r}"
        if side == "client":
            self.client_lost = self.client_eof = True
            other = self.upstream
        else:
            self.upstream_lost = self.upstream_eof = True
            other = self.client
        if other is not None and not other.is_closing():
            other.close()  # after the bytes already buffered for it (RFC 9110 §9.3.6)
        if self.client_lost and self.upstream_lost:
            self.proxy._plain_closed(self)
            if self.done is not None and not self.done.done():
                self.done.set_result(None)

    def pause(self, side: str, paused: bool) -> None:
        """Back-pressure: the other side's write buffer is above (below) its high-water mark."""
        if self.spliced is not None:
            return
        if side == "client":
            transport, ended = self.client, self.client_eof
        else:
            transport, ended = self.upstream, self.upstream_eof
        if transport is None or transport.is_closing() or ended:
            return
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def close(self, why: str) -> None:
        self.why_closed = self.why_closed or why
        for transport in (self.client, self.upstream):
            if transport is not None:
                transport.close()

    def abort(self) -> None:
        """Drop both sides at once (proxy shutdown)."""
        self.why_closed = self.why_closed or "proxy stopping"
        if self.spliced is not None:
            self.spliced.abort()
            return
        for transport in (self.client, self.upstream):
            if transport is not None:
                transport.abort()

    def wait_closed(self) -> asyncio.Future[None]:
        """A future done once both sides are closed (for LabProxy.stop)."""
        if self.done is None:
            self.done = asyncio.get_running_loop().create_future()
            if self.client_lost and self.upstream_lost:
                self.done.set_result(None)
        return self.done

    # -- bulk ---------------------------------------------------------------------------------------
    def splice(self) -> None:
        """Hand the relay to splice.py's threads, if nothing is in flight in either transport now."""
        client, upstream = self.client, self.upstream
        if client is None or upstream is None or self.client_lost or self.upstream_lost:
            return
        if not splice.can_splice():
            self.splice_ok = False
            return
        if client.is_closing() or upstream.is_closing():
            self.splice_ok = False
            return
        if client.get_write_buffer_size() or upstream.get_write_buffer_size():
            return  # bytes still queued in a transport would be overtaken: try again on the next read
        try:
            fds = [os.dup(t.get_extra_info("socket").fileno()) for t in (client, upstream)]
        except (OSError, AttributeError):
            self.splice_ok = False
            return
        self.splice_ok = False
        # The transports close their descriptors (and leave epoll); the duplicates keep the
        # connections open for the threads. Their connection_lost calls are ignored (see lost()).
        self.spliced = splice.SplicedPair(
            asyncio.get_running_loop(), fds[0], fds[1],
            (not self.client_eof, not self.upstream_eof), self._spliced_done,
        )  # fmt: skip
        client.abort()
        upstream.abort()
        self.spliced.start()

    def _spliced_done(self, up: int, down: int, why: str) -> None:
        self.bytes_client_to_upstream += up
        self.bytes_upstream_to_client += down
        self.stats.bytes_client_to_upstream += up
        self.stats.bytes_upstream_to_client += down
        self.why_closed = self.why_closed or why
        self.client_lost = self.upstream_lost = True
        self.proxy._plain_closed(self)
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


async def serve_plain(
    proxy: LabProxy, conn: ClientProtocol, request: ConnectRequest, user: str | None, address: Address
) -> None:
    """The handler of a connection whose first head routes to `address` with no fault involved.

    The tunnel is announced by `PlainTunnel.connection_made`; this task answers a failed connect
    (503, or 504 on the connect timeout, as Squid's ERR_CONNECT_FAIL) and drops an upstream whose
    client left meanwhile.
    """
    tunnel = PlainTunnel(proxy, conn, request, user)
    loop = asyncio.get_running_loop()
    host, port = address
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    timeouts = proxy._connect_timeouts
    try:
        expiry = timeouts.arm(task)  # Timeouts.within, inline: one coroutine frame less per setup
        failure: OSError | None = None
        try:
            await loop.create_connection(lambda: tunnel, host, port)
        except asyncio.CancelledError:
            if not timeouts.expired(expiry, cancelling):
                raise
            timeout = proxy.config.connect_timeout_s
            failure = TimeoutError(errno_mod.ETIMEDOUT, f"Connection timed out after {timeout:g} s")
        except OSError as exc:
            failure = exc
        finally:
            timeouts.clear(expiry)
        if conn.detached:
            return  # announced by connection_made; a tunnel that fails after that closes itself
        if failure is None:
            tunnel.abort()  # connection_made found the client gone
            return
        code = failure.errno or 0
        message = failure.strerror if isinstance(failure, TimeoutError) else os.strerror(code) if code else str(failure)
        await _refuse_connect(proxy, conn, request, address, code, message or "", timed_out=isinstance(failure, TimeoutError))
    except Exception:
        proxy._handler_failed(conn)
        tunnel.abort()
    finally:
        if not conn.detached:  # refused or failed: the connection ends here, as _serve's would
            proxy._conn_done(conn)


async def _refuse_connect(
    proxy: LabProxy, conn: ClientProtocol, request: ConnectRequest, address: Address, code: int, message: str,
    *, timed_out: bool = False,
) -> None:  # fmt: skip
    ctx = proxy._new_ctx(conn, request.host, request.port)
    ctx.request = request
    host, port = address
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    refusal = squid_connect_fail(
        ctx.authority, shown, errno=code, message=message, timeout=timed_out, server="proxy-lab"
    )
    await proxy._refuse(conn, ctx, refusal)
