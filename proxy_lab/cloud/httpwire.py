"""HTTP/1.1 for the cloud's origin server on h11: requests read from one connection, answers written to it.

The cloud is a well-behaved origin server, so h11 (https://h11.readthedocs.io) does the framing:
request line and fields, Content-Length and chunked bodies (RFC 9112 §6, §7.1), keep-alive and
`Connection: close`, `Expect: 100-continue`. `HttpWire` is sans-IO: `feed` bytes in, take complete
`Request`s from `next_request` (one at a time: the next is read once the last is answered), and
`respond` turns a `Response` into the bytes to write. It raises `RemoteProtocolError` carrying the
status to answer; `refuse` frames that answer.

What h11 leaves to the server, and this module adds, is policy: limits on the head and the body
(431, 413), a request with both Transfer-Encoding and Content-Length refused (RFC 9112 §6.3 lets a
server do so; squid-cache/squid PR #753 does), versions other than 1.0 and 1.1 (505), and
request targets that are neither origin-form nor absolute-form (400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.http1 import Headers

MAX_TARGET = 8192  # RFC 9112 §3: "support, at a minimum, request-line lengths of 8000 octets"
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
# h11 is fed this much at a time, so what it buffers stays small and the head is measured exactly
# (a head over the limit is refused whether it arrived in one piece or many).
_FEED_BYTES = 16 * 1024

_METHOD = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 §9.1: method = token

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
        """h11's rule: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 never does (h11 does
        not implement HTTP/1.0 keep-alive, which RFC 9112 §9.3 leaves optional)."""
        tokens = {
            t.strip().lower() for k, v in self.headers if k.lower() == "connection" for t in v.split(",")
        }
        return self.version == "HTTP/1.1" and "close" not in tokens


@dataclass(frozen=True)
class Response:
    """What a route answers; `HttpWire.respond` frames it."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Headers = ()
    close: bool = False  # close the connection after this answer

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 999:
            raise ValueError(f"status {self.status} is not a final 3-digit HTTP status")
        if self.status in (204, 304) and self.body:
            raise ValueError(f"a {self.status} response has no content")


@dataclass(frozen=True)
class CloseWithoutAnswer:
    """A route's decision to close the connection instead of answering (the `drop_receipts` knob)."""

    reason: str


def text_response(status: int, text: str, *, close: bool = False, headers: Headers = ()) -> Response:
    """A `text/plain` answer; error texts name what was seen and what was expected."""
    return Response(status, (text.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8", headers, close)


def _remote(exc: h11.RemoteProtocolError) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed request: {exc}", error_status_hint=exc.error_status_hint)


class HttpWire:
    """The server side of one HTTP/1.1 connection, on an `h11.Connection`."""

    def __init__(self, *, max_head_bytes: int = MAX_HEAD_BYTES, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        # h11's own limit on an incomplete event (a chunk-size line, a trailer) sits above ours on the
        # head, so a head too large is refused here, with the message and status of the cloud.
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes + _FEED_BYTES)
        self._pending = bytearray()  # received, not yet given to h11
        self._head_bytes = 0  # bytes h11 holds of the head being read (while the client is IDLE)
        self._head: h11.Request | None = None
        self._body = bytearray()
        self._method = b""  # of the request being answered: HEAD gets no body

    @property
    def in_request(self) -> bool:
        """True when part of a request has arrived and not yet been returned."""
        state = self._h11.their_state
        return state is h11.SEND_BODY or (state is h11.IDLE and bool(self._head_bytes or self._pending))

    def feed(self, data: bytes) -> None:
        self._pending += data

    def take_expect_continue(self) -> bytes:
        """`100 Continue` to write now, once per request that asked for it while its body is awaited.

        RFC 9110 §10.1.1: an origin server that receives "100-continue" "ought to either send an
        immediate response with a final status code ... or send an immediate 100 (Continue)".
        """
        if not self._h11.they_are_waiting_for_100_continue or self._h11.their_state is not h11.SEND_BODY:
            return b""
        return (
            self._h11.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")) or b""
        )

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes arrive (or the last is answered)."""
        while True:
            before = self._h11.their_state
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise _remote(exc) from exc
            if event is h11.NEED_DATA:
                if before is h11.IDLE and self._head_bytes > self.max_head_bytes:
                    raise self._head_too_large()
                if not self._pending:
                    return None
                piece = bytes(self._pending[:_FEED_BYTES])
                del self._pending[:_FEED_BYTES]
                if self._h11.their_state is h11.IDLE:
                    self._head_bytes += len(piece)
                self._h11.receive_data(piece)
                continue
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.max_body_bytes:
                    raise RemoteProtocolError(
                        f"request body larger than the {self.max_body_bytes} bytes accepted",
                        error_status_hint=413,
                    )
            elif isinstance(event, h11.EndOfMessage):
                return self._finish()

    def respond(self, resp: Response, *, date: str | None = None) -> bytes:
        """The bytes of `resp` answering the request last returned (a HEAD gets the head only).

        RFC 9110 §8.6: no Content-Length in a 204; a HEAD answer carries the GET's length.
        """
        headers: list[tuple[str, str]] = [("Server", "proxy-lab-cloud")]
        if date:
            headers.append(("Date", date))
        if resp.content_type:
            headers.append(("Content-Type", resp.content_type))
        if resp.status != 204:
            headers.append(("Content-Length", str(len(resp.body))))
        headers += resp.headers
        if resp.close:
            headers.append(("Connection", "close"))
        reason = REASONS.get(resp.status, "Unknown").encode()
        out = self._send(h11.Response(status_code=resp.status, headers=headers, reason=reason))
        if resp.body and self._method != b"HEAD":
            out += self._send(h11.Data(data=resp.body))
        out += self._send(h11.EndOfMessage())
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._head_bytes = len(self._h11.trailing_data[0])
            self._method = b""
        return out

    def refuse(self, status: int, reason: str, *, date: str | None = None) -> bytes:
        """An error answer that closes the connection, whatever was read so far (b"" when an answer
        has already begun and nothing more can be said)."""
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return b""
        try:
            return self.respond(text_response(status, reason, close=True), date=date)
        except h11.LocalProtocolError:  # pragma: no cover - h11 refuses an answer now: close silently
            return b""

    @property
    def must_close(self) -> bool:
        """True once the last answer ended the connection (`Connection: close`, HTTP/1.0, an error)."""
        return self._h11.our_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

    # -- helpers --------------------------------------------------------------------------------
    def _send(self, event: h11.Event) -> bytes:
        return self._h11.send(event) or b""

    def _head_too_large(self) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"request head larger than the {self.max_head_bytes} bytes accepted", error_status_hint=431
        )

    def _start(self, event: h11.Request) -> None:
        """Check a request head h11 accepted against the cloud's own limits and rules."""
        self._head, self._body, self._method = event, bytearray(), event.method
        consumed = self._head_bytes - len(self._h11.trailing_data[0])
        self._head_bytes = 0
        if consumed > self.max_head_bytes:
            raise self._head_too_large()
        if event.http_version not in (b"1.0", b"1.1"):
            raise RemoteProtocolError(
                f"version HTTP/{event.http_version.decode()} is not HTTP/1.1 or HTTP/1.0",
                error_status_hint=505,
            )
        target = event.target.decode("ascii", "replace")
        if len(target) > MAX_TARGET:
            raise RemoteProtocolError(
                f"request target of {len(target)} bytes is longer than the {MAX_TARGET} accepted",
                error_status_hint=414,
            )
        if target.lower().startswith(("http://", "https://")):
            try:
                urlsplit(target).port  # noqa: B018 - raises ValueError on a bad authority
            except ValueError as exc:
                raise RemoteProtocolError(f"request target {target[:80]!r} is not a URL: {exc}") from exc
        elif not (target.startswith("/") or target == "*"):
            raise RemoteProtocolError(
                f"request target {target[:80]!r} is neither origin-form nor absolute-form"
            )
        names = {name.lower() for name, _ in event.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 §6.3: such a message "ought to be handled as an error"; refusing it closes
            # the request-smuggling door.
            raise RemoteProtocolError("request has both Transfer-Encoding and Content-Length")
        if b"transfer-encoding" in names and event.http_version == b"1.0":
            raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
        for name, value in event.headers:
            if name == b"content-length" and int(value) > self.max_body_bytes:
                raise RemoteProtocolError(
                    f"request body of {int(value)} bytes is larger than the {self.max_body_bytes} accepted",
                    error_status_hint=413,
                )

    def _finish(self) -> Request:
        head, self._head = self._head, None
        assert head is not None
        headers = tuple(
            (raw.decode("latin-1"), value.decode("latin-1")) for raw, value in head.headers.raw_items()
        )
        return Request(
            head.method.decode("ascii"),
            head.target.decode("ascii", "replace"),
            "HTTP/" + head.http_version.decode("ascii"),
            headers,
            bytes(self._body),
            chunked=any(name.lower() == "transfer-encoding" for name, _ in headers),
        )


# The name bench/fuzz.py imports: the wire reads requests with the same feed/next_request calls.
RequestReader = HttpWire
