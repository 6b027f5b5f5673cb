"""`make fuzz` (`python -m bench.fuzz`): Hypothesis property tests over every sans-IO parser.

Each target is one parser (or a parser and the reader that consumes what it returns), a strategy that
mixes pure random bytes with near-valid inputs (well-formed messages built by the project's own
builders, then mutated: bytes flipped, inserted, deleted, duplicated, truncated), and a check that
calls the parser. The property for every target: the parser returns, or raises only the errors its
module declares (`RemoteProtocolError` for HTTP heads and bodies, `ValueError` for the XML and line
messages, nothing at all for `parse_proxy_authorization`, the raw-TCP sessions and the DNS zone), and
every call finishes within a per-call deadline (`signal.setitimer`: a hang is a failure, not a stall).
Several targets check more than "no crash": a valid CONNECT head's prefixes are all incomplete,
bytes after a head never change how it parses, and a request stream parses the same whatever the
chunking.

    python -m bench.fuzz                    # every target, >= 7,000 inputs each, >= 100,000 in total
    python -m bench.fuzz --examples 500     # quicker
    python -m bench.fuzz --only parse_connect --seed 1

Prints the inputs run per target, the slowest single call, the total and the time; exits 1 when
any target fails (the failing input, shrunk by Hypothesis, is printed), 2 on bad arguments.
The fast subset in `tests/hardening/test_fuzz.py` runs the same targets with a few
hundred inputs each.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import importlib
import itertools
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from proxy_lab.errors import RemoteProtocolError

MIN_TOTAL = 100_000  # inputs a default run generates at least, over all targets
MIN_PER_TARGET = 7_000
CALL_DEADLINE_S = 2.0  # one parser call; the parsers take well under a millisecond


class Hang(BaseException):
    """A parser call overran its deadline (BaseException: a parser's `except Exception` cannot eat it)."""


@contextlib.contextmanager
def call_deadline(seconds: float) -> Iterator[None]:
    """Raise `Hang` in the main thread if the body runs longer than `seconds` (SIGALRM)."""

    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"parser call still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # an outer timer (pytest-timeout's signal method) keeps running
            left = max(outer_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


# -- strategies ---------------------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes], max_ops: int = 4) -> bytes:
    """A valid input with up to `max_ops` random edits (flip, insert, delete, duplicate, truncate)."""
    data = bytearray(draw(base))
    interesting = st.sampled_from(b"\x00\r\n :\t\x7f\xff\x16\x05[]@/%,;=\"\\")
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(("flip", "insert", "delete", "duplicate", "truncate", "splice")))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(pos, len(data) - 1)] = draw(st.one_of(interesting, st.integers(0, 255)))
        elif op == "insert":
            data[pos:pos] = draw(st.one_of(st.binary(min_size=1, max_size=8), interesting.map(lambda b: bytes([b]))))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            data[pos:pos] = draw(st.sampled_from(SPLICES))
    return bytes(data)


SPLICES = (
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b"\x00",
    b"\r",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b" obs-fold\r\n",
    b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello's first bytes
    b"\x05\x01\x00",  # a SOCKS5 greeting
    b"HTTP/1.1 200 OK\r\n",
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"&a;",
    b"<x/>",
    b"]]>",
)


def _lines(start: str, headers: list[tuple[str, str]], eol: str, extra: bytes = b"") -> bytes:
    text = start + eol + "".join(f"{k}: {v}{eol}" for k, v in headers) + eol
    return text.encode("latin-1", "replace") + extra


TOKEN = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~"), min_size=1, max_size=20)
FIELD_VALUE = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.text(st.characters(max_codepoint=0xFF), max_size=40),  # control characters, NUL, CR, Latin-1
)
HEADER = st.tuples(
    st.one_of(st.sampled_from(["Host", "Proxy-Authorization", "Content-Length", "Transfer-Encoding",
                               "Connection", "Proxy-Connection", "User-Agent", "Proxy-Authenticate",
                               "X-Squid-Error", "Expect"]), TOKEN, st.text(max_size=10)),
    FIELD_VALUE,
)  # fmt: skip
EOL = st.sampled_from(["\r\n", "\r\n", "\n", "\r"])
HOSTNAME = st.one_of(
    st.sampled_from(["cometservp1.pb.com", "distservp1.pb.com", "127.0.0.1", "[::1]", "::1", "[fe80::1%eth0]",
                     "localhost", "", "[", "[]", "a@b", "a/b", "EXAMPLE.com", "xn--bcher-kva.example",
                     "[::ffff:127.0.0.1]", "1.2.3.4.5", "%00"]),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789.-"), min_size=1, max_size=30),
    st.text(max_size=20),
)  # fmt: skip
PORT = st.one_of(
    st.integers(-5, 70000).map(str),
    st.sampled_from(["", "0", "65535", "65536", "443", "0443", "４４３", "443 ", "+443", "1e3", "99999999999"]),
)
LABEL = st.builds(
    lambda first, middle, hyphen: first + (hyphen + middle if middle else ""),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), min_size=1, max_size=8),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), max_size=8),
    st.sampled_from(["", "-", "--"]),
)  # an RFC 1123 host-name label
CONNECT_HEAD = st.builds(
    lambda method, host, port, sep, version, headers, eol, extra: _lines(
        f"{method} {host}{sep}{port} {version}", headers, eol, extra
    ),
    st.one_of(st.sampled_from(["CONNECT", "CONNECT", "connect", "GET", "PRI", "OPTIONS"]), TOKEN),
    HOSTNAME,
    PORT,
    st.sampled_from([":", ":", "", "::", " :"]),
    st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "http/1.1", "HTTP/11", ""]),
    st.lists(HEADER, max_size=6),
    EOL,
    st.one_of(st.just(b""), st.binary(max_size=32)),
)
VALID_CONNECT = st.builds(
    lambda host, port, headers, eol: _lines(f"CONNECT {host}:{port} HTTP/1.1", headers, eol),
    st.one_of(st.lists(LABEL, min_size=1, max_size=4).map(".".join),
              st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]")),
    st.integers(1, 65535),
    st.lists(st.tuples(TOKEN.filter(lambda n: n.lower() not in ("content-length", "transfer-encoding")),
                       st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)), max_size=5),
    st.sampled_from(["\r\n", "\n"]),
)  # fmt: skip


def _basic(user: bytes, password: bytes, sep: bytes = b":") -> str:
    return base64.b64encode(user + sep + password).decode("ascii")


AUTH_VALUE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["S3cret:x", "S3cret:x extra", "meter:S3cret:x", "  S3cret:x"]),  # a password as the whole value
    st.builds(
        lambda scheme, ws, token, trail: f"{scheme}{ws}{token}{trail}",
        st.sampled_from(["Basic", "basic", "BASIC", "Bearer", "NTLM", "Negotiate", "Digest", "", "Basic\t", "B\u00e1sic"]),
        st.sampled_from([" ", "  ", "\t", "", " \u00a0"]),
        st.one_of(
            st.builds(
                _basic,
                st.one_of(st.text(max_size=12).map(lambda s: s.encode("utf-8")), st.binary(max_size=12)),
                st.one_of(st.text(max_size=12).map(lambda s: s.encode("utf-8")), st.binary(max_size=12)),
                st.sampled_from([b":", b":", b"", b"::", b"\x00"]),
            ),
            st.text(st.sampled_from("ABCDEFabcdef0123456789+/=-._~!@ "), max_size=40),
            st.just("Zm9vOmJhcg"),  # valid base64 without its padding
            st.just("=Zm9vOmJhcg=="),
        ),
        st.sampled_from(["", " ", "==", ",", " extra"]),
    ),
)  # fmt: skip

STATUS_LINE = st.builds(
    lambda version, code, reason: f"{version} {code} {reason}".rstrip(" ") if reason is not None else f"{version} {code}",
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "HTTP/0.9", "HTTX/1.1", "HTTP/1.1\x00"]),
    st.one_of(st.integers(0, 1200).map(str), st.sampled_from(["200", "407", "20", "2000", "abc", "-200"])),
    st.one_of(st.none(), st.sampled_from(["Connection established", "Proxy Authentication Required", "OK", ""]), st.text(max_size=20)),
)  # fmt: skip
CHALLENGE = st.one_of(
    st.sampled_from(['Basic realm="proxy-lab"', "NTLM", "Negotiate", 'Basic realm="a, b", charset="UTF-8"',
                     'Digest realm="x", nonce="abc", qop="auth"', 'Basic realm="unterminated', "Basic realm=",
                     'Newauth realm="apps", type=1, title="Login to \\"apps\\""', "Basic realm=\"x\\\"y\"", ",,,",
                     "Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXagMDAuBgorBgEEAYI3AgIKBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHqKCAUAEggE8"]),
    st.text(max_size=60),
)  # fmt: skip
RESPONSE_HEAD = st.builds(
    lambda status, challenges, headers, eol, body: _lines(
        status, [("Proxy-Authenticate", c) for c in challenges] + headers, eol, body
    ),
    STATUS_LINE,
    st.lists(CHALLENGE, max_size=3),
    st.lists(st.one_of(HEADER, st.tuples(st.sampled_from(["Content-Length", "Transfer-Encoding"]),
                                         st.sampled_from(["0", "5", "chunked", "gzip, chunked", "chunked, gzip", "5, 5",
                                                          "5, 6", "-1", "1e3", "abc", "", "\u00b2", " 5 ", "0x10"]))), max_size=5),
    EOL,
    st.one_of(st.just(b""), st.binary(max_size=40), st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"hello", b"ffffffff\r\n",
                                                                   b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\nrest"])),
)  # fmt: skip
CHUNKED_BODY = st.lists(st.binary(min_size=1, max_size=20), max_size=4).map(
    lambda parts: b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
)
REQUEST_STREAM = st.lists(
    st.builds(
        lambda method, target, version, headers, framing, body, eol: _request(method, target, version, headers, framing, body, eol),
        st.one_of(st.sampled_from(["GET", "POST", "HEAD", "PUT"]), TOKEN),
        st.one_of(st.sampled_from(["/", "/csd/dstproduct", "/generate_204", "http://distservp1.pb.com/x", "*", "x", "/?q=1"]),
                  st.text(max_size=20)),
        st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2", "FOO/1.1"]),
        st.lists(HEADER, max_size=4),
        st.sampled_from(["none", "length", "chunked", "both", "bad-length"]),
        st.binary(max_size=40),
        st.sampled_from(["\r\n", "\r\n", "\n"]),
    ),
    min_size=1,
    max_size=4,
).map(b"".join)  # fmt: skip


def _request(method: str, target: str, version: str, headers: list[tuple[str, str]], framing: str, body: bytes, eol: str) -> bytes:
    headers = [("Host", "distservp1.pb.com"), *headers]
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "bad-length":
        headers.append(("Content-Length", f"{len(body)}, {len(body) + 1}"))
    elif framing in ("chunked", "both"):
        headers.append(("Transfer-Encoding", "chunked"))
        if framing == "both":
            headers.append(("Content-Length", str(len(body))))
        body = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        body = b""
    return _lines(f"{method} {target} {version}", headers, eol, body)


def _message_seeds() -> list[bytes]:
    from proxy_lab.protocol import messages as m

    rec = m.Record("r-1", "1st", 100, "0.85", "2020-08-19")
    return [
        m.auth_request("PBLAB-0001", "sendpro-c"),
        m.auth_response("PBLAB-0001", "S123"),
        m.refill_request("PBLAB-0001", "100.00"),
        m.refill_response("PBLAB-0001", "100.00"),
        m.audit_request("PBLAB-0001", "1234.56", "99.00"),
        m.audit_response("PBLAB-0001"),
        m.psd_config_request("PBLAB-0001"),
        m.psd_config("PBLAB-0001"),
        m.transaction_upload("PBLAB-0001", [rec, "r-2", {"id": "r-3", "class": "2nd", "weight_g": 20}]),
        m.transaction_receipt("PBLAB-0001", ["r-1", "r-2"]),
        m.download_index([m.FileEntry("rates-gb.bin", 10, "ab" * 32)]),
        m.accounting_request("PBLAB-0001"),
        m.accounting_response("PBLAB-0001"),
        m.health_data("PBLAB-0001"),
        m.health_receipt("PBLAB-0001"),
        m.dyngate_in_answer("abc"),
        m.dyngate_out_answer("abc", 12),
        m.teamviewer_hello("PBLAB-0001"),
        m.teamviewer_ok("TV00000001"),
        b'<?xml version="1.0" encoding="latin-1"?><AuthRequest meter="\xe9" model="sendpro-c"/>',
        b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><AuthRequest meter="&e;" model="sendpro-c"/>',
        b'<?xml version="1.0" encoding="utf-16"?><a/>',
        b"<TransactionUpload meter='M'>" + b"<Record id='x' class='1st' weight_g='1' fee='0.00' date='2020-01-01'/>" * 3 + b"</TransactionUpload>",
    ]


def _dns_seeds() -> list[bytes]:
    from dnslib import DNSRecord

    return [
        DNSRecord.question("cometservp1.pb.com").pack(),
        DNSRecord.question("nosuch.example", "AAAA").pack(),
        DNSRecord.question("distservp1.pb.com", "ANY").pack(),
        DNSRecord.question("distservp1.pb.com").reply().pack(),
    ]


# -- checks: call the parser; return normally, raise an allowed error, or fail -----------------------
def check_parse_connect(data: bytes) -> None:
    from proxy_lab.proxy.parse import parse_connect

    try:
        result = parse_connect(data, max_request_line=256, max_header_bytes=1024)
    except RemoteProtocolError as exc:
        assert exc.error_status_hint in (400, 405, 414, 431, 505), exc.error_status_hint
        return
    if result is not None:
        request, size = result
        assert 0 < size <= len(data)
        assert 0 < request.port < 65536 and request.host
        # Bytes after a complete head belong to the tunnel and never change how the head parses.
        assert parse_connect(data + b"\x16\x03\x01garbage\r\n\r\n", max_request_line=256, max_header_bytes=1024) == result
        # A leading empty line (RFC 9112 §2.2) sends the head down the general path, not the fast
        # one: both must agree on the request.
        if not data.startswith((b"\r", b"\n")):
            again = parse_connect(b"\r\n" + data, max_request_line=256 + 2, max_header_bytes=1024 + 2)
            assert again == (request, size + 2), (again, result)


def check_valid_connect(data: bytes) -> None:
    """A well-formed CONNECT head parses; every proper prefix of it is 'need more bytes'."""
    from proxy_lab.proxy.parse import parse_connect

    result = parse_connect(data)
    assert result is not None and result[1] == len(data), (data, result)
    assert parse_connect(b"\r\n" + data) == (result[0], len(data) + 2)  # the general path agrees
    for cut in {1, len(data) // 2, len(data) - 1}:
        if 0 < cut < len(data):
            assert parse_connect(data[:cut]) is None, (data[:cut],)


def check_connect_mutated(data: bytes) -> None:
    check_parse_connect(data)


# Every reason `parse_proxy_authorization` may give: fixed words, a length, and at most a registered
# scheme name or a case variant of `Basic`. Nothing the client sent beyond that (its token, or a
# password sent as the whole header value) may appear, so the reason is safe to log.
@functools.cache
def _safe_why() -> re.Pattern[str]:
    from proxy_lab.proxy.auth import KNOWN_SCHEMES

    known = "|".join(re.escape(name) for name in KNOWN_SCHEMES.values())
    return re.compile(
        r"\A(empty Proxy-Authorization field"
        rf"|Proxy-Authorization uses scheme '(?:{known})', not Basic"
        r"|Proxy-Authorization uses an unknown scheme \(\d+ characters\), not Basic"
        r"|Proxy-Authorization scheme spelled '[Bb][Aa][Ss][Ii][Cc]'; this proxy accepts only 'Basic'"
        r"|Basic scheme without credentials|Basic credentials are not a base64 token"
        r"|Basic credentials are not valid base64|Basic credentials are not UTF-8 \(Latin-1 client\?\)"
        r"|Basic credentials have no ':' between user-id and password|Basic credentials have an empty user-id)\Z",
        re.S,
    )


def check_auth(value: str) -> None:
    from proxy_lab.proxy.auth import BasicAuth, Credentials, InvalidCredentials, parse_proxy_authorization

    safe = _safe_why()
    for lower in (True, False):
        parsed = parse_proxy_authorization(value, accept_lowercase_scheme=lower)
        assert isinstance(parsed, Credentials | InvalidCredentials)
        if isinstance(parsed, InvalidCredentials):
            assert safe.match(parsed.why), parsed.why
    auth = BasicAuth({"meter": "S3cret:x", "Other": "p"}, username_case_sensitive=False)
    result = auth.verify(value)
    assert result.ok == (result.user is not None)
    assert "S3cret" not in result.why  # the password, sent in any form, is never repeated


def check_parse_head(data: bytes) -> None:
    from proxy_lab.http1 import parse_head

    for request in (True, False):
        try:
            head = parse_head(data, max_start_line=256, max_head_bytes=1024, request=request)
        except RemoteProtocolError:
            continue
        if head is not None:
            assert 0 < head.size <= len(data)
            for name, value in head.headers:
                assert "\r" not in value and "\n" not in value and "\x00" not in value, (name, value)


def check_device_response(data: bytes) -> None:
    """The device's reader of a proxy's answer: head, framing, then the body fed in two pieces."""
    from proxy_lab.response import BodyReader, body_framing, parse_challenges, parse_response

    try:
        response = parse_response(data, max_head_bytes=2048)
    except RemoteProtocolError:
        return
    if response is None:
        return
    assert 0 < response.size <= len(data)
    parse_challenges(response.get_all("Proxy-Authenticate"))
    for method in ("CONNECT", "GET"):
        try:
            framing = body_framing(response, method=method)
        except RemoteProtocolError:
            continue
        rest = data[response.size :]
        reader = BodyReader(framing, limit=4096)
        try:
            half = len(rest) // 2
            reader.feed(rest[:half])
            reader.feed(rest[half:])
            reader.eof()
        except RemoteProtocolError:
            continue
        assert reader.done


def check_challenges(value: str) -> None:
    from proxy_lab.device.auth import basic_credentials
    from proxy_lab.response import parse_challenges

    for challenge in parse_challenges([value, value]):
        assert challenge.scheme
        basic_credentials("meter", "pässword", challenge)


def _read_all(chunks: list[bytes]) -> tuple[list[tuple[object, ...]], str | None]:
    from proxy_lab.cloud.httpwire import RequestReader

    reader = RequestReader(max_head_bytes=1024, max_body_bytes=4096)
    out: list[tuple[object, ...]] = []
    try:
        for chunk in chunks:
            reader.feed(chunk)
            for _ in range(64):  # bounded: each request consumes bytes
                request = reader.next_request()
                if request is None:
                    break
                out.append((request.method, request.target, request.version, request.headers, request.body))
                _ = (request.path, request.query, request.host, request.keep_alive)
                reader.take_expect_continue()
    except RemoteProtocolError as exc:
        return out, type(exc).__name__
    return out, None


def check_request_reader(args: tuple[bytes, list[int]]) -> None:
    """The cloud's RequestReader: the same stream parses the same whatever the chunking."""
    data, cuts = args
    whole = _read_all([data])
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert _read_all(pieces) == whole, (pieces,)
    assert _read_all([bytes([b]) for b in data[:600]]) == _read_all([data[:600]])


def check_httpsniff(args: tuple[bytes, list[int]]) -> None:
    """The faults' scanner of plain HTTP in a tunnel: never raises, and gives back every byte in order."""
    from proxy_lab.proxy.faults.httpsniff import Body, HttpScanner, MessageHead, Opaque

    data, cuts = args
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    for side in ("request", "response"):
        scanner = HttpScanner(side)  # type: ignore[arg-type]
        items = [item for piece in pieces for item in scanner.feed(piece)] + list(scanner.close())
        out = b"".join(i.raw if isinstance(i, MessageHead) else i.data for i in items if isinstance(i, MessageHead | Body | Opaque))
        assert out == data, (side, out, data)


def check_messages(data: bytes) -> None:
    from proxy_lab.protocol import messages as m

    for name in m.__all__:
        fn = getattr(m, name)
        if name.startswith("parse_") or name in ("message_root", "is_help_page"):
            try:
                fn(data)
            except ValueError:
                pass


def check_rawtcp(args: tuple[bytes, list[int]]) -> None:
    from proxy_lab.cloud.rawtcp import MtalkSession, TeamViewerSession

    data, cuts = args
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    for session in (TeamViewerSession(lambda meter: "TV00000001"), MtalkSession()):
        for piece in pieces:
            reply, close = session.feed(piece)
            assert isinstance(reply, bytes) and isinstance(close, bool)
            if close:
                assert session.feed(b"more\n") == (b"", True)
                break


def check_dns(data: bytes) -> None:
    from proxy_lab.cloud.dns import DnsZone
    from proxy_lab.cloud.state import CloudState

    zone = DnsZone(["cometservp1.pb.com", "distservp1.pb.com"], "127.0.0.1", CloudState())
    reply = zone.answer(data)
    assert reply is None or isinstance(reply, bytes | bytearray)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at `cuts` (positions modulo its length): the chunks a socket might deliver."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def check_upstream_answer(args: tuple[bytes, list[int]]) -> None:
    """The chained proxy's reader of the upstream's answer to CONNECT, fed in chunks, then its end;
    a refusal must become an answer the client can be given (status line, fields, body) or a 502."""
    from proxy_lab.proxy.chain import AnswerReader, UpstreamProxy

    data, cuts = args
    reader = AnswerReader()
    fed = 0
    try:
        answer = None
        for chunk in _split(data, cuts):
            fed += len(chunk)
            answer = reader.feed(chunk)
            if answer is not None:
                break
        if answer is None:
            answer = reader.eof()
    except RemoteProtocolError:
        return
    if answer.ok:  # what came after the head in the bytes read so far is the tunnel's, none lost
        assert data.startswith(b"HTTP/") and data[:fed].endswith(answer.extra)
        return
    refusal = answer.refusal(UpstreamProxy("127.0.0.1", 3128, "meter", _PASSWORD), "distservp1.pb.com:80")
    wire = refusal.to_bytes()
    assert wire.startswith(b"HTTP/1.") and b"\r\n\r\n" in wire
    assert _PASSWORD not in refusal.why and "\n" not in refusal.why


_PASSWORD = "Zq7-upstream-S3cret"  # long enough that a fuzzed reason never contains it by chance


def _client_hello() -> bytes:
    """A real ClientHello (OpenSSL's, with SNI), the seed of the TLS sniffers' inputs."""
    import ssl

    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="pb-ota.redbend.com")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def check_tls_sniffers(args: tuple[bytes, list[int]]) -> None:
    """The recorder's ClientHello and ServerHello sniffers, fed the same bytes in chunks: they never
    raise, stop at the first thing that is not a handshake record, and look at no more than LIMIT."""
    from proxy_lab.record.tlssniff import LIMIT, ClientHelloSniffer, ServerHelloSniffer

    data, cuts = args
    client, server = ClientHelloSniffer(), ServerHelloSniffer()
    for chunk in _split(data, cuts):
        client.feed(chunk)
        server.feed(chunk)
    assert isinstance(client.sni, str) and isinstance(server.seen.issuer, str)
    if data and data[0] != 22:
        assert client.done and server.done  # not a TLS handshake record: both stop at once
    client.feed(b"\x00" * (LIMIT + 1))
    server.feed(b"\x00" * (LIMIT + 1))
    assert client.done and server.done


@dataclass
class Target:
    """One fuzz target: a name, the strategy its inputs come from, and the check of one input."""

    name: str
    module: str  # what is under test
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]
    declared: str  # the errors the module declares, for the printout


@dataclass
class Outcome:
    name: str
    inputs: int = 0
    slowest_ms: float = 0.0
    elapsed_s: float = 0.0
    failure: str | None = None
    trace: str = ""
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _chunked(strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[tuple[bytes, list[int]]]:
    return st.tuples(strategy, st.lists(st.integers(0, 10_000), max_size=6))


def targets() -> list[Target]:
    """Every sans-IO parser of the project; SOCKS when `proxy_lab.proxy.socks` exists."""
    found = [
        Target("parse_connect", "proxy_lab.proxy.parse", st.one_of(st.binary(max_size=300), CONNECT_HEAD), check_parse_connect,
               "RemoteProtocolError (400/405/414/431/505)"),
        Target("parse_connect_mutated", "proxy_lab.proxy.parse", mutated(VALID_CONNECT), check_connect_mutated,
               "RemoteProtocolError (400/405/414/431/505)"),
        Target("parse_connect_valid", "proxy_lab.proxy.parse", VALID_CONNECT, check_valid_connect,
               "none: a valid head parses, its prefixes need more bytes"),
        Target("parse_proxy_authorization", "proxy_lab.proxy.auth", AUTH_VALUE, check_auth, "none (InvalidCredentials)"),
        Target("http1.parse_head", "proxy_lab.http1", st.one_of(st.binary(max_size=300), mutated(CONNECT_HEAD), mutated(RESPONSE_HEAD)),
               check_parse_head, "RemoteProtocolError"),
        Target("response.parse_response", "proxy_lab.response",
               st.one_of(st.binary(max_size=200), RESPONSE_HEAD, mutated(RESPONSE_HEAD)), check_device_response,
               "RemoteProtocolError (NotHttpError)"),
        Target("response.parse_challenges", "proxy_lab.response", CHALLENGE, check_challenges, "none"),
        Target("proxy.httpsniff", "proxy_lab.proxy.faults.httpsniff",
               _chunked(st.one_of(st.binary(max_size=300), REQUEST_STREAM, RESPONSE_HEAD, mutated(RESPONSE_HEAD))),
               check_httpsniff, "none (not HTTP: opaque)"),
        Target("cloud.RequestReader", "proxy_lab.cloud.httpwire",
               _chunked(st.one_of(st.binary(max_size=300), REQUEST_STREAM, mutated(REQUEST_STREAM))), check_request_reader,
               "RemoteProtocolError"),
        Target("cloud.messages", "proxy_lab.protocol.messages",
               st.one_of(st.binary(max_size=200), mutated(st.sampled_from(_message_seeds()), max_ops=6)), check_messages,
               "ValueError"),
        Target("cloud.rawtcp", "proxy_lab.cloud.rawtcp",
               _chunked(st.one_of(st.binary(max_size=300), mutated(st.sampled_from(_message_seeds()[-2:]) .map(lambda b: b * 3)))),
               check_rawtcp, "none (error line and close)"),
        Target("cloud.dns", "proxy_lab.cloud.dns", st.one_of(st.binary(max_size=100), mutated(st.sampled_from(_dns_seeds()))),
               check_dns, "none (unparsable: dropped)"),
        Target("chain.AnswerReader", "proxy_lab.proxy.chain",
               _chunked(st.one_of(st.binary(max_size=300), RESPONSE_HEAD, mutated(RESPONSE_HEAD))), check_upstream_answer,
               "RemoteProtocolError (the client gets a 502)"),
        Target("record.tlssniff", "proxy_lab.record.tlssniff",
               _chunked(st.one_of(st.binary(max_size=300), mutated(st.just(_client_hello()), max_ops=6))), check_tls_sniffers,
               "none (not TLS: done)"),
    ]  # fmt: skip
    found += _socks_targets()
    return found


def _socks_targets() -> list[Target]:
    """Targets for the SOCKS5 parser, when the module exists (it is optional while being written)."""
    try:
        socks = importlib.import_module("proxy_lab.proxy.socks")
    except ImportError:
        return []
    greeting = st.builds(
        lambda version, methods, count_delta, extra: bytes([version, max(0, min(255, len(methods) + count_delta)), *methods]) + extra,
        st.sampled_from([5, 5, 5, 4, 0x43, 0x16]), st.lists(st.integers(0, 255), max_size=8),
        st.sampled_from([0, 0, 0, -1, 1, 200]), st.binary(max_size=8),
    )
    userpass = st.builds(
        lambda version, user, password, extra: bytes([version, len(user) % 256]) + user + bytes([len(password) % 256]) + password + extra,
        st.sampled_from([1, 1, 1, 5, 0]),
        st.one_of(st.text(max_size=12).map(lambda t: t.encode("utf-8")[:255]), st.binary(max_size=12)),
        st.one_of(st.text(max_size=12).map(lambda t: t.encode("utf-8")[:255]), st.binary(max_size=12)),
        st.binary(max_size=4),
    )
    request = st.one_of(
        st.builds(
            lambda host, port, command: socks.request_bytes(host, port, command),
            st.one_of(st.ip_addresses().map(str), st.lists(LABEL, min_size=1, max_size=4).map(".".join),
                      st.sampled_from(["cometservp1.pb.com", "a" * 255, ".", "..", "EXAMPLE.COM."])),
            st.integers(1, 65535), st.sampled_from(list(socks.Command)),
        ),
        st.builds(
            lambda cmd, rsv, atyp, addr, port: bytes([5, cmd, rsv, atyp]) + addr + port,
            st.integers(0, 4), st.sampled_from([0, 0, 1]), st.sampled_from([1, 3, 4, 0, 2, 5]),
            st.one_of(st.binary(max_size=20), st.binary(max_size=10).map(lambda b: bytes([len(b)]) + b)),
            st.binary(min_size=0, max_size=3),
        ),
    )  # fmt: skip

    def check(parser: Callable[[bytes], Any]) -> Callable[[bytes], None]:
        def run(data: bytes) -> None:
            try:
                result = parser(data)
            except socks.SocksProtocolError as exc:
                assert isinstance(exc.answer, bytes) and exc.error_status_hint == 400
                return
            if result is None:
                return
            _, size = result
            assert 0 < size <= len(data), (size, data)
            assert parser(data + b"\x05\x01\x00trailing") == result  # bytes after a message are the next one's
            for cut in {1, size // 2, size - 1}:
                if 0 < cut < size:
                    assert parser(data[:cut]) is None, ("a prefix of a complete message", data[:cut])

        return run

    return [
        Target("socks.parse_greeting", "proxy_lab.proxy.socks", st.one_of(st.binary(max_size=40), greeting, mutated(greeting)),
               check(socks.parse_greeting), "SocksProtocolError (with the answer to send)"),
        Target("socks.parse_userpass", "proxy_lab.proxy.socks", st.one_of(st.binary(max_size=40), userpass, mutated(userpass)),
               check(socks.parse_userpass), "SocksProtocolError (with the answer to send)"),
        Target("socks.parse_request", "proxy_lab.proxy.socks", st.one_of(st.binary(max_size=40), request, mutated(request)),
               check(socks.parse_request), "SocksProtocolError (with the answer to send)"),
    ]  # fmt: skip


def run_target(target: Target, examples: int, *, seed: int | None = None, derandomize: bool = False) -> Outcome:
    """Run `examples` generated inputs through `target.check`, each under the call deadline."""
    outcome = Outcome(target.name)

    @settings(
        max_examples=examples,
        deadline=None,  # our own per-call deadline below; Hypothesis' would flake on a loaded machine
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        print_blob=False,
    )
    @given(target.strategy)
    def prop(value: Any) -> None:
        outcome.inputs += 1
        started = time.perf_counter()
        try:
            with call_deadline(CALL_DEADLINE_S):
                target.check(value)
        except Hang:
            # not shrunk: each shrinking step could hang for the whole deadline again
            outcome.trace = f"input: {value!r}"[:4000]
            raise
        outcome.slowest_ms = max(outcome.slowest_ms, (time.perf_counter() - started) * 1000)

    if seed is not None:
        prop = hypothesis_seed(seed)(prop)
    started = time.perf_counter()
    try:
        prop()
    except Exception as exc:  # Hypothesis re-raises the (shrunk) failure
        outcome.failure = f"{type(exc).__name__}: {exc}"[:2000]
        outcome.trace = traceback.format_exc()
    except Hang as exc:  # a BaseException: Hypothesis lets it through at once
        outcome.failure = f"hang: {exc}"
    outcome.elapsed_s = time.perf_counter() - started
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=None,
                        help=f"inputs per target (default: {MIN_PER_TARGET}, more when needed for {MIN_TOTAL} in total)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this target (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed, for a reproducible run")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)
    if args.examples is not None and args.examples < 1:
        parser.error("--examples must be >= 1")
    chosen = targets()
    names = [t.name for t in chosen]
    if unknown := [n for n in args.only if n not in names]:
        parser.error(f"--only {', '.join(unknown)}: no such target; known: {', '.join(names)}")
    if args.only:
        chosen = [t for t in chosen if t.name in args.only]
    if args.list:
        for t in chosen:
            print(f"{t.name:<28} {t.module:<34} allowed: {t.declared}")
        return 0
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    explicit = args.examples is not None
    if args.examples is None:
        args.examples = max(MIN_PER_TARGET, -(-MIN_TOTAL // len(chosen))) if not args.only else MIN_PER_TARGET
    print(f"fuzzing {len(chosen)} targets, {args.examples} inputs each, seed {seed}, per-call deadline {CALL_DEADLINE_S:g} s",
          flush=True)  # fmt: skip
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    for target in chosen:
        outcome = run_target(target, args.examples, seed=seed)
        outcomes.append(outcome)
        status = "ok" if outcome.failure is None else "FAILED"
        print(f"  {target.name:<28} {outcome.inputs:>8} inputs  slowest call {outcome.slowest_ms:7.2f} ms  "
              f"{outcome.elapsed_s:6.1f} s  {status}", flush=True)  # fmt: skip
        if outcome.failure is not None:
            print(f"    allowed: {target.declared}\n    {outcome.failure}\n{outcome.trace}", flush=True)
    total = sum(o.inputs for o in outcomes)
    failed = [o.name for o in outcomes if o.failure is not None]
    elapsed = time.perf_counter() - started
    if not args.only and not explicit and total < MIN_TOTAL:
        print(f"warning: only {total} inputs were generated (Hypothesis exhausted a strategy); expected {MIN_TOTAL}")
    print(f"total: {total} inputs over {len(outcomes)} targets in {elapsed:.1f} s ({total / max(elapsed, 1e-9):.0f}/s); "
          f"failures: {len(failed)}{' (' + ', '.join(failed) + ')' if failed else ''}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
