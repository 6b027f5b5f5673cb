"""Held sessions: the device keeps its raw TCP sessions (TeamViewer 5938, mtalk 5228) open and quiet.

Owns `hold_quiet`, which the TeamViewer and mtalk exchanges (and the field probe of raw ports) use. A real session lies idle for minutes
between keep-alives, and a proxy or firewall that closes quiet connections (an idle or session
timeout) ends it. During the hold the device keeps reading, as a socket waiting for the server does,
so a close is seen when it happens (and said with the second it came at); at the end of the hold it
sends its keep-alive (TeamViewer `PING`, mtalk `MTALK PING`) and needs the answer, so a connection
dropped without a word is seen too. `proxy-lab check --hold SECONDS` sets how long.

Assumption (the guide names no interval): the device sends nothing between the opening exchange and
the keep-alive at the end of the hold, the longest silence a real session may show.
"""

from __future__ import annotations

import asyncio
import time

from proxy_lab.device.transcript import Transcript
from proxy_lab.device.wire import Stream

SLICE_FRACTION = 0.5  # each read of the hold waits at most this share of the read timeout


async def hold_quiet(stream: Stream, transcript: Transcript, hold_s: float, *, what: str, read_timeout_s: float) -> bytes:
    """Keep `stream` open and quiet for `hold_s` seconds, reading all the while.

    Returns the bytes the server sent unasked during the hold (usually none). EOF or a reset ends
    the probe with a cut whose `during` says how long into the hold it came.
    """
    started = time.monotonic()
    got = bytearray()
    # Each read waits less than the stream's own read timeout, so a long hold is not a timeout.
    step = max(min(read_timeout_s * SLICE_FRACTION, 30.0), 0.01)
    stream.expected = f"{what} open until its keep-alive"
    while (left := hold_s - (time.monotonic() - started)) > 0:
        stream.during = f"while holding {what} quiet ({time.monotonic() - started:.1f} s into a {hold_s:g} s hold)"
        try:
            data = await asyncio.wait_for(stream.read(4096), min(left, step))
        except TimeoutError:
            continue
        if not data:
            at = time.monotonic() - started
            stream.during = f"while holding {what} quiet: closed after {at:.1f} s of a {hold_s:g} s hold (idle timeout?)"
            raise stream.cut_eof()
        got += data
        transcript.note(f"{len(data)} bytes arrived unasked while holding {what}")
    transcript.note(f"{what} held quiet for {hold_s:g} s")
    return bytes(got)
