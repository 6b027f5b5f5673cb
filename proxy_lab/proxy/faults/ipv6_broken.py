"""ipv6_broken: the proxy tries the target's IPv6 address first and it never answers (no Happy Eyeballs, RFC 8305).

Emulation, on loopback only: the "AAAA address" is a listener on [::1] whose accept queue is full
(listen backlog 0 and one connection that is never accepted). Linux then drops every further SYN
to it (with the default `tcp_abort_on_overflow = 0`), so the proxy's connect hangs exactly as one
to an IPv6 address without a route: a real SYN leaves, nothing comes back. After
`connect_timeout_ms` the proxy either falls back to the IPv4 address the resolver gives (a slow
setup, as OkHttp without Happy Eyeballs; the device reports `degraded` past its `slow_setup_s`) or
gives up with Squid's 504 `ERR_CONNECT_FAIL` (the device: `unreachable`, or `timeout` when its
read timeout is shorter). One black hole serves the whole process; 127.0.0.1 stands in where
::1 is unavailable. A connect that fails fast or, wrongly, succeeds still waits the full timeout.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import socket
from dataclasses import dataclass, field

from proxy_lab.proxy.faults.base import Ctx, Fault, OpenNext, Refuse, doc
from proxy_lab.proxy.responses import squid_connect_fail

log = logging.getLogger("proxy_lab.proxy")


class BlackHole:
    """A loopback address:port that never completes a TCP handshake (its accept queue is full)."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        for host in ("::1", "127.0.0.1"):
            try:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                listener = socket.socket(family, socket.SOCK_STREAM)
                self.sockets.append(listener)
                listener.bind((host, 0))
                listener.listen(0)  # the queue holds one connection that nobody accepts
                self.family, self.address = family, (host, int(listener.getsockname()[1]))
                for _ in range(2):
                    filler = socket.socket(family, socket.SOCK_STREAM)
                    self.sockets.append(filler)
                    filler.setblocking(False)
                    filler.connect_ex(self.address)
                return
            except OSError:
                self.close()
        raise OSError("no loopback address to make a black hole on")

    @property
    def shown(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets.clear()


@functools.cache
def black_hole() -> BlackHole:
    return BlackHole()


@dataclass(kw_only=True)
class Ipv6Broken(Fault, name="ipv6_broken"):
    """Tries every upstream first on a black-holed IPv6 address, then falls back to IPv4 or answers 504."""

    connect_timeout_ms: int = field(
        default=4000,
        metadata=doc("how long the IPv6 attempt hangs (Squid connect_timeout; OkHttp 10000)", "ms"),
    )
    fallback: bool = field(
        default=True, metadata=doc("then try IPv4 (slow pass); false: 504 ERR_CONNECT_FAIL as Squid")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.connect_timeout_ms <= 600_000:
            raise ValueError(f"connect_timeout_ms: {self.connect_timeout_ms} outside 1-600000")

    async def open_upstream(self, ctx: Ctx, host: str, port: int, next: OpenNext) -> socket.socket:
        hole = black_hole()
        loop = asyncio.get_running_loop()
        timeout_s = self.connect_timeout_ms / 1000
        deadline = loop.time() + timeout_s
        sock = socket.socket(hole.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, hole.address), timeout_s)
            log.warning("ipv6_broken: the black hole %s answered; waiting out the timeout anyway", hole.shown)
        except (TimeoutError, OSError):
            pass
        finally:
            sock.close()
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        ctx.notes["ipv6_broken"] = (
            f"{hole.shown} (standing in for {host}'s IPv6 address) did not answer within "
            f"{self.connect_timeout_ms} ms; " + ("fell back to IPv4" if self.fallback else "gave up (504)")
        )
        if self.fallback:
            return await next(host, port)
        raise Refuse(
            squid_connect_fail(
                ctx.authority,
                hole.shown,
                errno=errno.ETIMEDOUT,
                message=os.strerror(errno.ETIMEDOUT),
                timeout=True,
                server="proxy-lab",
            )
        )
