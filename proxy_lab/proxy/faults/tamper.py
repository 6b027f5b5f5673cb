"""tamper: plain-HTTP response bodies altered in the tunnel, as by an AV or content-rewriting proxy (row 17).

Only plain HTTP can be altered: a TLS tunnel's records are opaque to the proxy (it would need
tls_inspect to see inside), so TLS tunnels and any other non-HTTP bytes pass untouched.

Content-Length is recomputed, as proxies that rewrite content do (a scanning proxy buffers and
re-frames the body): `banner` adds its length, `truncate` announces the shortened length. The
client then reads a well-framed message whose content is wrong, which is what a signature or a
parser catches (`tampered`), rather than a framing error. A chunked body is passed on unaltered
(its chunk sizes would need rewriting; the lab's cloud never sends one) and noted in ctx.notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.proxy.faults.base import Ctx, Direction, Fault, Stage, doc
from proxy_lab.proxy.faults.httpsniff import Body, HttpScanner, MessageHead, Opaque, with_header

Mode = Literal["flip_byte", "truncate", "banner"]


class _TamperStage(Stage):
    directions: tuple[Direction, ...] = ("upstream_to_client",)

    def __init__(self, ctx: Ctx, mode: Mode, offset: int, banner: bytes) -> None:
        self.ctx, self.mode, self.offset, self.banner = ctx, mode, offset, banner
        self.scanner = HttpScanner("response")
        self.at = 0  # where this body's banner goes
        self.pending = False  # a banner still to insert in this body

    def _head(self, message: MessageHead) -> bytes:
        length = message.body_length
        self.pending = False
        if message.framing == "opaque" or (message.framing == "length" and length == 0):
            if message.framing == "opaque":
                self.ctx.notes["tamper"] = f"{message.head.start_line}: chunked or unframed body left alone"
            return message.raw
        self.ctx.notes["tamper"] = f"{self.mode} at body byte {self.offset} of {message.head.start_line!r}"
        if self.mode == "banner":
            self.at, self.pending = (self.offset if length is None else min(self.offset, length)), True
            if length is not None:
                return with_header(message, "Content-Length", str(length + len(self.banner)))
        if self.mode == "truncate" and length is not None:
            return with_header(message, "Content-Length", str(min(length, self.offset)))
        return message.raw

    def _body(self, body: Body) -> bytes:
        data, start = bytearray(body.data), body.offset
        if self.mode == "flip_byte" and start <= self.offset < start + len(data):
            data[self.offset - start] ^= 0xFF
        elif self.mode == "truncate":
            del data[max(0, self.offset - start) :]
        elif self.pending and start <= self.at <= start + len(data):
            data[self.at - start : self.at - start] = self.banner
            self.pending = False
        return bytes(data)

    async def upstream_to_client(self, data: bytes) -> bytes:
        items = self.scanner.feed(data)
        if len(items) == 1 and isinstance(items[0], Opaque):
            return items[0].data  # not plain HTTP: passed on as it came
        out = bytearray()
        for item in items:
            if isinstance(item, MessageHead):
                out += self._head(item)
            elif isinstance(item, Body):
                out += self._body(item)
            elif isinstance(item, Opaque):
                out += item.data
        return bytes(out)

    async def at_eof(self, direction: Direction) -> bytes:
        return b"".join(item.data for item in self.scanner.close())


@dataclass(kw_only=True)
class Tamper(Fault, name="tamper"):
    """Alters plain-HTTP response bodies in the tunnel: flips a byte, truncates, or injects a banner."""

    mode: Mode = field(default="flip_byte", metadata=doc("'flip_byte' (XOR 0xFF), 'truncate' or 'banner'"))
    offset_bytes: int = field(
        default=0, metadata=doc("body byte flipped, bytes kept (truncate), or where the banner goes", "bytes")
    )
    banner: str = field(
        default="<!-- scanned by LabGuard AV: no threats found -->",
        metadata=doc("text injected by mode 'banner' (UTF-8)"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.offset_bytes < 0:
            raise ValueError(f"offset_bytes: {self.offset_bytes} is negative")
        if self.mode == "banner" and not self.banner:
            raise ValueError("banner: empty; mode 'banner' needs text to inject")

    def stream(self, ctx: Ctx) -> Stage | None:
        return _TamperStage(ctx, self.mode, self.offset_bytes, self.banner.encode("utf-8"))
