"""Chaining: the lab proxy's tunnels opened through an upstream HTTP proxy (the corporate proxy).

Owns `UpstreamProxy` (the upstream as a value, parsed from `http://[user:pass@]host:port`; its
password never appears in repr, logs or records), the sans-IO reader of the upstream's answer to
CONNECT (`AnswerReader`) and `open_via_upstream`, which `proxy_lab.proxy.upstream.Upstream.opener`
calls where it would otherwise resolve and connect (the base of the `open_upstream` chain), so
faults still apply on the lab side:

    meter --CONNECT host:port--> lab proxy (faults, record) --CONNECT host:port--> upstream --> host

With an upstream the lab proxy never resolves target names: the upstream does (RFC 9110 §9.3.6,
"the recipient proxy can establish a tunnel [...] by forwarding the CONNECT request to the next
inbound proxy"). A 2xx answer gives the connected socket; any other answer is raised as `Refused`
(which upstream.py raises on as the faults' `Refuse`) with a Refusal carrying the upstream's status
line, header fields and body as they came (the client sees the corporate proxy's own answer), and
the upstream named in `why`.

Credentials (RFC 7617): sent preemptively as `Proxy-Authorization: Basic ...` when the URL has
them, or after a 407 that offers Basic when `preemptive` is off. Assumption (the guide does not
say): with no credentials in the URL and no lab authentication, the client's own
`Proxy-Authorization` is passed on, so a meter configured for the corporate proxy authenticates
through the lab.
"""

from __future__ import annotations

import asyncio
import base64
import errno as errno_mod
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from proxy_lab.errors import ConfigError, RemoteProtocolError
from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.responses import lab_error, squid_connect_fail
from proxy_lab.proxyurl import parse_proxy_url
from proxy_lab.resolver import Address, ResolveError, Resolver
from proxy_lab.response import BodyReader, Response, body_framing, parse_response

if TYPE_CHECKING:  # annotations only: importing the fault framework here would close an import loop
    from proxy_lab.proxy.faults.base import Ctx

MAX_BODY = 256 * 1024  # bytes of an upstream refusal's body passed back; larger -> 502
READ_SIZE = 65536
NOTE = "upstream"  # Ctx.notes key: the UpstreamAnswer of the last CONNECT sent upstream


class Refused(Exception):
    """The client gets `refusal` instead of a tunnel; upstream.py raises it on as the faults' `Refuse`."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.why or refusal.describe())
        self.refusal = refusal


@dataclass(frozen=True)
class UpstreamProxy:
    """The upstream HTTP proxy: where it listens and, optionally, the Basic credentials it wants."""

    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    preemptive: bool = True  # send the credentials with the first CONNECT (False: only after a 407)
    timeout_s: float = 10.0  # connect, and the wait for the whole answer

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("upstream proxy: empty host")
        if not 0 < self.port < 65536:
            raise ConfigError(f"upstream proxy: port {self.port} outside 1-65535")
        if self.user is not None and ":" in self.user:
            raise ConfigError("upstream proxy: the user name must not contain ':' (RFC 7617)")
        if self.timeout_s <= 0:
            raise ConfigError(f"upstream proxy: timeout_s {self.timeout_s!r}: expected seconds > 0")

    @classmethod
    def parse(cls, url: str) -> UpstreamProxy:
        """`http://[user:pass@]host:port` (proxy_lab.proxyurl, the one parser); ConfigError naming the
        URL without its password otherwise."""
        host, port, user, password = parse_proxy_url(url, what="upstream proxy URL")
        return cls(host, port, user, "" if user is not None and password is None else password)

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def name(self) -> str:
        """How logs and records name it: `upstream proxy 10.0.0.5:8080` (never the password)."""
        return f"upstream proxy {self.authority}"

    def basic(self) -> str | None:
        """The `Proxy-Authorization` value for the configured credentials, or None."""
        if self.user is None:
            return None
        token = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode("ascii")
        return f"Basic {token}"

    def __str__(self) -> str:
        return f"http://{self.user + ':***@' if self.user is not None else ''}{self.authority}"


@dataclass(frozen=True)
class UpstreamAnswer:
    """The upstream's complete answer to one CONNECT: status line, header fields and (refusals) body."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    version: str = "HTTP/1.1"
    extra: bytes = b""  # bytes after a 2xx head: already the tunnel's (RFC 9112 §6.3 (2))
    keep_alive: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def refusal(self, upstream: UpstreamProxy, authority: str) -> Refusal:
        """The answer passed back to the client as it came, with the upstream named in `why` (a 502
        when it cannot be passed on: a status outside 100-599 or control characters in a field)."""
        why = f"{upstream.name} refused CONNECT {authority}: {self.status} {self.reason}".rstrip()
        try:
            return Refusal(
                self.status, self.reason, self.headers, self.body, version=self.version, add_framing=False, why=why
            )
        except ValueError as exc:
            return lab_error(502, f"{why}; its answer cannot be passed on: {exc}", why=f"{why} ({exc})")


class AnswerReader:
    """Sans-IO: feed the bytes the upstream sent; `answer` is set once its answer is complete.

    A refusal's body is kept as it came on the wire (chunked stays chunked), since it is passed on
    with the upstream's own framing fields; `BodyReader` only finds where it ends.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.head: Response | None = None
        self.body: BodyReader | None = None
        self.raw = bytearray()  # the body's bytes as received (and anything after them)
        self.answer: UpstreamAnswer | None = None

    def feed(self, data: bytes) -> UpstreamAnswer | None:
        """Raises RemoteProtocolError when the bytes are not an HTTP/1.x answer."""
        if self.answer is not None:
            return self.answer
        if self.head is None:
            self.buf += data
            self.head = parse_response(self.buf)
            if self.head is None:
                return None
            rest, self.buf = bytes(self.buf[self.head.size :]), bytearray()
            if 200 <= self.head.status < 300:
                return self._done(b"", extra=rest)
            self.body = BodyReader(body_framing(self.head, method="CONNECT"), limit=MAX_BODY)
            data = rest
        assert self.body is not None
        self.raw += data
        self.body.feed(data)
        return self._done(self._raw_body()) if self.body.done else None

    def eof(self) -> UpstreamAnswer:
        """The upstream closed: the answer so far, or RemoteProtocolError when there is none."""
        if self.answer is not None:
            return self.answer
        if self.head is None or self.body is None:
            raise RemoteProtocolError("closed the connection before answering CONNECT", error_status_hint=502)
        self.body.eof()
        return self._done(self._raw_body())

    def _raw_body(self) -> bytes:
        assert self.body is not None
        return bytes(self.raw[: len(self.raw) - len(self.body.rest)])

    def _done(self, body: bytes, extra: bytes = b"") -> UpstreamAnswer:
        head = self.head
        assert head is not None
        self.answer = UpstreamAnswer(
            head.status, head.reason, head.headers, body, head.version, extra, keep_alive=head.keeps_alive
        )
        return self.answer


def connect_request(authority: str, credentials: str | None) -> bytes:
    """`CONNECT host:port HTTP/1.1` with Host (RFC 9110 §9.3.6 / RFC 9112 §3.2.3) and any credentials."""
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if credentials:
        lines.append(f"Proxy-Authorization: {credentials}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _offers_basic(answer: UpstreamAnswer) -> bool:
    return any(
        v.strip().split(" ")[0].lower() == "basic" for k, v in answer.headers if k.lower() == "proxy-authenticate"
    )


async def open_via_upstream(
    upstream: UpstreamProxy,
    ctx: Ctx,
    resolver: Resolver,
    target: Address | None = None,
    *,
    client_credentials: str | None = None,
    is_self: Callable[[Address], bool] | None = None,
) -> socket.socket:
    """A socket tunnelled to `target` (default: ctx's) through `upstream`, or Refused with what the
    client gets. `resolver` finds the upstream proxy's own address, never the target's; an address
    of it for which `is_self` holds (the lab proxy's own listening address) is refused as a loop.

    The last answer received is left in `ctx.notes["upstream"]` (an UpstreamAnswer) for the record.
    Bytes the upstream sent after a 2xx head are not expected (a 2xx has no body) and are refused
    as a protocol error rather than lost.
    """
    host, port = target or (ctx.host, ctx.port)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    own = upstream.basic()
    credentials = own if upstream.preemptive else None
    if own is None:
        credentials = client_credentials
    sock = await _connect(upstream, ctx, resolver, is_self)
    try:
        answer = await _exchange(upstream, authority, sock, credentials)
        if answer.status == 407 and own is not None and credentials is None and _offers_basic(answer):
            # RFC 9110 §11.7.1: the client MAY repeat the request with Proxy-Authorization.
            if not answer.keep_alive:
                sock.close()
                sock = await _connect(upstream, ctx, resolver, is_self)
            answer = await _exchange(upstream, authority, sock, own)
    except BaseException:
        sock.close()
        raise
    ctx.notes[NOTE] = answer
    if answer.ok and not answer.extra:
        return sock
    sock.close()
    if answer.ok:
        why = f"{upstream.name} sent {len(answer.extra)} bytes after its {answer.status} to CONNECT {authority}"
        raise Refused(lab_error(502, why, why=why))
    raise Refused(answer.refusal(upstream, authority))


async def _connect(
    upstream: UpstreamProxy, ctx: Ctx, resolver: Resolver, is_self: Callable[[Address], bool] | None
) -> socket.socket:
    loop = asyncio.get_running_loop()
    try:
        addresses: list[Address] = await resolver.resolve(upstream.host, upstream.port)
    except ResolveError as exc:
        why = f"{upstream.name}: its name does not resolve ({exc})"
        raise Refused(lab_error(502, why, why=why)) from exc
    for address in addresses:
        if is_self is not None and is_self(address):
            why = (
                f"loop: {upstream.name} resolves to {address[0]}:{address[1]}, "
                "the proxy's own listening address"
            )
            raise Refused(lab_error(403, f"Request refused: forwarding loop. {why}", why=why))
    failure = squid_connect_fail(
        ctx.authority, upstream.authority, errno=0, message="no address", timeout=False, server="proxy-lab"
    )
    for host, port in addresses[:16]:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), upstream.timeout_s)
        except TimeoutError:
            sock.close()
            failure = _unreachable(upstream, ctx, errno_mod.ETIMEDOUT, f"Connection timed out after {upstream.timeout_s:g} s", True)
        except OSError as exc:
            sock.close()
            failure = _unreachable(upstream, ctx, exc.errno or 0, exc.strerror or str(exc), False)
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    raise Refused(failure)


def _unreachable(upstream: UpstreamProxy, ctx: Ctx, code: int, message: str, timeout: bool) -> Refusal:
    refusal = squid_connect_fail(
        ctx.authority, upstream.authority, errno=code, message=message, timeout=timeout, server="proxy-lab"
    )
    return Refusal(
        refusal.status, refusal.reason, refusal.headers, refusal.body,
        why=f"{upstream.name} unreachable: {message}",
    )  # fmt: skip


async def _exchange(upstream: UpstreamProxy, authority: str, sock: socket.socket, credentials: str | None) -> UpstreamAnswer:
    """Send one CONNECT to the upstream and read its whole answer (bounded by upstream.timeout_s)."""
    loop = asyncio.get_running_loop()
    reader = AnswerReader()

    async def run() -> UpstreamAnswer:
        await loop.sock_sendall(sock, connect_request(authority, credentials))
        while True:
            data = await loop.sock_recv(sock, READ_SIZE)
            answer = reader.feed(data) if data else reader.eof()
            if answer is not None:
                return answer

    try:
        return await asyncio.wait_for(run(), upstream.timeout_s)
    except TimeoutError as exc:
        why = f"{upstream.name} did not answer CONNECT {authority} within {upstream.timeout_s:g} s"
        raise Refused(lab_error(504, why, why=why)) from exc
    except RemoteProtocolError as exc:
        why = f"{upstream.name} answered CONNECT {authority} with an answer that cannot be passed on: {exc}"
        raise Refused(lab_error(502, why, why=why)) from exc
    except OSError as exc:
        why = f"{upstream.name} failed during CONNECT {authority}: {exc.strerror or exc!r}"
        raise Refused(lab_error(502, why, why=why)) from exc
