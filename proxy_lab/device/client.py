"""The device's small HTTP/1.1 client: reads a response head and body from a `Stream`.

Owns the I/O half of response reading (the parsing is `proxy_lab.response`, sans-IO) and the
in-tunnel request (`http_request`): HTTP/1.1, `Content-Length` framing, `Connection: close`, as
docs/cloud-protocol.md specifies; bodies framed by Content-Length, chunked, or read-to-close.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from proxy_lab.device.classify import NotHttpAnswer, ProbeFailed, classify
from proxy_lab.device.transcript import Transcript
from proxy_lab.device.wire import Stream
from proxy_lab.errors import RemoteProtocolError
from proxy_lab.response import (
    BodyFraming,
    BodyReader,
    NotHttpError,
    Response,
    body_framing,
    parse_response,
)

MAX_HEAD_READS = 100_000  # bounded even against a peer that drips one byte per read
MAX_BODY_READS = 1_000_000
MAX_INTERIM = 8  # 1xx answers skipped before the final one
USER_AGENT = "proxy-lab-device/0.1"


@dataclass(frozen=True)
class HttpAnswer:
    response: Response
    body: bytes
    elapsed_s: float  # from the request fully sent to the last body byte
    # The body bytes that arrived after the response head, and how long they took: the rate of the
    # link itself, without the request's trip, the server's think time or the head.
    streamed_bytes: int = 0
    streamed_s: float = 0.0

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def kbps(self) -> float:
        """Throughput of the body in kbit/s (1 kbit = 1000 bits, as the guide's '384 kbps').

        Measured over the body bytes that followed the head when they took long enough to time
        (>= 50 ms); otherwise over the whole exchange (a fast link: the figure only has to be large).
        """
        if self.streamed_s >= 0.05 and self.streamed_bytes > 0:
            return self.streamed_bytes * 8 / 1000 / self.streamed_s
        return len(self.body) * 8 / 1000 / max(self.elapsed_s, 1e-6)


def _not_http(stream: Stream, buf: bytes, reason: str) -> ProbeFailed:
    stream.close()
    return ProbeFailed(classify(NotHttpAnswer(stream.peer, stream.during, buf[:64], reason)))


async def read_head(stream: Stream, *, connect: bool = False) -> tuple[Response, bytes]:
    """Read one final response head; return it with the bytes that followed it.

    Interim 1xx answers (other than 101) are skipped: RFC 9110 §15.2 "A client MUST be able to parse
    one or more 1xx responses received prior to a final response" (OkHttp's Http1ExchangeCodec
    reads again after a 100). EOF before any byte ends the probe as `StreamCut(before_answer=connect)`:
    for the answer to CONNECT that is a proxy that closed without a word (unreachable), in the
    tunnel a cut (reset).
    """
    buf = bytearray()
    interim = 0
    for _ in range(MAX_HEAD_READS):
        data = await stream.read()
        if not data:
            raise stream.cut_eof(before_answer=connect and not buf and interim == 0)
        buf += data
        for _ in range(MAX_INTERIM + 1):
            try:
                response = parse_response(buf)
            except NotHttpError as exc:
                raise _not_http(stream, bytes(buf), str(exc)) from exc
            except RemoteProtocolError as exc:
                raise _not_http(stream, bytes(buf), f"malformed HTTP head: {exc}") from exc
            if response is None:
                break
            if 100 <= response.status < 200 and response.status != 101 and interim < MAX_INTERIM:
                interim += 1
                del buf[: response.size]
                continue
            return response, bytes(buf[response.size :])
    raise _not_http(stream, bytes(buf), f"no complete head after {MAX_HEAD_READS} reads")


async def read_body(
    stream: Stream, framing: BodyFraming, first: bytes, *, limit: int, stop_after: int | None = None
) -> tuple[bytes, bool]:
    """Read a body framed by `framing`, starting with the bytes `first` that followed the head.

    Returns (body, complete). `stop_after` stops early once that many body bytes arrived (a refusal
    page is only quoted, never used); otherwise EOF inside a framed body ends the probe as a cut.
    A malformed chunked body is a protocol mismatch.
    """
    reader = BodyReader(framing, limit=limit)
    try:
        reader.feed(first)
        for _ in range(MAX_BODY_READS):
            if reader.done or (stop_after is not None and reader.received >= stop_after):
                break
            data = await stream.read()
            if not data:
                if stop_after is not None and framing.kind != "close":
                    return bytes(reader.body), False
                try:
                    reader.eof()
                except RemoteProtocolError:
                    raise stream.cut_eof() from None
                break
            reader.feed(data)
    except RemoteProtocolError as exc:
        raise _not_http(stream, bytes(reader.body[:64]), f"malformed body: {exc}") from exc
    return bytes(reader.body), reader.done


def _host_header(host: str, port: int, default_port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default_port else f"{shown}:{port}"


async def http_request(
    stream: Stream,
    transcript: Transcript,
    method: str,
    target: str,
    *,
    host: str,
    port: int,
    tls: bool,
    body: bytes | None = None,
    content_type: str | None = None,
    limit: int = 16 * 1024 * 1024,
    expected: str = "an HTTP answer",
) -> HttpAnswer:
    """Send one request with `Connection: close` and read the whole answer."""
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {_host_header(host, port, 443 if tls else 80)}",
        f"User-Agent: {USER_AGENT}",
        "Connection: close",
    ]
    if body is not None:
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")
    stream.during = f"during {method} {target}"
    stream.expected = expected
    await stream.write(data)
    sent_at = time.monotonic()
    transcript.sent(
        lines[0] + (f" ({len(body)} bytes of {content_type or 'data'})" if body is not None else ""),
        tunnel=True,
    )
    response, rest = await read_head(stream)
    head_at = time.monotonic()
    transcript.received(response.status_line, tunnel=True)
    for name in (
        "Content-Type",
        "Content-Length",
        "Transfer-Encoding",
        "Location",
        "Server",
        "X-Squid-Error",
    ):
        value = response.get(name)
        if value is not None:
            transcript.received(f"{name}: {value}", tunnel=True)
    try:
        framing = body_framing(response, method=method)
    except RemoteProtocolError as exc:
        raise _not_http(stream, rest, str(exc)) from exc
    payload, _ = await read_body(stream, framing, rest, limit=limit)
    done_at = time.monotonic()
    elapsed = done_at - sent_at
    transcript.received(f"[body {len(payload)} bytes in {elapsed * 1000:.0f} ms]", tunnel=True)
    return HttpAnswer(response, payload, elapsed, max(0, len(payload) - len(rest)), done_at - head_at)
