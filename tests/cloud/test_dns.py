"""The cloud's DNS (standing in for 8.8.8.8:53): dnslib-built queries over UDP and TCP."""

from __future__ import annotations

import socket
import struct

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from proxy_lab.cloud import Cloud
from proxy_lab.cloud.dns import DnsZone
from proxy_lab.cloud.state import CloudState


def ask_udp(cloud: Cloud, name: str, qtype: str = "A") -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query.pack(), cloud.resolver.lookup("8.8.8.8", 53))
        data, _ = sock.recvfrom(4096)
    reply = DNSRecord.parse(data)
    assert reply.header.id == query.header.id
    return reply


def ask_tcp(cloud: Cloud, *names: str) -> list[DNSRecord]:
    """Several length-prefixed queries on one TCP connection (RFC 7766 §6.2.1)."""
    replies = []
    with socket.create_connection(cloud.resolver.lookup("8.8.8.8", 53), timeout=5) as sock:
        for name in names:
            packet = DNSRecord.question(name, "A").pack()
            sock.sendall(struct.pack("!H", len(packet)) + packet)
            (length,) = struct.unpack("!H", _recv_exact(sock, 2))
            replies.append(DNSRecord.parse(_recv_exact(sock, length)))
    return replies


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += data
    return buf


def test_the_connectivity_check_name_resolves_over_udp_to_the_cloud(cloud: Cloud) -> None:
    reply = ask_udp(cloud, "connectivitycheck.gstatic.com")
    assert reply.header.rcode == RCODE.NOERROR
    assert [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A] == [cloud.addresses["https"][0]]
    assert cloud.state.dns_queries["connectivitycheck.gstatic.com"] == 1


def test_several_names_resolve_over_one_tcp_connection(cloud: Cloud) -> None:
    replies = ask_tcp(cloud, "distservp1.pb.com", "Pb-OTA.RedBend.com.", "mobile-gtalk.l.google.com")
    assert [r.header.rcode for r in replies] == [RCODE.NOERROR] * 3
    assert all(len(r.rr) == 1 and r.rr[0].rtype == QTYPE.A for r in replies)
    assert cloud.state.connections["dns:tcp"] == 1


def test_an_unknown_name_is_nxdomain(cloud: Cloud) -> None:
    reply = ask_udp(cloud, "not-in-the-guide.example.com")
    assert reply.header.rcode == RCODE.NXDOMAIN and not reply.rr


def test_another_type_of_a_known_name_is_nodata(cloud: Cloud) -> None:
    reply = ask_udp(cloud, "distservp1.pb.com", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR and not reply.rr


@pytest.mark.parametrize(
    ("knob", "rcode"), [("dns_nxdomain", RCODE.NXDOMAIN), ("dns_servfail", RCODE.SERVFAIL)]
)
def test_a_knob_makes_a_known_name_fail(cloud: Cloud, knob: str, rcode: int) -> None:
    getattr(cloud.state, knob).add("connectivitycheck.gstatic.com")
    assert ask_udp(cloud, "connectivitycheck.gstatic.com").header.rcode == rcode
    assert ask_tcp(cloud, "connectivitycheck.gstatic.com")[0].header.rcode == rcode
    # negative control: other names still resolve
    assert ask_udp(cloud, "distservp1.pb.com").header.rcode == RCODE.NOERROR


def test_a_garbage_datagram_is_dropped_and_the_server_keeps_answering(cloud: Cloud) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(b"\x00\x01garbage", cloud.dns_address)
        with pytest.raises(TimeoutError):
            sock.recvfrom(4096)
    assert ask_udp(cloud, "distservp1.pb.com").header.rcode == RCODE.NOERROR


def test_the_zone_answers_formerr_to_a_query_with_two_questions() -> None:
    zone = DnsZone(["a.pb.com"], "127.0.0.1", CloudState())
    query = DNSRecord.question("a.pb.com")
    query.add_question(DNSRecord.question("b.pb.com").q)
    reply = zone.answer(query.pack())
    assert reply is not None and DNSRecord.parse(reply).header.rcode == RCODE.FORMERR


def test_the_zone_drops_a_response_sent_to_it() -> None:
    zone = DnsZone(["a.pb.com"], "127.0.0.1", CloudState())
    response = DNSRecord.question("a.pb.com").reply()
    assert zone.answer(response.pack()) is None
