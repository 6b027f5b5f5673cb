"""The fast subset of `make fuzz`: every sans-IO parser target of bench/fuzz.py with a few hundred inputs.

Same strategies, same checks, same per-call deadline; derandomized so a failure here reproduces.
`make fuzz` runs the same targets with 10,000 inputs each.
"""

from __future__ import annotations

import pytest

from bench.fuzz import run_target, targets

EXAMPLES = 150


@pytest.mark.parametrize("target", targets(), ids=lambda t: t.name)
def test_a_parser_returns_or_raises_only_its_declared_errors_and_never_hangs(target: object) -> None:
    outcome = run_target(target, EXAMPLES, derandomize=True)  # type: ignore[arg-type]
    assert outcome.failure is None, f"{outcome.name} (allowed: {target.declared}):\n{outcome.trace}"  # type: ignore[attr-defined]
    assert outcome.inputs >= min(EXAMPLES, 50)


def test_the_fuzz_targets_cover_every_sans_io_parser() -> None:
    modules = {t.module for t in targets()}
    for module in ("proxy_lab.proxy.parse", "proxy_lab.proxy.auth", "proxy_lab.http1", "proxy_lab.response",
                   "proxy_lab.cloud.httpwire", "proxy_lab.protocol.messages"):  # fmt: skip
        assert module in modules


# Inputs the fuzzer found, kept as plain regression tests (each was an exception other than the
# module's declared error, fixed where it was raised).
def test_a_control_byte_in_a_connect_field_value_is_a_400_not_a_value_error() -> None:
    from proxy_lab.errors import RemoteProtocolError
    from proxy_lab.proxy.parse import parse_connect

    with pytest.raises(RemoteProtocolError) as info:
        parse_connect(b"CONNECT $:1 HTTP/1.0\n!:\x01\n\n")  # SOH in a field value (was ValueError from ConnectRequest)
    assert info.value.error_status_hint == 400
    assert "\x01" not in str(info.value)  # the value is not repeated: it could be a credential


def test_an_ipv6_zone_id_in_a_connect_target_is_a_400() -> None:
    from proxy_lab.errors import RemoteProtocolError
    from proxy_lab.proxy.parse import parse_connect

    with pytest.raises(RemoteProtocolError, match="zone id"):
        parse_connect(b"CONNECT [fe80::1%eth0]:443 HTTP/1.1\r\n\r\n")  # was accepted, then failed to connect


def test_a_superscript_digit_content_length_is_a_protocol_error_for_the_device_and_opaque_to_the_scanner() -> None:
    from proxy_lab.errors import RemoteProtocolError
    from proxy_lab.proxy.faults.httpsniff import HttpScanner, Opaque
    from proxy_lab.response import body_framing, parse_response

    raw = b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nabc"  # '²': str.isdigit() is True, int() refuses it
    response = parse_response(raw)
    assert response is not None
    with pytest.raises(RemoteProtocolError, match="invalid Content-Length"):
        body_framing(response, method="GET")  # was ValueError, out of Device.run
    items = HttpScanner("response").feed(raw)  # was ValueError inside a tunnel stage
    assert isinstance(items[-1], Opaque) and items[-1].data == b"abc"


@pytest.mark.parametrize(
    "value",
    [
        "S3cret:x",  # the password sent as the whole header value: it was logged as the "scheme"
        "S3cret:x trailing",  # the same, with more after it
        "meter:S3cret:x",  # user:password, without the scheme and the base64
    ],
)
def test_a_password_sent_as_the_whole_proxy_authorization_value_is_never_in_the_reason(value: str) -> None:
    from bench.fuzz import check_auth
    from proxy_lab.proxy.auth import BasicAuth, InvalidCredentials, parse_proxy_authorization

    check_auth(value)  # the fuzz check that failed with a random seed
    parsed = parse_proxy_authorization(value)
    assert isinstance(parsed, InvalidCredentials)
    assert "S3cret" not in parsed.why and "unknown scheme" in parsed.why
    result = BasicAuth({"meter": "S3cret:x"}).verify(value)
    assert not result.ok and "S3cret" not in result.why
    # negative control: a registered scheme's name is still said, so the log tells NTLM from Bearer
    assert parse_proxy_authorization("NTLM TlRMTVNTUAABAAAA") == InvalidCredentials(
        "Proxy-Authorization uses scheme 'NTLM', not Basic"
    )


def test_a_dns_query_with_a_label_longer_than_63_bytes_is_dropped_not_an_exception() -> None:
    from bench.fuzz import check_dns

    # header: id 0, a standard query, one question; then a 6-byte label and a 64-byte one (RFC 1035
    # §2.3.4: labels are 63 octets or less), found by `make fuzz --seed 11`
    query = bytes(5) + b"\x01" + bytes(6) + b"\x06" + bytes(6) + b"\x40" + bytes(64) + b"\x00\x00\x01\x00\x01"
    check_dns(query)
    # what the cloud does with it: drops it, as any unanswerable packet
    from proxy_lab.cloud.dns import DnsZone
    from proxy_lab.cloud.state import CloudState

    assert DnsZone(["distservp1.pb.com"], "127.0.0.1", CloudState()).answer(query) is None
