"""block_page: plain HTTP inside the tunnel answered by a web filter or captive portal.

The filter reads each plain-HTTP request in the tunnel; one whose request-target matches `paths`
is not forwarded, and the filter answers it in the tunnel itself, then closes the tunnel. Android's
NetworkMonitor reads `generate_204` answered 200 with content, or 302, as a portal, and 403 as
"no internet" (AOSP frameworks/base, services/core/java/com/android/server/connectivity/
NetworkMonitor.java, Android 7). TLS and other non-HTTP bytes (TeamViewer on 5938)
pass untouched: the filter cannot read them.
"""

from __future__ import annotations

import fnmatch
import html
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from proxy_lab.proxy.faults.base import Ctx, Direction, Fault, Stage, doc
from proxy_lab.proxy.faults.httpsniff import Body, HttpScanner, MessageHead, Opaque
from proxy_lab.proxy.responses import web_filter_block

Style = Literal["html200", "redirect302", "forbidden403"]


def block_answer(style: Style, url: str, category: str, block_url: str, why: str) -> bytes:
    """The filter's answer to a blocked request for `url`, as an origin's response."""
    if style == "forbidden403":
        return web_filter_block(url, category, policy="URL rule", why=why).to_bytes()
    if style == "redirect302":
        status, extra = "302 Found", f"Location: {block_url}?url={quote(url, safe='')}\r\n"
        body = f'<html><body><a href="{html.escape(block_url)}">Blocked</a></body></html>\n'
    else:
        status, extra = "200 OK", "Cache-Control: no-store\r\n"
        body = (
            "<html><head><title>Access Blocked</title></head>\n<body>\n<h1>Access Blocked</h1>\n"
            f"<p>The page {html.escape(url)} is blocked by your organisation's web filter.</p>\n"
            f"<p>Category: {html.escape(category)}</p>\n</body></html>\n"
        )
    data = body.encode()
    return (
        f"HTTP/1.1 {status}\r\nServer: proxy-lab web filter\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"{extra}Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + data


class _BlockStage(Stage):
    directions: tuple[Direction, ...] = ("client_to_upstream",)

    def __init__(self, ctx: Ctx, fault: BlockPage) -> None:
        self.ctx, self.fault = ctx, fault
        self.scanner = HttpScanner("request")

    async def client_to_upstream(self, data: bytes) -> bytes:
        items = self.scanner.feed(data)
        if len(items) == 1 and isinstance(items[0], Opaque):
            return items[0].data  # not plain HTTP: passed on as it came
        out = bytearray()
        for item in items:
            if isinstance(item, MessageHead):
                if self._block(item):
                    return b""
                out += item.raw
            elif isinstance(item, Body | Opaque):
                out += item.data
        return bytes(out)

    def _block(self, request: MessageHead) -> bool:
        target = request.target
        if "://" in target:  # absolute-form: match its path and query, as for origin-form
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        pattern = next((p for p in self.fault.paths if fnmatch.fnmatchcase(target, p)), None)
        if pattern is None:
            return False
        host = request.head.get("Host") or self.ctx.authority
        url = f"http://{host}{target}"
        why = f"block_page: {request.method} {url} matches {pattern!r}: answered {self.fault.style}"
        self.ctx.notes["block_page"] = why
        answer = block_answer(self.fault.style, url, self.fault.category, self.fault.block_url, why)
        self.tunnel.send("upstream_to_client", answer)
        self.tunnel.close(why)  # the answer goes out first, then FIN both ways
        return True

    async def at_eof(self, direction: Direction) -> bytes:
        return b"".join(item.data for item in self.scanner.close())


@dataclass(kw_only=True)
class BlockPage(Fault, name="block_page"):
    """Answers matching plain-HTTP requests in the tunnel with a block page instead of forwarding them."""

    paths: list[str] = field(
        default_factory=lambda: ["*"],
        metadata=doc("fnmatch patterns of request-targets blocked ('/generate_204')"),
    )
    style: Style = field(
        default="html200",
        metadata=doc("'html200' (Android: portal), 'redirect302' (portal) or 'forbidden403' (no internet)"),
    )
    block_url: str = field(
        default="http://filter.lab.test/blocked", metadata=doc("where redirect302 sends (?url= is added)")
    )
    category: str = field(default="Uncategorized", metadata=doc("category named on the block page"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.paths:
            raise ValueError("paths: give at least one pattern ('*' blocks every request)")
        if any(c in self.block_url + self.category for c in "\r\n"):
            raise ValueError("block_url and category: no CR or LF")

    def stream(self, ctx: Ctx) -> Stage | None:
        return _BlockStage(ctx, self)
