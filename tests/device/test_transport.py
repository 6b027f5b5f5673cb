"""The device's CONNECT transport against small in-test proxies: tunnels, 407s, refusals, odd answers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.catalog import Endpoint
from proxy_lab.device import Device
from proxy_lab.outcomes import Outcome, Result
from proxy_lab.pki import PKI
from proxy_lab.resolver import MapResolver
from tests.device.device_testkit import (
    Conn,
    Handler,
    HandlerError,
    Server,
    connect_target,
    ep,
    http_origin,
    make_device,
    relay,
    response,
    run,
    scripted,
)

HOST = "ms1app.pb.com"
HTTPS_GET = ep("get", f"https://{HOST}/")
HTTP_GET = ep("get", "http://microsoft.com/")


async def _page(head: bytes, body: bytes) -> bytes:
    return response("200 OK", b"<html><title>page</title></html>", "text/html")


async def _probe_through(
    pki: PKI,
    tmp_path: Path,
    make_proxy: Callable[[MapResolver], Handler],
    endpoint: Endpoint = HTTPS_GET,
    *,
    lines: list[str] | None = None,
    **kw: Any,
) -> tuple[Result, Server, Server]:
    """Probe `endpoint` through an in-test proxy made by `make_proxy(resolver)`; the origin is a
    PB-signed TLS server (or a plain one for http endpoints)."""
    resolver = MapResolver()
    tls = pki.server_context(endpoint.host) if endpoint.transport == "tls" else None
    async with Server(http_origin(_page), tls) as origin:
        resolver.add(endpoint.host, endpoint.port, origin.address)
        async with Server(make_proxy(resolver)) as proxy:
            device = make_device(pki, resolver, tmp_path, proxy.address, lines=lines, **kw)
            with device:
                result = await device.probe(endpoint)
            return result, proxy, origin


def test_an_https_endpoint_passes_through_a_trivial_connect_relay(pki: PKI, tmp_path: Path) -> None:
    lines: list[str] = []
    result, proxy, origin = run(_probe_through(pki, tmp_path, lambda r: relay(r), lines=lines))
    assert result.outcome == Outcome.PASS, result.detail
    t = result.evidence.transcript
    assert t[t.index(f"> CONNECT {HOST}:443 HTTP/1.1") + 1] == f"> Host: {HOST}:443"
    assert "< HTTP/1.1 200 Connection established" in t
    assert any(line.startswith("! TLS TLSv1.") for line in t)
    assert ">> GET / HTTP/1.1" in t and "<< HTTP/1.1 200 OK" in t
    assert result.evidence.bytes_sent > 0 and result.evidence.bytes_received > 0
    assert (
        result.evidence.chain_shown and result.evidence.chain_shown[-1].issuer == pki.root_summary().subject
    )
    assert lines and all(line.startswith(f"https://{HOST}/ ") for line in lines)  # on_event, labelled
    assert proxy.connections == 1 and origin.connections == 1


def test_a_plain_http_endpoint_is_tunnelled_with_connect_to_port_80_too(pki: PKI, tmp_path: Path) -> None:
    result, proxy, _ = run(_probe_through(pki, tmp_path, lambda r: relay(r), HTTP_GET))
    assert result.outcome == Outcome.PASS, result.detail
    assert proxy.heads[0][1].startswith(b"CONNECT microsoft.com:80 HTTP/1.1\r\nHost: microsoft.com:80\r\n")


def test_a_407_is_answered_with_basic_on_the_same_connection(pki: PKI, tmp_path: Path) -> None:
    result, proxy, _ = run(
        _probe_through(
            pki,
            tmp_path,
            lambda r: relay(r, credentials=("alice", "s3cret")),
            username="alice",
            password="s3cret",
        )
    )
    assert result.outcome == Outcome.PASS, result.detail
    assert proxy.connections == 1
    (c1, first), (c2, second) = proxy.heads
    assert c1 == c2 == 1
    assert b"Proxy-Authorization" not in first  # OkHttp waits for the challenge
    assert b"Proxy-Authorization: Basic " + base64.b64encode(b"alice:s3cret") in second
    assert result.evidence.attempts == 2 and result.evidence.auth_schemes == ["Basic"]
    assert "> Proxy-Authorization: Basic ****" in result.evidence.transcript
    assert not any("s3cret" in line or "YWxpY2U6czNjcmV0" in line for line in result.evidence.transcript)


def test_a_407_with_connection_close_is_retried_on_a_new_connection(pki: PKI, tmp_path: Path) -> None:
    result, proxy, _ = run(
        _probe_through(
            pki,
            tmp_path,
            lambda r: relay(r, credentials=("alice", "s3cret"), close_after_407=True),
            username="alice",
            password="s3cret",
        )
    )
    assert result.outcome == Outcome.PASS, result.detail
    assert proxy.connections == 2
    assert [c for c, _ in proxy.heads] == [1, 2]
    assert any("new connection" in line for line in result.evidence.transcript)


def test_preemptive_auth_sends_credentials_with_the_first_connect(pki: PKI, tmp_path: Path) -> None:
    result, proxy, _ = run(
        _probe_through(
            pki,
            tmp_path,
            lambda r: relay(r, credentials=("alice", "s3cret")),
            username="alice",
            password="s3cret",
            preemptive_auth=True,
        )
    )
    assert result.outcome == Outcome.PASS and result.evidence.attempts == 1
    assert b"Proxy-Authorization: Basic" in proxy.heads[0][1]


def test_a_wrong_password_is_auth_required_after_one_retry(pki: PKI, tmp_path: Path) -> None:
    result, proxy, _ = run(
        _probe_through(
            pki,
            tmp_path,
            lambda r: relay(r, credentials=("alice", "s3cret")),
            username="alice",
            password="S3CRET",
        )
    )
    assert result.outcome == Outcome.AUTH_REQUIRED, result.detail
    assert "rejected" in result.detail and result.evidence.auth_schemes == ["Basic"]
    assert len(proxy.heads) == 2 and result.evidence.attempts == 2


def test_no_credentials_configured_is_auth_required_without_a_retry(pki: PKI, tmp_path: Path) -> None:
    result, proxy, _ = run(_probe_through(pki, tmp_path, lambda r: relay(r, credentials=("alice", "s3cret"))))
    assert result.outcome == Outcome.AUTH_REQUIRED and "no proxy username" in result.detail
    assert len(proxy.heads) == 1


def test_an_ntlm_and_negotiate_only_proxy_is_auth_required_with_its_schemes(pki: PKI, tmp_path: Path) -> None:
    result, proxy, _ = run(
        _probe_through(
            pki,
            tmp_path,
            lambda r: relay(r, credentials=("alice", "s3cret"), challenges=("NTLM", "Negotiate")),
            username="alice",
            password="s3cret",
        )
    )
    assert result.outcome == Outcome.AUTH_REQUIRED, result.detail
    assert result.evidence.auth_schemes == ["NTLM", "Negotiate"]
    assert "only NTLM, Negotiate" in result.detail
    assert len(proxy.heads) == 1  # Basic is never sent to a proxy that did not offer it


SQUID_PAGE = b"<html><head><title>ERROR: The requested URL could not be retrieved</title></head></html>"
SQUID_403 = (
    b"HTTP/1.1 403 Forbidden\r\nServer: squid/6.6\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n"
    b"Content-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(SQUID_PAGE), SQUID_PAGE)
)


@pytest.mark.parametrize(
    ("answer", "then", "outcome", "words"),
    [
        (SQUID_403, "close", Outcome.REFUSED, "X-Squid-Error: ERR_ACCESS_DENIED 0"),  # Squid SSL_ports denial
        (b"\x05\xff", "close", Outcome.PROTOCOL_MISMATCH, "SOCKS5"),  # a SOCKS5 server on the proxy port
        (b"", "close", Outcome.UNREACHABLE, "before sending any byte"),  # closes without a word
        (b"", "reset", Outcome.RESET, "reset"),  # Squid deny_info TCP_RESET
        (b"", "hold", Outcome.TIMEOUT, "nothing for 0.5 s"),  # a black hole
        (b"HTTP/1.1 204 No Content\r\n\r\n", "hold", Outcome.REFUSED, "only 200"),  # a 2xx other than 200
        (
            b"HTTP/1.1 200 OK\r\n\r\nHELLO",
            "hold",
            Outcome.PROTOCOL_MISMATCH,
            "buffered too many bytes",
        ),  # bytes after head
        (
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
            "close",
            Outcome.UNREACHABLE,
            "could not reach",
        ),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nX-Squid-Error: ERR_DNS_FAIL 0\r\n\r\n",
            "close",
            Outcome.UNREACHABLE,
            "ERR_DNS_FAIL",
        ),
        (
            b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=""\r\nContent-Length: 0\r\n\r\n',
            "close",
            Outcome.REFUSED,
            "origin's answer",
        ),  # envoy's 401
        (
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
            "close",
            Outcome.REFUSED,
            "§11.7.1",
        ),  # no challenge
        (b"HTTP/1.1 200 Conn", "close", Outcome.RESET, "after 17 bytes"),  # head cut short
    ],
)
def test_odd_proxy_answers_are_classified(
    pki: PKI, tmp_path: Path, answer: bytes, then: str, outcome: Outcome, words: str
) -> None:
    result, _, _ = run(
        _probe_through(pki, tmp_path, lambda r: scripted(answer, then=then), read_timeout_s=0.5)
    )
    assert result.outcome == outcome, result.detail
    assert words in result.detail
    assert "proxy 127.0.0.1:" in result.detail


def test_a_squid_403_keeps_its_headers_in_the_evidence(pki: PKI, tmp_path: Path) -> None:
    result, _, _ = run(_probe_through(pki, tmp_path, lambda r: scripted(SQUID_403)))
    ev = result.evidence
    assert ev.connect_status == 403 and ev.connect_reason == "Forbidden"
    assert ev.header("X-Squid-Error") == "ERR_ACCESS_DENIED 0"
    assert "< X-Squid-Error: ERR_ACCESS_DENIED 0" in ev.transcript
    assert "ERROR: The requested URL could not be retrieved" in result.detail


def test_framing_headers_on_a_200_are_ignored(pki: PKI, tmp_path: Path) -> None:
    # RFC 9110 §9.3.6: "A client MUST ignore any Content-Length or Transfer-Encoding header fields
    # received in a successful response to CONNECT."
    answer = (
        b"HTTP/1.0 200 Connection established\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    result, _, _ = run(_probe_through(pki, tmp_path, lambda r: relay(r, answer_200=answer)))
    assert result.outcome == Outcome.PASS, result.detail
    assert any("ignoring Content-Length" in line for line in result.evidence.transcript)


def test_a_proxy_port_with_nothing_listening_is_unreachable(pki: PKI, tmp_path: Path) -> None:
    async def go() -> Result:
        async with Server(scripted(b"")) as s:
            closed = s.address
        with make_device(pki, MapResolver(), tmp_path, closed) as device:
            return await device.probe(HTTPS_GET)

    result = run(go())
    assert result.outcome == Outcome.UNREACHABLE and "ECONNREFUSED" in result.detail


def test_a_connect_answered_slowly_is_degraded_and_a_quick_one_is_not(pki: PKI, tmp_path: Path) -> None:
    slow, _, _ = run(_probe_through(pki, tmp_path, lambda r: relay(r, delay_s=0.4), slow_setup_s=0.2))
    assert slow.outcome == Outcome.DEGRADED and "to open" in slow.detail
    quick, _, _ = run(_probe_through(pki, tmp_path, lambda r: relay(r), slow_setup_s=0.2))
    assert quick.outcome == Outcome.PASS, quick.detail


def test_direct_mode_connects_to_the_resolved_address_without_connect(pki: PKI, tmp_path: Path) -> None:
    async def go() -> tuple[Result, Server]:
        resolver = MapResolver()
        async with Server(http_origin(_page), pki.server_context(HOST)) as origin:
            resolver.add(HOST, 443, origin.address)
            with make_device(pki, resolver, tmp_path) as device:
                return await device.probe(HTTPS_GET), origin

    result, origin = run(go())
    assert result.outcome == Outcome.PASS, result.detail
    assert not any("CONNECT" in line for line in result.evidence.transcript)
    assert origin.heads[0][1].startswith(b"GET / HTTP/1.1\r\nHost: ms1app.pb.com\r\n")


def test_direct_mode_with_a_name_the_resolver_lacks_is_unreachable(pki: PKI, tmp_path: Path) -> None:
    async def go() -> Result:
        with make_device(pki, MapResolver(), tmp_path) as device:
            return await device.probe(HTTPS_GET)

    result = run(go())
    assert result.outcome == Outcome.UNREACHABLE and HOST in result.detail


def test_run_probes_every_endpoint_of_the_chosen_services_and_never_raises(pki: PKI, tmp_path: Path) -> None:
    async def go() -> list[Result]:
        async with Server(scripted(SQUID_403)) as proxy:
            device: Device
            with make_device(pki, MapResolver(), tmp_path, proxy.address, concurrency=4) as device:
                return await device.run(["funds", "online_help"])

    results = run(go())
    assert [r.service for r in results] == ["funds"] * 5 + ["online_help"]
    assert {r.outcome for r in results} == {Outcome.REFUSED}


def test_run_rejects_a_service_the_model_does_not_offer(pki: PKI, tmp_path: Path) -> None:
    with (
        make_device(pki, MapResolver(), tmp_path) as device,
        pytest.raises(ValueError, match="parcel_shipping"),
    ):
        device.endpoints(["parcel_shipping"])  # SendPro+ only; the default model is sendpro-c


def test_an_interim_100_before_the_200_is_skipped(pki: PKI, tmp_path: Path) -> None:
    # RFC 9110 §15.2: "A client MUST be able to parse one or more 1xx responses received prior to a
    # final response".
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Connection established\r\n\r\n"
    result, _, _ = run(_probe_through(pki, tmp_path, lambda r: relay(r, answer_200=answer)))
    assert result.outcome == Outcome.PASS, result.detail
    assert result.evidence.connect_status == 200


def _expecting_connect_to(host: str, port: int) -> Callable[[MapResolver], Handler]:
    """A relay that first asserts what the device asked to CONNECT to (a script's own check)."""

    def make(resolver: MapResolver) -> Handler:
        inner = relay(resolver)

        async def handle(conn: Conn) -> None:
            head = await conn.reader.readuntil(b"\r\n\r\n")
            assert connect_target(head) == (host, port), head
            conn.reader.feed_data(head)  # hand the head, unread, to the relay
            await inner(conn)

        return handle

    return make


def test_a_handler_that_fails_fails_the_test_that_started_its_server(pki: PKI, tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=r"AssertionError") as info:
        run(_probe_through(pki, tmp_path, _expecting_connect_to("wrong.pb.com", 443)))
    assert isinstance(info.value.__cause__, AssertionError)
    assert b"CONNECT ms1app.pb.com:443" in str(info.value.__cause__).encode()


def test_a_handler_whose_checks_hold_lets_the_test_pass(pki: PKI, tmp_path: Path) -> None:
    # negative control of the test above: the same script, expecting what the device really asks
    result, proxy, _ = run(_probe_through(pki, tmp_path, _expecting_connect_to(HOST, 443)))
    assert result.outcome == Outcome.PASS, result.detail
    assert proxy.errors == []


def test_an_error_of_the_test_itself_is_not_hidden_by_a_failed_handler() -> None:
    async def failing(conn: Conn) -> None:
        raise ValueError("script bug")

    async def go() -> None:
        async with Server(failing) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            await asyncio.wait_for(reader.read(), 5)  # the handler failed: the server closed
            writer.close()
            raise KeyError("the test's own failure")

    with pytest.raises(KeyError, match="the test's own failure"):
        run(go())
