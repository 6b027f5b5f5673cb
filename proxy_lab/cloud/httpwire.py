"""Sans-IO HTTP/1.1 for the cloud's origin server: request framing in, response bytes out.

`RequestReader` is fed bytes and yields complete `Request`s (head parsed by
`proxy_lab.http1.parse_head`, body framed by Content-Length or `Transfer-Encoding: chunked`),
`None` while more bytes are needed, or raises `RemoteProtocolError` carrying the status to answer.
`render_response` turns a `Response` into bytes. No sockets here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.http1 import Headers, parse_head

MAX_START_LINE = 8192  # RFC 9112 §3: "support, at a minimum, request-line lengths of 8000 octets"
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
MAX_CHUNK_LINE = 1024

_METHOD = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 §9.1: method = token
_CONTENT_LENGTH = re.compile(r"^[0-9]{1,15}$")
_CHUNK_SIZE = re.compile(rb"^([0-9A-Fa-f]{1,8})[ \t]*(;.*)?$")

REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


@dataclass(frozen=True)
class Request:
    """One complete request: head fields, the decoded body, and how it was framed."""

    method: str
    target: str
    version: str
    headers: Headers
    body: bytes = b""
    chunked: bool = False

    def __post_init__(self) -> None:
        if not _METHOD.match(self.method):
            raise ValueError(f"method {self.method!r} is not an HTTP token")

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def path(self) -> str:
        """The target's path without the query ('/' for an absolute-form target without one)."""
        if self.target.startswith("/"):
            return self.target.split("?", 1)[0]
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> str:
        if self.target.startswith("/"):
            return self.target.partition("?")[2]
        return urlsplit(self.target).query

    @property
    def host(self) -> str | None:
        """The target host, lowercased without port: from an absolute-form target, else `Host`.

        RFC 9112 §3.2.2: "When an origin server receives a request with an absolute-form of
        request-target, the origin server MUST ignore the received Host header field (if any)
        and instead use the host information of the request-target."
        """
        if not self.target.startswith("/") and "://" in self.target:
            return (urlsplit(self.target).hostname or "").lower() or None
        value = self.header("host")
        if value is None:
            return None
        try:
            hostname = urlsplit("//" + value).hostname
        except ValueError:
            return None
        return hostname.lower() if hostname else None

    @property
    def keep_alive(self) -> bool:
        """RFC 9112 §9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive`."""
        tokens = {t.strip().lower() for v in self._all("connection") for t in v.split(",")}
        if "close" in tokens:
            return False
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return True

    def _all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


@dataclass(frozen=True)
class Response:
    """What a route answers; `render_response` frames it."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Headers = ()
    close: bool = False  # close the connection after this answer

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 999:
            raise ValueError(f"status {self.status} is not a 3-digit HTTP status")
        if self.status in (204, 304) and self.body:
            raise ValueError(f"a {self.status} response has no content")


@dataclass(frozen=True)
class CloseWithoutAnswer:
    """A route's decision to close the connection instead of answering (the `drop_receipts` knob)."""

    reason: str


def text_response(status: int, text: str, *, close: bool = False, headers: Headers = ()) -> Response:
    """A `text/plain` answer; error texts name what was seen and what was expected."""
    return Response(status, (text.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8", headers, close)


def render_response(
    resp: Response, *, head_only: bool = False, close: bool = False, date: str | None = None
) -> bytes:
    """Serialize a response. RFC 9110 §8.6: no Content-Length in a 204; HEAD gets the GET length."""
    lines = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}"]
    lines.append("Server: proxy-lab-cloud")
    if date:
        lines.append(f"Date: {date}")
    if resp.content_type:
        lines.append(f"Content-Type: {resp.content_type}")
    if resp.status != 204 and not 100 <= resp.status < 200:
        lines.append(f"Content-Length: {len(resp.body)}")
    for k, v in resp.headers:
        lines.append(f"{k}: {v}")
    if close or resp.close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


@dataclass
class _Chunked:
    """Incremental state of a chunked body (RFC 9112 §7.1)."""

    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    remaining: int = -1  # bytes left in the current chunk's data; -1: expecting a size line
    need_crlf: bool = False  # the CRLF after a chunk's data
    in_trailer: bool = False


class RequestReader:
    """Feed bytes with `feed`; take requests with `next_request` until it returns None."""

    def __init__(self, *, max_head_bytes: int = MAX_HEAD_BYTES, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self._buf = bytearray()
        self._head: tuple[str, str, str, Headers] | None = None
        self._length: int | None = None
        self._chunked: _Chunked | None = None
        self._expect_continue = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def in_request(self) -> bool:
        """True when part of a request has arrived and not yet been returned."""
        return bool(self._buf) or self._head is not None

    def feed(self, data: bytes) -> None:
        self._buf += data

    def take_expect_continue(self) -> bool:
        """True once per request whose head asked `Expect: 100-continue` and whose body is awaited.

        RFC 9110 §10.1.1: an origin server that receives "100-continue" "ought to either send an
        immediate response with a final status code ... or send an immediate 100 (Continue)".
        """
        found, self._expect_continue = self._expect_continue, False
        return found and self._head is not None

    def next_request(self) -> Request | None:
        if self._head is None:
            if not self._read_head():
                return None
        assert self._head is not None
        if self._chunked is not None:
            body = self._read_chunked(self._chunked)
            if body is None:
                return None
            chunked = True
        else:
            length = self._length or 0
            if len(self._buf) < length:
                return None
            body = bytes(self._buf[:length])
            del self._buf[:length]
            chunked = False
        method, target, version, headers = self._head
        self._head, self._length, self._chunked, self._expect_continue = None, None, None, False
        return Request(method, target, version, headers, body, chunked)

    # -- head -----------------------------------------------------------------------------------
    def _read_head(self) -> bool:
        # RFC 9112 §2.2: "a server that is expecting to receive and parse a request-line SHOULD
        # ignore at least one empty line (CRLF) received prior to the request-line".
        while self._buf[:2] == b"\r\n" or self._buf[:1] == b"\n":
            del self._buf[: 2 if self._buf[:1] == b"\r" else 1]
        head = parse_head(self._buf, max_start_line=MAX_START_LINE, max_head_bytes=self.max_head_bytes)
        if head is None:
            return False
        parts = head.start_line.split(" ")
        if len(parts) != 3 or not all(parts):
            raise RemoteProtocolError(
                f"malformed request line {head.start_line[:80]!r}; expected 'METHOD target HTTP/1.1'"
            )
        method, target, version = parts
        if not _METHOD.match(method):
            raise RemoteProtocolError(f"method {method[:20]!r} is not a token")
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            status = 505 if version.startswith("HTTP/") else 400
            raise RemoteProtocolError(
                f"version {version[:20]!r} is not HTTP/1.1 or HTTP/1.0", error_status_hint=status
            )
        if not (
            target.startswith("/") or target.lower().startswith(("http://", "https://")) or target == "*"
        ):
            raise RemoteProtocolError(
                f"request target {target[:80]!r} is neither origin-form nor absolute-form"
            )
        hosts = [v for k, v in head.headers if k.lower() == "host"]
        # RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
        # HTTP/1.1 request message that lacks a Host header field and to any request message
        # that contains more than one Host header field line".
        if len(hosts) > 1 or (version == "HTTP/1.1" and not hosts):
            raise RemoteProtocolError(f"request has {len(hosts)} Host header fields; expected exactly one")
        self._frame_body(method, version, head.headers)
        expect = [v.strip().lower() for k, v in head.headers if k.lower() == "expect"]
        self._expect_continue = (
            version == "HTTP/1.1"
            and "100-continue" in expect
            and (self._chunked is not None or bool(self._length))
        )
        del self._buf[: head.size]
        self._head = (method, target, version, head.headers)
        return True

    def _frame_body(self, method: str, version: str, headers: Headers) -> None:
        te = [v for k, v in headers if k.lower() == "transfer-encoding"]
        cl = [v.strip() for k, v in headers if k.lower() == "content-length" for v in v.split(",")]
        if te:
            codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
            if cl:
                # RFC 9112 §6.1: a message with both "ought to be handled as an error"; refusing it
                # closes the request-smuggling door (Squid PR #753 does the same).
                raise RemoteProtocolError("request has both Transfer-Encoding and Content-Length")
            if version == "HTTP/1.0":
                raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if codings != ["chunked"]:
                raise RemoteProtocolError(
                    f"transfer coding {', '.join(codings)!r} is not supported; only 'chunked'",
                    error_status_hint=501,
                )
            self._chunked = _Chunked()
            return
        if cl:
            if len(set(cl)) != 1 or not _CONTENT_LENGTH.match(cl[0]):
                raise RemoteProtocolError(f"invalid Content-Length {', '.join(cl)[:60]!r}")
            length = int(cl[0])
            if length > self.max_body_bytes:
                raise RemoteProtocolError(
                    f"request body of {length} bytes is larger than the {self.max_body_bytes} accepted",
                    error_status_hint=413,
                )
            self._length = length
        else:
            self._length = 0

    # -- chunked body ---------------------------------------------------------------------------
    def _line(self) -> bytes | None:
        nl = self._buf.find(b"\n")
        if nl < 0:
            if len(self._buf) > MAX_CHUNK_LINE:
                raise RemoteProtocolError(f"chunk line longer than {MAX_CHUNK_LINE} bytes")
            return None
        if nl > MAX_CHUNK_LINE:
            raise RemoteProtocolError(f"chunk line longer than {MAX_CHUNK_LINE} bytes")
        line = bytes(self._buf[:nl]).rstrip(b"\r")
        del self._buf[: nl + 1]
        return line

    def _read_chunked(self, st: _Chunked) -> bytes | None:
        # RFC 9112 §7.1: chunked-body = *chunk last-chunk trailer-section CRLF
        while True:
            if st.in_trailer:
                line = self._line()
                if line is None:
                    return None
                if not line:
                    return b"".join(st.parts)
                continue  # trailer fields are read and discarded (RFC 9112 §7.1.2 allows it)
            if st.need_crlf:
                if len(self._buf) < 1 or (self._buf[:1] == b"\r" and len(self._buf) < 2):
                    return None
                if self._buf[:2] == b"\r\n":
                    del self._buf[:2]
                elif self._buf[:1] == b"\n":
                    del self._buf[:1]
                else:
                    raise RemoteProtocolError("chunk data is not followed by CRLF")
                st.need_crlf = False
                st.remaining = -1
            if st.remaining < 0:
                line = self._line()
                if line is None:
                    return None
                m = _CHUNK_SIZE.match(line)
                if not m:
                    raise RemoteProtocolError(f"malformed chunk size line {line[:40]!r}")
                size = int(m.group(1), 16)
                if size == 0:
                    st.in_trailer = True
                    continue
                if st.size + size > self.max_body_bytes:
                    raise RemoteProtocolError(
                        f"chunked request body larger than the {self.max_body_bytes} bytes accepted",
                        error_status_hint=413,
                    )
                st.size += size
                st.remaining = size
            if st.remaining > 0:
                if not self._buf:
                    return None
                take = min(st.remaining, len(self._buf))
                st.parts.append(bytes(self._buf[:take]))
                del self._buf[:take]
                st.remaining -= take
                if st.remaining:
                    return None
            st.need_crlf = True
