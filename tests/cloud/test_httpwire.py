"""proxy_lab.cloud.httpwire: the cloud's side of HTTP/1.1 on h11, read like a script (bytes in, requests
and answer bytes out), no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_lab.cloud.httpwire import HttpWire, Request, Response, text_response
from proxy_lab.errors import RemoteProtocolError


def read_one(data: bytes, **kw: int) -> HttpWire:
    wire = HttpWire(**kw)
    wire.feed(data)
    return wire


def requests_in(wire: HttpWire) -> list[Request]:
    """Every request the wire gives, each answered 200 so that the next one is read."""
    out = []
    while (req := wire.next_request()) is not None:
        out.append(req)
        wire.respond(Response(200, b"ok", "text/plain"))
    return out


def test_a_content_length_body_is_returned_once_complete() -> None:
    wire = HttpWire()
    wire.feed(b"POST / HTTP/1.1\r\nHost: a.pb.com\r\nContent-Length: 5\r\n\r\nab")
    assert wire.next_request() is None  # body incomplete
    assert wire.in_request
    wire.feed(b"cde")
    req = wire.next_request()
    assert req is not None
    assert (req.method, req.target, req.body, req.chunked) == ("POST", "/", b"abcde", False)
    assert req.host == "a.pb.com"
    assert wire.next_request() is None


def test_a_chunked_body_with_extensions_and_trailer_is_decoded() -> None:
    # Pitney Bowes' DM Series Networking Guide: the meter posts XML with chunked transfer coding;
    # chunk extensions and trailer fields are legal (RFC 9112 §7.1.1, §7.1.2).
    wire = read_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\n<a/\r\n"
        b"1\r\n>\r\n"
        b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    req = wire.next_request()
    assert req is not None and req.body == b"<a/>" and req.chunked


def test_a_chunked_body_fed_one_byte_at_a_time_is_decoded() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    wire = HttpWire()
    got = []
    for i in range(len(raw)):
        wire.feed(raw[i : i + 1])
        req = wire.next_request()
        if req is not None:
            got.append(req)
    assert [r.body for r in got] == [b"hello world"]


def test_a_chunked_body_made_only_of_the_last_chunk_is_empty() -> None:
    req = read_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ).next_request()
    assert req is not None and req.body == b""


def test_pipelined_requests_come_out_in_order_each_once_the_last_is_answered() -> None:
    wire = read_one(
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b?x=1 HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    first = wire.next_request()
    assert first is not None and first.path == "/a"
    assert wire.next_request() is None  # /b waits until /a is answered
    wire.respond(Response(200))
    assert [(r.path, r.query) for r in requests_in(wire)] == [("/b", "x=1"), ("/c", "")]


def test_an_absolute_form_target_overrides_the_host_header() -> None:
    # RFC 9112 §3.2.2: the origin server MUST ignore Host and use the target's host.
    req = read_one(b"GET http://Microsoft.com/x?y HTTP/1.1\r\nHost: other\r\n\r\n").next_request()
    assert req is not None and (req.host, req.path, req.query) == ("microsoft.com", "/x", "y")


def test_the_host_header_loses_its_port_and_case() -> None:
    req = read_one(b"GET / HTTP/1.1\r\nHost: DistServP1.PB.com:443\r\n\r\n").next_request()
    assert req is not None and req.host == "distservp1.pb.com"


def test_header_names_keep_the_case_they_were_sent_in() -> None:
    req = read_one(b"GET / HTTP/1.1\r\nHost: a\r\nX-Meter-ID: PBLAB-0001\r\n\r\n").next_request()
    assert req is not None and ("X-Meter-ID", "PBLAB-0001") in req.headers
    assert req.header("x-meter-id") == "PBLAB-0001"


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),  # HTTP/1.1 without Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host"),  # two Host fields
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "version"),
        (b"GET /\r\nHost: a\r\n\r\n", 400, "request line"),  # HTTP/0.9-style line
        (b"GET example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400, "origin-form"),
        (b"GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "not a URL"),  # unclosed IPv6 literal
        # request smuggling shape: both framings
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "both",
        ),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "Transfer-Encoding"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            400,
            "Content-Length",
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413, "larger than"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk header"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", 400, "chunk footer"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "target"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 17000 + b"\r\n\r\n", 431, "head larger"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 17000, 431, "head larger"),  # never ends
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "request line"),  # a TLS ClientHello
    ],
)
def test_framing_errors_carry_the_status_to_answer(raw: bytes, status: int, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        read_one(raw).next_request()
    assert info.value.error_status_hint == status


def test_a_head_just_under_the_limit_is_read_and_one_just_over_is_refused_in_any_pieces() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX: "
    for size, refused in ((1024, False), (1025, True)):
        raw = head + b"a" * (size - len(head) - 4) + b"\r\n\r\n"
        assert len(raw) == size
        for step in (len(raw), 1, 7):
            wire = HttpWire(max_head_bytes=1024)
            try:
                for i in range(0, len(raw), step):
                    wire.feed(raw[i : i + step])
                    req = wire.next_request()
            except RemoteProtocolError as exc:
                assert refused and exc.error_status_hint == 431, (size, step)
            else:
                assert not refused and req is not None, (size, step)


def test_a_chunked_body_over_the_limit_is_413() -> None:
    wire = read_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"400\r\n"
        + b"a" * 1024
        + b"\r\n"
        b"400\r\n" + b"a" * 1024,
        max_body_bytes=1500,
    )
    with pytest.raises(RemoteProtocolError) as info:
        wire.next_request()
    assert info.value.error_status_hint == 413


def test_keep_alive_follows_version_and_connection_header() -> None:
    def answer(raw: bytes) -> tuple[bool, bytes, bool]:
        wire = read_one(raw)
        req = wire.next_request()
        assert req is not None
        out = wire.respond(Response(200, b"x", "text/plain"))
        return req.keep_alive, out, wire.must_close

    keep, out, closes = answer(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert keep and not closes and b"Connection" not in out
    keep, out, closes = answer(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert not keep and closes and b"Connection: close\r\n" in out
    # h11 does not keep HTTP/1.0 connections alive, with or without `Connection: keep-alive`
    for raw in (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"):
        keep, out, closes = answer(raw)
        assert not keep and closes and b"Connection: close\r\n" in out


def test_expect_100_continue_is_offered_once_while_the_body_is_awaited() -> None:
    wire = read_one(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert wire.next_request() is None
    assert wire.take_expect_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert wire.take_expect_continue() == b""
    wire.feed(b"ok")
    req = wire.next_request()
    assert req is not None and req.body == b"ok"


def test_no_100_continue_is_offered_when_nobody_asked() -> None:
    wire = read_one(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
    assert wire.next_request() is None
    assert wire.take_expect_continue() == b""


def test_a_204_is_written_without_content_length_and_a_head_answer_without_body() -> None:
    wire = read_one(b"GET /generate_204 HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert wire.next_request() is not None
    raw = wire.respond(Response(204), date="Sun, 06 Dec 2026 02:00:00 GMT")
    assert raw.startswith(b"HTTP/1.1 204 No Content\r\n") and b"Content-Length" not in raw
    assert b"Date: Sun, 06 Dec 2026 02:00:00 GMT\r\n" in raw and b"Server: proxy-lab-cloud\r\n" in raw
    head_req = wire.next_request()
    assert head_req is not None and head_req.method == "HEAD"
    head = wire.respond(Response(200, b"hello", "text/plain"))
    assert b"Content-Length: 5\r\n" in head and head.endswith(b"\r\n\r\n")


def test_a_refusal_before_any_request_is_answered_and_closes() -> None:
    wire = read_one(b"NOT HTTP\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        wire.next_request()
    raw = wire.refuse(info.value.error_status_hint, "why")
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert raw.endswith(b"Connection: close\r\n\r\nwhy\n") and wire.must_close


def test_a_refused_head_request_gets_the_error_head_without_its_body() -> None:
    wire = read_one(b"HEAD / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 2000 + b"\r\n\r\n", max_head_bytes=1024)
    with pytest.raises(RemoteProtocolError) as info:
        wire.next_request()
    raw = wire.refuse(info.value.error_status_hint, "too large")
    assert raw.startswith(b"HTTP/1.1 431 ") and raw.endswith(b"Connection: close\r\n\r\n")


def test_a_text_response_ends_its_body_with_one_newline() -> None:
    assert text_response(400, "why\n\n").body == b"why\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_the_wire_raises_only_remote_protocol_errors_on_arbitrary_bytes(pieces: list[bytes]) -> None:
    wire = HttpWire()
    try:
        for piece in pieces:
            wire.feed(piece)
            requests_in(wire)
    except RemoteProtocolError:
        pass
