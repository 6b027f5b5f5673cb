"""Where a tunnel goes: resolve its target, refuse a forwarding loop, connect to each address in turn.

`Upstream` does this for one proxy, for both of its paths:

- `resolve` asks the Resolver (`proxy_lab.resolver`); no address is Squid's ERR_DNS_FAIL (503).
  An IP literal written as getaddrinfo would give it back is its own answer, without a thread hop.
- `check_loop` refuses (403) a target that resolves to the proxy's own listening address.
- `connect` and `open_socket` share one connect loop (`_connect_any`): each address in turn, each
  bounded by the connect timeout (as OkHttp and old Squid do); `connect` connects a
  tunnel's protocol to the first that answers, `open_socket` returns a bare non-blocking socket
  (for a fault's `open_upstream` chain). When none answers, the last address's `ConnectFailure`
  becomes Squid's ERR_CONNECT_FAIL answer (503 with the errno, 504 after the timeout).
- Chained (`ProxyConfig.upstream`, chain.py): `opener` is the chained open instead, the base of
  the faults' open_upstream chain: a CONNECT to the upstream proxy, which resolves and connects,
  so no target name is resolved here; its refusal (chain.py's `Refused`) is raised on as `Refuse`.
  `address_now` then answers nothing, so the plain path never connects a chained target itself.
- `address_now` resolves without waiting where that is possible (an IP literal with the system
  resolver, a table lookup with a MapResolver): what the plain path needs, which never waits for a
  resolver. Its connect failures become the same `ConnectFailure` and the same answer.
"""

from __future__ import annotations

import asyncio
import errno as errno_mod
import functools
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from proxy_lab.proxy.chain import Refused, UpstreamProxy, open_via_upstream
from proxy_lab.proxy.deadlines import Timeouts
from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, OpenNext, Refuse, ResolveNext
from proxy_lab.proxy.responses import lab_error, squid_connect_fail, squid_dns_fail
from proxy_lab.resolver import Address, MapResolver, ResolveError, Resolver, SystemResolver, is_ip

MAX_ADDRESSES = 16  # upstream addresses tried per request


@dataclass(frozen=True)
class ConnectFailure:
    """The last upstream address tried did not answer: the errno and message the system gave."""

    address: Address
    errno: int
    message: str
    timed_out: bool = False

    @classmethod
    def of(cls, address: Address, exc: OSError) -> ConnectFailure:
        """The system's message for the errno, as the plain path words it too (asyncio's own
        `strerror`, "Connect call failed (...)", says less and differs between event loops)."""
        code = exc.errno or 0
        return cls(address, code, os.strerror(code) if code > 0 else (exc.strerror or str(exc)))

    @classmethod
    def timeout(cls, address: Address, timeout_s: float) -> ConnectFailure:
        return cls(address, errno_mod.ETIMEDOUT, f"Connection timed out after {timeout_s:g} s", timed_out=True)

    @property
    def shown(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def refusal(self, authority: str) -> Refusal:
        """Squid's ERR_CONNECT_FAIL for a CONNECT to `authority`: 503 with the errno, 504 after the timeout."""
        return squid_connect_fail(
            authority, self.shown, errno=self.errno, message=self.message, timeout=self.timed_out, server="proxy-lab"
        )


_NO_ADDRESS = ConnectFailure(("", 0), 0, "no address")


class Upstream:
    """Resolving and connecting for one proxy (see the module docstring)."""

    def __init__(
        self,
        resolver: Resolver,
        connect_timeout_s: float,
        *,
        via: UpstreamProxy | None = None,
        pass_credentials: bool = False,
    ) -> None:
        self.resolver = resolver
        self.timeouts = Timeouts(connect_timeout_s)  # one timer handle for every connect's deadline
        self.via = via  # chained: every tunnel is opened through this proxy
        # Chained, with no lab authentication: the client's own Proxy-Authorization goes on upstream.
        self.pass_credentials = pass_credentials
        # Exactly these classes: a subclass may resolve differently, and is asked every time.
        # Chained, neither: the lab never resolves a target name.
        self._system = via is None and type(resolver) is SystemResolver
        self._table = resolver if via is None and type(resolver) is MapResolver else None
        self._own: Address | None = None
        self._own_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    @property
    def connect_timeout_s(self) -> float:
        return self.timeouts.timeout_s

    @property
    def answers_at_once(self) -> bool:
        """Whether `address_now` can answer some targets, or (chained) the chained open ends on a
        socket the plain path may relay: either way the plain path has work."""
        return self._system or self._table is not None or self.via is not None

    @property
    def chained(self) -> bool:
        """Whether tunnels are opened through an upstream proxy (then always through `opener`)."""
        return self.via is not None

    def listening_on(self, address: Address) -> None:
        """The proxy's own listening address, which no tunnel may lead back to."""
        self._own = address
        try:
            self._own_ip = ipaddress.ip_address(address[0])
        except ValueError:
            self._own_ip = None

    def close(self) -> None:
        self.timeouts.close()

    # -- resolving ----------------------------------------------------------------------------------
    def address_now(self, host: str, port: int) -> Address | None:
        """The address for (host, port) when it is known without waiting, else None."""
        if self._system:
            return (host, port) if _is_canonical_ip(host) else None
        if self._table is None:
            return None
        try:
            address = self._table.lookup(host, port)
        except ResolveError:
            return None
        return address if is_ip(address[0]) else None

    async def resolve(self, ctx: Ctx, host: str, port: int) -> list[Address]:
        """The resolver's addresses for (host, port); Refuse (503 ERR_DNS_FAIL) when there are none."""
        if self._system and _is_canonical_ip(host):
            return [(host, port)]  # what getaddrinfo answers for an IP literal
        try:
            addresses = await self.resolver.resolve(host, port)
        except ResolveError as exc:
            raise Refuse(
                squid_dns_fail(ctx.authority, host, exc.reason, why=f"DNS: {exc}", server="proxy-lab")
            ) from exc
        if not addresses:
            raise Refuse(squid_dns_fail(ctx.authority, host, "no addresses", server="proxy-lab"))
        return addresses

    def check_loop(self, ctx: Ctx, addresses: list[Address]) -> None:
        """Refuse (403) when one of `addresses` is the proxy's own listening address."""
        for address in addresses:
            if self.is_self(address):
                why = f"loop: {ctx.authority} resolves to {address[0]}:{address[1]}, the proxy's own listening address"
                raise Refuse(lab_error(403, f"Request refused: forwarding loop. {why}", why=why))

    def is_self(self, address: Address) -> bool:
        own, own_ip = self._own, self._own_ip
        if own is None or own_ip is None or address[1] != own[1]:
            return False
        try:
            ip = ipaddress.ip_address(address[0])
        except ValueError:
            return False
        return ip == own_ip or (own_ip.is_unspecified and (ip.is_loopback or ip.is_unspecified))

    # -- connecting ---------------------------------------------------------------------------------
    async def connect(self, ctx: Ctx, addresses: list[Address], protocol: asyncio.Protocol) -> None:
        """Connect `protocol` to the first of `addresses` that answers; Refuse when none does."""
        loop = asyncio.get_running_loop()

        async def connect_one(address: Address) -> None:
            await loop.create_connection(lambda: protocol, *address)

        await self._connect_any(ctx, addresses, connect_one)

    async def open_socket(self, ctx: Ctx, addresses: list[Address]) -> socket.socket:
        """A connected non-blocking socket to the first of `addresses` that answers; Refuse when none does."""
        return await self._connect_any(ctx, addresses, _open_socket)

    def opener(self, ctx: Ctx, resolve: ResolveNext) -> OpenNext:
        """The end of a fault's open_upstream chain: `resolve`, refuse a loop, `open_socket`; chained,
        a CONNECT through the upstream proxy instead (`resolve` is then not called)."""
        via = self.via
        if via is not None:
            return functools.partial(self._open_chained, ctx, via)

        async def open_upstream(host: str, port: int) -> socket.socket:
            addresses = await resolve(host, port)
            self.check_loop(ctx, addresses)
            return await self.open_socket(ctx, addresses)

        return open_upstream

    async def _open_chained(self, ctx: Ctx, via: UpstreamProxy, host: str, port: int) -> socket.socket:
        """A socket tunnelled to (host, port) through `via`; Refuse with what the client gets."""
        self.check_loop(ctx, [(via.host, via.port)])
        credentials = ctx.request.get("Proxy-Authorization") if self.pass_credentials and ctx.request else None
        try:
            return await open_via_upstream(
                via, ctx, self.resolver, (host, port), client_credentials=credentials, is_self=self.is_self
            )
        except Refused as exc:
            raise Refuse(exc.refusal) from exc

    async def _connect_any[T](
        self, ctx: Ctx, addresses: list[Address], connect_one: Callable[[Address], Awaitable[T]]
    ) -> T:
        failure = _NO_ADDRESS
        for address in addresses[:MAX_ADDRESSES]:
            try:
                return await self.timeouts.within(connect_one(address))
            except TimeoutError:
                failure = ConnectFailure.timeout(address, self.timeouts.timeout_s)
            except OSError as exc:
                failure = ConnectFailure.of(address, exc)
        raise Refuse(failure.refusal(ctx.authority))


async def _open_socket(address: Address) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:  # refused, or cancelled by the connect timeout
        sock.close()
        raise
    return sock


@functools.lru_cache(maxsize=4096)
def _is_canonical_ip(host: str) -> bool:
    """True when `host` is an IP address written as getaddrinfo would give it back (so resolving it
    would return it unchanged): `127.0.0.1`, `::1`; not `127.1` or `0::1`, which go to the resolver."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, host)) == host
    except (OSError, ValueError):
        return False
