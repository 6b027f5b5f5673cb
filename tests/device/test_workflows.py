"""The exchanges inside the tunnel against in-test origins: signatures, receipts, probes, raw TCP."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from proxy_lab.device import Device
from proxy_lab.outcomes import Outcome
from proxy_lab.pki import PKI
from proxy_lab.protocol import messages as msg
from proxy_lab.resolver import MapResolver
from tests.device.device_testkit import (
    Conn,
    Handler,
    ep,
    http_origin,
    make_device,
    probe_through_relay,
    response,
    run,
)


def _path(head: bytes) -> str:
    return head.split(b" ", 2)[1].decode()


_probe = probe_through_relay


# -- signed downloads -----------------------------------------------------------------------------------

DOWNLOAD = ep("download", "https://pbdlsp1.pb.com/")
FILE = hashlib.shake_256(b"rates").digest(8192)


def _file_origin(pki: PKI, served: bytes, *, slow: bool = False) -> Handler:
    signature = pki.signing_key().sign(FILE)

    async def handle(conn: Conn) -> None:
        head = await conn.head()
        path = _path(head)
        if path == "/files/rates-gb.bin.sig":
            await conn.send(response("200 OK", signature, "application/octet-stream"))
        elif path == "/files/rates-gb.bin":
            if not slow:
                await conn.send(response("200 OK", served, "application/octet-stream"))
                return
            await conn.send(
                response("200 OK", b"", "application/octet-stream").replace(
                    b"Length: 0", b"Length: %d" % len(served)
                )
            )
            for i in range(0, len(served), 1024):  # 8 KiB over ~0.4 s: about 160 kbit/s
                await asyncio.sleep(0.05)
                await conn.send(served[i : i + 1024])
        else:
            await conn.send(response("404 Not Found"))

    return handle


def test_a_signed_download_passes_and_its_throughput_is_measured(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, DOWNLOAD, _file_origin(pki, FILE)))
    assert result.outcome == Outcome.PASS, result.detail
    assert result.evidence.kbps is not None and result.evidence.kbps > 384
    assert "! signature of /files/rates-gb.bin verified" in result.evidence.transcript
    assert sum(line.startswith("> CONNECT ") for line in result.evidence.transcript) == 2  # file, then .sig


def test_a_download_with_one_byte_altered_fails_its_signature_and_is_tampered(
    pki: PKI, tmp_path: Path
) -> None:
    altered = FILE[:100] + bytes([FILE[100] ^ 1]) + FILE[101:]
    result = run(_probe(pki, tmp_path, DOWNLOAD, _file_origin(pki, altered)))
    assert result.outcome == Outcome.TAMPERED, result.detail
    assert "Ed25519 signature of /files/rates-gb.bin" in result.detail


def test_a_download_below_the_guides_floor_is_degraded(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, DOWNLOAD, _file_origin(pki, FILE, slow=True)))
    assert result.outcome == Outcome.DEGRADED, result.detail
    assert result.evidence.kbps is not None and result.evidence.kbps < 384
    assert "below the guide's 384 kbit/s floor" in result.detail


# -- transactions and the journal ------------------------------------------------------------------

TRANSACTIONS = ep("transactions", "https://cometservp1.pb.com/")


class Backend:
    """A funds server that stores uploads and answers a receipt (or, when `drop`, closes instead)."""

    def __init__(self) -> None:
        self.drop = False
        self.partial = False
        self.uploads: list[list[str]] = []

    def handler(self) -> Handler:
        async def route(head: bytes, body: bytes) -> bytes | None:
            meter, records = msg.parse_transaction_upload(body)
            ids = [r.id for r in records]
            self.uploads.append(ids)
            if self.drop:
                return None
            named = ids[:1] if self.partial else ids
            return response("200 OK", msg.transaction_receipt(meter, named), "application/xml")

        return http_origin(route)


def test_an_upload_whose_receipt_is_lost_keeps_its_record_and_the_next_upload_clears_it_once(
    pki: PKI, tmp_path: Path
) -> None:
    backend = Backend()
    backend.drop = True
    lost = run(_probe(pki, tmp_path, TRANSACTIONS, backend.handler()))
    assert lost.outcome == Outcome.RESET, lost.detail
    with make_device(pki, MapResolver(), tmp_path) as d:
        kept = [r.id for r in d.journal.pending()]
    assert len(kept) == 1 and backend.uploads == [kept]  # stored by the back end, still in the journal

    backend.drop = False
    done = run(_probe(pki, tmp_path, TRANSACTIONS, backend.handler()))
    assert done.outcome == Outcome.PASS, done.detail
    assert backend.uploads[1] == kept  # the same record, sent once more, once
    with make_device(pki, MapResolver(), tmp_path) as d:
        assert d.journal.count() == 0


def test_a_receipt_naming_only_some_records_deletes_only_those(pki: PKI, tmp_path: Path) -> None:
    async def three_records(d: Device) -> None:
        for _ in range(3):
            d.journal.add()

    backend = Backend()
    backend.partial = True
    result = run(_probe(pki, tmp_path, TRANSACTIONS, backend.handler(), device=three_records))
    assert result.outcome == Outcome.TAMPERED and "1 of 3 records named" in result.detail
    with make_device(pki, MapResolver(), tmp_path) as d:
        assert [r.id for r in d.journal.pending()] == backend.uploads[0][1:]


def test_a_block_page_instead_of_a_receipt_deletes_nothing(pki: PKI, tmp_path: Path) -> None:
    async def block(head: bytes, body: bytes) -> bytes:
        return response("200 OK", b"<html><title>Blocked by WebFilter</title></html>", "text/html")

    result = run(_probe(pki, tmp_path, TRANSACTIONS, http_origin(block)))
    assert result.outcome == Outcome.TAMPERED and "Blocked by WebFilter" in result.detail
    with make_device(pki, MapResolver(), tmp_path) as d:
        assert d.journal.count() == 1


# -- pages and the connectivity check ----------------------------------------------------------------

PROBE_204 = ep("generate_204", "http://connectivitycheck.gstatic.com/generate_204")


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", Outcome.PASS),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            Outcome.PASS,
        ),  # AOSP: empty 200 = 204
        (
            response("200 OK", b"<html><title>Sign in</title></html>", "text/html"),
            Outcome.TAMPERED,
        ),  # a portal
        (
            response("302 Found", extra="Location: http://portal.corp/\r\n"),
            Outcome.TAMPERED,
        ),  # portal redirect
        (response("403 Forbidden", b"<title>Blocked</title>", "text/html"), Outcome.REFUSED),  # web filter
        (response("503 Service Unavailable"), Outcome.REFUSED),
    ],
)
def test_generate_204_follows_the_aosp_network_monitor_rule(
    pki: PKI, tmp_path: Path, answer: bytes, outcome: Outcome
) -> None:
    async def route(head: bytes, body: bytes) -> bytes:
        return answer

    result = run(_probe(pki, tmp_path, PROBE_204, http_origin(route)))
    assert result.outcome == outcome, result.detail


HELP = ep("help_page", "http://eureka.pitneybowes.com/sendpro-c-series/gb/SV63242-gb-help/Default.htm")


def test_the_help_page_passes_with_its_marker_and_a_block_page_is_tampered(pki: PKI, tmp_path: Path) -> None:
    async def real(head: bytes, body: bytes) -> bytes:
        return response("200 OK", msg.help_page(), "text/html")

    async def block(head: bytes, body: bytes) -> bytes:
        return response("200 OK", b"<html><title>Access to this site is blocked</title></html>", "text/html")

    assert run(_probe(pki, tmp_path, HELP, http_origin(real))).outcome == Outcome.PASS
    blocked = run(_probe(pki, tmp_path, HELP, http_origin(block)))
    assert blocked.outcome == Outcome.TAMPERED and "Access to this site is blocked" in blocked.detail


def test_a_web_filter_403_on_a_plain_http_get_is_refused(pki: PKI, tmp_path: Path) -> None:
    async def filtered(head: bytes, body: bytes) -> bytes:
        return response("403 Forbidden", b"<html><title>Remote access blocked</title></html>", "text/html")

    result = run(_probe(pki, tmp_path, HELP, http_origin(filtered)))
    assert result.outcome == Outcome.REFUSED, result.detail
    assert "403 Forbidden" in result.detail and "Remote access blocked" in result.detail
    assert result.evidence.http_status == 403


def test_an_xml_exchange_checks_the_answer_names_this_meter(pki: PKI, tmp_path: Path) -> None:
    async def other_meter(head: bytes, body: bytes) -> bytes:
        return response("200 OK", msg.refill_response("OTHER-1", "100.00"), "application/xml")

    async def chunked_ok(head: bytes, body: bytes) -> bytes:
        xml = msg.refill_response("PBLAB-0001", "100.00")
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(xml), xml)
        )

    refill = ep("refill", "https://decometlb20.pb.com/")
    wrong = run(_probe(pki, tmp_path, refill, http_origin(other_meter)))
    assert wrong.outcome == Outcome.TAMPERED and 'meter="OTHER-1"' in wrong.detail
    assert run(_probe(pki, tmp_path, refill, http_origin(chunked_ok))).outcome == Outcome.PASS


def test_an_origin_that_cuts_the_answer_short_is_a_reset(pki: PKI, tmp_path: Path) -> None:
    async def cut(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<AuthResp"

    result = run(
        _probe(
            pki, tmp_path, ep("authenticate", "https://distservp1.pb.com/csd/dstproduct"), http_origin(cut)
        )
    )
    assert result.outcome == Outcome.RESET, result.detail
    assert "POST /csd/dstproduct" in result.detail


# -- raw TCP -------------------------------------------------------------------------------------------

TEAMVIEWER = ep("teamviewer", "tcp://master3.teamviewer.com:5938")


def _teamviewer(*, cut_when_idle: bool) -> Handler:
    async def handle(conn: Conn) -> None:
        line = await asyncio.wait_for(conn.reader.readline(), 2)
        msg.parse_teamviewer_hello(line)
        await conn.send(msg.teamviewer_ok("TV1"))
        if cut_when_idle:  # an idle-timeout proxy: the tunnel is closed while the session waits
            return
        ping = await asyncio.wait_for(conn.reader.readline(), 2)
        if ping == msg.TV_PING:
            await conn.send(msg.TV_PONG)

    return handle


def test_a_teamviewer_session_held_idle_answers_its_ping(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, TEAMVIEWER, _teamviewer(cut_when_idle=False), teamviewer_hold_s=0.1))
    assert result.outcome == Outcome.PASS, result.detail


def test_a_teamviewer_session_cut_while_idle_is_a_reset(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, TEAMVIEWER, _teamviewer(cut_when_idle=True), teamviewer_hold_s=0.1))
    assert result.outcome == Outcome.RESET, result.detail
    # The device reads while it holds the session, so the cut is seen when it comes, not at the PING.
    assert "while holding TeamViewer session TV1 quiet" in result.detail and "of a 0.1 s hold" in result.detail


def test_a_web_filter_answering_the_raw_protocol_with_http_403_is_refused(pki: PKI, tmp_path: Path) -> None:
    async def filtered(conn: Conn) -> None:
        await asyncio.wait_for(conn.reader.readline(), 2)
        await conn.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    result = run(_probe(pki, tmp_path, ep("mtalk", "tcp://mobile-gtalk.l.google.com:5228"), filtered))
    assert result.outcome == Outcome.REFUSED, result.detail
