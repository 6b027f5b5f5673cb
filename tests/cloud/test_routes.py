"""Each exchange of docs/cloud-protocol.md, over real sockets to the listener the resolver names."""

from __future__ import annotations

import hashlib
import ssl

import pytest

from proxy_lab.catalog import Catalog, Endpoint
from proxy_lab.cloud import Cloud
from proxy_lab.cloud.files import file_content
from proxy_lab.pki import PKI
from proxy_lab.protocol import messages as m
from tests.cloud.cloud_testclient import XML_HEADERS, Reply, exchange, http, parse_reply, request_bytes

METER = "PBLAB-0001"


def call(
    cloud: Cloud,
    pki: PKI,
    url_host: str,
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    **kw: object,
) -> Reply:
    tls: ssl.SSLContext | None = pki.device_context() if port == 443 else None
    headers = kw.get("headers", XML_HEADERS if body else ())
    assert isinstance(headers, tuple)
    return http(
        cloud.resolver.lookup(url_host, port), method, target, url_host, body, tls=tls, headers=headers
    )


def test_authenticate_answers_ok_with_a_session(cloud: Cloud, pki: PKI) -> None:
    reply = call(
        cloud, pki, "distservp1.pb.com", 443, "POST", "/csd/dstproduct", m.auth_request(METER, "sendpro-c")
    )
    assert reply.status == 200
    assert reply.header("content-type") == "application/xml; charset=utf-8"
    got = m.parse_auth_response(reply.body)
    assert got["status"] == "ok" and got["meter"] == METER
    assert cloud.state.sessions[got["session"]] == METER


def test_refill_echoes_the_amount_asked(cloud: Cloud, pki: PKI) -> None:
    for host in ("decometlb20.pb.com", "swcometlb2.pb.com"):
        reply = call(cloud, pki, host, 443, "POST", "/", m.refill_request(METER, "123.45"))
        assert reply.status == 200
        assert m.parse_refill_response(reply.body) == {"status": "ok", "meter": METER, "amount": "123.45"}


def test_audit_and_psd_config_answer_ok(cloud: Cloud, pki: PKI) -> None:
    reply = call(
        cloud, pki, "ukcometlb12k.pb.com", 443, "POST", "/", m.audit_request(METER, "10.00", "90.00")
    )
    assert reply.status == 200 and m.parse_audit_response(reply.body)["status"] == "ok"
    reply = call(cloud, pki, "decometlb5.pb.com", 443, "POST", "/", m.psd_config_request(METER))
    assert reply.status == 200 and m.parse_psd_config(reply.body)["region"] == "GB"


def test_a_funds_host_refuses_another_exchanges_message(cloud: Cloud, pki: PKI) -> None:
    # decometlb20 handles refills; an audit message there is a client error naming the root expected.
    reply = call(cloud, pki, "decometlb20.pb.com", 443, "POST", "/", m.audit_request(METER, "1.00", "1.00"))
    assert reply.status == 400
    assert b"<AuditRequest>" in reply.body and b"<RefillRequest>" in reply.body


def test_transaction_receipt_names_exactly_the_ids_uploaded(cloud: Cloud, pki: PKI) -> None:
    ids = ["T-0001", "T-0002", "T-0003"]
    reply = call(cloud, pki, "cometservp1.pb.com", 443, "POST", "/", m.transaction_upload(METER, ids))
    assert reply.status == 200
    assert m.parse_receipt(reply.body) == ids
    assert cloud.state.transactions == dict.fromkeys(ids, 1)
    # a re-upload of one id is counted twice and named again
    reply = call(cloud, pki, "cometservp1.pb.com", 443, "POST", "/", m.transaction_upload(METER, ["T-0002"]))
    assert m.parse_receipt(reply.body) == ["T-0002"]
    assert cloud.state.transactions["T-0002"] == 2


def test_an_empty_transaction_upload_gets_an_empty_receipt(cloud: Cloud, pki: PKI) -> None:
    reply = call(cloud, pki, "cometservp1.pb.com", 443, "POST", "/", m.transaction_upload(METER, []))
    assert reply.status == 200 and m.parse_receipt(reply.body) == []


def test_drop_receipts_stores_the_ids_but_closes_without_an_answer(cloud: Cloud, pki: PKI) -> None:
    cloud.state.drop_receipts = True
    raw = exchange(
        cloud.resolver.lookup("cometservp1.pb.com", 443),
        request_bytes(
            "POST", "/", "cometservp1.pb.com", m.transaction_upload(METER, ["D1", "D2"]), XML_HEADERS
        ),
        tls=pki.device_context(),
        sni="cometservp1.pb.com",
    )
    assert raw == b""
    assert cloud.state.transactions == {"D1": 1, "D2": 1}
    # negative control: with the knob off the same upload is answered
    cloud.state.drop_receipts = False
    reply = call(cloud, pki, "cometservp1.pb.com", 443, "POST", "/", m.transaction_upload(METER, ["D1"]))
    assert m.parse_receipt(reply.body) == ["D1"]


def test_download_index_lists_the_files_with_size_and_hash(cloud: Cloud, pki: PKI) -> None:
    reply = call(cloud, pki, "dlsdlp1.pb.com", 443, "GET", "/")
    assert reply.status == 200
    entries = m.parse_download_index(reply.body)
    assert [e.name for e in entries] == list(m.DOWNLOAD_FILES)
    size = cloud.state.download_bytes
    for e in entries:
        assert e.size == size
        assert e.sha256 == hashlib.sha256(file_content(e.name, size, cloud.seed)).hexdigest()


@pytest.mark.parametrize("host", ["pbdlsp1.pb.com", "pbdlsp1z.pb.com"])
def test_a_downloaded_file_verifies_with_the_lab_signing_key(cloud: Cloud, pki: PKI, host: str) -> None:
    data = call(cloud, pki, host, 443, "GET", "/files/rates-gb.bin")
    sig = call(cloud, pki, host, 443, "GET", "/files/rates-gb.bin.sig")
    assert data.status == 200 and sig.status == 200
    assert data.header("content-type") == "application/octet-stream"
    assert data.body == file_content("rates-gb.bin", cloud.state.download_bytes, cloud.seed)
    assert len(sig.body) == 64
    m.verify_file(pki.signing_public_key(), data.body, sig.body)


def test_corrupt_downloads_serve_a_file_whose_signature_fails(cloud: Cloud, pki: PKI) -> None:
    cloud.state.corrupt_downloads = True
    data = call(cloud, pki, "pbdlsp1k.pb.com", 443, "GET", "/files/software.bin")
    sig = call(cloud, pki, "pbdlsp1k.pb.com", 443, "GET", "/files/software.bin.sig")
    assert len(data.body) == cloud.state.download_bytes
    with pytest.raises(ValueError, match="does not verify"):
        m.verify_file(pki.signing_public_key(), data.body, sig.body)
    genuine = file_content("software.bin", cloud.state.download_bytes, cloud.seed)
    assert sum(a != b for a, b in zip(data.body, genuine, strict=True)) == 1  # exactly one byte flipped


def test_the_ota_package_is_signed_like_the_downloads(cloud: Cloud, pki: PKI) -> None:
    data = call(cloud, pki, "pb-ota.redbend.com", 443, "GET", "/ota/update.bin")
    sig = call(cloud, pki, "pb-ota.redbend.com", 443, "GET", "/ota/update.bin.sig")
    m.verify_file(pki.signing_public_key(), data.body, sig.body)
    assert cloud.signed_file("/ota/update.bin").data == data.body


def test_download_bytes_can_change_at_run_time(cloud: Cloud, pki: PKI) -> None:
    cloud.state.download_bytes = 1000
    data = call(cloud, pki, "pbdlsp1b.pb.com", 443, "GET", "/files/graphics.bin")
    sig = call(cloud, pki, "pbdlsp1b.pb.com", 443, "GET", "/files/graphics.bin.sig")
    assert len(data.body) == 1000
    m.verify_file(pki.signing_public_key(), data.body, sig.body)


def test_accounting_and_health_upload_answer_ok(cloud: Cloud, pki: PKI) -> None:
    reply = call(cloud, pki, "ms1app.pb.com", 443, "POST", "/ms1atweb/services/", m.accounting_request(METER))
    assert reply.status == 200 and m.parse_accounting_response(reply.body)["status"] == "ok"
    reply = call(cloud, pki, "s3.amazonaws.com", 443, "POST", "/", m.health_data(METER, "1.0", 0))
    assert reply.status == 200 and m.parse_health_receipt(reply.body) == {"status": "ok", "meter": METER}
    assert cloud.state.uploads["health_upload"] == 1


def test_the_help_page_carries_its_marker(cloud: Cloud, pki: PKI) -> None:
    path = "/sendpro-c-series/gb/SV63242-gb-help/Default.htm"
    reply = call(cloud, pki, "eureka.pitneybowes.com", 80, "GET", path)
    assert reply.status == 200 and reply.header("content-type") == "text/html; charset=utf-8"
    assert m.is_help_page(reply.body)


def test_a_get_page_names_its_host(cloud: Cloud, pki: PKI) -> None:
    reply = call(cloud, pki, "www.youtube.com", 443, "GET", "/")
    assert reply.status == 200 and b"www.youtube.com" in reply.body
    reply = call(cloud, pki, "microsoft.com", 80, "GET", "/")
    assert reply.status == 200 and b"microsoft.com" in reply.body


def test_generate_204_is_204_with_an_empty_body(cloud: Cloud, pki: PKI) -> None:
    raw = exchange(
        cloud.resolver.lookup("connectivitycheck.gstatic.com", 80),
        request_bytes("GET", "/generate_204", "connectivitycheck.gstatic.com"),
    )
    reply = parse_reply(raw)
    assert reply.status == 204
    assert reply.header("content-length") is None
    assert raw.endswith(b"\r\n\r\n")  # nothing after the head


def test_dyngate_in_and_out_answer_with_their_markers(cloud: Cloud, pki: PKI) -> None:
    reply = call(cloud, pki, "master3.teamviewer.com", 80, "GET", "/din.aspx?s=00000001&id=0&client=DynGate")
    assert reply.status == 200 and m.parse_dyngate_answer(reply.body) == ("00000001", None)
    payload = bytes(range(256)) * 4
    reply = call(
        cloud,
        pki,
        "master3.teamviewer.com",
        80,
        "POST",
        "/dout.aspx?s=00000001&client=DynGate",
        payload,
        headers=(("Content-Type", "application/octet-stream"),),
    )
    assert reply.status == 200 and m.parse_dyngate_answer(reply.body) == ("00000001", len(payload))


def test_dyngate_without_client_dyngate_is_a_client_error(cloud: Cloud, pki: PKI) -> None:
    reply = call(cloud, pki, "master3.teamviewer.com", 80, "GET", "/din.aspx?s=1&id=0&client=Other")
    assert reply.status == 400 and b"client=DynGate" in reply.body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<AuthRequest meter='PBLAB-0001'", b"malformed XML"),  # truncated
        (
            b'<!DOCTYPE a [<!ENTITY e "x">]><AuthRequest meter="&e;" model="sendpro-c"/>',
            b"DOCTYPE",
        ),  # entities
        (b"<Hello/>", b"expected <AuthRequest>"),  # wrong message
    ],
)
def test_malformed_xml_gets_400_text_naming_the_reason(
    cloud: Cloud, pki: PKI, body: bytes, reason: bytes
) -> None:
    reply = call(cloud, pki, "distservp1.pb.com", 443, "POST", "/csd/dstproduct", body)
    assert reply.status == 400
    assert reply.header("content-type") == "text/plain; charset=utf-8"
    assert reason in reply.body


def test_an_xml_post_with_another_content_type_is_415(cloud: Cloud, pki: PKI) -> None:
    reply = call(
        cloud, pki, "distservp1.pb.com", 443, "POST", "/csd/dstproduct", m.auth_request(METER, "sendpro-c"),
        headers=(("Content-Type", "text/plain"),),
    )  # fmt: skip
    assert reply.status == 415 and b"application/xml" in reply.body


def test_an_unknown_path_is_404_listing_the_paths_served(cloud: Cloud, pki: PKI) -> None:
    reply = call(cloud, pki, "distservp1.pb.com", 443, "GET", "/nope")
    assert reply.status == 404 and b"/csd/dstproduct" in reply.body


def test_an_unknown_host_on_the_http_listener_is_404_listing_the_hosts(cloud: Cloud, catalog: Catalog) -> None:
    reply = http(cloud.addresses["http"], "GET", "/", "example.org")
    first = min(e.host for s in catalog.services.values() for e in s.endpoints if e.transport == "http")
    assert reply.status == 404 and f"served: {first}".encode() in reply.body


def test_a_wrong_method_is_405_with_allow(cloud: Cloud, pki: PKI) -> None:
    reply = call(cloud, pki, "distservp1.pb.com", 443, "GET", "/csd/dstproduct")
    assert reply.status == 405 and reply.header("allow") == "POST"
    reply = call(cloud, pki, "dlsdlp1.pb.com", 443, "DELETE", "/")
    assert reply.status == 405 and reply.header("allow") == "GET, HEAD"


def test_head_gets_the_get_headers_without_the_body(cloud: Cloud, pki: PKI) -> None:
    raw = exchange(
        cloud.resolver.lookup("pbdlsp1.pb.com", 443),
        request_bytes("HEAD", "/files/rates-gb.bin", "pbdlsp1.pb.com"),
        tls=pki.device_context(),
        sni="pbdlsp1.pb.com",
    )
    reply = parse_reply(raw)
    assert reply.status == 200 and reply.header("content-length") == str(cloud.state.download_bytes)
    assert raw.endswith(b"\r\n\r\n")


def test_requests_are_counted_per_host(cloud: Cloud, pki: PKI) -> None:
    for _ in range(3):
        call(cloud, pki, "www.google.com", 443, "GET", "/")
    call(cloud, pki, "connectivitycheck.gstatic.com", 80, "GET", "/generate_204")
    assert cloud.state.requests["www.google.com"] == 3
    assert cloud.state.requests["connectivitycheck.gstatic.com"] == 1


def _do(cloud: Cloud, pki: PKI, ep: Endpoint) -> None:
    """Run one endpoint's exchange as the device would and check the documented answer."""
    ex = ep.exchange
    c = lambda method, target, body=b"", **kw: call(cloud, pki, ep.host, ep.port, method, target, body, **kw)  # noqa: E731
    if ex == "authenticate":
        assert (
            m.parse_auth_response(c("POST", ep.path, m.auth_request(METER, "sendpro-plus")).body)["status"]
            == "ok"
        )
    elif ex == "refill":
        assert (
            m.parse_refill_response(c("POST", ep.path, m.refill_request(METER, "100.00")).body)["amount"]
            == "100.00"
        )
    elif ex == "audit":
        assert (
            m.parse_audit_response(c("POST", ep.path, m.audit_request(METER, "1.00", "2.00")).body)["status"]
            == "ok"
        )
    elif ex == "psd_config":
        assert m.parse_psd_config(c("POST", ep.path, m.psd_config_request(METER)).body)["meter"] == METER
    elif ex == "transactions":
        assert m.parse_receipt(c("POST", ep.path, m.transaction_upload(METER, ["X1"])).body) == ["X1"]
    elif ex == "download_index":
        assert len(m.parse_download_index(c("GET", ep.path).body)) == len(m.DOWNLOAD_FILES)
    elif ex in ("download", "ota"):
        path = m.file_path("rates-gb.bin") if ex == "download" else m.OTA_PATH
        m.verify_file(pki.signing_public_key(), c("GET", path).body, c("GET", m.signature_path(path)).body)
    elif ex == "accounting":
        assert (
            m.parse_accounting_response(c("POST", ep.path, m.accounting_request(METER)).body)["status"]
            == "ok"
        )
    elif ex == "health_upload":
        assert m.parse_health_receipt(c("POST", ep.path, m.health_data(METER)).body)["status"] == "ok"
    elif ex == "help_page":
        assert m.is_help_page(c("GET", ep.path).body)
    elif ex == "get":
        reply = c("GET", ep.path)
        assert reply.status == 200 and ep.host.encode() in reply.body
    elif ex == "generate_204":
        reply = c("GET", ep.path)
        assert reply.status == 204 and reply.body == b""
    elif ex == "dyngate_in":
        assert m.parse_dyngate_answer(c("GET", ep.path).body)[1] is None
    elif ex == "dyngate_out":
        reply = c("POST", ep.path, b"\x00" * 10, headers=(("Content-Type", "application/octet-stream"),))
        assert m.parse_dyngate_answer(reply.body)[1] == 10
    else:
        raise AssertionError(f"{ep.id}: exchange {ex} is not HTTP")


def test_every_http_and_tls_endpoint_of_the_catalog_is_served_as_documented(
    cloud: Cloud, pki: PKI, catalog: Catalog
) -> None:
    endpoints = [e for e in catalog.endpoints("sendpro-plus") if e.transport in ("http", "tls")]
    assert len(endpoints) > 100
    for ep in endpoints:
        try:
            _do(cloud, pki, ep)
        except Exception as exc:
            raise AssertionError(f"{ep.id}: {exc}") from exc
