"""The lab firewall: allowed ports relay, dropped ports time out, reset ports refuse; DNS per protocol."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.firewall import FirewallRules, LabFirewall
from proxy_lab.resolver import MapResolver


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(b"echo " + data, addr)


async def _tcp(address: tuple[str, int]) -> str:
    """'echoed', 'timeout' or 'refused': what a client connecting to `address` sees."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), 1.0)
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    writer.write(b"hello\n")
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return "echoed" if line == b"hello\n" else f"other {line!r}"


async def _udp(address: tuple[str, int]) -> str:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class _C(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(_C, remote_addr=address)
    transport.sendto(b"q")
    try:
        return (await asyncio.wait_for(got, 1.0)).decode()
    except TimeoutError:
        return "timeout"
    finally:
        transport.close()


async def _through(rules: FirewallRules) -> dict[str, str]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    addr = server.sockets[0].getsockname()[:2]
    loop = asyncio.get_running_loop()
    for _ in range(20):  # a port free for both UDP and TCP, as the cloud's DNS listener takes
        udp, _ = await loop.create_datagram_endpoint(_UdpEcho, local_addr=("127.0.0.1", 0))
        dns = udp.get_extra_info("sockname")[:2]
        try:
            dns_tcp = await asyncio.start_server(_echo, "127.0.0.1", dns[1])
        except OSError:
            udp.close()
            continue
        break
    upstream = MapResolver()
    for port in (443, 5938, 5228):
        upstream.add("h.example", port, addr)
    upstream.add("8.8.8.8", 53, dns)
    try:
        async with LabFirewall(rules, upstream) as fw:
            look = fw.resolver.lookup
            return {
                "443": await _tcp(look("h.example", 443)),
                "5938": await _tcp(look("h.example", 5938)),
                "5228": await _tcp(look("h.example", 5228)),
                "dns_tcp": await _tcp(look("8.8.8.8", 53)),
                "dns_udp": await _udp(look("8.8.8.8", 53)),
            }
    finally:
        server.close()
        dns_tcp.close()
        udp.close()


def test_without_rules_the_firewall_relays_every_port_and_both_dns_protocols() -> None:
    seen = asyncio.run(_through(FirewallRules()))
    assert seen == {"443": "echoed", "5938": "echoed", "5228": "echoed", "dns_tcp": "echoed", "dns_udp": "echo q"}


def test_a_dropped_port_times_out_and_a_reset_port_refuses_while_the_others_relay() -> None:
    rules = FirewallRules.from_faults([("drop_ports", {"ports": [5938]}), ("reset_ports", {"ports": [5228]})])
    seen = asyncio.run(_through(rules))
    assert (seen["5938"], seen["5228"], seen["443"]) == ("timeout", "refused", "echoed")


def test_dns_over_tcp_is_refused_or_dropped_while_udp_still_answers() -> None:
    refused = asyncio.run(_through(FirewallRules.from_faults([("dns_tcp", {})])))
    assert (refused["dns_tcp"], refused["dns_udp"]) == ("refused", "echo q")
    dropped = asyncio.run(_through(FirewallRules.from_faults([("dns_tcp", {"action": "drop"}), ("dns_udp", {})])))
    assert (dropped["dns_tcp"], dropped["dns_udp"]) == ("timeout", "timeout")


@pytest.mark.parametrize(
    ("faults", "needle"),
    [
        ([("drop_port", {})], "not a firewall fault"),  # a misspelt name lists the firewall's faults
        ([("drop_ports", {"ports": [22]})], "ports=[22]"),
        ([("drop_ports", {"ports": [53]})], "use dns_tcp or dns_udp"),
        ([("reset_ports", {"port": [80]})], "unknown setting(s) ['port']"),
        ([("dns_tcp", {"action": "maybe"})], "action='maybe'"),
        ([("drop_ports", {"ports": [80]}), ("reset_ports", {"ports": [80]})], "both dropped and reset"),
    ],
)
def test_bad_firewall_faults_are_named_in_one_sentence(faults: list[tuple[str, dict[str, Any]]], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        FirewallRules.from_faults(faults)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_proxy_lab_faults_lists_every_proxy_fault_and_every_firewall_fault(capsys: pytest.CaptureFixture[str]) -> None:
    from proxy_lab.cli import main
    from proxy_lab.firewall import FIREWALL_FAULTS
    from proxy_lab.proxy.faults import describe_faults

    assert main(["faults"]) == 0
    out = capsys.readouterr().out
    proxy_part, _, firewall_part = out.partition("Lab firewall faults")
    assert firewall_part, "no firewall section"
    for name, _doc, _settings in describe_faults():
        assert f"\n{name}\n" in proxy_part
    for name, (defaults, doc) in FIREWALL_FAULTS.items():
        assert f"\n{name}\n    {doc}\n" in firewall_part
        for key in defaults:
            assert f"    {key} " in firewall_part.split(f"\n{name}\n", 1)[1].split("\n\n", 1)[0]
