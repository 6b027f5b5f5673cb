"""Basic proxy authentication (RFC 7617): parsing never raises, checking folds only what it is told to."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_lab.proxy.auth import BasicAuth, Credentials, InvalidCredentials, parse_proxy_authorization


def basic(raw: bytes, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(raw).decode()}"


def test_user_and_password_are_split_on_the_first_colon_only() -> None:
    parsed = parse_proxy_authorization(basic(b"meter:pa:ss:word"))  # the password contains ':'
    assert parsed == Credentials("meter", "pa:ss:word")


def test_credentials_are_decoded_as_utf8() -> None:
    parsed = parse_proxy_authorization(basic("zoë:pässwörd".encode()))
    assert parsed == Credentials("zoë", "pässwörd")


def test_an_empty_password_is_a_password() -> None:
    assert parse_proxy_authorization(basic(b"meter:")) == Credentials("meter", "")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("Basic", "without credentials"),
        ("Basic !!!notbase64", "not a base64 token"),
        ("Basic bWV0ZXI6cGFzcw", "not valid base64"),  # padding missing
        (basic(b"meterpass"), "no ':'"),  # no colon between user-id and password
        (basic("zoë:pässwörd".encode("latin-1")), "not UTF-8"),  # Latin-1 client
        (basic(b":password"), "empty user-id"),
        ("NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAO5CAAAADw==", "scheme 'NTLM'"),  # NTLM type 1
        ("Bearer abc.def.ghi", "scheme 'Bearer'"),
        ("", "empty"),
    ],
)
def test_malformed_credentials_are_invalid_never_an_exception(value: str, said: str) -> None:
    parsed = parse_proxy_authorization(value)
    assert isinstance(parsed, InvalidCredentials)
    assert said in parsed.why


def test_the_scheme_name_is_case_insensitive_unless_told_to_insist_on_basic() -> None:
    assert parse_proxy_authorization(basic(b"meter:pw", "basic")) == Credentials("meter", "pw")
    assert parse_proxy_authorization(basic(b"meter:pw", "BASIC")) == Credentials("meter", "pw")
    strict = parse_proxy_authorization(basic(b"meter:pw", "basic"), accept_lowercase_scheme=False)
    assert isinstance(strict, InvalidCredentials) and "only 'Basic'" in strict.why
    # negative control: the exact spelling still passes the strict parser
    assert parse_proxy_authorization(basic(b"meter:pw"), accept_lowercase_scheme=False) == Credentials(
        "meter", "pw"
    )


def test_the_password_is_not_in_the_repr() -> None:
    assert "s3cret" not in repr(Credentials("meter", "s3cret"))


USERS = {"meter": "Postage-2020!", "admin": "a:b"}


@pytest.mark.parametrize(
    ("user", "password", "case_sensitive", "ok"),
    [
        ("meter", "Postage-2020!", True, True),
        ("admin", "a:b", True, True),  # several users; password with ':'
        ("meter", "postage-2020!", True, False),  # passwords are case-sensitive
        ("meter", "postage-2020!", False, False),  # ... even when user names are folded
        ("Meter", "Postage-2020!", True, False),  # user names case-sensitive by default
        ("Meter", "Postage-2020!", False, True),  # folded on request (directory-backed proxies)
        ("METER", "Postage-2020!", False, True),
        ("nobody", "Postage-2020!", False, False),
        ("meter", "", True, False),
    ],
)
def test_the_user_table_decides(user: str, password: str, case_sensitive: bool, ok: bool) -> None:
    auth = BasicAuth(USERS, username_case_sensitive=case_sensitive)
    result = auth.verify(basic(f"{user}:{password}".encode()))
    assert result.ok is ok
    if ok:
        assert result.user in USERS  # the configured spelling, not the one sent


def test_reasons_help_diagnose_without_repeating_secrets() -> None:
    auth = BasicAuth(USERS)
    wrong_case = auth.verify(basic(b"Meter:Postage-2020!"))
    assert "case is ignored" in wrong_case.why and "'meter'" in wrong_case.why
    wrong_password = auth.verify(basic(b"meter:Hunter2-secret"))
    assert "wrong password for user 'meter'" in wrong_password.why
    unknown = auth.verify(basic(b"Sup3rSecretName:x"))
    assert "unknown user" in unknown.why and "Sup3rSecretName" not in unknown.why
    for result in (wrong_case, wrong_password, unknown):
        assert "Postage-2020!" not in result.why and "Hunter2" not in result.why
    assert auth.verify(None).why == "no Proxy-Authorization header"


def test_the_challenge_is_a_basic_407_that_keeps_the_connection_unless_told_to_close() -> None:
    refusal = BasicAuth(USERS, realm='Corp "Proxy"').challenge("no Proxy-Authorization header")
    wire = refusal.to_bytes()
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
    assert b'Proxy-Authenticate: Basic realm="Corp \\"Proxy\\""' in head  # quoted-string escaping
    assert b"Content-Type: text/html" in head and b"Connection: keep-alive" in head
    assert f"Content-Length: {len(body)}".encode() in head and body.startswith(b"<html>")
    closing = BasicAuth(USERS, close_after_407=True).challenge("x")
    assert b"Connection: close" in closing.to_bytes() and not closing.keep_alive


def test_user_names_with_a_colon_are_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="no ':'"):
        BasicAuth({"a:b": "pw"})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_header_value_parses_to_credentials_or_a_reason_never_an_exception(value: str) -> None:
    parsed = parse_proxy_authorization(value)
    assert isinstance(parsed, Credentials | InvalidCredentials)
    assert BasicAuth(USERS).verify(value).ok in (True, False)
