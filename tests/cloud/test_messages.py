"""proxy_lab.protocol.messages: every message built by one side parses on the other; bad XML is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_lab.protocol import messages as m

METER = "PBLAB-0001"


def test_auth_request_round_trips_and_names_meter_and_model() -> None:
    assert m.parse_auth_request(m.auth_request(METER, "sendpro-plus")) == {
        "meter": METER,
        "model": "sendpro-plus",
    }


def test_auth_request_for_an_unknown_model_is_refused_on_both_sides() -> None:
    with pytest.raises(ValueError, match="model 'dm400'"):
        m.auth_request(METER, "dm400")
    with pytest.raises(ValueError, match="model 'dm400'"):
        m.parse_auth_request(b'<AuthRequest meter="PBLAB-0001" model="dm400"/>')


def test_auth_response_round_trips_with_its_session() -> None:
    got = m.parse_auth_response(m.auth_response(METER, "S00000001"))
    assert got == {"status": "ok", "meter": METER, "session": "S00000001"}


def test_a_failed_auth_status_is_parsed_for_the_device_to_judge() -> None:
    assert m.parse_auth_response(m.auth_response(METER, "S1", status="denied"))["status"] == "denied"


def test_refill_echoes_the_amount_exactly() -> None:
    assert m.parse_refill_request(m.refill_request(METER, "100.00")) == {"meter": METER, "amount": "100.00"}
    assert m.parse_refill_response(m.refill_response(METER, Decimal("100")))["amount"] == "100.00"


@pytest.mark.parametrize(
    "amount",
    [
        "100",  # no decimals
        "100.0",  # one decimal
        "-5.00",  # negative
        "1e3",  # exponent
        "１００.００",  # fullwidth digits
    ],
)
def test_refill_amounts_not_written_with_two_decimals_are_refused(amount: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        m.parse_refill_request(f'<RefillRequest meter="{METER}" amount="{amount}"/>'.encode())


def test_audit_psd_accounting_and_health_round_trip() -> None:
    assert m.parse_audit_request(m.audit_request(METER, "1234.56", "99.44")) == {
        "meter": METER,
        "ascending": "1234.56",
        "descending": "99.44",
    }
    assert m.parse_audit_response(m.audit_response(METER)) == {"status": "ok", "meter": METER}
    assert m.parse_psd_config_request(m.psd_config_request(METER)) == {"meter": METER}
    cfg = m.parse_psd_config(m.psd_config(METER, "GB", currency="GBP"))
    assert cfg == {"meter": METER, "region": "GB", "currency": "GBP"}
    assert m.parse_accounting_request(m.accounting_request(METER)) == {"meter": METER, "report": "summary"}
    assert m.parse_accounting_response(m.accounting_response(METER)) == {"status": "ok", "meter": METER}
    assert m.parse_health_data(m.health_data(METER, "1.0", 3)) == {
        "meter": METER,
        "software": "1.0",
        "errors": "3",
    }
    assert m.parse_health_receipt(m.health_receipt(METER)) == {"status": "ok", "meter": METER}


def test_transaction_upload_accepts_records_ids_and_mappings_in_order() -> None:
    body = m.transaction_upload(
        METER, [m.Record("T1", "2nd", 250, "1.35", "2024-02-29"), "T2", {"id": "T3", "class": "large"}]
    )
    meter, records = m.parse_transaction_upload(body)
    assert meter == METER
    assert [r.id for r in records] == ["T1", "T2", "T3"]
    assert records[0] == m.Record("T1", "2nd", 250, "1.35", "2024-02-29")
    assert records[2].mail_class == "large"


def test_an_empty_transaction_upload_is_valid_and_its_receipt_names_nothing() -> None:
    assert m.parse_transaction_upload(m.transaction_upload(METER, [])) == (METER, [])
    assert m.parse_receipt(m.transaction_receipt(METER, [])) == []


def test_a_receipt_names_exactly_the_ids_given_in_order() -> None:
    body = m.transaction_receipt(METER, ["b", "a", "c"])
    assert m.parse_receipt(body) == ["b", "a", "c"]
    assert m.parse_receipt_meter(body) == METER


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ('<Record id="T1" class="1st" weight_g="100" fee="0.00"/>', "lacks the attribute 'date'"),
        ('<Record id="T1" class="1st" weight_g="-1" fee="0.00" date="2024-01-01"/>', "weight_g"),
        ('<Record id="T1" class="1st" weight_g="1" fee="0.00" date="2024-02-30"/>', "date"),
        ('<Record id="T 1" class="1st" weight_g="1" fee="0.00" date="2024-01-01"/>', "record id"),
        ('<Receipt id="T1"/>', "expected only <Record> children"),
    ],
)
def test_a_bad_record_is_refused_naming_what_is_wrong(record: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        m.parse_transaction_upload(
            f'<TransactionUpload meter="{METER}">{record}</TransactionUpload>'.encode()
        )


def test_download_index_round_trips_its_entries() -> None:
    entries = [m.FileEntry("rates-gb.bin", 10, "ab" * 32), m.FileEntry("software.bin", 0, "cd" * 32)]
    parsed = m.parse_download_index(m.download_index(entries))
    assert parsed == entries
    assert parsed[0].path == "/files/rates-gb.bin"


def test_download_index_refuses_a_sha256_that_is_not_64_hex_digits() -> None:
    with pytest.raises(ValueError, match="sha256"):
        m.parse_download_index(b'<DownloadIndex><File name="a.bin" size="1" sha256="abc"/></DownloadIndex>')


def test_a_signature_verifies_only_over_the_bytes_signed() -> None:
    key = Ed25519PrivateKey.generate()
    data = b"rates" * 100
    sig = m.sign_file(key, data)
    assert len(sig) == m.SIGNATURE_BYTES
    m.verify_file(key.public_key(), data, sig)
    with pytest.raises(ValueError, match="does not verify"):
        m.verify_file(key.public_key(), data[:-1] + b"X", sig)
    with pytest.raises(ValueError, match="does not verify"):
        m.verify_file(Ed25519PrivateKey.generate().public_key(), data, sig)
    with pytest.raises(ValueError, match="64"):
        m.verify_file(key.public_key(), data, sig[:10])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"<AuthRequest meter='M' model='sendpro-c'", "malformed XML"),  # unterminated tag
        (b"<AuthResponse status='ok' meter='M' session='S'/>", "root element is <AuthResponse>"),
        (b'<AuthRequest meter="PBLAB-0001"/>', "lacks the attribute 'model'"),
        (b'<AuthRequest meter="bad meter!" model="sendpro-c"/>', "meter"),
        (b'<AuthRequest meter="M" model="sendpro-c"><x/></AuthRequest>', "takes no child elements"),
        (b'<AuthRequest meter="M" model="sendpro-c">text</AuthRequest>', "text content"),
        # billion laughs: entity expansion
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b'<AuthRequest meter="&lol2;" model="sendpro-c"/>',
            "DOCTYPE",
        ),
        # XXE: external entity reading a local file
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<AuthRequest meter="&x;" model="sendpro-c"/>',
            "DOCTYPE",
        ),
        (b"\xff\xfe<\x00", "XML"),  # a UTF-16 BOM with a truncated document
    ],
)
def test_malformed_or_hostile_xml_is_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        m.parse_auth_request(body)


def test_an_oversized_xml_body_is_refused_before_parsing() -> None:
    with pytest.raises(ValueError, match="larger than"):
        m.message_root(b"<a>" + b" " * m.MAX_XML_BYTES + b"</a>")


PARSERS = [
    m.parse_auth_request,
    m.parse_auth_response,
    m.parse_refill_request,
    m.parse_refill_response,
    m.parse_audit_request,
    m.parse_psd_config,
    m.parse_transaction_upload,
    m.parse_receipt,
    m.parse_download_index,
    m.parse_health_data,
]


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: f"<AuthRequest {t}/>".encode()))
def test_parsers_raise_only_value_error_on_arbitrary_bytes(body: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(body)
        except ValueError:
            pass


def test_dyngate_answers_parse_back() -> None:
    assert m.parse_dyngate_answer(m.dyngate_in_answer("00000001")) == ("00000001", None)
    assert m.parse_dyngate_answer(m.dyngate_out_answer("00000001", 42)) == ("00000001", 42)
    with pytest.raises(ValueError, match="not a DynGate answer"):
        m.parse_dyngate_answer(b"<html>blocked by policy</html>")


def test_teamviewer_lines_parse_back_and_reject_other_bytes() -> None:
    assert m.parse_teamviewer_hello(m.teamviewer_hello(METER)) == METER
    assert m.parse_teamviewer_ok(m.teamviewer_ok("TV00000001")) == "TV00000001"
    with pytest.raises(ValueError, match="not a TeamViewer OK line"):
        m.parse_teamviewer_ok(b"HTTP/1.1 403 Forbidden\r\n")


def test_help_page_carries_its_marker_and_a_host_page_does_not() -> None:
    assert m.is_help_page(m.help_page())
    assert not m.is_help_page(m.host_page("eureka.pitneybowes.com"))
    assert b"<title>api.pitneybowes.com</title>" in m.host_page("api.pitneybowes.com")
