"""Events of the lab proxy's CONNECT exchange: what the client asked for and how it was refused.

Small frozen dataclasses named for what happened (after h11's `_events.py`), validated when made.
`ConnectRequest` comes out of the sans-IO parser; `Refusal` is any answer other than a tunnel, and
knows how to render itself as bytes (or as a bare close / TCP reset).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.http1 import HeaderLookup, Headers

# RFC 9110 §5.6.2: field-name = token
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Action = Literal["respond", "close", "reset"]
ACTIONS: tuple[Action, ...] = ("respond", "close", "reset")


def _check_headers(headers: Headers, who: str) -> None:
    for name, value in headers:
        if not _TOKEN.match(name):
            raise ValueError(f"{who}: header name {name!r} is not an RFC 9110 token")
        if _CTL.search(value):
            raise ValueError(f"{who}: header {name} has a control character in its value {value!r}")


@dataclass(frozen=True)
class ConnectRequest(HeaderLookup):
    """A well-formed `CONNECT host:port HTTP/1.x` request head (RFC 9110 §9.3.6)."""

    host: str  # lower-case name or IP literal, without brackets
    port: int
    headers: Headers = ()
    version: str = "HTTP/1.1"

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("ConnectRequest: empty host")
        if not 0 < self.port < 65536:
            raise ValueError(f"ConnectRequest: port {self.port} outside 1-65535")
        if self.version not in ("HTTP/1.0", "HTTP/1.1"):
            raise ValueError(f"ConnectRequest: version {self.version!r}, expected HTTP/1.0 or HTTP/1.1")
        _check_headers(self.headers, "ConnectRequest")

    @property
    def authority(self) -> str:
        """`host:port` as it goes on the wire: IPv6 literals bracketed (CPython `_wrap_ipv6`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def persistent(self) -> bool:
        """RFC 9112 §9.3: the client keeps the connection unless it says `close` (HTTP/1.1) or did not
        ask for `keep-alive` (HTTP/1.0). `Proxy-Connection` is the legacy spelling clients still send."""
        tokens = {
            t.strip().lower() for v in self.get_all("Connection") + self.get_all("Proxy-Connection") for t in v.split(",")
        }
        if "close" in tokens:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in tokens


@dataclass(frozen=True)
class Refusal(HeaderLookup):
    """Any answer to CONNECT other than a tunnel: an HTTP response, a bare close, or a TCP reset.

    `why` is the one-line reason written to the proxy's log (never sent). `keep_alive` keeps the
    client connection open for another request after the answer (the 407 retry of RFC 9110 §11.7.1);
    otherwise `Connection: close` is added unless the headers already carry a Connection field.
    `Content-Length` is added when absent, so the answer is always framed.
    """

    status: int = 0
    reason: str = ""
    headers: Headers = ()
    body: bytes = b""
    action: Action = "respond"
    why: str = ""
    keep_alive: bool = False
    version: str = "HTTP/1.1"
    add_framing: bool = field(default=True, repr=False)  # False: send the headers exactly as given

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"Refusal: action {self.action!r}, expected one of {', '.join(ACTIONS)}")
        if self.action == "respond":
            if not 100 <= self.status <= 599:
                raise ValueError(f"Refusal: status {self.status} outside 100-599")
            if 200 <= self.status < 300:
                raise ValueError(f"Refusal: status {self.status} is a success, not a refusal")
            if _CTL.search(self.reason) or "\t" in self.reason:
                raise ValueError(f"Refusal: reason phrase {self.reason!r} has control characters")
        _check_headers(self.headers, "Refusal")

    @property
    def status_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}".rstrip()

    def closing(self) -> Refusal:
        """The same answer, ending the connection (its Connection field says so)."""
        headers = tuple((k, "close") if k.lower() == "connection" else (k, v) for k, v in self.headers)
        return dataclasses.replace(self, headers=headers, keep_alive=False)

    def to_bytes(self) -> bytes:
        """The response as sent; empty for the close and reset actions."""
        if self.action != "respond":
            return b""
        lines = [self.status_line]
        lines += [f"{k}: {v}" for k, v in self.headers]
        names = {k.lower() for k, _ in self.headers}
        if self.add_framing:
            if "content-length" not in names and "transfer-encoding" not in names:
                lines.append(f"Content-Length: {len(self.body)}")
            if "connection" not in names:
                lines.append("Connection: keep-alive" if self.keep_alive else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body

    def describe(self) -> str:
        """`403 Forbidden (X-Squid-Error: ERR_ACCESS_DENIED 0)` or `reset` / `close`."""
        if self.action != "respond":
            return f"{self.action} without an answer"
        extra = self.get("X-Squid-Error")
        return f"{self.status} {self.reason}" + (f" (X-Squid-Error: {extra})" if extra else "")
