"""Sans-IO reading of HTTP/1.x responses: the proxy's answer to CONNECT and an origin's answer in the tunnel.

Pure functions over bytes, built on `proxy_lab.http1.parse_head(request=False)`:
- `parse_response(buf)` returns a `Response` head, `None` when more bytes are needed, or raises
  `NotHttpError` (the bytes are not an HTTP response at all: a SOCKS reply, a TLS record) or
  `RemoteProtocolError` (an HTTP response, but a malformed one);
- `body_framing(...)` applies RFC 9112 §6.3 to decide how the body ends;
- `BodyReader` consumes a body (Content-Length, chunked, or read-to-close) fed in pieces.
No sockets and no asyncio here: the transport feeds the bytes it read.

Hand-written on purpose, unlike the cloud's HTTP (which sits on h11): the device must see a broken
proxy's bytes exactly as they came (a SOCKS reply, a 2xx other than 200, framing headers on a 200,
bytes after the head, bare LF line ends) and name each in its outcome, where a strict library would
only raise a generic protocol error or normalise the oddity away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.http1 import HeaderLookup, Headers, parse_head

_STATUS_LINE = re.compile(r"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$")
_HTTP = b"HTTP/"


class NotHttpError(RemoteProtocolError):
    """The peer answered with bytes that cannot begin an HTTP/1.x response; `data` holds them."""

    def __init__(self, msg: str, data: bytes) -> None:
        super().__init__(msg, error_status_hint=502)
        self.data = data


@dataclass(frozen=True)
class Response(HeaderLookup):
    """A response head: `HTTP/1.1 403 Forbidden` and its header fields."""

    version: str  # "HTTP/1.1" or "HTTP/1.0"
    status: int
    reason: str
    headers: Headers
    size: int  # bytes of the head, blank line included

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 999:
            raise ValueError(f"status {self.status} is not three digits")

    @property
    def status_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}".rstrip()


    def connection_tokens(self) -> set[str]:
        return {t.strip().lower() for v in self.get_all("Connection") for t in v.split(",") if t.strip()}

    @property
    def keeps_alive(self) -> bool:
        """RFC 9112 §9.3: `close` ends it; HTTP/1.1 persists by default, HTTP/1.0 only with keep-alive."""
        tokens = self.connection_tokens()
        if "close" in tokens:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in tokens


def describe_bytes(data: bytes) -> str:
    """A guess at what non-HTTP bytes are, for messages (`05ff`: a SOCKS5 'no acceptable methods')."""
    if data[:2] == b"\x05\xff":
        return "a SOCKS5 reply refusing every authentication method offered"
    if data[:1] == b"\x05":
        return "a SOCKS5 reply"
    if data[:1] == b"\x00" and data[1:2] in (b"\x5a", b"\x5b", b"\x5c", b"\x5d"):
        return "a SOCKS4 reply"
    if data[:1] in (b"\x15", b"\x16") and data[1:2] == b"\x03":
        return "a TLS record (the peer expects or speaks TLS, not plain HTTP)"
    if data[:4] == b"SSH-":
        return "an SSH banner"
    return "not an HTTP status line"


def parse_response(buf: bytes | bytearray, *, max_head_bytes: int = 65536) -> Response | None:
    """Parse a response head from the start of `buf`; `None` until the blank line has arrived.

    Raises NotHttpError as soon as the first bytes cannot be the start of `HTTP/` (a SOCKS reply is
    two bytes and then nothing: waiting for a line end would only end in a timeout), and
    RemoteProtocolError for a malformed status line or header section.
    """
    prefix = bytes(buf[: len(_HTTP)])
    if not _HTTP.startswith(prefix):
        raise NotHttpError(describe_bytes(bytes(buf)), bytes(buf[:64]))
    head = parse_head(buf, request=False, max_head_bytes=max_head_bytes)
    if head is None:
        return None
    m = _STATUS_LINE.match(head.start_line)
    if m is None:
        raise NotHttpError(f"malformed status line {head.start_line[:80]!r}", bytes(buf[:64]))
    major, minor, code, reason = m.groups()
    if major != "1":
        # HTTP/2 and later never send a textual status line: whoever did is not speaking HTTP/1.x.
        raise NotHttpError(
            f"status line names HTTP/{major}.{minor}, expected HTTP/1.0 or HTTP/1.1", bytes(buf[:64])
        )
    if int(code) < 100:  # RFC 9110 §15: a status code is a three-digit integer from 100
        raise NotHttpError(f"status code {code} in {head.start_line[:80]!r} is below 100", bytes(buf[:64]))
    return Response(f"HTTP/1.{minor}", int(code), reason or "", head.headers, head.size)


@dataclass(frozen=True)
class BodyFraming:
    kind: Literal["none", "length", "chunked", "close"]
    length: int = 0


def body_framing(response: Response, *, method: str) -> BodyFraming:
    """How the body of `response` to a `method` request ends (RFC 9112 §6.3, in its order)."""
    # §6.3 (1): HEAD, 1xx, 204 and 304 responses end at the head.
    if method == "HEAD" or response.status < 200 or response.status in (204, 304):
        return BodyFraming("none")
    # §6.3 (2): "Any 2xx (Successful) response to a CONNECT request implies that the connection
    # will become a tunnel immediately after the empty line"; RFC 9110 §9.3.6: "A client MUST ignore
    # any Content-Length or Transfer-Encoding header fields received in a successful response to CONNECT."
    if method == "CONNECT" and 200 <= response.status < 300:
        return BodyFraming("none")
    # §6.3 (3): Transfer-Encoding overrides Content-Length; chunked must be the final coding,
    # otherwise the body is read until the connection closes.
    te = [t.strip().lower() for v in response.get_all("Transfer-Encoding") for t in v.split(",") if t.strip()]
    if te:
        return BodyFraming("chunked") if te[-1] == "chunked" else BodyFraming("close")
    # §6.3 (5): an invalid Content-Length (or differing values) is unrecoverable.
    lengths = {t.strip() for v in response.get_all("Content-Length") for t in v.split(",")}
    if lengths:
        # isascii(): str.isdigit() is also true for '²' (0xB2 in a Latin-1 field value), which int() refuses.
        if len(lengths) != 1 or not (value := next(iter(lengths))).isascii() or not value.isdigit():
            raise RemoteProtocolError(f"invalid Content-Length {sorted(lengths)!r}", error_status_hint=502)
        return BodyFraming("length", int(next(iter(lengths))))
    # §6.3 (8): otherwise the body is everything until the server closes the connection.
    return BodyFraming("close")


_CHUNK_SIZE = re.compile(rb"^([0-9A-Fa-f]+)[ \t]*(?:;.*)?$")


@dataclass
class BodyReader:
    """Sans-IO consumer of one message body: `feed()` the bytes read, `eof()` at connection close.

    `done` turns true at the end of the body; `body` holds it (up to `limit` bytes, beyond which a
    RemoteProtocolError is raised); `rest` holds bytes that came after the end of the body.
    """

    framing: BodyFraming
    limit: int = 16 * 1024 * 1024
    body: bytearray = field(default_factory=bytearray)
    rest: bytearray = field(default_factory=bytearray)
    done: bool = False
    _buf: bytearray = field(default_factory=bytearray)
    _state: Literal["size", "data", "data_crlf", "trailers"] = "size"
    _chunk_left: int = 0

    def __post_init__(self) -> None:
        if self.framing.kind == "none" or (self.framing.kind == "length" and self.framing.length == 0):
            self.done = True

    @property
    def received(self) -> int:
        return len(self.body)

    def feed(self, data: bytes) -> None:
        if self.done:
            self.rest += data
            return
        kind = self.framing.kind
        if kind == "length":
            need = self.framing.length - len(self.body)
            self._take(data[:need])
            self.rest += data[need:]
            self.done = len(self.body) >= self.framing.length
        elif kind == "close":
            self._take(data)
        else:
            self._buf += data
            self._run_chunked()

    def eof(self) -> None:
        """The connection closed. Raises RemoteProtocolError when that cut the body short."""
        if self.done:
            return
        if self.framing.kind == "close":
            self.done = True
            return
        if self.framing.kind == "length":
            raise RemoteProtocolError(
                f"connection closed after {len(self.body)} of {self.framing.length} body bytes (Content-Length)"
            )
        raise RemoteProtocolError(f"connection closed inside a chunked body after {len(self.body)} bytes")

    def _take(self, data: bytes) -> None:
        if len(self.body) + len(data) > self.limit:
            raise RemoteProtocolError(f"body larger than {self.limit} bytes", error_status_hint=502)
        self.body += data

    def _line(self) -> bytes | None:
        nl = self._buf.find(b"\n")
        if nl < 0:
            if len(self._buf) > 4096:
                raise RemoteProtocolError("chunk-size or trailer line longer than 4096 bytes")
            return None
        line = bytes(self._buf[:nl]).rstrip(b"\r")
        del self._buf[: nl + 1]
        return line

    def _run_chunked(self) -> None:
        # RFC 9112 §7.1: chunked-body = *chunk last-chunk trailer-section CRLF. Each pass of the
        # loop consumes at least one byte or returns, so it ends within len(self._buf) passes.
        for _ in range(len(self._buf) + 2):
            if self._state == "size":
                line = self._line()
                if line is None:
                    return
                m = _CHUNK_SIZE.match(line)
                if m is None:
                    raise RemoteProtocolError(f"malformed chunk-size line {line[:40]!r}")
                self._chunk_left = int(m.group(1), 16)
                self._state = "data" if self._chunk_left else "trailers"
            elif self._state == "data":
                if not self._buf:
                    return
                piece = bytes(self._buf[: self._chunk_left])
                del self._buf[: len(piece)]
                self._take(piece)
                self._chunk_left -= len(piece)
                if self._chunk_left == 0:
                    self._state = "data_crlf"
            elif self._state == "data_crlf":
                line = self._line()
                if line is None:
                    return
                if line:
                    raise RemoteProtocolError(f"chunk data not followed by CRLF: {line[:40]!r}")
                self._state = "size"
            else:  # trailers: ignored lines until the empty one
                line = self._line()
                if line is None:
                    return
                if not line:
                    self.done = True
                    self.rest += self._buf
                    self._buf.clear()
                    return
        return


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_START = re.compile(rf"^{_TOKEN}\s*=")
_SCHEME = re.compile(rf"^({_TOKEN})(?:\s+(.*))?$", re.S)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a `Proxy-Authenticate` field: `Basic realm="lab"`, `NTLM`, `Negotiate`."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str = ""

    def param(self, name: str) -> str | None:
        for k, v in self.params:
            if k.lower() == name.lower():
                return v
        return None


def _split_commas(value: str) -> list[str]:
    """Split on commas outside quoted-strings (RFC 9110 §5.6.4 quoted-string, with quoted-pair)."""
    items, cur, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            cur.append(ch)
            escaped = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    return [i.strip() for i in items if i.strip()]


def _param(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return name.strip(), value


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Challenges of one or more `Proxy-Authenticate` field values (RFC 9110 §11.6.1).

    `challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`; a comma-separated item that starts
    with `token=` continues the previous challenge's parameters, any other item starts a challenge.
    """
    out: list[tuple[str, list[tuple[str, str]], str]] = []
    for value in values:
        for item in _split_commas(value):
            if _PARAM_START.match(item) and out:
                out[-1][1].append(_param(item))
                continue
            m = _SCHEME.match(item)
            if m is None:
                continue  # not a token: nothing a client could answer
            scheme, rest = m.group(1), (m.group(2) or "").strip()
            params: list[tuple[str, str]] = []
            token68 = ""
            if rest:
                if _PARAM_START.match(rest):
                    params.append(_param(rest))
                else:
                    token68 = rest
            out.append((scheme, params, token68))
    return [Challenge(s, tuple(p), t) for s, p, t in out]
