"""The Cloud object: listeners, resolver, bind overrides, per-run knobs (configure/reset), and a stop
that leaves nothing behind."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import pytest
from dnslib import RCODE, DNSRecord

from proxy_lab.catalog import Catalog
from proxy_lab.cloud import Cloud
from proxy_lab.errors import ConfigError
from proxy_lab.pki import PKI
from proxy_lab.protocol import messages as m
from proxy_lab.resolver import ResolveError
from tests.cloud.cloud_testclient import XML_HEADERS, exchange, http, parse_reply, request_bytes


def test_ports_name_one_listener_per_kind(cloud: Cloud) -> None:
    assert set(cloud.ports) == {"https", "http", "tcp:5938", "tcp:5228", "dns"}
    assert len(set(cloud.ports.values())) == 5
    assert all(addr == ("127.0.0.1", cloud.ports[kind]) for kind, addr in cloud.addresses.items())


def test_the_resolver_maps_every_catalog_endpoint_to_the_listener_serving_it(
    cloud: Cloud, catalog: Catalog
) -> None:
    kind_of = {"tls": "https", "http": "http", "dns": "dns"}
    for ep in catalog.endpoints("sendpro-plus"):
        expected = cloud.addresses[kind_of.get(ep.transport, f"tcp:{ep.port}")]
        assert cloud.resolver.lookup(ep.host, ep.port) == expected, ep.id
    assert cloud.resolver.lookup("distservp1.pb.com", 443) == cloud.addresses["https"]
    assert cloud.resolver.lookup("distservp1.pb.com", 80) == cloud.addresses["http"]
    assert cloud.resolver.lookup("8.8.8.8", 53) == cloud.addresses["dns"]


def test_the_resolver_knows_no_port_the_catalog_does_not_list(cloud: Cloud) -> None:
    with pytest.raises(ResolveError):
        cloud.resolver.lookup("distservp1.pb.com", 8443)
    with pytest.raises(ResolveError):
        cloud.resolver.lookup("example.com", 443)


def test_every_stream_listener_accepts_a_connection(cloud: Cloud) -> None:
    for kind, addr in cloud.addresses.items():
        with socket.create_connection(addr, timeout=5) as sock:
            assert sock.getpeername() == addr, kind


def test_a_bind_with_an_unknown_listener_kind_is_refused(pki: PKI, catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"unknown listener kind\(s\) \['smtp'\]"):
        Cloud(pki, catalog, bind={"smtp": ("127.0.0.1", 25)})


Held = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


async def _held_connections(cloud: Cloud) -> Held:
    """One open connection to each stream listener (writers kept: a dropped writer closes its socket)."""
    held: Held = []
    for kind in ("http", "tcp:5938", "dns"):
        reader, writer = await asyncio.open_connection(*cloud.addresses[kind])
        held.append((reader, writer))
        if kind == "tcp:5938":
            writer.write(m.teamviewer_hello("PBLAB-0001"))
            await asyncio.wait_for(reader.readline(), 5)
    ctx = cloud.pki.device_context()
    held.append(
        await asyncio.open_connection(
            *cloud.addresses["https"], ssl=ctx, server_hostname="www.google.com", ssl_handshake_timeout=5
        )
    )
    return held


def test_stop_closes_listeners_and_open_connections_and_leaves_no_task(pki: PKI, catalog: Catalog) -> None:
    async def main() -> None:
        before = asyncio.all_tasks()
        cloud = Cloud(pki, catalog)
        await cloud.start()
        held = await _held_connections(cloud)
        for _ in range(100):  # the server side registers each connection on its next loop turn
            if cloud.open_connections == 4:
                break
            await asyncio.sleep(0.05)
        assert cloud.open_connections == 4
        addresses = dict(cloud.addresses)
        await asyncio.wait_for(cloud.stop(), 10)
        for reader, writer in held:  # every held connection ends (EOF or reset), none hangs
            try:
                assert await asyncio.wait_for(reader.read(), 5) == b""
            except (ConnectionResetError, OSError):
                pass
            writer.close()
        assert cloud.open_connections == 0
        assert asyncio.all_tasks() == before
        for kind in ("https", "http", "tcp:5938"):
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(*addresses[kind])
        await cloud.stop()  # idempotent

    asyncio.run(main())


def test_bind_moves_chosen_listeners_and_dns_answers_with_the_https_address(
    pki: PKI, catalog: Catalog
) -> None:
    # namespace mode binds real addresses; here another loopback address stands in for 10.200.0.1
    async def main() -> None:
        async with Cloud(pki, catalog, bind={"https": ("127.0.0.2", 0), "dns": ("127.0.0.2", 0)}) as cloud:
            assert cloud.addresses["https"][0] == "127.0.0.2"
            assert cloud.addresses["http"][0] == "127.0.0.1"
            assert cloud.resolver.lookup("distservp1.pb.com", 443) == cloud.addresses["https"]
            assert cloud.resolver.lookup("8.8.8.8", 53)[0] == "127.0.0.2"
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, cloud.dns_address)
                await loop.sock_sendall(sock, DNSRecord.question("distservp1.pb.com").pack())
                reply = DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))
            assert str(reply.rr[0].rdata) == "127.0.0.2"

    asyncio.run(main())


def test_a_listener_port_in_use_fails_start_naming_it_and_leaves_nothing_bound(
    pki: PKI, catalog: Catalog
) -> None:
    async def main() -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            cloud = Cloud(pki, catalog, bind={"tcp:5228": ("127.0.0.1", port)})
            with pytest.raises(OSError, match=f"cloud tcp:5228 listener cannot bind 127.0.0.1:{port}"):
                await cloud.start()
            assert not cloud.started and cloud.open_connections == 0
            for addr in cloud.addresses.values():  # whatever was bound before the failure is closed again
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection(*addr)

    asyncio.run(main())


def test_starting_a_running_cloud_twice_is_an_error(pki: PKI, catalog: Catalog) -> None:
    async def main() -> None:
        async with Cloud(pki, catalog) as cloud:
            with pytest.raises(RuntimeError, match="already started"):
                await cloud.start()

    asyncio.run(main())


def test_the_cloud_runs_on_uvloop_too(pki: PKI, catalog: Catalog) -> None:
    # uvloop's transports do not subclass asyncio's; the listeners must not depend on it.
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with Cloud(pki, catalog) as cloud:
            reader, writer = await asyncio.open_connection(
                *cloud.resolver.lookup("connectivitycheck.gstatic.com", 80)
            )
            writer.write(
                b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n"
            )
            assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 204 No Content\r\n")
            writer.close()
            reader, writer = await asyncio.open_connection(
                *cloud.resolver.lookup("www.google.com", 443),
                ssl=pki.device_context(),
                server_hostname="www.google.com",
            )
            writer.write(b"GET / HTTP/1.1\r\nHost: www.google.com\r\nConnection: close\r\n\r\n")
            assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200 OK\r\n")
            writer.close()
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, cloud.dns_address)
                await loop.sock_sendall(sock, DNSRecord.question("www.google.com").pack())
                reply = DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))
            assert str(reply.rr[0].rdata) == "127.0.0.1"

    uvloop.run(main())


@dataclass(frozen=True)
class Knobs:
    """A run's settings for the cloud, as a scenario's `[cloud]` table gives them (CloudSettings)."""

    download_bytes: int = 4096
    drop_receipts: bool = True
    corrupt_downloads: bool = True


def _index_sizes(cloud: Cloud) -> set[int]:
    reply = http(
        cloud.resolver.lookup("dlsdlp1.pb.com", 443),
        "GET",
        "/",
        "dlsdlp1.pb.com",
        tls=cloud.pki.device_context(),
    )
    assert reply.status == 200, reply.body
    return {e.size for e in m.parse_download_index(reply.body)}


def _file_verifies(cloud: Cloud) -> bool:
    host, tls = "pbdlsp1.pb.com", cloud.pki.device_context()
    addr = cloud.resolver.lookup(host, 443)
    data = http(addr, "GET", "/files/rates-gb.bin", host, tls=tls)
    sig = http(addr, "GET", "/files/rates-gb.bin.sig", host, tls=tls)
    try:
        m.verify_file(cloud.pki.signing_public_key(), data.body, sig.body)
    except ValueError:
        return False
    return True


def _upload(cloud: Cloud, ids: list[str]) -> bytes:
    """Every byte the cloud answers to a transaction upload (b"": closed without an answer)."""
    host = "cometservp1.pb.com"
    return exchange(
        cloud.resolver.lookup(host, 443),
        request_bytes("POST", "/", host, m.transaction_upload("PBLAB-0001", ids), XML_HEADERS),
        tls=cloud.pki.device_context(),
        sni=host,
    )


def _body(raw: bytes) -> bytes:
    reply = parse_reply(raw)
    assert reply.status == 200, reply.body
    return reply.body


def _dns_rcode(cloud: Cloud, name: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(DNSRecord.question(name).pack(), cloud.dns_address)
        return int(DNSRecord.parse(sock.recv(4096)).header.rcode)


def test_configure_sets_every_knob_of_a_run_and_reset_puts_each_back(cloud: Cloud) -> None:
    default_size = cloud.download_bytes
    assert default_size != Knobs.download_bytes
    cloud.configure(Knobs())
    assert _index_sizes(cloud) == {4096}  # download_bytes
    assert not _file_verifies(cloud)  # corrupt_downloads
    assert _upload(cloud, ["K1"]) == b""  # drop_receipts: stored, then closed without an answer

    cloud.reset()
    assert _index_sizes(cloud) == {default_size}
    assert _file_verifies(cloud)
    assert m.parse_receipt(_body(_upload(cloud, ["K2"]))) == ["K2"]


def test_configure_with_every_knob_off_changes_only_the_size(cloud: Cloud) -> None:
    # negative control of the test above: the same calls with the knobs off are answered as usual
    cloud.configure(Knobs(download_bytes=2048, drop_receipts=False, corrupt_downloads=False))
    assert _index_sizes(cloud) == {2048}
    assert _file_verifies(cloud)
    assert m.parse_receipt(_body(_upload(cloud, ["K3"]))) == ["K3"]


def test_reset_forgets_what_was_received_and_the_dns_knobs(cloud: Cloud) -> None:
    assert m.parse_receipt(_body(_upload(cloud, ["R1"]))) == ["R1"]
    cloud.state.dns_nxdomain.add("distservp1.pb.com")
    assert _dns_rcode(cloud, "distservp1.pb.com") == RCODE.NXDOMAIN
    assert cloud.state.transactions == {"R1": 1} and cloud.state.requests["cometservp1.pb.com"] == 1

    cloud.reset()
    assert cloud.state.transactions == {} and not cloud.state.requests and not cloud.state.uploads
    assert not cloud.state.dns_queries and not cloud.state.connections
    assert _dns_rcode(cloud, "distservp1.pb.com") == RCODE.NOERROR
    # what arrives after the reset is counted from zero again
    assert m.parse_receipt(_body(_upload(cloud, ["R1"]))) == ["R1"]
    assert cloud.state.transactions == {"R1": 1}


def test_configure_refuses_a_download_size_out_of_range_and_changes_nothing(cloud: Cloud) -> None:
    with pytest.raises(ConfigError, match="download_bytes -1"):
        cloud.configure(Knobs(download_bytes=-1))
    assert not cloud.state.drop_receipts and not cloud.state.corrupt_downloads
