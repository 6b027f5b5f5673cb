"""The sans-IO CONNECT parser: feed bytes, get a ConnectRequest, None (need more) or the status to answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.proxy.events import ConnectRequest
from proxy_lab.proxy.parse import parse_authority, parse_connect, sniff_foreign


def test_a_well_formed_connect_is_parsed_and_its_size_reported() -> None:
    data = b"CONNECT distservp1.pb.com:443 HTTP/1.1\r\nHost: distservp1.pb.com:443\r\n\r\n"
    request, size = parse_connect(data + b"\x16\x03\x01")  # TLS bytes pipelined after the head
    assert request == ConnectRequest(
        "distservp1.pb.com", 443, (("Host", "distservp1.pb.com:443"),), "HTTP/1.1"
    )
    assert size == len(data)


def test_the_head_arrives_byte_by_byte_and_is_parsed_only_when_complete() -> None:
    data = b"CONNECT echo.lab.test:5938 HTTP/1.0\r\nUser-Agent: meter\r\n\r\n"
    for i in range(1, len(data)):
        assert parse_connect(data[:i]) is None, data[:i]
    request, size = parse_connect(data)
    assert (request.host, request.port, request.version, size) == (
        "echo.lab.test",
        5938,
        "HTTP/1.0",
        len(data),
    )


def test_empty_lines_before_the_request_line_are_skipped_as_rfc_9112_allows() -> None:
    data = b"\r\n\r\nCONNECT a.test:80 HTTP/1.1\r\n\r\n"
    request, size = parse_connect(data)
    assert (request.host, request.port, size) == ("a.test", 80, len(data))


def test_bare_lf_line_ends_are_accepted() -> None:
    request, _ = parse_connect(b"CONNECT a.test:80 HTTP/1.1\nHost: a.test\n\n")
    assert request.get("host") == "a.test"


def test_host_names_are_lower_cased_and_ipv6_literals_lose_their_brackets() -> None:
    assert parse_authority("DistServP1.PB.com:443") == ("distservp1.pb.com", 443)
    assert parse_authority("[::1]:443") == ("::1", 443)
    assert parse_authority("[2001:db8::1]:5938") == ("2001:db8::1", 5938)
    assert parse_authority("192.0.2.7:80") == ("192.0.2.7", 80)
    assert ConnectRequest("::1", 443).authority == "[::1]:443"


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("distservp1.pb.com", "no port"),  # port elided: RFC 9110 §9.3.6 "There is no default port"
        ("distservp1.pb.com:", "empty or invalid port"),
        ("distservp1.pb.com:0", "outside 1-65535"),
        ("distservp1.pb.com:65536", "outside 1-65535"),
        ("distservp1.pb.com:443a", "invalid port"),
        ("distservp1.pb.com:+443", "invalid port"),
        ("::1:443", "must be bracketed"),  # IPv6 literal without brackets
        ("[::1]", "no port"),
        ("[::1:443", "without closing"),
        ("[not-v6]:443", "not an IPv6 address"),
        (":443", "no valid host"),
        ("https://distservp1.pb.com:443", "not authority-form"),  # absolute URI where host:port belongs
        ("user@distservp1.pb.com:443", "not authority-form"),  # userinfo is not allowed in authority-form
        ("/index.html", "not authority-form"),  # origin-form
    ],
)
def test_a_bad_authority_is_answered_with_400(target: str, said: str) -> None:
    with pytest.raises(RemoteProtocolError, match=said) as info:
        parse_connect(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    assert info.value.error_status_hint == 400


@pytest.mark.parametrize(
    ("data", "status", "said"),
    [
        (
            b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
            405,
            "only tunnels with CONNECT",
        ),  # absolute-form GET
        (b"connect a.test:443 HTTP/1.1\r\n\r\n", 405, "method connect"),  # methods are case-sensitive
        (b"POST / HTTP/1.1\r\n\r\n", 405, "method POST"),
        (b"CONNECT a.test:443 HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 is not supported"),
        (b"CONNECT a.test:443\r\n\r\n", 400, "malformed request line"),  # HTTP/0.9 style, no version
        (b"CONNECT a.test:443 FOO/1.1\r\n\r\n", 400, "no HTTP version"),
        (b"CONNECT  a.test:443 HTTP/1.1\r\n\r\n", 400, "malformed request line"),  # two spaces
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP/2.0"),  # HTTP/2 prior-knowledge preface
        (b"CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400, "has no content"),  # a body
        (b"CONNECT a.test:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer-Encoding"),
        (b"CONNECT a.test:443 HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, "invalid Content-Length"),
        (b"CONNECT a.test:443 HTTP/1.1\r\n Folded: yes\r\n\r\n", 400, "line folding"),  # obs-fold
        (b"CONNECT a.test:443 HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, "malformed header"),
        (b"CON\xffNECT a.test:443 HTTP/1.1\r\n\r\n", 400, "not ASCII"),
    ],
)
def test_a_request_that_is_not_a_plain_connect_gets_the_matching_status(
    data: bytes, status: int, said: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=said) as info:
        parse_connect(data)
    assert info.value.error_status_hint == status


def test_digits_that_are_not_ascii_are_not_a_port() -> None:
    with pytest.raises(RemoteProtocolError, match="invalid port"):
        parse_authority("distservp1.pb.com:\u0664\u0664\u0663")  # Arabic-Indic 443: isdigit() but not ASCII


def test_content_length_zero_is_not_a_body() -> None:
    request, _ = parse_connect(b"CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert request.port == 443


@pytest.mark.parametrize(
    ("first_bytes", "said"),
    [
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            "TLS ClientHello",
        ),  # TLS ClientHello sent before CONNECT
        (b"\x05\x01\x00", "SOCKS5 greeting"),  # SOCKS5: version 5, one method, no auth
        (b"\x04\x01\x01\xbb\x7f\x00\x00\x01meter\x00", "SOCKS4 request"),  # SOCKS4 CONNECT 127.0.0.1:443
        (b"\x00\x00\x00", "binary data"),  # NUL bytes
    ],
)
def test_a_foreign_protocol_is_rejected_from_its_first_byte(first_bytes: bytes, said: str) -> None:
    assert said in (sniff_foreign(first_bytes) or "")
    with pytest.raises(RemoteProtocolError, match=said) as info:
        parse_connect(first_bytes[:1])  # one byte is enough to tell
    assert info.value.error_status_hint == 400


def test_text_that_could_start_a_request_line_is_not_called_foreign() -> None:
    assert sniff_foreign(b"C") is None
    assert sniff_foreign(b"") is None


def test_a_request_line_longer_than_the_limit_is_answered_with_414_before_its_end_arrives() -> None:
    data = b"CONNECT " + b"a" * 100 + b".test:443"  # no line end yet
    with pytest.raises(RemoteProtocolError) as info:
        parse_connect(data, max_request_line=64)
    assert info.value.error_status_hint == 414
    assert parse_connect(data, max_request_line=8192) is None  # negative control: within the limit, wait


def test_a_header_section_larger_than_the_limit_is_answered_with_431() -> None:
    data = b"CONNECT a.test:443 HTTP/1.1\r\n" + b"X-Filler: " + b"x" * 200 + b"\r\n"
    with pytest.raises(RemoteProtocolError) as info:
        parse_connect(data, max_header_bytes=128)
    assert info.value.error_status_hint == 431
    assert parse_connect(data, max_header_bytes=4096) is None  # negative control


def test_connect_request_validates_itself() -> None:
    with pytest.raises(ValueError, match="port"):
        ConnectRequest("a.test", 0)
    with pytest.raises(ValueError, match="version"):
        ConnectRequest("a.test", 443, version="HTTP/2")
    with pytest.raises(ValueError, match="header name"):
        ConnectRequest("a.test", 443, (("Bad Name", "x"),))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_request_need_more_or_a_status_never_another_exception(data: bytes) -> None:
    try:
        parsed = parse_connect(data, max_request_line=128, max_header_bytes=256)
    except RemoteProtocolError as exc:
        assert exc.error_status_hint in (400, 405, 414, 431, 505)
        return
    if parsed is not None:
        request, size = parsed
        assert 0 < size <= len(data) and 0 < request.port < 65536


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9.\-]{1,20}", fullmatch=True), st.integers(1, 65535), st.binary(max_size=40))
def test_any_valid_authority_round_trips_and_trailing_bytes_are_left_for_the_tunnel(
    host: str, port: int, tail: bytes
) -> None:
    head = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    parsed = parse_connect(head + tail)
    assert parsed is not None
    request, size = parsed
    assert (request.host, request.port, size) == (host.lower(), port, len(head))
