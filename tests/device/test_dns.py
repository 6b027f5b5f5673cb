"""The DNS probe: sent direct to the resolver's address for 8.8.8.8:53, over UDP and TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from proxy_lab.outcomes import Outcome, Result
from proxy_lab.pki import PKI
from proxy_lab.resolver import MapResolver
from tests.device.device_testkit import ep, make_device, run

NAME = "connectivitycheck.gstatic.com"
UDP = ep("dns", f"dns+udp://8.8.8.8:53/{NAME}")
TCP = ep("dns", f"dns+tcp://8.8.8.8:53/{NAME}")
Answer = Callable[[DNSRecord], bytes | None]


def answer_a(q: DNSRecord) -> bytes:
    reply = q.reply()
    reply.add_answer(RR(str(q.q.qname), QTYPE.A, rdata=A("127.0.0.1"), ttl=60))
    return bytes(reply.pack())


def nxdomain(q: DNSRecord) -> bytes:
    reply = q.reply()
    reply.header.rcode = RCODE.NXDOMAIN
    return bytes(reply.pack())


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        out = self.answer(DNSRecord.parse(data))
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


async def _probe(pki: PKI, tmp_path: Path, endpoint: Any, answer: Answer | None) -> Result:
    loop = asyncio.get_running_loop()
    resolver = MapResolver()
    if answer is None:  # nothing listens: a free UDP/TCP port, closed again
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            resolver.add("8.8.8.8", 53, s.getsockname())
        with make_device(pki, resolver, tmp_path, read_timeout_s=0.5) as d:
            return await d.probe(endpoint)
    if endpoint.dns_protocol == "udp":
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(answer), local_addr=("127.0.0.1", 0))
        try:
            resolver.add("8.8.8.8", 53, transport.get_extra_info("sockname"))
            with make_device(pki, resolver, tmp_path, read_timeout_s=0.5) as d:
                return await d.probe(endpoint)
        finally:
            transport.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = int.from_bytes(await reader.readexactly(2), "big")
        out = answer(DNSRecord.parse(await reader.readexactly(n)))
        if out is not None:
            writer.write(len(out).to_bytes(2, "big") + out)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        resolver.add("8.8.8.8", 53, server.sockets[0].getsockname()[:2])
        with make_device(pki, resolver, tmp_path, read_timeout_s=0.5) as d:
            return await d.probe(endpoint)
    finally:
        server.close()


@pytest.mark.parametrize("endpoint", [UDP, TCP], ids=["udp", "tcp"])
def test_an_a_record_passes_over_udp_and_tcp(pki: PKI, tmp_path: Path, endpoint: Any) -> None:
    result = run(_probe(pki, tmp_path, endpoint, answer_a))
    assert result.outcome == Outcome.PASS, result.detail
    assert "127.0.0.1" in result.detail and result.evidence.bytes_received > 0


@pytest.mark.parametrize("endpoint", [UDP, TCP], ids=["udp", "tcp"])
def test_nxdomain_is_unreachable(pki: PKI, tmp_path: Path, endpoint: Any) -> None:
    result = run(_probe(pki, tmp_path, endpoint, nxdomain))
    assert result.outcome == Outcome.UNREACHABLE and "NXDOMAIN" in result.detail


def test_a_resolver_that_drops_the_query_is_a_timeout(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, UDP, lambda q: None))
    assert result.outcome == Outcome.TIMEOUT, result.detail


def test_a_tcp_resolver_that_closes_without_answering_is_a_reset(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, TCP, lambda q: None))
    assert result.outcome == Outcome.RESET, result.detail


@pytest.mark.parametrize("endpoint", [UDP, TCP], ids=["udp", "tcp"])
def test_nothing_listening_on_port_53_is_unreachable(pki: PKI, tmp_path: Path, endpoint: Any) -> None:
    result = run(_probe(pki, tmp_path, endpoint, None))
    assert result.outcome == Outcome.UNREACHABLE, result.detail
    assert "ECONNREFUSED" in result.detail


def test_an_answer_that_is_not_dns_is_a_protocol_mismatch(pki: PKI, tmp_path: Path) -> None:
    result = run(_probe(pki, tmp_path, UDP, lambda q: b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    assert result.outcome == Outcome.PROTOCOL_MISMATCH, result.detail
    assert "a DNS message" in result.detail


def test_an_answer_to_another_query_is_not_accepted(pki: PKI, tmp_path: Path) -> None:
    def wrong_id(q: DNSRecord) -> bytes:
        q.header.id = (q.header.id + 1) % 65536
        return answer_a(q)

    result = run(_probe(pki, tmp_path, UDP, wrong_id))
    assert result.outcome == Outcome.UNREACHABLE and "another query" in result.detail
