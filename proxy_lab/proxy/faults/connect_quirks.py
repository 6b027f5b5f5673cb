"""connect_quirks: a tunnel announced oddly (2xx other than 200, framing headers, early bytes, HTTP/1.0)."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy_lab.proxy.faults.base import Ctx, Fault, doc
from proxy_lab.proxy.responses import reason_phrase


@dataclass(kw_only=True)
class ConnectQuirks(Fault, name="connect_quirks"):
    """Rewrites the `200 Connection established` head: other 2xx, Content-Length/Transfer-Encoding, bytes after it."""

    status: int = field(
        default=200, metadata=doc("2xx status announcing the tunnel (OkHttp and CPython accept only 200)")
    )
    reason: str = field(
        default="",
        metadata=doc(
            "reason phrase (default: 'Connection established' for 200, the standard phrase otherwise)"
        ),
    )
    content_length_on_200: bool = field(
        default=False, metadata=doc("add Content-Length: 0 (RFC 9110 §9.3.6: a server MUST NOT)")
    )
    transfer_encoding_on_200: bool = field(
        default=False, metadata=doc("add Transfer-Encoding: chunked (RFC 9110 §9.3.6: MUST NOT)")
    )
    bytes_after_head: str = field(
        default="", metadata=doc("text sent right after the head, before any upstream byte (UTF-8)")
    )
    http10: bool = field(default=False, metadata=doc("answer with HTTP/1.0 instead of HTTP/1.1"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 200 <= self.status <= 299:
            raise ValueError(f"status: {self.status} is not a 2xx status (refusals are other faults)")
        if any(c in self.reason for c in "\r\n"):
            raise ValueError("reason: no CR or LF")

    def established_response(self, ctx: Ctx, head: bytes) -> bytes:
        version = "HTTP/1.0" if self.http10 else "HTTP/1.1"
        reason = self.reason or (
            "Connection established" if self.status == 200 else reason_phrase(self.status)
        )
        lines = [f"{version} {self.status} {reason}"]
        if self.content_length_on_200:
            lines.append("Content-Length: 0")
        if self.transfer_encoding_on_200:
            lines.append("Transfer-Encoding: chunked")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.bytes_after_head.encode("utf-8")
