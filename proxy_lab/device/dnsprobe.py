"""The DNS probe: an A query sent *direct* (never through the proxy), over UDP or TCP.

The guide: "Connectivity tests also use Google DNS explicitly (8.8.8.8 Port 53)" and port 53 must
allow "both UDP and TCP". The server address comes from the device's resolver for (8.8.8.8, 53), so
in the lab it is the cloud's DNS listener. Queries and answers are built and parsed with dnslib;
TCP messages carry the two-byte length prefix of RFC 1035 §4.2.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

from proxy_lab.catalog import Endpoint
from proxy_lab.device.classify import (
    ConnectFailed,
    DnsFailed,
    NameFailed,
    NotHttpAnswer,
    ProbeFailed,
    StreamCut,
    Worked,
    classify,
)
from proxy_lab.device.settings import DeviceSettings
from proxy_lab.device.transcript import Transcript
from proxy_lab.device.wire import errno_name, show_address
from proxy_lab.outcomes import Evidence
from proxy_lab.resolver import ResolveError, Resolver

MAX_DNS_MESSAGE = 65535


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable -> ECONNREFUSED
        if not self.answer.done():
            self.answer.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionResetError("socket closed"))


def query_name(endpoint: Endpoint) -> str:
    return endpoint.path.strip("/")


async def dns_probe(
    endpoint: Endpoint,
    settings: DeviceSettings,
    resolver: Resolver,
    evidence: Evidence,
    transcript: Transcript,
) -> Worked:
    name = query_name(endpoint)
    proto = endpoint.dns_protocol
    try:
        addresses = await resolver.resolve(endpoint.host, endpoint.port)
    except ResolveError as exc:
        raise ProbeFailed(classify(NameFailed(endpoint.host, exc.reason))) from exc
    address = addresses[0]
    server = f"{endpoint.host}:{endpoint.port}"
    where = show_address(address)
    peer = f"resolver {server}" + ("" if where == server else f" at {where}")
    query = DNSRecord.question(name, "A")
    packet = query.pack()
    transcript.sent(f"DNS {proto.upper()} query A {name} to {server} (id {query.header.id})")
    if proto == "udp":
        data = await _udp_exchange(address, packet, peer, settings, evidence, transcript)
    else:
        data = await _tcp_exchange(address, packet, peer, settings, evidence, transcript)
    try:
        answer = DNSRecord.parse(data)
    except Exception as exc:  # dnslib raises DNSError and struct/Buffer errors for garbage
        raise ProbeFailed(
            classify(
                NotHttpAnswer(
                    peer,
                    f"in answer to the A query for {name}",
                    data[:64],
                    str(exc),
                    protocol="a DNS message",
                )
            )
        ) from exc
    rcode = RCODE.get(answer.header.rcode)
    a_records = [str(rr.rdata) for rr in answer.rr if rr.rtype == QTYPE.A]
    transcript.received(
        f"DNS answer {rcode} id {answer.header.id}{' TC' if answer.header.tc else ''}: "
        f"{', '.join(a_records) or 'no A records'}"
    )
    if answer.header.id != query.header.id:
        raise ProbeFailed(
            classify(DnsFailed(server, name, proto, f"an answer to another query (id {answer.header.id})"))
        )
    if answer.header.rcode != RCODE.NOERROR:
        raise ProbeFailed(classify(DnsFailed(server, name, proto, str(rcode))))
    if not a_records:
        seen = "a truncated answer (TC) without A records" if answer.header.tc else "NOERROR but no A record"
        raise ProbeFailed(classify(DnsFailed(server, name, proto, seen)))
    return Worked(f"resolver {server} over {proto.upper()} answered {name} A {', '.join(a_records)}")


async def _udp_exchange(
    address: tuple[str, int],
    packet: bytes,
    peer: str,
    settings: DeviceSettings,
    evidence: Evidence,
    transcript: Transcript,
) -> bytes:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(_UdpClient, remote_addr=address)
    except OSError as exc:
        raise ProbeFailed(classify(ConnectFailed(peer, errno_name(exc)))) from exc
    try:
        transport.sendto(packet)
        evidence.bytes_sent += len(packet)
        async with asyncio.timeout(settings.read_timeout_s):
            data = await protocol.answer
    except TimeoutError as exc:
        transcript.note(f"timeout: no DNS answer from {peer} within {settings.read_timeout_s:g} s")
        raise ProbeFailed(
            classify(
                StreamCut(
                    peer,
                    "while waiting for the answer to a UDP query",
                    "timeout",
                    timeout_s=settings.read_timeout_s,
                    expected="a DNS answer",
                )
            )
        ) from exc
    except OSError as exc:
        transcript.note(f"UDP error from {peer}: {errno_name(exc)}")
        raise ProbeFailed(classify(ConnectFailed(peer, errno_name(exc)))) from exc
    finally:
        transport.close()
    evidence.bytes_received += len(data)
    return data


async def _tcp_exchange(
    address: tuple[str, int],
    packet: bytes,
    peer: str,
    settings: DeviceSettings,
    evidence: Evidence,
    transcript: Transcript,
) -> bytes:
    try:
        async with asyncio.timeout(settings.connect_timeout_s):
            reader, writer = await asyncio.open_connection(*address)
    except TimeoutError as exc:
        raise ProbeFailed(
            classify(ConnectFailed(peer, "timed out", timed_out=True, timeout_s=settings.connect_timeout_s))
        ) from exc
    except OSError as exc:
        transcript.note(f"TCP connect to {peer} failed: {errno_name(exc)}")
        raise ProbeFailed(classify(ConnectFailed(peer, errno_name(exc)))) from exc
    got = 0
    try:
        message = struct.pack("!H", len(packet)) + packet
        writer.write(message)
        evidence.bytes_sent += len(message)
        async with asyncio.timeout(settings.read_timeout_s):
            await writer.drain()
            length = struct.unpack("!H", await reader.readexactly(2))[0]
            got = 2
            data = await reader.readexactly(length)
        evidence.bytes_received += 2 + len(data)
        return data
    except TimeoutError as exc:
        transcript.note(f"timeout: no DNS answer from {peer} within {settings.read_timeout_s:g} s")
        raise ProbeFailed(
            classify(
                StreamCut(
                    peer,
                    "while waiting for the answer to a TCP query",
                    "timeout",
                    after_bytes=got,
                    timeout_s=settings.read_timeout_s,
                    expected="a DNS answer",
                )
            )
        ) from exc
    except asyncio.IncompleteReadError as exc:
        got += len(exc.partial)
        evidence.bytes_received += got
        transcript.note(f"EOF from {peer} after {got} bytes")
        raise ProbeFailed(
            classify(
                StreamCut(
                    peer,
                    "while waiting for the answer to a TCP query",
                    "eof",
                    after_bytes=got,
                    expected="a DNS answer",
                )
            )
        ) from exc
    except OSError as exc:
        transcript.note(f"reset ({errno_name(exc)}) from {peer}")
        raise ProbeFailed(
            classify(
                StreamCut(
                    peer,
                    "while waiting for the answer to a TCP query",
                    "reset",
                    after_bytes=got,
                    expected="a DNS answer",
                )
            )
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            writer.close()
