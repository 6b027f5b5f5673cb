"""proxy_lab.cloud.httpwire: request framing read like a script (bytes in, requests out), no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_lab.cloud.httpwire import RequestReader, Response, render_response, text_response
from proxy_lab.errors import RemoteProtocolError


def read_one(data: bytes, **kw: int) -> RequestReader:
    reader = RequestReader(**kw)
    reader.feed(data)
    return reader


def test_a_content_length_body_is_returned_once_complete() -> None:
    reader = RequestReader()
    reader.feed(b"POST / HTTP/1.1\r\nHost: a.pb.com\r\nContent-Length: 5\r\n\r\nab")
    assert reader.next_request() is None  # body incomplete
    reader.feed(b"cde")
    req = reader.next_request()
    assert req is not None
    assert (req.method, req.target, req.body, req.chunked) == ("POST", "/", b"abcde", False)
    assert req.host == "a.pb.com"
    assert reader.next_request() is None


def test_a_chunked_body_with_extensions_and_trailer_is_decoded() -> None:
    # DM-series meters send chunked XML bodies (reference §1.2); extensions and trailers are legal.
    reader = read_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\n<a/\r\n"
        b"1\r\n>\r\n"
        b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    req = reader.next_request()
    assert req is not None and req.body == b"<a/>" and req.chunked


def test_a_chunked_body_fed_one_byte_at_a_time_is_decoded() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    reader = RequestReader()
    got = []
    for i in range(len(raw)):
        reader.feed(raw[i : i + 1])
        req = reader.next_request()
        if req is not None:
            got.append(req)
    assert [r.body for r in got] == [b"hello world"]


def test_a_chunked_body_made_only_of_the_last_chunk_is_empty() -> None:
    req = read_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ).next_request()
    assert req is not None and req.body == b""


def test_pipelined_requests_come_out_in_order() -> None:
    reader = read_one(
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b?x=1 HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    paths = []
    while (req := reader.next_request()) is not None:
        paths.append((req.path, req.query))
    assert paths == [("/a", ""), ("/b", "x=1"), ("/c", "")]


def test_an_absolute_form_target_overrides_the_host_header() -> None:
    # RFC 9112 §3.2.2: the origin server MUST ignore Host and use the target's host.
    req = read_one(b"GET http://Microsoft.com/x?y HTTP/1.1\r\nHost: other\r\n\r\n").next_request()
    assert req is not None and (req.host, req.path, req.query) == ("microsoft.com", "/x", "y")


def test_the_host_header_loses_its_port_and_case() -> None:
    req = read_one(b"GET / HTTP/1.1\r\nHost: DistServP1.PB.com:443\r\n\r\n").next_request()
    assert req is not None and req.host == "distservp1.pb.com"


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),  # HTTP/1.1 without Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host"),  # two Host fields
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "version"),
        (b"GET /\r\nHost: a\r\n\r\n", 400, "request line"),  # HTTP/0.9-style line
        (b"GET example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400, "origin-form"),
        # request smuggling shape: both framings
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "both",
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "transfer coding"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            400,
            "Content-Length",
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413, "larger than"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk size"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", 400, "CRLF"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n", 414, "start line"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 17000 + b"\r\n\r\n", 431, "header section"),
    ],
)
def test_framing_errors_carry_the_status_to_answer(raw: bytes, status: int, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        read_one(raw).next_request()
    assert info.value.error_status_hint == status


def test_a_chunked_body_over_the_limit_is_413() -> None:
    reader = read_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"400\r\n"
        + b"a" * 1024
        + b"\r\n" * 1
        + b"400\r\n",
        max_body_bytes=1500,
    )
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_request()
    assert info.value.error_status_hint == 413


def test_keep_alive_follows_version_and_connection_header() -> None:
    def ka(raw: bytes) -> bool:
        req = read_one(raw).next_request()
        assert req is not None
        return req.keep_alive

    assert ka(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert not ka(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert not ka(b"GET / HTTP/1.0\r\n\r\n")
    assert ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")


def test_expect_100_continue_is_offered_once_while_the_body_is_awaited() -> None:
    reader = read_one(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert reader.next_request() is None
    assert reader.take_expect_continue()
    assert not reader.take_expect_continue()
    reader.feed(b"ok")
    req = reader.next_request()
    assert req is not None and req.body == b"ok"


def test_a_204_is_rendered_without_content_length_and_head_without_body() -> None:
    raw = render_response(Response(204))
    assert raw.startswith(b"HTTP/1.1 204 No Content\r\n") and b"Content-Length" not in raw
    head = render_response(Response(200, b"hello", "text/plain"), head_only=True)
    assert b"Content-Length: 5\r\n" in head and head.endswith(b"\r\n\r\n")
    assert render_response(text_response(400, "why"), close=True).endswith(b"Connection: close\r\n\r\nwhy\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_the_reader_raises_only_remote_protocol_errors_on_arbitrary_bytes(pieces: list[bytes]) -> None:
    reader = RequestReader()
    try:
        for piece in pieces:
            reader.feed(piece)
            while reader.next_request() is not None:
                pass
    except RemoteProtocolError:
        pass
