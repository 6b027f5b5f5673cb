"""The TLS sniffers (proxy_lab/record/tlssniff.py) fed the bytes of real handshakes made with ssl's MemoryBIO."""

from __future__ import annotations

import ssl

import pytest
import trustme

from proxy_lab.record.tlssniff import ClientHelloSniffer, ServerHelloSniffer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Sniff Test CA")


def _flights(ca: trustme.CA, host: str, max_version: ssl.TLSVersion) -> tuple[bytes, bytes]:
    """(the client's first flight, the server's first flight) of a real handshake, in memory."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(server_ctx)
    server_ctx.maximum_version = max_version
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = c_out.read()
    s_in.write(hello)
    with pytest.raises(ssl.SSLWantReadError):
        server.do_handshake()
    return hello, s_out.read()


def _feed(sniffer: ClientHelloSniffer | ServerHelloSniffer, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        sniffer.feed(data[i : i + step])


@pytest.mark.parametrize("step", [1, 7, 100000])  # byte by byte, odd splits, one chunk
def test_the_sni_is_read_from_a_real_client_hello_however_it_is_split(ca: trustme.CA, step: int) -> None:
    hello, _ = _flights(ca, "distservp1.pb.com", ssl.TLSVersion.TLSv1_3)
    sniffer = ClientHelloSniffer()
    _feed(sniffer, hello, step)
    assert sniffer.tls and sniffer.sni == "distservp1.pb.com" and sniffer.done


def test_plain_http_in_a_tunnel_has_no_sni_and_stops_the_sniffer_at_once() -> None:
    sniffer = ClientHelloSniffer()
    sniffer.feed(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n\r\n")
    assert sniffer.done and not sniffer.tls and sniffer.sni == ""


@pytest.mark.parametrize("step", [1, 13, 100000])
def test_the_issuer_is_read_from_a_tls12_server_certificate(ca: trustme.CA, step: int) -> None:
    _, flight = _flights(ca, "funds.pb.com", ssl.TLSVersion.TLSv1_2)
    sniffer = ServerHelloSniffer()
    _feed(sniffer, flight, step)
    assert sniffer.done
    assert sniffer.seen.version == "TLS 1.2"
    assert "Sniff Test CA" in sniffer.seen.issuer


def test_a_tls13_server_shows_its_version_but_not_its_issuer(ca: trustme.CA) -> None:
    _, flight = _flights(ca, "funds.pb.com", ssl.TLSVersion.TLSv1_3)
    sniffer = ServerHelloSniffer()
    _feed(sniffer, flight, 100000)
    assert sniffer.seen.version == "TLS 1.3"
    assert sniffer.seen.issuer == ""  # encrypted in TLS 1.3: not visible to a proxy


def test_a_server_that_does_not_speak_tls_leaves_nothing_and_stops() -> None:
    sniffer = ServerHelloSniffer()
    sniffer.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert sniffer.done and sniffer.seen.version == "" and sniffer.seen.issuer == ""
