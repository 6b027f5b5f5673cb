"""The inspection stage: an embedded mitmproxy that re-signs TLS with the corporate CA, against the Cloud.

Every test runs a real TLS client on a tunnel from `InspectionStage.open_tunnel`, towards the
simulated cloud, reached only through the Cloud's Resolver (`opener`, as the lab proxy's pipeline
opens the upstream for `tls_inspect`). A client pinning the PB root must fail
and be shown a leaf issued by the corporate CA; the same client trusting the corporate CA must get
the cloud's answer (a real interception, not a broken connection); bypassed hosts keep the genuine
chain (negative control); bytes that are not TLS pass unchanged.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from proxy_lab.cloud import Cloud
from proxy_lab.pki import PKI
from proxy_lab.proxy.inspection import InspectionError, InspectionStage, ignore_hosts_regex
from proxy_lab.resolver import MapResolver, Resolver
from tests.proxy.inspection_kit import CORP, PB_ROOT, TIMEOUT_S, Seen, corp_trusting
from tests.proxy.inspection_kit import through as kit_through
from tests.proxy.proxy_testkit import run


def opener(resolver: Resolver) -> Callable[[str, int], Awaitable[socket.socket]]:
    """Connects to what `resolver` says host:port is (what the lab proxy's pipeline does for tls_inspect)."""

    async def open_upstream(host: str, port: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        (address,) = await resolver.resolve(host, port)
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, address), TIMEOUT_S)
        except BaseException:
            sock.close()
            raise
        return sock

    return open_upstream


async def tunnel(stage: InspectionStage, cloud: Cloud, host: str, port: int) -> socket.socket:
    """A tunnel through `stage` to what `cloud`'s resolver says host:port is."""
    return await stage.open_tunnel(host, port, reopen=opener(cloud.resolver))


@asynccontextmanager
async def cloud_and_stage(pki: PKI, **options: object) -> AsyncIterator[tuple[Cloud, InspectionStage]]:
    cloud = Cloud(pki)
    await cloud.start()
    try:
        async with InspectionStage(pki, **options) as stage:  # type: ignore[arg-type]
            yield cloud, stage
    finally:
        await cloud.stop()


async def through(stage: InspectionStage, cloud: Cloud, host: str, trust: ssl.SSLContext) -> Seen:
    """A TLS client trusting `trust` talks to host:443 through the stage (see inspection_kit.through)."""

    async def open_plain(h: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(sock=await tunnel(stage, cloud, h, 443))

    return await kit_through(open_plain, host, trust)


# -- ignore_hosts regexes --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "target", "matches"),
    [
        ("*.pb.com", "dlsdlp1.pb.com:443", True),
        ("*.pb.com", "DLSDLP1.PB.COM:443", True),  # mitmproxy compiles ignore_hosts with IGNORECASE
        ("*.pb.com", "pb.com:443", False),  # the bare domain is not a subdomain
        ("*.pb.com", "xpb.com:443", False),  # the dot is literal
        ("*.pb.com", "dlsdlp1.pb.com.evil.net:443", False),  # anchored at the end, before the port
        ("pb-ota.redbend.com", "pb-ota.redbend.com:443", True),
        ("pb-ota.redbend.com", "pb-ota.redbend.com", False),  # mitmproxy always matches host:port
        ("dl?.pb.com", "dl1.pb.com:80", True),
    ],
)
def test_bypass_patterns_become_ignore_hosts_regexes_over_host_and_port(pattern: str, target: str, matches: bool) -> None:
    assert bool(re.search(ignore_hosts_regex(pattern), target, re.IGNORECASE)) is matches


# -- interception ---------------------------------------------------------------------------------
def test_a_client_pinning_the_pb_root_fails_and_was_shown_a_leaf_issued_by_the_corporate_ca(pki: PKI) -> None:
    async def scenario() -> Seen:
        async with cloud_and_stage(pki) as (cloud, stage):
            return await through(stage, cloud, "pb-ota.redbend.com", pki.device_context())

    seen = run(scenario())
    assert seen.verify_error == "unable to get local issuer certificate"
    assert len(seen.chain) == 1  # mitmproxy sends the leaf alone by default
    assert CORP in seen.chain[0].issuer and "pb-ota.redbend.com" in seen.chain[0].subject


def test_a_client_trusting_the_corporate_ca_gets_the_clouds_answer_so_it_is_a_real_interception(pki: PKI) -> None:
    async def scenario() -> Seen:
        async with cloud_and_stage(pki) as (cloud, stage):
            return await through(stage, cloud, "dlsdlp1.pb.com", corp_trusting(pki))

    seen = run(scenario())
    assert seen.verify_error == ""
    assert seen.answer.startswith(b"HTTP/1.1 200 OK") and b"Server: proxy-lab-cloud" in seen.answer
    assert CORP in seen.chain[0].issuer


def test_bypassed_hosts_keep_the_genuine_pb_chain_while_other_hosts_are_intercepted(pki: PKI) -> None:
    async def scenario() -> tuple[Seen, Seen]:
        async with cloud_and_stage(pki, bypass=["*.pb.com"]) as (cloud, stage):
            assert stage.bypasses("dlsdlp1.pb.com", 443) and not stage.bypasses("pb-ota.redbend.com", 443)
            return (
                await through(stage, cloud, "dlsdlp1.pb.com", pki.device_context()),
                await through(stage, cloud, "pb-ota.redbend.com", pki.device_context()),
            )

    spliced, inspected = run(scenario())
    assert spliced.verify_error == "" and spliced.answer.startswith(b"HTTP/1.1 200 OK")
    assert PB_ROOT in spliced.chain[0].issuer
    assert inspected.verify_error and CORP in inspected.chain[0].issuer


@pytest.mark.parametrize(
    ("send_root", "message", "chain_length"),
    [
        (False, "unable to get local issuer certificate", 1),  # leaf only: the issuer is unknown
        (True, "self-signed certificate in certificate chain", 2),  # leaf + the corporate root itself
    ],
)
def test_send_root_decides_which_openssl_error_the_client_reports(
    pki: PKI, send_root: bool, message: str, chain_length: int
) -> None:
    async def scenario() -> Seen:
        async with cloud_and_stage(pki, send_root=send_root) as (cloud, stage):
            return await through(stage, cloud, "cometservp1.pb.com", pki.device_context())

    seen = run(scenario())
    assert seen.verify_error == message
    assert len(seen.chain) == chain_length and all(CORP in c.issuer for c in seen.chain)


def test_two_stages_with_different_options_share_one_engine_and_keep_their_own_bypass_lists(pki: PKI) -> None:
    async def scenario() -> tuple[Seen, Seen]:
        cloud = Cloud(pki)
        await cloud.start()
        try:
            async with (
                InspectionStage(pki, bypass=["*.pb.com"]) as lenient,
                InspectionStage(pki) as strict,
            ):
                assert lenient.address == strict.address
                return (
                    await through(lenient, cloud, "dlsdlp1.pb.com", pki.device_context()),
                    await through(strict, cloud, "dlsdlp1.pb.com", pki.device_context()),
                )
        finally:
            await cloud.stop()

    lenient, strict = run(scenario())
    assert lenient.verify_error == "" and PB_ROOT in lenient.chain[0].issuer
    assert strict.verify_error and CORP in strict.chain[0].issuer


# -- what is not TLS passes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "port", "send", "expect"),
    [
        # TeamViewer's line protocol on 5938: not a TLS record, relayed as raw TCP
        ("master3.teamviewer.com", 5938, b"\x17\x24HELLO SP000001\n", b"\x17\x24OK "),
        # mtalk on 5228: looks like an HTTP request line but is not one (no HTTP head ever ends)
        ("mobile-gtalk.l.google.com", 5228, b"MTALK HELLO\n", b"MTALK OK\n"),
        # plain HTTP on port 80
        (
            "connectivitycheck.gstatic.com",
            80,
            b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n",
        ),
    ],
)
def test_streams_that_are_not_tls_pass_through_the_inspection_unchanged(
    pki: PKI, host: str, port: int, send: bytes, expect: bytes
) -> None:
    async def scenario() -> bytes:
        async with cloud_and_stage(pki) as (cloud, stage):
            reader, writer = await asyncio.open_connection(sock=await tunnel(stage, cloud, host, port))
            writer.write(send)
            answer = await asyncio.wait_for(reader.read(len(expect)), TIMEOUT_S)
            writer.close()
            return answer

    assert run(scenario()) == expect


# -- lifecycle and safety -------------------------------------------------------------------------
def test_the_engine_starts_in_under_one_and_a_half_seconds_and_stops_without_leaving_a_thread(pki: PKI) -> None:
    import mitmproxy.master  # noqa: F401 - the one-time import is warm_up()'s business, not the start's

    async def scenario() -> float:
        started = time.monotonic()
        stage = InspectionStage(pki)
        await stage.start()
        elapsed = time.monotonic() - started
        assert [t for t in threading.enumerate() if t.name == "proxy-lab-inspection"]
        await stage.stop()
        await stage.stop()  # idempotent
        return elapsed

    assert run(scenario()) < 1.5
    assert not [t for t in threading.enumerate() if t.name == "proxy-lab-inspection"]


def test_a_connect_that_no_stage_announced_is_refused_with_403(pki: PKI) -> None:
    async def scenario() -> bytes:
        async with InspectionStage(pki) as stage:
            reader, writer = await asyncio.open_connection(*stage.address)
            writer.write(b"CONNECT dlsdlp1.pb.com:443 HTTP/1.1\r\nHost: dlsdlp1.pb.com:443\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
            writer.close()
            return head

    assert run(scenario()).startswith(b"HTTP/1.1 403 ")


def test_no_host_name_reaches_the_system_resolver(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    real = socket.getaddrinfo

    def recording(host: object, *args: object, **kwargs: object) -> object:
        asked.append(str(host))
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", recording)

    async def scenario() -> Seen:
        async with cloud_and_stage(pki) as (cloud, stage):
            return await through(stage, cloud, "dlsdlp1.pb.com", corp_trusting(pki))

    assert run(scenario()).answer.startswith(b"HTTP/1.1 200 OK")
    assert not [h for h in asked if h not in ("127.0.0.1", "None", "localhost")], asked


def test_a_tunnel_whose_target_cannot_be_reached_fails_at_the_relay_not_by_dns(pki: PKI) -> None:
    async def scenario() -> None:
        async with cloud_and_stage(pki) as (cloud, stage):
            # not in the lab's resolver: mitmproxy answers 200 (upstream mode), then the upstream fails
            sock = await tunnel(stage, cloud, "unknown.invalid", 443)
            _reader, writer = await asyncio.open_connection(sock=sock)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.wait_for(writer.start_tls(pki.device_context(), server_hostname="unknown.invalid"), TIMEOUT_S)
            writer.close()

    run(scenario())


def test_open_tunnel_before_start_is_an_error(pki: PKI) -> None:
    with pytest.raises(InspectionError):
        run(InspectionStage(pki).open_tunnel("dlsdlp1.pb.com", 443, reopen=opener(MapResolver())))


# -- the stage's CONNECT client ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "pieces",
    [
        [b"HTTP/1.1 200 Connection established\r\n\r\nBANNER"],  # head and tunnel bytes in one segment
        [b"HTTP/1.1 200 Conn", b"ection established\r\n\r\n", b"BANNER"],  # the head in pieces
    ],
)
def test_the_connect_answer_is_read_whole_and_the_tunnel_bytes_after_it_stay_in_the_socket(
    pieces: list[bytes],
) -> None:
    from proxy_lab.proxy.inspection.stage import read_answer

    async def scenario() -> tuple[tuple[int, str], bytes]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, server.sockets[0].getsockname())
        status = await asyncio.wait_for(read_answer(sock), TIMEOUT_S)
        rest = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 100), TIMEOUT_S):
            rest += chunk
        sock.close()
        server.close()
        return status, rest

    status, rest = run(scenario())
    assert status == (200, "Connection established")
    assert rest == b"BANNER"


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        (b"HTTP/1.1 200 Conn", "closed after 17 bytes"),  # the proxy left mid-head
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 20000, "larger than"),  # a head that never ends
    ],
)
def test_a_connect_answer_cut_short_or_too_large_is_an_error_not_a_hang(sent: bytes, error: str) -> None:
    from proxy_lab.errors import RemoteProtocolError
    from proxy_lab.proxy.inspection.stage import read_answer

    async def scenario() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(sent)
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        sock = socket.socket()
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, server.sockets[0].getsockname())
        with pytest.raises((ConnectionError, RemoteProtocolError), match=error):
            await asyncio.wait_for(read_answer(sock), TIMEOUT_S)
        sock.close()
        server.close()

    run(scenario())
