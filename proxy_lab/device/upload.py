"""The upload exchange: POST a body of `upload_bytes` and time it, the upstream half of the bandwidth.

The guide: "a minimum network bandwidth of 384 kbps (upstream and downstream)". The download is
timed by the signed downloads (`proxy_lab.device.workflows`); this exchange times the other way: the
body goes out in slices (so a slow link shows as a slow upload, not as a stalled write), and the
clock stops when the answer's head arrives, after the server has read the whole body. The lab
cloud's sink answers `SINK OK bytes=<n>` (docs/cloud-protocol.md), and a count other than the bytes
sent is `tampered`; a field endpoint (`--upload-url`) may answer any 2xx or 3xx.
"""

from __future__ import annotations

import re
import time

from proxy_lab.device.classify import Worked
from proxy_lab.device.client import HttpAnswer, read_body, read_head
from proxy_lab.device.workflows import Exchange, _refuse_errors
from proxy_lab.response import body_framing

SLICE_BYTES = 4096  # each write is small enough to drain within a read timeout at a few kbit/s
_SINK = re.compile(rb"SINK OK bytes=([0-9]{1,12})\s*")


async def upload(x: Exchange) -> Worked:
    ep, s = x.endpoint, x.settings
    n = s.upload_bytes
    body = bytes(i % 251 for i in range(n))  # not all zeros, so no link compresses it away
    host = f"[{ep.host}]" if ":" in ep.host else ep.host
    default_port = 443 if ep.transport == "tls" else 80
    head = (
        f"POST {ep.path} HTTP/1.1\r\nHost: {host if ep.port == default_port else f'{host}:{ep.port}'}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
    )
    expected = "a 2xx answer after the whole body (the lab sink: 'SINK OK bytes=<n>')"
    stream = await x.open()
    try:
        stream.during = f"during POST {ep.path} ({n} bytes)"
        stream.expected = expected
        await stream.write(head.encode("ascii"))
        started = time.monotonic()
        for i in range(0, n, SLICE_BYTES):
            await stream.write(body[i : i + SLICE_BYTES])
        x.transcript.sent(f"POST {ep.path} HTTP/1.1 ({n} bytes of application/octet-stream)", tunnel=True)
        response, rest = await read_head(stream)
        elapsed = time.monotonic() - started
        x.transcript.received(response.status_line, tunnel=True)
        answer_body, _ = await read_body(stream, body_framing(response, method="POST"), rest, limit=64 * 1024)
    finally:
        stream.close()
    x.evidence.http_status = response.status
    _refuse_errors(x, HttpAnswer(response, answer_body, elapsed), f"POST {ep.path}", expected)
    m = _SINK.fullmatch(answer_body)
    if m and int(m.group(1)) != n:
        raise x.fail("the sink's byte count", f"bytes={m.group(1).decode()}", f"bytes={n} (the bytes sent)")
    kbps = n * 8 / 1000 / max(elapsed, 1e-6)
    x.evidence.kbps = kbps
    x.transcript.note(f"uploaded {n} bytes in {elapsed * 1000:.0f} ms: {kbps:.0f} kbit/s")
    return Worked(f"uploaded {n} bytes ({response.status_line})", kbps=kbps, min_kbps=s.min_kbps)
