"""The cloud's HTTP/1.1 server over real sockets: keep-alive, chunked bodies, framing errors, timeouts."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from proxy_lab.catalog import Catalog
from proxy_lab.cloud import Cloud
from proxy_lab.pki import PKI
from proxy_lab.protocol import messages as m
from tests.cloud.cloud_testclient import LoopThread, connect, exchange, parse_reply, read_all, request_bytes

METER = "PBLAB-0001"
IDLE_S = 0.5


@pytest.fixture(scope="module")
def impatient_cloud(pki: PKI, catalog: Catalog, loop_thread: LoopThread) -> Iterator[Cloud]:
    """A cloud of its own whose connections time out after IDLE_S seconds without traffic."""
    cloud = Cloud(pki, catalog, idle_timeout_s=IDLE_S)
    loop_thread.run(cloud.start())
    yield cloud
    loop_thread.run(cloud.stop())


def test_a_chunked_xml_body_is_accepted_like_the_dm_series_sends_it(cloud: Cloud, pki: PKI) -> None:
    # Pitney Bowes' DM Series Networking Guide: those meters post XML with chunked transfer coding,
    # empty chunks included; the cloud decodes it rather than answering 411.
    body = m.transaction_upload(METER, ["C1", "C2"])
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 40]), body[i : i + 40]) for i in range(0, len(body), 40)
    )
    raw = (
        b"POST / HTTP/1.1\r\nHost: cometservp1.pb.com\r\nContent-Type: application/xml\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    reply = parse_reply(
        exchange(
            cloud.resolver.lookup("cometservp1.pb.com", 443),
            raw,
            tls=pki.device_context(),
            sni="cometservp1.pb.com",
        )
    )
    assert reply.status == 200
    assert m.parse_receipt(reply.body) == ["C1", "C2"]


def test_keep_alive_serves_several_requests_on_one_connection(cloud: Cloud, pki: PKI) -> None:
    host = "www.gstatic.com"
    with connect(cloud.resolver.lookup(host, 443), tls=pki.device_context(), sni=host) as sock:
        sock.sendall(
            request_bytes("GET", "/", host, close=False) + request_bytes("GET", "/", host, close=True)
        )
        raw = read_all(sock)
    first = parse_reply(raw)
    second = parse_reply(first.rest)
    assert first.status == 200 and second.status == 200
    assert first.header("connection") is None and second.header("connection") == "close"
    assert cloud.state.requests[host] == 2


def test_a_framing_error_is_answered_with_its_status_and_the_connection_closed(cloud: Cloud) -> None:
    raw = exchange(
        cloud.addresses["http"],
        b"POST /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n"
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    reply = parse_reply(raw)
    assert reply.status == 400
    assert reply.header("connection") == "close"
    assert b"both Transfer-Encoding and Content-Length" in reply.body


def test_a_request_with_an_oversized_header_section_is_431(cloud: Cloud) -> None:
    raw = exchange(
        cloud.addresses["http"],
        b"GET / HTTP/1.1\r\nHost: microsoft.com\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    )
    assert parse_reply(raw).status == 431


def test_a_body_larger_than_accepted_is_413_before_it_is_sent(cloud: Cloud) -> None:
    raw = exchange(
        cloud.addresses["http"],
        b"POST /dout.aspx?s=1&client=DynGate HTTP/1.1\r\nHost: master3.teamviewer.com\r\n"
        b"Content-Length: 2000000\r\n\r\n",
    )
    reply = parse_reply(raw)
    assert reply.status == 413 and reply.header("connection") == "close"
    assert b"2000000 bytes is larger than" in reply.body


def test_a_request_that_is_not_http_is_400_and_closed(cloud: Cloud) -> None:
    reply = parse_reply(exchange(cloud.addresses["http"], b"\x16\x03\x01\x00\x05hello"))  # a TLS record
    assert reply.status == 400 and reply.header("connection") == "close"


def test_expect_100_continue_gets_an_interim_answer_before_the_body(cloud: Cloud) -> None:
    with connect(cloud.addresses["http"]) as sock:
        sock.sendall(
            b"POST /dout.aspx?s=1&client=DynGate HTTP/1.1\r\nHost: master3.teamviewer.com\r\n"
            b"Content-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = sock.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        reply = parse_reply(read_all(sock))
    assert reply.status == 200 and reply.body == b"DYNGATE OK s=1 bytes=3"


def test_an_incomplete_request_times_out_with_408(impatient_cloud: Cloud) -> None:
    with connect(impatient_cloud.addresses["http"]) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: microsoft.com\r\n")  # no blank line: head never ends
        start = time.monotonic()
        raw = read_all(sock)
    assert parse_reply(raw).status == 408
    assert (
        time.monotonic() - start > IDLE_S * 0.9
    )  # not before the idle timeout (the socket's bounds the wait)


def test_an_idle_keep_alive_connection_is_closed_silently(impatient_cloud: Cloud) -> None:
    with connect(impatient_cloud.addresses["http"]) as sock:
        sock.sendall(request_bytes("GET", "/", "microsoft.com", close=False))
        raw = read_all(sock)  # the answer, then EOF once idle
    reply = parse_reply(raw)
    assert reply.status == 200 and reply.rest == b""


def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(cloud: Cloud) -> None:
    with connect(cloud.addresses["http"]) as sock:
        sock.sendall(request_bytes("GET", "/generate_204", "connectivitycheck.gstatic.com", close=False))
        sock.shutdown(socket.SHUT_WR)
        reply = parse_reply(read_all(sock))
    assert reply.status == 204
