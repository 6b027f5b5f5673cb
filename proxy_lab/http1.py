"""Sans-IO reading of an HTTP/1.x message head (start line and header fields).

Shared by the proxy's request parser and the device's reader of proxy responses. Pure functions
over bytes: they return the parsed head, `None` when more bytes are needed, or raise
RemoteProtocolError with the status a server should answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy_lab.errors import RemoteProtocolError

# RFC 9110 §5.6.2: field-name = token
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# RFC 9112 §5: field-value has no CR, LF or NUL.
_BAD_VALUE = re.compile(rb"[\x00\r\n]")

Headers = tuple[tuple[str, str], ...]


class HeaderLookup:
    """Case-insensitive field lookup (RFC 9110 §5.1) for any message type with a `headers` pair list."""

    headers: Headers

    def get(self, name: str) -> str | None:
        """The first value of field `name`, or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


@dataclass(frozen=True)
class Head(HeaderLookup):
    start_line: str
    headers: Headers
    size: int  # bytes consumed including the blank line


def find_head_end(buf: bytes | bytearray) -> int:
    """Index just past the blank line ending the head, or -1. Accepts bare LF line ends (RFC 9112 §2.2)."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else -1


def parse_head(
    buf: bytes | bytearray,
    *,
    max_start_line: int = 8192,
    max_head_bytes: int = 65536,
    request: bool = True,
) -> Head | None:
    """Parse a message head from the start of `buf`.

    Raises RemoteProtocolError: 414 (request) or 400 when the start line is too long, 431 when the
    head is too large, 400 when a header line is malformed.
    """
    end = find_head_end(buf)
    first_nl = buf.find(b"\n")
    if first_nl < 0:
        if len(buf) > max_start_line:
            raise RemoteProtocolError(
                f"start line longer than {max_start_line} bytes", error_status_hint=414 if request else 400
            )
        return None
    if first_nl > max_start_line:
        raise RemoteProtocolError(
            f"start line longer than {max_start_line} bytes", error_status_hint=414 if request else 400
        )
    if end < 0:
        if len(buf) > max_head_bytes:
            raise RemoteProtocolError(f"header section larger than {max_head_bytes} bytes", error_status_hint=431)
        return None
    if end > max_head_bytes:
        raise RemoteProtocolError(f"header section larger than {max_head_bytes} bytes", error_status_hint=431)
    lines = bytes(buf[:end]).split(b"\n")
    start = lines[0].rstrip(b"\r")
    try:
        start_line = start.decode("ascii")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError("start line is not ASCII") from exc
    if not start_line.isprintable():
        raise RemoteProtocolError("start line contains control characters")
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: obs-fold is rejected with 400 in requests.
            raise RemoteProtocolError("obsolete line folding in header section")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise RemoteProtocolError(f"malformed header line {line[:60]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise RemoteProtocolError(f"invalid characters in header {name.decode()!r}")
        headers.append((name.decode("ascii"), value.decode("latin-1")))
    return Head(start_line, tuple(headers), end)
