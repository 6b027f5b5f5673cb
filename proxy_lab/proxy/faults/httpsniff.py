"""Sans-IO sniffing of plain HTTP/1.x inside a tunnel, for the faults that read it (block_page, tamper).

Owns `HttpScanner`: fed one direction's bytes, it returns them cut into items: `MessageHead` (a
parsed request or response head with its raw bytes and how its body ends), `Body` (body bytes with
their offset in the body) and `Opaque` (bytes it does not follow: TLS, TeamViewer's binary
protocol, a chunked body). Joining the items' bytes gives back the input exactly. Bodies end as
RFC 9112 §6.3 says; a response to HEAD is not known here (the scanner sees one direction only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.http1 import Head, parse_head

Side = Literal["request", "response"]
Framing = Literal["length", "close", "opaque"]

# Web filters recognise HTTP by its methods; anything else (mtalk's "MTALK HELLO") is not HTTP.
METHODS = frozenset(b"GET HEAD POST PUT DELETE OPTIONS TRACE PATCH CONNECT".split())
_REQUEST_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/1\.[01]\r?$")
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] \d{3}(?: [^\r\n]*)?\r?$")
MAX_HEAD_BYTES = 65536
MAX_LINE_BYTES = 8192


@dataclass(frozen=True)
class MessageHead:
    head: Head
    raw: bytes
    framing: Framing  # "length": body_length bytes follow; "close": until EOF; "opaque": not followed
    body_length: int | None

    @property
    def method(self) -> str:
        return self.head.start_line.split(" ")[0]

    @property
    def target(self) -> str:
        """The request-target (origin-form path and query for requests)."""
        return self.head.start_line.split(" ")[1]

    @property
    def status(self) -> int:
        return int(self.head.start_line.split(" ")[1])


@dataclass(frozen=True)
class Body:
    data: bytes
    offset: int  # where data[0] sits in the message body


@dataclass(frozen=True)
class Opaque:
    data: bytes


Item = MessageHead | Body | Opaque


class HttpScanner:
    """Cuts one direction of a tunnel into HTTP/1.x messages while it is plain HTTP; then `Opaque`."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.buf = bytearray()
        self.state: Literal["start", "body", "opaque"] = "start"
        self.remaining: int | None = None  # body bytes still due; None: until EOF
        self.offset = 0

    def feed(self, data: bytes) -> list[Item]:
        if self.state == "opaque" and not self.buf:  # the bulk of a TLS tunnel: no copy
            return [Opaque(data)] if data else []
        self.buf += data
        out: list[Item] = []
        while self.buf:
            if self.state == "opaque":
                out.append(Opaque(bytes(self.buf)))
                self.buf.clear()
            elif self.state == "body":
                n = len(self.buf) if self.remaining is None else min(self.remaining, len(self.buf))
                out.append(Body(bytes(self.buf[:n]), self.offset))
                del self.buf[:n]
                self.offset += n
                if self.remaining is not None:
                    self.remaining -= n
                    self.state = "body" if self.remaining else "start"
            else:
                message = self._head()
                if message is None:
                    break  # need more bytes
                if message is not False:
                    out.append(message)
        return out

    def close(self) -> list[Opaque]:
        """At EOF: bytes held back while waiting for a complete head go on as they are."""
        data, self.buf = bytes(self.buf), bytearray()
        return [Opaque(data)] if data else []

    def _head(self) -> MessageHead | Literal[False] | None:
        """A complete head, None for more bytes, False after switching to opaque."""
        plausible = self._plausible()
        if plausible is None:
            return None
        if plausible:
            try:
                head = parse_head(self.buf, max_head_bytes=MAX_HEAD_BYTES, request=self.side == "request")
            except RemoteProtocolError:
                head = None
                plausible = False
        if not plausible:
            self.state = "opaque"
            return False
        if head is None:
            return None
        message = self._message(head, bytes(self.buf[: head.size]))
        del self.buf[: head.size]
        self.offset, self.remaining = 0, message.body_length
        if message.framing == "opaque":
            self.state = "opaque"
        elif message.framing == "close" or message.body_length:
            self.state = "body"
        return message

    def _plausible(self) -> bool | None:
        """Can the buffer start an HTTP/1.x message of this side? None: not known yet."""
        line_end = self.buf.find(b"\n")
        if line_end >= 0:
            first = bytes(self.buf[:line_end])
            if self.side == "response":
                return bool(_STATUS_LINE.match(first))
            return bool(_REQUEST_LINE.match(first)) and first.split(b" ")[0] in METHODS
        first = bytes(self.buf)
        if len(first) > MAX_LINE_BYTES:
            return False
        if self.side == "response":
            return None if b"HTTP/1."[: len(first)] == first[:7] else False
        method, space, _ = first.partition(b" ")
        if space:
            return None if method in METHODS else False
        return None if any(m.startswith(method) for m in METHODS) else False

    def _message(self, head: Head, raw: bytes) -> MessageHead:
        lengths = {v.strip() for v in head.get_all("Content-Length")}
        chunked = bool(head.get_all("Transfer-Encoding"))
        if self.side == "response":
            status = int(head.start_line.split(" ")[1])
            if status < 200 or status in (204, 304):
                return MessageHead(head, raw, "length", 0)
        # isascii(): str.isdigit() is also true for '²' (0xB2 in a Latin-1 field value), which int() refuses.
        if chunked or len(lengths) > 1 or (lengths and not _is_length(next(iter(lengths)))):
            return MessageHead(head, raw, "opaque", None)
        if lengths:
            return MessageHead(head, raw, "length", int(next(iter(lengths))))
        return (
            MessageHead(head, raw, "close", None)
            if self.side == "response"
            else MessageHead(head, raw, "length", 0)
        )


def _is_length(value: str) -> bool:
    return value.isascii() and value.isdigit()


def with_header(message: MessageHead, name: str, value: str) -> bytes:
    """The head's bytes with every `name` field replaced by one `name: value` (added when absent)."""
    lines = [message.head.start_line]
    lines += [f"{k}: {v}" for k, v in message.head.headers if k.lower() != name.lower()]
    lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
