"""Chaining (proxy_lab/proxy/chain.py): the upstream as a value, its answer read sans-IO, and two real
lab proxies chained on loopback (the second stands in for the corporate proxy)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from proxy_lab.errors import ConfigError, RemoteProtocolError
from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.chain import AnswerReader, UpstreamProxy, connect_request
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import (
    TIMEOUT_S,
    client,
    closed_port,
    echo_round_trip,
    lab_proxy,
    run,
    settled,
    upstream,
)

# -- the upstream as a value ----------------------------------------------------------------------


def test_an_upstream_url_with_credentials_parses_and_never_shows_the_password() -> None:
    up = UpstreamProxy.parse("http://meter:S3cr%40t@127.0.0.1:3129")
    assert (up.host, up.port, up.user, up.password) == ("127.0.0.1", 3129, "meter", "S3cr@t")
    assert up.basic() == "Basic " + base64.b64encode(b"meter:S3cr@t").decode()
    for shown in (repr(up), str(up), up.name):
        assert "S3cr" not in shown
    assert "meter" in str(up)  # the user name is not secret, and helps the reader


def test_an_upstream_url_without_credentials_sends_none() -> None:
    up = UpstreamProxy.parse("http://[::1]:8080")
    assert (up.host, up.port, up.basic(), up.authority) == ("::1", 8080, None, "[::1]:8080")


@pytest.mark.parametrize(
    "url",
    [
        "socks5://127.0.0.1:1080",  # not an HTTP proxy
        "https://127.0.0.1:3129",  # TLS to the proxy is not supported
        "http://127.0.0.1",  # no port
        "http://127.0.0.1:99999",  # port out of range
        "http://u:topsecret@127.0.0.1:3129/path",  # a path has no place in a proxy URL
    ],
)
def test_a_malformed_upstream_url_is_refused_without_showing_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        UpstreamProxy.parse(url)
    assert "upstream proxy URL" in str(info.value)
    assert "topsecret" not in str(info.value)


# -- the upstream's answer, sans-IO ------------------------------------------------------------------


def _feed_bytewise(data: bytes) -> AnswerReader:
    reader = AnswerReader()
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
    return reader


def test_a_refusal_with_a_content_length_body_is_read_whole_byte_by_byte() -> None:
    raw = b"HTTP/1.1 403 Forbidden\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\nContent-Length: 5\r\n\r\ndenied"
    answer = _feed_bytewise(raw).answer
    assert answer is not None and not answer.ok
    assert (answer.status, answer.reason, answer.body) == (403, "Forbidden", b"denie")
    assert answer.headers[0] == ("X-Squid-Error", "ERR_ACCESS_DENIED 0")


def test_a_refusal_is_not_complete_before_its_body_is() -> None:
    reader = AnswerReader()
    assert reader.feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nshort") is None
    assert reader.answer is None


def test_a_chunked_refusal_body_is_kept_as_it_came_and_ends_at_its_last_chunk() -> None:
    body = b"3\r\nabc\r\n0\r\n\r\n"
    raw = b"HTTP/1.1 407 Proxy Authentication Required\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    reader = _feed_bytewise(raw + b"HTTP/1.1 200 OK\r\n")  # bytes after the answer are not part of it
    assert reader.answer is not None and reader.answer.body == body
    assert reader.answer.refusal(UpstreamProxy("10.0.0.5", 8080), "a.pb.com:443").to_bytes() == raw


def test_a_2xx_answer_ends_at_its_head_and_keeps_what_follows_as_tunnel_bytes() -> None:
    answer = AnswerReader().feed(b"HTTP/1.1 200 Connection established\r\nContent-Length: 99\r\n\r\n\x16\x03")
    assert answer is not None and answer.ok
    assert answer.body == b"" and answer.extra == b"\x16\x03"


def test_a_read_to_close_refusal_ends_at_eof() -> None:
    reader = AnswerReader()
    assert reader.feed(b"HTTP/1.0 403 Forbidden\r\n\r\nno") is None
    assert reader.eof().body == b"no"


@pytest.mark.parametrize(
    "data",
    [
        b"\x05\xff",  # a SOCKS5 reply refusing every method
        b"\x16\x03\x01\x00\x05hello",  # a TLS record
    ],
)
def test_bytes_that_are_not_an_http_answer_raise_a_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        AnswerReader().feed(data)


def test_eof_before_any_answer_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError, match="before answering"):
        AnswerReader().eof()


def test_the_connect_request_names_the_target_and_carries_credentials_only_when_given() -> None:
    assert connect_request("a.pb.com:443", None) == b"CONNECT a.pb.com:443 HTTP/1.1\r\nHost: a.pb.com:443\r\n\r\n"
    assert b"Proxy-Authorization: Basic eA==\r\n" in connect_request("a.pb.com:443", "Basic eA==")


# -- two lab proxies chained on loopback ---------------------------------------------------------------


async def _raw_answer(address: tuple[str, int], request: bytes) -> bytes:
    """Everything a proxy sends back to one request before it closes the connection."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), TIMEOUT_S)
    writer.write(request)
    data = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    writer.close()
    return data


def test_the_upstreams_refusal_reaches_the_client_byte_for_byte_as_the_upstream_sent_it() -> None:
    async def main() -> None:
        corp = ProxyConfig(faults=[make_fault("allow_ports", {"preset": "ssl_ports_only"})])
        async with upstream() as echo, lab_proxy(corp, MapResolver({("distservp1.pb.com", None): echo.address})) as up:
            request = connect_request("distservp1.pb.com:80", None)
            direct = await _raw_answer(up.address, request)
            async with lab_proxy(ProxyConfig(upstream=UpstreamProxy(*up.address))) as lab:
                chained = await _raw_answer(lab.address, request)
                assert chained == direct
                assert chained.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"ERR_ACCESS_DENIED" in chained
                # Negative control: port 443, which the upstream allows, opens a tunnel to the echo server.
                c = await client(lab)
                assert (await c.connect("distservp1.pb.com:443")).status == 200
                c.send(b"ping")
                assert await c.read_exactly(4) == b"ping"
                await c.close()
                refused = [r for r in lab.log if r.event == "refused"]
                assert refused and f"upstream proxy {up.address[0]}:{up.address[1]}" in refused[0].message

    run(main())


def test_the_lab_proxy_resolves_no_target_name_when_chained() -> None:
    async def main() -> None:
        async with upstream() as echo, lab_proxy(None, MapResolver({("only.upstream.test", None): echo.address})) as up:
            # The lab's own resolver knows no name at all: the tunnel can only work if the upstream resolves.
            async with lab_proxy(ProxyConfig(upstream=UpstreamProxy(*up.address)), MapResolver()) as lab:
                c = await client(lab)
                assert (await c.connect("only.upstream.test:443")).status == 200
                await c.close()
            # Negative control: the same lab proxy unchained answers the DNS failure itself.
            async with lab_proxy(ProxyConfig(), MapResolver()) as lab:
                c = await client(lab)
                response = await c.connect("only.upstream.test:443")
                assert response.status == 503 and "ERR_DNS_FAIL" in (response.header("X-Squid-Error") or "")
                await c.close()

    run(main())


def test_faults_still_apply_on_the_lab_side_in_front_of_the_upstream() -> None:
    async def main() -> None:
        async with upstream() as echo, lab_proxy(None, MapResolver({("funds.pb.test", None): echo.address})) as up:
            config = ProxyConfig(
                upstream=UpstreamProxy(*up.address), faults=[make_fault("deny_hosts", {"patterns": ["funds.pb.test"]})]
            )
            async with lab_proxy(config) as lab:
                c = await client(lab)
                response = await c.connect("funds.pb.test:443")
                assert response.status == 403
                assert up.stats.requests == 0  # refused on the lab side: the upstream never saw it
                await c.close()

    run(main())


def _basic_upstream() -> ProxyConfig:
    return ProxyConfig(users={"meter": "S3cret"}, realm="corp")


def test_an_upstream_with_basic_auth_opens_the_tunnel_with_the_configured_credentials() -> None:
    async def main() -> None:
        async with upstream() as echo, lab_proxy(_basic_upstream(), MapResolver({("x.test", None): echo.address})) as up:
            for preemptive in (True, False):  # sent at once, or in answer to the 407
                chained = UpstreamProxy(up.address[0], up.address[1], "meter", "S3cret", preemptive=preemptive)
                async with lab_proxy(ProxyConfig(upstream=chained)) as lab:
                    c = await client(lab)
                    assert (await c.connect("x.test:443")).status == 200
                    c.send(b"hi")
                    assert await c.read_exactly(2) == b"hi"
                    await c.close()
            assert not [r for r in up.log if "S3cret" in r.message]

    run(main())


def test_without_credentials_the_client_gets_the_upstreams_407_and_with_wrong_ones_too() -> None:
    async def main() -> None:
        async with upstream() as echo, lab_proxy(_basic_upstream(), MapResolver({("x.test", None): echo.address})) as up:
            for chained in (UpstreamProxy(*up.address), UpstreamProxy(up.address[0], up.address[1], "meter", "wrong")):
                async with lab_proxy(ProxyConfig(upstream=chained)) as lab:
                    c = await client(lab)
                    response = await c.connect("x.test:443")
                    assert response.status == 407
                    assert response.header("Proxy-Authenticate") == 'Basic realm="corp"'
                    await c.close()

    run(main())


def test_the_clients_own_credentials_are_passed_on_when_neither_the_lab_nor_the_url_has_any() -> None:
    async def main() -> None:
        async with upstream() as echo, lab_proxy(_basic_upstream(), MapResolver({("x.test", None): echo.address})) as up:
            async with lab_proxy(ProxyConfig(upstream=UpstreamProxy(*up.address))) as lab:
                c = await client(lab)
                assert (await c.connect("x.test:443", auth=("meter", "S3cret"))).status == 200
                await c.close()
            # Negative control: a lab that authenticates its clients itself keeps their credentials.
            config = ProxyConfig(users={"meter": "S3cret"}, upstream=UpstreamProxy(*up.address))
            async with lab_proxy(config) as lab:
                c = await client(lab)
                assert (await c.connect("x.test:443", auth=("meter", "S3cret"))).status == 407
                await c.close()

    run(main())


def test_an_unreachable_upstream_is_answered_503_naming_the_upstream() -> None:
    async def main() -> None:
        port = closed_port()
        async with lab_proxy(ProxyConfig(upstream=UpstreamProxy("127.0.0.1", port))) as lab:
            c = await client(lab)
            response = await c.connect("distservp1.pb.com:443")
            assert response.status == 503
            await c.close()
            refused = [r for r in lab.log if r.event == "refused"]
            assert refused and f"upstream proxy 127.0.0.1:{port} unreachable" in refused[-1].message

    run(main())


def test_an_upstream_that_is_the_lab_itself_is_refused_as_a_loop() -> None:
    async def main() -> None:
        async with lab_proxy() as probe:
            host, port = probe.address
        # The same port again: the lab would forward to itself forever.
        config = ProxyConfig(listen=(host, port), upstream=UpstreamProxy(host, port))
        async with lab_proxy(config) as lab:
            c = await client(lab)
            response = await c.connect("distservp1.pb.com:443")
            assert response.status == 403 and b"loop" in response.body
            await c.close()

    run(main())


def test_an_upstream_named_by_a_host_name_that_resolves_to_the_lab_itself_is_refused_as_a_loop() -> None:
    async def main() -> None:
        async with lab_proxy() as probe:
            host, port = probe.address
        resolver = MapResolver({("corp-proxy.example", None): (host, port)})
        config = ProxyConfig(listen=(host, port), upstream=UpstreamProxy("corp-proxy.example", port))
        async with lab_proxy(config, resolver) as lab:
            c = await client(lab)
            response = await c.connect("distservp1.pb.com:443")
            assert response.status == 403 and b"forwarding loop" in response.body
            assert b"corp-proxy.example" in response.body and f"{host}:{port}".encode() in response.body
            await c.close()
        # negative control: the same name leading to another port is not a loop (nothing listens: 503)
        other = MapResolver({("corp-proxy.example", None): (host, closed_port())})
        async with lab_proxy(ProxyConfig(listen=(host, port), upstream=UpstreamProxy("corp-proxy.example", port)), other) as lab:
            c = await client(lab)
            response = await c.connect("distservp1.pb.com:443")
            assert response.status == 503 and b"loop" not in response.body
            await c.close()

    run(main())


# -- the command line ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--upstream", "socks5://u:topsecret@127.0.0.1:1080"], "upstream proxy URL 'socks5://u:***@127.0.0.1:1080'"),
        (["--record-anonymise"], "--record-max-bytes and --record-anonymise need --record PATH"),
        (["--record", "REC", "--record-max-bytes", "10"], "record max bytes 10: expected at least 4096"),
        (["--record", "/nonexistent-dir/r.jsonl"], "record file /nonexistent-dir/r.jsonl"),
        (["--record", "REC", "--workers", "2"], "--workers 2 with --record: the record has one writer"),
    ],
)
def test_bad_chaining_and_recording_options_exit_2_with_one_line_naming_them(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from proxy_lab.cli import main

    argv = [str(tmp_path / "r.jsonl") if a == "REC" else a for a in argv]
    assert main(["proxy", "--listen", "127.0.0.1:0", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "topsecret" not in err and err.count("\n") == 1


@pytest.mark.parametrize("plain_path", [True, False])
def test_a_chained_bulk_transfer_arrives_intact_both_ways_and_the_proxy_holds_nothing_afterwards(plain_path: bool) -> None:
    async def main() -> None:
        payload = bytes(range(256)) * 16384  # 4 MiB: past the plain path's splice threshold
        async with upstream() as echo, lab_proxy(None, MapResolver({("bulk.test", None): echo.address})) as up:
            config = ProxyConfig(upstream=UpstreamProxy(*up.address), plain_path=plain_path)
            async with lab_proxy(config) as lab:
                c = await client(lab)
                assert (await c.connect("bulk.test:443")).status == 200
                await echo_round_trip(c, payload)
                await c.close()
                await settled(lab)
                closed = [r for r in lab.log if r.event == "tunnel_closed"]
                assert closed and f"{len(payload)} B up" in closed[-1].message
                assert lab.stats.tunnels == 1 and lab.stats.tunnels_open == 0 and lab.connections_open() == 0
                # The plain path relays the chained tunnel when it is on, and only then.
                assert (lab.plain.stats.tunnels if lab.plain is not None else 0) == (1 if plain_path else 0)

    run(main(), timeout_s=60)


def test_a_chained_tunnel_that_a_lab_fault_watches_stays_on_the_general_path_with_the_plain_path_on() -> None:
    async def main() -> None:
        async with upstream() as echo:
            names = MapResolver({("slow.test", None): echo.address, ("bulk.test", None): echo.address})
            async with lab_proxy(None, names) as up:
                config = ProxyConfig(
                    upstream=UpstreamProxy(*up.address), plain_path=True,
                    faults=[make_fault("latency", {"delay_ms": 1, "hosts": ["slow.test"]})],
                )  # fmt: skip
                async with lab_proxy(config) as lab:
                    assert lab.plain is not None
                    for host, on_plain in (("slow.test", 0), ("bulk.test", 1)):  # bulk.test: the negative control
                        c = await client(lab)
                        assert (await c.connect(f"{host}:443")).status == 200
                        c.send(b"ping")
                        assert await c.read_exactly(4) == b"ping"
                        await c.close()
                        await settled(lab)
                        assert lab.plain.stats.tunnels == on_plain

    run(main(), timeout_s=60)
