"""Sans-IO SOCKS5 parsing (RFC 1928 / RFC 1929): feed bytes, check events, sizes and the answers built.

No sockets: each test reads like a script of what a client sends and what the server says back.
"""

from __future__ import annotations

import pytest

from proxy_lab.proxy.socks import (
    AddressType,
    Command,
    Greeting,
    Method,
    Reply,
    SocksProtocolError,
    SocksRequest,
    choose_method,
    greeting_bytes,
    method_selection,
    parse_greeting,
    parse_request,
    parse_userpass,
    reply,
    request_bytes,
    userpass_bytes,
    userpass_status,
)


# -- greeting -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "methods", "size"),
    [
        (b"\x05\x01\x00", (0,), 3),  # curl --socks5-hostname without credentials: no auth only
        (b"\x05\x02\x00\x02", (0, 2), 4),  # no auth or username/password
        (b"\x05\x01\x02\x05\x01\x00", (2,), 3),  # greeting followed by a pipelined request: only 3 consumed
    ],
)
def test_a_greeting_gives_the_offered_methods_and_its_size(data: bytes, methods: tuple[int, ...], size: int) -> None:
    assert parse_greeting(data) == (Greeting(methods), size)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing yet
        b"\x05",  # version only
        b"\x05\x02\x00",  # two methods announced, one arrived
    ],
)
def test_an_incomplete_greeting_needs_more_bytes(data: bytes) -> None:
    assert parse_greeting(data) is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"C", "first byte 0x43 "),  # 'C' of 'CONNECT host:443 HTTP/1.1': one byte is enough to tell
        (b"CONNECT pb-ota.redbend.com:443 HTTP/1.1\r\n", "(an HTTP request?)"),  # an HTTP client on a SOCKS port
        (b"\x04\x01\x01\xbb\x7f\x00\x00\x01\x00", "first byte 0x04"),  # SOCKS4 CONNECT
        (b"\x16\x03\x01\x02\x00", "first byte 0x16"),  # a TLS ClientHello sent straight away
        (b"\x05\x00", "offers no method"),  # NMETHODS = 0 (RFC 1928 requires 1 to 255)
    ],
)
def test_a_client_not_speaking_socks5_is_answered_05_ff_as_microsocks_does(data: bytes, why: str) -> None:
    with pytest.raises(SocksProtocolError, match=why.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")) as info:
        parse_greeting(data)
    assert info.value.answer == b"\x05\xff"


def test_the_05_ff_answer_is_not_something_an_http_client_can_read_as_a_status_line() -> None:
    answer = method_selection(Method.NO_ACCEPTABLE)
    assert answer == b"\x05\xff" and not answer.startswith(b"HTTP/")


@pytest.mark.parametrize(
    ("offered", "auth_required", "chosen"),
    [
        ((0,), False, Method.NO_AUTH),
        ((0, 2), False, Method.NO_AUTH),
        ((0, 2), True, Method.USERNAME_PASSWORD),
        ((0,), True, Method.NO_ACCEPTABLE),  # the proxy has users, the client offers none
        ((2,), False, Method.NO_ACCEPTABLE),  # only credentials offered, the proxy has no users
        ((1,), False, Method.NO_ACCEPTABLE),  # GSSAPI only
    ],
)
def test_the_server_picks_username_password_when_it_has_users_and_no_auth_otherwise(
    offered: tuple[int, ...], auth_required: bool, chosen: Method
) -> None:
    assert choose_method(Greeting(offered), auth_required=auth_required) is chosen


# -- username/password (RFC 1929) -----------------------------------------------------------------
def test_username_and_password_are_read_with_their_lengths() -> None:
    data = userpass_bytes("meter", "S3cr:et") + b"\x05"  # a request byte already follows
    parsed = parse_userpass(data)
    assert parsed is not None
    creds, size = parsed
    assert (creds.user, creds.password, size) == ("meter", "S3cr:et", len(data) - 1)
    assert "S3cr" not in repr(creds)


@pytest.mark.parametrize(
    "data",
    [
        b"\x01",  # version only
        b"\x01\x05met",  # user name cut short
        b"\x01\x05meter",  # password length missing
        b"\x01\x05meter\x06S3c",  # password cut short
    ],
)
def test_incomplete_credentials_need_more_bytes(data: bytes) -> None:
    assert parse_userpass(data) is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x05\x05meter\x06S3cret", "version 0x05"),  # a SOCKS version byte where RFC 1929 wants 0x01
        (b"\x01\x00\x06S3cret", "empty user name"),  # ULEN 0
        (b"\x01\x02\xff\xfe\x00", "not UTF-8"),  # user name bytes that are not UTF-8
    ],
)
def test_malformed_credentials_are_answered_01_01(data: bytes, why: str) -> None:
    with pytest.raises(SocksProtocolError, match=why) as info:
        parse_userpass(data)
    assert info.value.answer == userpass_status(False) == b"\x01\x01"


# -- request --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # CONNECT by name, as python-socks with rdns=True and curl --socks5-hostname send it
        (b"\x05\x01\x00\x03\x12pb-ota.redbend.com\x01\xbb", SocksRequest(1, "pb-ota.redbend.com", 443, AddressType.DOMAIN)),
        # the name is lower-cased and a trailing dot dropped
        (b"\x05\x01\x00\x03\x0fDLSDLP1.PB.COM.\x00\x50", SocksRequest(1, "dlsdlp1.pb.com", 80, AddressType.DOMAIN)),
        # CONNECT to an IPv4 address
        (b"\x05\x01\x00\x01\x7f\x00\x00\x01\x17\x32", SocksRequest(1, "127.0.0.1", 5938, AddressType.IPV4)),
        # CONNECT to an IPv6 address (::1)
        (b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x01\xbb", SocksRequest(1, "::1", 443, AddressType.IPV6)),
        # BIND is parsed; the caller answers 0x07
        (b"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x15", SocksRequest(2, "127.0.0.1", 21, AddressType.IPV4)),
    ],
)
def test_a_request_gives_command_host_and_port(data: bytes, expected: SocksRequest) -> None:
    assert parse_request(data) == (expected, len(data))


def test_request_bytes_round_trip_through_the_parser() -> None:
    for host, atyp in (("funds.pb.com", AddressType.DOMAIN), ("10.0.0.7", AddressType.IPV4), ("2001:db8::5", AddressType.IPV6)):
        data = request_bytes(host, 443, Command.CONNECT)
        assert parse_request(data + b"\x16\x03\x01") == (SocksRequest(1, host, 443, atyp), len(data))


@pytest.mark.parametrize(
    "data",
    [
        b"\x05\x01\x00",  # no address type yet
        b"\x05\x01\x00\x03",  # domain length missing
        b"\x05\x01\x00\x03\x0cfunds.pb.c",  # name cut short
        b"\x05\x01\x00\x03\x0cfunds.pb.com\x01",  # one port byte of two
        b"\x05\x01\x00\x01\x7f\x00",  # IPv4 address cut short
    ],
)
def test_an_incomplete_request_needs_more_bytes(data: bytes) -> None:
    assert parse_request(data) is None


@pytest.mark.parametrize(
    ("data", "why", "code"),
    [
        (b"\x04\x01\x00\x01\x7f\x00\x00\x01\x01\xbb", "version 0x04", Reply.GENERAL_FAILURE),  # SOCKS4 version byte
        (b"\x05\x01\x01\x01\x7f\x00\x00\x01\x01\xbb", "reserved byte 0x01", Reply.GENERAL_FAILURE),  # RSV not zero
        (b"\x05\x01\x00\x02\x7f\x00\x00\x01\x01\xbb", "address type 0x02", Reply.ADDRESS_TYPE_NOT_SUPPORTED),  # ATYP 2 is undefined
        (b"\x05\x01\x00\x03\x00\x01\xbb", "empty domain name", Reply.GENERAL_FAILURE),  # zero-length name
        (b"\x05\x01\x00\x03\x03a b\x01\xbb", "malformed domain name", Reply.GENERAL_FAILURE),  # a space in the name
        (b"\x05\x01\x00\x03\x02\xc3\xa9\x01\xbb", "not ASCII", Reply.GENERAL_FAILURE),  # 'é' as UTF-8, not an A-label
        (b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x00", "port 0", Reply.GENERAL_FAILURE),  # destination port 0
    ],
)
def test_a_malformed_request_is_answered_with_an_error_reply(data: bytes, why: str, code: Reply) -> None:
    with pytest.raises(SocksProtocolError, match=why) as info:
        parse_request(data)
    assert info.value.answer == reply(code)


# -- builders -------------------------------------------------------------------------------------
def test_replies_carry_version_code_and_the_bound_address() -> None:
    assert reply(Reply.SUCCEEDED) == b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # as mitmproxy's socks5 mode sends it
    assert reply(Reply.HOST_UNREACHABLE, ("127.0.0.1", 1080)) == b"\x05\x04\x00\x01\x7f\x00\x00\x01\x04\x38"
    assert reply(Reply.SUCCEEDED, ("::1", 443))[:4] == b"\x05\x00\x00\x04" and len(reply(Reply.SUCCEEDED, ("::1", 443))) == 22
    assert method_selection(Method.USERNAME_PASSWORD) == b"\x05\x02"
    assert userpass_status(True) == b"\x01\x00"
    assert greeting_bytes(Method.NO_AUTH, Method.USERNAME_PASSWORD) == b"\x05\x02\x00\x02"


def test_events_validate_what_they_hold() -> None:
    with pytest.raises(ValueError):
        Greeting(())
    with pytest.raises(ValueError):
        SocksRequest(1, "funds.pb.com", 70000, AddressType.DOMAIN)
    assert SocksRequest(1, "::1", 443, AddressType.IPV6).authority == "[::1]:443"
