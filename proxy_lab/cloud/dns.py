"""The cloud's DNS server (the stand-in for 8.8.8.8:53), over UDP and TCP on one port.

`DnsZone.answer(packet)` is sans-IO: dnslib's wire format in, dnslib's wire format out. It
answers A queries for every catalog host with the cloud's address, NOERROR with no records
(NODATA) for other types of a known name, NXDOMAIN for unknown names, and NXDOMAIN or SERVFAIL
for names the `dns_nxdomain` / `dns_servfail` knobs list. A packet that is not a query is dropped.
The listeners are an asyncio DatagramProtocol and a stream Protocol with RFC 1035 §4.2.2's
two-byte length prefix (dnslib's own threaded server is not used).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import cast

from dnslib import QTYPE, RCODE, RR, A, DNSError, DNSRecord
from dnslib.label import DNSLabelError

from proxy_lab.cloud.conn import Connections, StreamConnection
from proxy_lab.cloud.state import CloudState

TTL_S = 60
MAX_TCP_MESSAGE = 4096  # queries are small; a larger length prefix is refused


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


class DnsZone:
    """The names the cloud answers, all pointing at one IPv4 address."""

    def __init__(self, names: Iterable[str], address: str, state: CloudState) -> None:
        self.names = frozenset(_norm(n) for n in names)
        self.address = address
        self.state = state

    def answer(self, packet: bytes) -> bytes | None:
        """The reply to one DNS message, or None to drop it (unparsable, or not a query)."""
        try:
            query = DNSRecord.parse(packet)
        except (DNSError, ValueError, IndexError, struct.error, UnicodeError):
            return None
        if query.header.qr or query.header.opcode != 0:  # a response, or not a standard QUERY
            return None
        reply = query.reply()
        if len(query.questions) != 1:
            reply.header.rcode = RCODE.FORMERR  # RFC 9619: QDCOUNT must be 1
            return _packed(reply)
        question = query.questions[0]
        name = _norm(str(question.qname))
        self.state.dns_queries[name] += 1
        override = self.state.dns_rcode_override(name)
        if override is not None:
            reply.header.aa = 0
            reply.header.rcode = getattr(RCODE, override)
        elif name not in self.names:
            reply.header.rcode = RCODE.NXDOMAIN
        elif question.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(self.address), ttl=TTL_S))
        # any other type of a known name: NOERROR without records (NODATA, RFC 2308 §2.2)
        return _packed(reply)


def _packed(reply: DNSRecord) -> bytes | None:
    """The reply's bytes, or None (drop) when dnslib will not write what it read: a name with a label
    over 63 octets (RFC 1035 §2.3.4) parses but cannot be packed back into the question section."""
    try:
        return bytes(reply.pack())
    except (DNSError, DNSLabelError):  # dnslib's label error is not a DNSError
        return None


class DnsUdp(asyncio.DatagramProtocol):
    def __init__(self, zone: DnsZone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's does not subclass it

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.zone.state.connections["dns:udp"] += 1
        reply = self.zone.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors for earlier replies: ignore
        pass


class DnsTcp(StreamConnection):
    """DNS over TCP (RFC 7766): length-prefixed messages, several per connection."""

    def __init__(self, zone: DnsZone, registry: Connections, idle_timeout_s: float) -> None:
        super().__init__(registry, idle_timeout_s)
        self.zone = zone
        self._buf = bytearray()

    def connection_made(self, transport: object) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self.zone.state.connections["dns:tcp"] += 1

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.touch()
        self._buf += data
        while len(self._buf) >= 2:
            (length,) = struct.unpack("!H", self._buf[:2])
            if length == 0 or length > MAX_TCP_MESSAGE:
                self.close()
                return
            if len(self._buf) < 2 + length:
                return
            packet = bytes(self._buf[2 : 2 + length])
            del self._buf[: 2 + length]
            reply = self.zone.answer(packet)
            if reply is None:
                self.close()
                return
            self.write(struct.pack("!H", len(reply)) + reply)

    def eof_received(self) -> bool | None:
        self.close()
        return None
