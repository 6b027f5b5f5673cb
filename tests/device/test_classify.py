"""The classification table: what the device observed -> Outcome, without sockets."""

from __future__ import annotations

import pytest

from proxy_lab.device.auth import basic_credentials, decide_on_407
from proxy_lab.device.classify import (
    BytesAfterHead,
    CheckFailed,
    ConnectAnswer,
    ConnectFailed,
    DnsFailed,
    NameFailed,
    NotHttpAnswer,
    Observation,
    OriginAnswer,
    StreamCut,
    TlsFailed,
    Worked,
    alert_name,
    classify,
)
from proxy_lab.outcomes import Outcome
from proxy_lab.response import parse_challenges

P = "proxy 127.0.0.1:3128"
T = "funds.pb.com:443"
SQUID_403 = (("Server", "squid"), ("X-Squid-Error", "ERR_ACCESS_DENIED 0"), ("Content-Type", "text/html"))
PAGE = b"<html><head><title>ERROR: The requested URL could not be retrieved</title></head></html>"

TABLE: list[tuple[Observation, Outcome, str]] = [
    # -- the TCP connection to the proxy
    (ConnectFailed(P, "ECONNREFUSED"), Outcome.UNREACHABLE, "ECONNREFUSED"),
    (ConnectFailed(P, "timed out", timed_out=True, timeout_s=5), Outcome.TIMEOUT, "within 5 s"),
    (NameFailed("proxy.corp", "name does not resolve"), Outcome.UNREACHABLE, "proxy.corp"),
    # -- the answer to CONNECT, or its absence
    (
        StreamCut(P, "while waiting for the answer to CONNECT x", "eof", before_answer=True),
        Outcome.UNREACHABLE,
        "before sending any byte",
    ),
    (
        StreamCut(P, "while waiting for the answer to CONNECT x", "eof", after_bytes=12),
        Outcome.RESET,
        "after 12 bytes",
    ),
    (
        StreamCut(P, "while waiting for the answer to CONNECT x", "reset"),
        Outcome.RESET,
        "reset the connection",
    ),
    (
        StreamCut(P, "while waiting for the answer to CONNECT x", "timeout", timeout_s=5),
        Outcome.TIMEOUT,
        "nothing for 5 s",
    ),
    (NotHttpAnswer(P, "while waiting", b"\x05\xff"), Outcome.PROTOCOL_MISMATCH, "SOCKS5"),  # SOCKS5 refusal
    (
        NotHttpAnswer(P, "while waiting", b"\x16\x03\x01\x00"),
        Outcome.PROTOCOL_MISMATCH,
        "TLS record",
    ),  # TLS port
    (ConnectAnswer(P, T, 200, "Connection established"), Outcome.PASS, "opened a tunnel"),
    (ConnectAnswer(P, T, 200, "OK", (("Content-Length", "0"),)), Outcome.PASS, "opened a tunnel"),
    (ConnectAnswer(P, T, 201, "Created"), Outcome.REFUSED, "only 200"),  # 2xx other than 200
    (ConnectAnswer(P, T, 204, "No Content"), Outcome.REFUSED, "only 200"),
    (BytesAfterHead(P, T, 5, b"hello"), Outcome.PROTOCOL_MISMATCH, "buffered too many bytes"),
    (
        ConnectAnswer(P, T, 403, "Forbidden", SQUID_403, PAGE),
        Outcome.REFUSED,
        "X-Squid-Error: ERR_ACCESS_DENIED 0",
    ),
    (
        ConnectAnswer(P, T, 302, "Found", (("Location", "http://block/"),)),
        Outcome.REFUSED,
        "Location: http://block/",
    ),
    (ConnectAnswer(P, T, 405, "Method Not Allowed"), Outcome.REFUSED, "405"),
    (ConnectAnswer(P, T, 400, "Bad Request"), Outcome.REFUSED, "400 Bad Request"),
    (
        ConnectAnswer(P, T, 401, "Unauthorized", (("WWW-Authenticate", 'Bearer realm=""'),)),
        Outcome.REFUSED,
        "origin's answer",
    ),
    (
        ConnectAnswer(P, T, 407, "Proxy Authentication Required", auth="no_challenge"),
        Outcome.REFUSED,
        "RFC 9110 §11.7.1",
    ),
    (
        ConnectAnswer(P, T, 407, "PAR", auth="no_basic", offered=("NTLM", "Negotiate")),
        Outcome.AUTH_REQUIRED,
        "only NTLM, Negotiate",
    ),
    (
        ConnectAnswer(P, T, 407, "PAR", auth="no_credentials", offered=("Basic",)),
        Outcome.AUTH_REQUIRED,
        "no proxy username",
    ),
    (ConnectAnswer(P, T, 407, "PAR", auth="rejected", offered=("Basic",)), Outcome.AUTH_REQUIRED, "rejected"),
    (
        ConnectAnswer(P, T, 407, "PAR", auth="attempts", offered=("Basic",), attempts=2),
        Outcome.AUTH_REQUIRED,
        "2 CONNECT",
    ),
    (ConnectAnswer(P, T, 502, "Bad Gateway"), Outcome.UNREACHABLE, "could not reach"),
    (
        ConnectAnswer(P, T, 503, "Service Unavailable", (("X-Squid-Error", "ERR_DNS_FAIL 0"),)),
        Outcome.UNREACHABLE,
        "ERR_DNS_FAIL",
    ),
    (ConnectAnswer(P, T, 504, "Gateway Timeout"), Outcome.UNREACHABLE, "could not reach"),
    (ConnectAnswer(P, T, 500, "Internal Server Error"), Outcome.REFUSED, "500"),
    # -- TLS in the tunnel
    (
        TlsFailed(
            P,
            "funds.pb.com",
            "verify",
            "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate",
            issuer_shown="CN=Corp CA",
        ),
        Outcome.TLS_INTERCEPTED,
        "CN=Corp CA",
    ),
    (
        TlsFailed(P, "funds.pb.com", "not_tls", "x", first_bytes=b"HTTP/1.1 400 Bad"),
        Outcome.PROTOCOL_MISMATCH,
        "not TLS",
    ),
    (TlsFailed(P, "funds.pb.com", "eof", "closed mid-handshake"), Outcome.RESET, "cut"),
    (TlsFailed(P, "funds.pb.com", "reset", "ECONNRESET"), Outcome.RESET, "cut"),
    (
        TlsFailed(P, "funds.pb.com", "alert", "sent TLS alert handshake_failure"),
        Outcome.RESET,
        "handshake_failure",
    ),
    (TlsFailed(P, "funds.pb.com", "timeout", "no ServerHello"), Outcome.TIMEOUT, "no ServerHello"),
    # -- inside the tunnel
    (
        OriginAnswer("http://eureka/", "GET /", 403, "Forbidden", (), b"<title>Blocked by policy</title>"),
        Outcome.REFUSED,
        "Blocked by policy",
    ),
    (
        OriginAnswer("http://g/", "GET /generate_204", 302, "Found", (("Location", "http://portal/"),)),
        Outcome.TAMPERED,
        "portal",
    ),
    (
        OriginAnswer("http://g/", "GET /generate_204", 200, "OK", (), b"<title>Login</title>"),
        Outcome.TAMPERED,
        "Login",
    ),
    (
        CheckFailed("https://pbdlsp1.pb.com/", "the Ed25519 signature", "does not verify", "a signature"),
        Outcome.TAMPERED,
        "does not verify",
    ),
    (
        DnsFailed("8.8.8.8:53", "connectivitycheck.gstatic.com", "udp", "NXDOMAIN"),
        Outcome.UNREACHABLE,
        "NXDOMAIN",
    ),
    (Worked("downloaded", kbps=5000, min_kbps=384), Outcome.PASS, "downloaded"),
    (Worked("downloaded", kbps=200, min_kbps=384), Outcome.DEGRADED, "below the guide's 384 kbit/s"),
    # goodput through a link shaped at exactly 384 kbit/s: protocol overhead costs ~1%, still a pass
    (Worked("downloaded", kbps=381, min_kbps=384), Outcome.PASS, "downloaded"),
    (Worked("downloaded", kbps=370, min_kbps=384), Outcome.DEGRADED, "below the guide's 384 kbit/s"),
    (Worked("answered", setup_s=4.0, slow_setup_s=3.0), Outcome.DEGRADED, "4.0 s to open"),
    (Worked("answered", setup_s=0.1, slow_setup_s=3.0), Outcome.PASS, "answered"),  # negative control
]


@pytest.mark.parametrize(
    ("obs", "outcome", "words"), TABLE, ids=[f"{type(o).__name__}-{i}" for i, (o, _, _) in enumerate(TABLE)]
)
def test_each_observation_maps_to_its_outcome_and_says_what_was_seen(
    obs: Observation, outcome: Outcome, words: str
) -> None:
    verdict = classify(obs)
    assert verdict.outcome == outcome, verdict.detail
    assert words in verdict.detail


def test_a_squid_refusal_names_the_proxy_the_target_the_status_and_the_squid_error() -> None:
    detail = classify(ConnectAnswer(P, T, 403, "Forbidden", SQUID_403, PAGE)).detail
    assert detail.startswith(
        "proxy 127.0.0.1:3128 refused CONNECT funds.pb.com:443: 403 Forbidden (X-Squid-Error: ERR_ACCESS_DENIED 0"
    )
    assert "ERROR: The requested URL could not be retrieved" in detail and detail.endswith("expected 200")


def test_tls_alert_reasons_are_named_as_rfc_8446_alerts() -> None:
    assert alert_name("TLSV1_ALERT_UNKNOWN_CA") == "unknown_ca"
    assert alert_name("SSLV3_ALERT_HANDSHAKE_FAILURE") == "handshake_failure"
    assert alert_name("WRONG_VERSION_NUMBER") == ""  # not an alert: negative control


BASIC = parse_challenges(['Basic realm="lab"'])
NTLM = parse_challenges(["NTLM", "Negotiate"])


@pytest.mark.parametrize(
    ("challenges", "has", "sent", "attempts", "why"),
    [
        (BASIC, True, False, 1, "retry"),  # OkHttp: Basic offered, credentials configured, not sent yet
        (parse_challenges(['BASIC realm="x"']), True, False, 1, "retry"),  # the scheme is case-insensitive
        (BASIC, True, True, 1, "rejected"),  # sent once and 407 again: the credentials are wrong
        (BASIC, False, False, 1, "no_credentials"),
        (NTLM, True, False, 1, "no_basic"),  # AuthenticatorAdapter answers only Basic
        ([], True, False, 1, "no_challenge"),  # 407 without Proxy-Authenticate
        (BASIC, True, False, 2, "attempts"),  # the cap of CONNECTs per endpoint reached
    ],
)
def test_a_407_is_retried_only_with_basic_credentials_not_yet_sent(
    challenges: list, has: bool, sent: bool, attempts: int, why: str
) -> None:
    decision = decide_on_407(
        challenges, has_credentials=has, credentials_sent=sent, attempts=attempts, max_attempts=2
    )
    assert decision.why == why
    assert decision.retry == (why == "retry")


def test_basic_credentials_follow_rfc_7617_and_okhttp_charsets() -> None:
    assert basic_credentials("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="  # RFC 7617 §2
    assert basic_credentials("u", "p:w") == "Basic dTpwOnc="  # a colon in the password is kept
    # ISO-8859-1 by default (OkHttp Credentials.basic), UTF-8 when the challenge says charset="UTF-8"
    latin = basic_credentials("u", "é")
    utf8 = basic_credentials("u", "é", parse_challenges(['Basic realm="x", charset="UTF-8"'])[0])
    assert latin == "Basic dTrp" and utf8 == "Basic dTrDqQ=="
