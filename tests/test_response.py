"""The sans-IO reader of proxy and origin answers: heads, framing, chunked bodies, challenges."""

from __future__ import annotations

import pytest

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.response import (
    BodyFraming,
    BodyReader,
    NotHttpError,
    body_framing,
    parse_challenges,
    parse_response,
)


def test_a_200_answer_is_parsed_and_the_bytes_after_it_are_left_alone() -> None:
    buf = b"HTTP/1.1 200 Connection established\r\nVia: lab\r\n\r\n\x16\x03\x03"
    r = parse_response(buf)
    assert r is not None
    assert (r.version, r.status, r.reason) == ("HTTP/1.1", 200, "Connection established")
    assert buf[r.size :] == b"\x16\x03\x03"
    assert r.get("via") == "lab"


@pytest.mark.parametrize(
    "partial",
    [
        b"",  # nothing yet
        b"HT",  # the start of "HTTP/"
        b"HTTP/1.1 200 OK\r\n",  # a status line, the head not finished
        b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic",  # mid-header
    ],
)
def test_an_unfinished_head_asks_for_more_bytes(partial: bytes) -> None:
    assert parse_response(partial) is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x05\xff", "SOCKS5"),  # SOCKS5 server: "no acceptable methods" to an HTTP request
        (b"\x05\x00", "SOCKS5"),  # SOCKS5 server choosing "no authentication"
        (b"\x00\x5b\x00\x00\x00\x00\x00\x00", "SOCKS4"),  # SOCKS4 "request rejected"
        (b"\x15\x03\x01\x00\x02\x02\x46", "TLS"),  # a TLS alert: the proxy port expects TLS
        (b"SSH-2.0-OpenSSH_9.6\r\n", "SSH"),  # an SSH server on the proxy port
        (b"<html>hello</html>\r\n\r\n", "not an HTTP status line"),  # an HTTP/0.9-style body
    ],
)
def test_bytes_that_cannot_start_an_http_answer_are_rejected_at_once(data: bytes, words: str) -> None:
    with pytest.raises(NotHttpError) as info:
        parse_response(data)
    assert words in str(info.value)
    assert info.value.data == data[:64]


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/2 200\r\n\r\n",  # an HTTP/2-style status line on an HTTP/1 connection
        b"HTTP/1.1 2000 OK\r\n\r\n",  # four-digit status
        b"HTTP/1.1 OK\r\n\r\n",  # no status code
        b"HTTP/3.0 200 OK\r\n\r\n",  # a version no HTTP/1 peer sends
    ],
)
def test_a_malformed_status_line_is_not_http(data: bytes) -> None:
    with pytest.raises(NotHttpError):
        parse_response(data)


def test_a_malformed_header_line_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_response(b"HTTP/1.1 403 Forbidden\r\nno colon here\r\n\r\n")


def test_http_1_0_without_keep_alive_closes_and_http_1_1_persists_unless_told() -> None:
    r10 = parse_response(b"HTTP/1.0 407 Auth\r\n\r\n")
    r11 = parse_response(b"HTTP/1.1 407 Auth\r\n\r\n")
    r11c = parse_response(b"HTTP/1.1 407 Auth\r\nConnection: Close\r\n\r\n")
    r10k = parse_response(b"HTTP/1.0 407 Auth\r\nConnection: keep-alive\r\n\r\n")
    assert r10 and r11 and r11c and r10k
    assert (r10.keeps_alive, r11.keeps_alive, r11c.keeps_alive, r10k.keeps_alive) == (
        False,
        True,
        False,
        True,
    )


def test_a_200_to_connect_has_no_body_even_with_framing_headers() -> None:
    # RFC 9110 §9.3.6: "A client MUST ignore any Content-Length or Transfer-Encoding header fields
    # received in a successful response to CONNECT."
    for extra in (b"Content-Length: 10\r\n", b"Transfer-Encoding: chunked\r\n"):
        r = parse_response(b"HTTP/1.1 200 OK\r\n" + extra + b"\r\n")
        assert r is not None
        assert body_framing(r, method="CONNECT") == BodyFraming("none")
    # negative control: the same header on a GET answer frames a body
    r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert r is not None and body_framing(r, method="GET") == BodyFraming("length", 10)


def test_a_refused_connect_is_framed_like_any_other_response() -> None:
    r = parse_response(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\n")
    assert r is not None and body_framing(r, method="CONNECT") == BodyFraming("length", 5)
    r = parse_response(b"HTTP/1.1 403 Forbidden\r\n\r\n")
    assert r is not None and body_framing(r, method="CONNECT") == BodyFraming("close")
    r = parse_response(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
    assert r is not None and body_framing(r, method="GET") == BodyFraming("none")


def test_differing_content_lengths_are_rejected() -> None:
    r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
    assert r is not None
    with pytest.raises(RemoteProtocolError):
        body_framing(r, method="GET")


def test_a_content_length_body_ends_at_its_length_even_fed_byte_by_byte() -> None:
    reader = BodyReader(BodyFraming("length", 5))
    for b in b"hello world":
        reader.feed(bytes([b]))
    assert reader.done and bytes(reader.body) == b"hello" and bytes(reader.rest) == b" world"


def test_a_chunked_body_with_extensions_and_trailers_is_decoded_in_any_split() -> None:
    wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    for split in range(1, len(wire)):
        reader = BodyReader(BodyFraming("chunked"))
        reader.feed(wire[:split])
        reader.feed(wire[split:])
        assert reader.done, split
        assert bytes(reader.body) == b"hello world"
        assert bytes(reader.rest) == b"NEXT"


@pytest.mark.parametrize(
    "wire",
    [
        b"zz\r\nhello\r\n",  # chunk size is not hex
        b"5\r\nhelloXX0\r\n\r\n",  # chunk data not followed by CRLF
    ],
)
def test_a_malformed_chunked_body_is_a_protocol_error(wire: bytes) -> None:
    reader = BodyReader(BodyFraming("chunked"))
    with pytest.raises(RemoteProtocolError):
        reader.feed(wire)


def test_eof_inside_a_framed_body_is_a_cut_but_ends_a_read_to_close_body() -> None:
    short = BodyReader(BodyFraming("length", 10))
    short.feed(b"abc")
    with pytest.raises(RemoteProtocolError, match="3 of 10"):
        short.eof()
    to_close = BodyReader(BodyFraming("close"))
    to_close.feed(b"abc")
    to_close.eof()
    assert to_close.done and bytes(to_close.body) == b"abc"


def test_a_body_over_the_limit_is_refused() -> None:
    reader = BodyReader(BodyFraming("close"), limit=4)
    with pytest.raises(RemoteProtocolError):
        reader.feed(b"12345")


@pytest.mark.parametrize(
    ("values", "schemes"),
    [
        (['Basic realm="lab"'], ["Basic"]),
        (["NTLM", "Negotiate"], ["NTLM", "Negotiate"]),  # two header fields (Squid, IIS)
        (['Negotiate, NTLM, Basic realm="corp, inc", charset="UTF-8"'], ["Negotiate", "NTLM", "Basic"]),
        (["NTLM TlRMTVNTUAACAAAA=="], ["NTLM"]),  # second-leg challenge with a token68
        (['Digest realm="x", nonce="a,b", qop="auth", basic realm="y"'], ["Digest", "basic"]),
        ([""], []),  # an empty field offers nothing
    ],
)
def test_proxy_authenticate_fields_are_split_into_challenges(values: list[str], schemes: list[str]) -> None:
    assert [c.scheme for c in parse_challenges(values)] == schemes


def test_challenge_parameters_keep_commas_inside_quotes() -> None:
    (neg, ntlm, basic) = parse_challenges(['Negotiate, NTLM, Basic realm="corp, inc", charset="UTF-8"'])
    assert basic.param("realm") == "corp, inc" and basic.param("CHARSET") == "UTF-8"
    assert neg.params == () and ntlm.token68 == ""


def test_a_status_code_below_100_is_a_protocol_error_not_a_value_error() -> None:
    from proxy_lab.errors import RemoteProtocolError
    from proxy_lab.response import parse_response

    with pytest.raises(RemoteProtocolError, match="status code 000"):
        parse_response(b"HTTP/1.0 000\n\n")  # found by make fuzz (chain.AnswerReader): was ValueError
    assert parse_response(b"HTTP/1.0 100 Continue\r\n\r\n") is not None  # negative control: 100 is a status
