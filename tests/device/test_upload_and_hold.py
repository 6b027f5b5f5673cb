"""The upload exchange times a POST and checks the sink's count; held sessions see a cut when it comes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from proxy_lab.outcomes import Outcome
from proxy_lab.pki import PKI
from proxy_lab.protocol import messages as msg
from proxy_lab.protocol.lines import MTALK_PING, MTALK_PONG
from tests.device.device_testkit import Conn, Handler, ep, http_origin, probe_through_relay, response, run

UPLOAD = ep("upload", "https://pbdlsp1.pb.com/upload")
MTALK = ep("mtalk", "tcp://mobile-gtalk.l.google.com:5228")


_probe = probe_through_relay


def _sink(counted: int | None = None) -> Handler:
    async def answer(head: bytes, body: bytes) -> bytes:
        n = len(body) if counted is None else counted
        return response("200 OK", f"SINK OK bytes={n}".encode())

    return http_origin(answer)


def test_an_upload_to_a_sink_that_counts_every_byte_passes_with_a_rate(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, UPLOAD, _sink(), upload_bytes=20_000))
    assert result.outcome == Outcome.PASS, result.detail
    assert result.evidence.kbps is not None and result.evidence.kbps > 0
    assert result.evidence.bytes_sent > 20_000 and "uploaded 20000 bytes" in result.detail


def test_a_sink_counting_other_bytes_than_sent_is_tampered(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, UPLOAD, _sink(counted=5), upload_bytes=20_000))
    assert result.outcome == Outcome.TAMPERED and "bytes=5" in result.detail, result.detail


def test_an_upload_refused_by_a_filter_is_refused(pki: PKI, tmp_path: Path) -> None:
    async def forbidden(head: bytes, body: bytes) -> bytes:
        return response("403 Forbidden", b"<title>Blocked</title>", "text/html")

    result = run(_probe(pki, tmp_path, UPLOAD, http_origin(forbidden), upload_bytes=1000))
    assert result.outcome == Outcome.REFUSED and "403" in result.detail, result.detail


def _mtalk(*, cut_after_s: float | None) -> Handler:
    async def handle(conn: Conn) -> None:
        assert await asyncio.wait_for(conn.reader.readline(), 2) == msg.MTALK_HELLO
        await conn.send(msg.MTALK_OK)
        if cut_after_s is not None:  # a firewall's idle timeout closes the quiet session
            await asyncio.sleep(cut_after_s)
            return
        if await asyncio.wait_for(conn.reader.readline(), 5) == MTALK_PING:
            await conn.send(MTALK_PONG)

    return handle


def test_a_held_mtalk_session_answers_its_keep_alive(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, MTALK, _mtalk(cut_after_s=None), mtalk_hold_s=0.3))
    assert result.outcome == Outcome.PASS and "held 0.3 s" in result.detail, result.detail


def test_a_held_mtalk_session_closed_while_quiet_is_a_reset_said_with_when(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, MTALK, _mtalk(cut_after_s=0.2), mtalk_hold_s=1.5, read_timeout_s=0.5))
    assert result.outcome == Outcome.RESET, result.detail
    assert "while holding the mtalk session quiet" in result.detail and "of a 1.5 s hold" in result.detail


def test_a_hold_longer_than_the_read_timeout_is_not_a_timeout(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, MTALK, _mtalk(cut_after_s=None), mtalk_hold_s=1.2, read_timeout_s=0.4))
    assert result.outcome == Outcome.PASS, result.detail
