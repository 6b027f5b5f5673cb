"""The HTTPS listener: the certificate is chosen by SNI and anchored in the PB root only."""

from __future__ import annotations

import ssl

import pytest
import trustme
from cryptography import x509

from proxy_lab.catalog import Catalog
from proxy_lab.cloud import Cloud
from proxy_lab.pki import PKI
from proxy_lab.protocol import messages as m
from tests.cloud.cloud_testclient import (
    XML_HEADERS,
    connect,
    exchange,
    http,
    parse_reply,
    read_all,
    request_bytes,
)


def _san_dns_names(sock: ssl.SSLSocket) -> list[str]:
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


def _covers(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def test_every_tls_host_of_the_catalog_gets_its_own_certificate(
    cloud: Cloud, pki: PKI, catalog: Catalog
) -> None:
    ctx = pki.device_context()  # check_hostname on: the handshake itself checks the name
    hosts = catalog.hosts("tls")
    assert len(hosts) > 90
    for host in hosts:
        with connect(cloud.resolver.lookup(host, 443), tls=ctx, sni=host) as sock:
            assert isinstance(sock, ssl.SSLSocket)
            names = _san_dns_names(sock)
            assert any(_covers(n, host) for n in names), f"{host}: SAN {names}"
            assert sock.selected_alpn_protocol() in (None, "http/1.1")


def test_a_host_whose_label_idna_refuses_is_served_under_its_parents_wildcard(cloud: Cloud, pki: PKI) -> None:
    host = "r1---sn-8pgbpohxqp5-auol.gvt1.com"  # '--' in positions 3-4: not a valid IDNA 2008 label
    with connect(cloud.resolver.lookup(host, 443), tls=pki.device_context(), sni=host) as sock:
        assert isinstance(sock, ssl.SSLSocket)
        assert _san_dns_names(sock) == ["*.gvt1.com"]


def test_a_client_trusting_another_ca_fails_verification(cloud: Cloud) -> None:
    # Negative control (trustme's own end-to-end test): same code, wrong anchor, must fail.
    other = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    other.configure_trust(ctx)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        connect(cloud.resolver.lookup("distservp1.pb.com", 443), tls=ctx, sni="distservp1.pb.com")


def _unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_a_client_hello_without_sni_is_given_the_default_certificate_and_served_nothing(cloud: Cloud) -> None:
    with connect(cloud.addresses["https"], tls=_unverified(), sni=None) as sock:
        assert isinstance(sock, ssl.SSLSocket)
        assert _san_dns_names(sock) == ["unknown.lab.invalid"]
        sock.sendall(request_bytes("GET", "/", "api.pitneybowes.com"))
        reply = parse_reply(read_all(sock))
    assert reply.status == 421
    assert b"unknown.lab.invalid" in reply.body


def test_a_client_hello_for_a_host_outside_the_catalog_fails_hostname_verification(
    cloud: Cloud, pki: PKI
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        connect(cloud.addresses["https"], tls=pki.device_context(), sni="evil.example.com")


def test_the_default_certificate_is_still_anchored_in_the_pb_root(cloud: Cloud, pki: PKI) -> None:
    # Only the name is wrong: with the name it carries, the PB root verifies it.
    with connect(cloud.addresses["https"], tls=pki.device_context(), sni="unknown.lab.invalid") as sock:
        assert isinstance(sock, ssl.SSLSocket)
        assert _san_dns_names(sock) == ["unknown.lab.invalid"]


def test_a_host_header_differing_from_the_sni_is_misdirected(cloud: Cloud, pki: PKI) -> None:
    raw = exchange(
        cloud.addresses["https"],
        request_bytes("GET", "/", "api.precisely.com"),
        tls=pki.device_context(),
        sni="api.pitneybowes.com",
    )
    reply = parse_reply(raw)
    assert reply.status == 421
    assert b"api.precisely.com" in reply.body and b"api.pitneybowes.com" in reply.body


def test_a_plain_http_request_on_the_tls_listener_gets_no_http_answer(cloud: Cloud) -> None:
    # An HTTP request where a ClientHello is expected fails the handshake: no HTTP status comes back.
    raw = exchange(cloud.addresses["https"], request_bytes("GET", "/", "distservp1.pb.com"))
    assert not raw.startswith(b"HTTP/")


def test_the_same_exchange_works_over_tls_and_plain_http_for_a_dual_host(cloud: Cloud, pki: PKI) -> None:
    body = m.auth_request("PBLAB-0001", "sendpro-c")
    for port, tls in ((443, pki.device_context()), (80, None)):
        reply = http(
            cloud.resolver.lookup("distservp1.pb.com", port),
            "POST",
            "/csd/dstproduct",
            "distservp1.pb.com",
            body,
            tls=tls,
            headers=XML_HEADERS,
        )
        assert reply.status == 200, reply.body
        assert m.parse_auth_response(reply.body)["status"] == "ok"
    assert cloud.state.connections["https"] >= 1 and cloud.state.connections["http"] >= 1
