"""TLS in the tunnel: the PB root is the only anchor; interception is named by the issuer shown."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import trustme

from proxy_lab.outcomes import Outcome, Result
from proxy_lab.pki import PKI
from proxy_lab.resolver import MapResolver
from tests.device.device_testkit import Conn, Server, ep, http_origin, make_device, relay, response, run

HOST = "decometlb5.pb.com"
GET = ep("get", f"https://{HOST}/")
CORP_OU = "Corp Inspection CA (device test)"


async def _page(head: bytes, body: bytes) -> bytes:
    return response("200 OK", b"ok")


def _corp_context() -> ssl.SSLContext:
    corp = trustme.CA(organization_name="proxy-lab test", organization_unit_name=CORP_OU)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    corp.issue_cert(HOST).configure_cert(ctx)
    return ctx


async def _probe(pki: PKI, tmp_path: Path, origin_handler, ctx: ssl.SSLContext | None) -> Result:  # type: ignore[no-untyped-def]
    resolver = MapResolver()
    async with Server(origin_handler, ctx) as origin:
        resolver.add(HOST, 443, origin.address)
        async with Server(relay(resolver)) as proxy:
            with make_device(pki, resolver, tmp_path, proxy.address, read_timeout_s=1.0) as device:
                return await device.probe(GET)


def test_a_chain_from_another_ca_is_tls_intercepted_naming_that_ca_as_issuer(
    pki: PKI, tmp_path: Path
) -> None:
    result = run(_probe(pki, tmp_path, http_origin(_page), _corp_context()))
    assert result.outcome == Outcome.TLS_INTERCEPTED, result.detail
    ev = result.evidence
    assert CORP_OU in ev.chain_shown[0].issuer and CORP_OU in result.detail
    assert ev.tls_error == "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
    assert ev.tls_alert == "sent unknown_ca"
    assert ev.chain_expected[-1] == pki.root_summary()
    assert ev.chain_shown[0].sha256 != ev.chain_expected[0].sha256
    assert any(line.startswith("! TLS: CERTIFICATE_VERIFY_FAILED") for line in ev.transcript)


def test_the_same_server_with_a_pb_signed_certificate_passes(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, http_origin(_page), pki.server_context(HOST)))
    assert result.outcome == Outcome.PASS, result.detail
    assert (
        result.evidence.tls_error == ""
        and result.evidence.chain_shown[0] == result.evidence.chain_expected[0]
    )


def test_a_plain_http_answer_to_the_client_hello_is_a_protocol_mismatch(pki: PKI, tmp_path: Path) -> None:
    async def http_speaker(conn: Conn) -> None:
        await asyncio.wait_for(conn.reader.read(5), 2)  # the start of the ClientHello
        await conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    result = run(_probe(pki, tmp_path, http_speaker, None))
    assert result.outcome == Outcome.PROTOCOL_MISMATCH, result.detail
    assert "ClientHello is not TLS" in result.detail


def test_a_tunnel_closed_during_the_handshake_is_a_reset(pki: PKI, tmp_path: Path) -> None:
    async def hang_up(conn: Conn) -> None:
        await asyncio.wait_for(conn.reader.read(10), 2)

    result = run(_probe(pki, tmp_path, hang_up, None))
    assert result.outcome == Outcome.RESET, result.detail
    assert "mid-handshake" in result.detail


def test_an_origin_silent_after_the_client_hello_is_a_timeout(pki: PKI, tmp_path: Path) -> None:
    async def silent(conn: Conn) -> None:
        await asyncio.sleep(3)

    result = run(_probe(pki, tmp_path, silent, None))
    assert result.outcome == Outcome.TIMEOUT, result.detail
    assert "TLS handshake" in result.detail


def test_a_chain_given_as_certificate_objects_is_summarised_like_der_bytes(pki: PKI) -> None:
    # Python 3.13's SSLObject hands back DER bytes; lower layers give `_ssl.Certificate` objects with
    # `public_bytes(format)`. Both must give the same summary.
    from proxy_lab.device.tls import shown_chain
    from proxy_lab.pki import summarize

    der = ssl.PEM_cert_to_DER_cert(pki.pb_root.cert.read_text())

    class Certificate:
        def public_bytes(self, fmt: int) -> bytes:
            assert fmt == 2  # _ssl.ENCODING_DER
            return der

    class FakeSSLObject:
        def __init__(self, items: list[object]) -> None:
            self.items = items

        def get_unverified_chain(self) -> list[object]:
            return self.items

    as_bytes = shown_chain(FakeSSLObject([der]), summarize)  # type: ignore[arg-type]
    as_objects = shown_chain(FakeSSLObject([Certificate()]), summarize)  # type: ignore[arg-type]
    assert as_bytes == as_objects == [pki.root_summary()]
    assert shown_chain(object(), summarize) == []  # type: ignore[arg-type]  # Python 3.12: no method, no chain
