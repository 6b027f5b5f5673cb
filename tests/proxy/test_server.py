"""The lab proxy over real loopback sockets: tunnels, auth retries, error answers, limits, shutdown."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.resolver import MapResolver
from proxy_lab.tasks import running_tasks
from tests.proxy.proxy_testkit import (
    Blackhole,
    client,
    closed_port,
    echo,
    eventually,
    lab_proxy,
    run,
    settled,
    upstream,
)

CREDS = ("meter", "Postage-2020!")


def resolver_for(port: int, host: str = "echo.lab.test") -> MapResolver:
    return MapResolver({(host, None): ("127.0.0.1", port)})


def test_a_tunnel_carries_bytes_both_ways_and_passes_a_half_close_on() -> None:
    async def scenario() -> None:
        async with upstream() as up, lab_proxy(resolver=resolver_for(up.port)) as proxy:
            c = await client(proxy)
            answer = await c.connect("echo.lab.test:443")
            assert answer.raw_head == b"HTTP/1.1 200 Connection established\r\n\r\n"
            c.send(b"ping")
            assert await c.read_exactly(4) == b"ping"
            c.writer.write_eof()  # half-close: the upstream must see EOF, and may still answer
            assert await c.read_to_eof() == b"[eof after 4 bytes]"
            await c.close()
            await settled(proxy)
            assert proxy.stats.tunnels == 1 and proxy.stats.tunnels_open == 0
            assert proxy.stats.bytes_client_to_upstream == 4
            assert proxy.stats.bytes_upstream_to_client == 4 + len(b"[eof after 4 bytes]")
            assert [r.event for r in proxy.log][-2:] == ["tunnel_open", "tunnel_closed"]

    run(scenario())


def test_an_upstream_half_close_reaches_the_client_and_the_client_can_still_send() -> None:
    received: list[bytes] = []

    async def speak_then_listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        writer.write_eof()  # the upstream is done talking, still listening
        received.append(await asyncio.wait_for(reader.read(), 5))
        writer.close()

    async def scenario() -> None:
        async with upstream(speak_then_listen) as up, lab_proxy(resolver=resolver_for(up.port)) as proxy:
            c = await client(proxy)
            assert (await c.connect("echo.lab.test:443")).status == 200
            assert await c.read_to_eof() == b"hello"  # EOF passed on as a half-close
            c.send(b"still here")
            c.writer.write_eof()
            for _ in range(100):  # up to 2 s
                if received:
                    break
                await asyncio.sleep(0.02)
            assert received == [b"still here"]
            await c.close()

    run(scenario())


def test_the_relay_also_runs_on_uvloop_as_the_cli_does() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        async with upstream() as up, lab_proxy(resolver=resolver_for(up.port)) as proxy:
            c = await client(proxy)
            assert (await c.connect("echo.lab.test:443", extra=b"early")).status == 200
            assert await c.read_exactly(5) == b"early"
            c.writer.write_eof()
            assert await c.read_to_eof() == b"[eof after 5 bytes]"
            await c.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(scenario(), 10))


def test_bytes_pipelined_after_the_connect_head_reach_the_upstream() -> None:
    async def scenario() -> None:
        async with upstream() as up, lab_proxy(resolver=resolver_for(up.port)) as proxy:
            c = await client(proxy)
            # the ClientHello-like bytes ride in the same segment as the CONNECT head
            answer = await c.connect("echo.lab.test:443", extra=b"early-bytes")
            assert answer.status == 200
            assert await c.read_exactly(11) == b"early-bytes"
            await c.close()

    run(scenario())


def test_an_upstream_that_speaks_first_is_heard_after_the_200() -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-banner\r\n")  # servers like TeamViewer's or SSH speak before the client
        await writer.drain()
        await echo(reader, writer)

    async def scenario() -> None:
        async with upstream(banner) as up, lab_proxy(resolver=resolver_for(up.port)) as proxy:
            c = await client(proxy)
            await asyncio.sleep(0.05)
            answer = await c.connect("echo.lab.test:5938")
            assert answer.status == 200
            assert await c.read_exactly(16) == b"SSH-2.0-banner\r\n"
            await c.close()

    run(scenario())


def test_a_large_transfer_survives_back_pressure_intact() -> None:
    payload = bytes(range(256)) * 4096 * 4  # 4 MiB

    async def scenario() -> None:
        async with upstream() as up, lab_proxy(resolver=resolver_for(up.port)) as proxy:
            c = await client(proxy)
            assert (await c.connect("echo.lab.test:443")).status == 200

            async def send() -> None:
                c.send(payload)
                await c.writer.drain()
                c.writer.write_eof()

            sender = asyncio.create_task(send())
            got = await asyncio.wait_for(c.reader.read(-1), 10)
            await sender
            assert got == payload + f"[eof after {len(payload)} bytes]".encode()
            await c.close()

    run(scenario(), timeout_s=20)


def test_a_client_that_retries_after_407_gets_its_tunnel_on_the_same_connection() -> None:
    async def scenario() -> None:
        config = ProxyConfig(users=dict([CREDS]))
        async with upstream() as up, lab_proxy(config, resolver_for(up.port)) as proxy:
            c = await client(proxy)
            first = await c.connect("echo.lab.test:443")
            assert first.status == 407
            assert first.header("Proxy-Authenticate") == 'Basic realm="proxy-lab"'
            assert first.header("Connection") == "keep-alive" and first.body.startswith(b"<html>")
            second = await c.connect("echo.lab.test:443", auth=CREDS)
            assert second.status == 200
            c.send(b"x")
            assert await c.read_exactly(1) == b"x"
            await c.close()
            assert proxy.stats.connections == 1 and proxy.stats.refusals[407] == 1

    run(scenario())


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        ("HTTP/1.1", "Proxy-Connection: close\r\n"),  # the client says it will not reuse the connection
        ("HTTP/1.0", ""),  # HTTP/1.0 without keep-alive is not persistent (RFC 9112 §9.3)
    ],
)
def test_a_407_closes_when_the_client_did_not_ask_to_keep_the_connection(version: str, headers: str) -> None:
    async def scenario() -> None:
        async with lab_proxy(ProxyConfig(users=dict([CREDS]))) as proxy:
            c = await client(proxy)
            c.send(f"CONNECT echo.lab.test:443 {version}\r\n{headers}\r\n".encode())
            answer = await c.read_response()
            assert answer.status == 407 and answer.header("Connection") == "close"
            assert await c.read_to_eof() == b""
            await c.close()
            c = await client(proxy)  # negative control: HTTP/1.0 asking for keep-alive keeps it
            c.send(b"CONNECT echo.lab.test:443 HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n")
            assert (await c.read_response()).header("Connection") == "keep-alive"
            await c.close()

    run(scenario())


def test_wrong_credentials_get_407_again_and_close_after_407_closes() -> None:
    async def scenario() -> None:
        config = ProxyConfig(users=dict([CREDS]), close_after_407=True)
        async with upstream() as up, lab_proxy(config, resolver_for(up.port)) as proxy:
            c = await client(proxy)
            answer = await c.connect("echo.lab.test:443", auth=("meter", "postage-2020!"))
            assert answer.status == 407 and answer.header("Connection") == "close"
            assert await c.read_to_eof() == b""  # the proxy closed: a retry needs a new connection
            await c.close()
            assert "wrong password for user 'meter'" in proxy.log[-1].reason

    run(scenario())


def test_credentials_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    secret = "Sup3r-Secret-Pw"

    async def scenario() -> None:
        config = ProxyConfig(users={"meter": secret})
        async with upstream() as up, lab_proxy(config, resolver_for(up.port)) as proxy:
            for creds in (("meter", secret + "x"), ("Meter", secret), ("meter", secret)):
                c = await client(proxy)
                await c.connect("echo.lab.test:443", auth=creds)
                await c.close()
            await settled(proxy)
            text = "\n".join(f"{r.message} {r.reason}" for r in proxy.log)
            token = base64.b64encode(f"meter:{secret}".encode()).decode()
            assert secret not in text and token not in text
            assert "tunnel echo.lab.test:443" in text  # negative control: the log does say what happened

    with caplog.at_level(logging.DEBUG, logger="proxy_lab.proxy"):
        run(scenario())
    assert secret not in caplog.text


@pytest.mark.parametrize(
    ("request_bytes", "status", "logged"),
    [
        (b"CONNECT echo.lab.test HTTP/1.1\r\n\r\n", 400, "no port"),
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
            400,
            "TLS ClientHello",
        ),  # TLS ClientHello sent before CONNECT
        (b"\x05\x01\x00", 400, "SOCKS5 greeting"),  # SOCKS5 greeting to an HTTP proxy
        (
            b"GET http://echo.lab.test/ HTTP/1.1\r\nHost: echo.lab.test\r\n\r\n",
            405,
            "only tunnels with CONNECT",
        ),
        (b"CONNECT echo.lab.test:443 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", 400, "has no content"),
        (b"CONNECT " + b"a" * 300 + b".test:443 HTTP/1.1\r\n\r\n", 414, "start line longer"),
        (
            b"CONNECT echo.lab.test:443 HTTP/1.1\r\nX-Big: " + b"x" * 700 + b"\r\n\r\n",
            431,
            "header section larger",
        ),
    ],
)
def test_malformed_requests_are_answered_with_the_right_status_and_one_log_line(
    request_bytes: bytes, status: int, logged: str
) -> None:
    async def scenario() -> None:
        config = ProxyConfig(max_request_line=256, max_header_bytes=512)
        async with upstream() as up, lab_proxy(config, resolver_for(up.port)) as proxy:
            c = await client(proxy)
            c.send(request_bytes)
            answer = await c.read_response()
            assert answer.status == status
            assert answer.header("Connection") == "close"
            if status == 405:
                assert answer.header("Allow") == "CONNECT"
            assert await c.read_to_eof() == b""
            await c.close()
            refusals = [r for r in proxy.log if r.event == "refused"]
            assert len(refusals) == 1 and logged in refusals[0].message and refusals[0].status == status
            assert proxy.stats.tunnels == 0

    run(scenario())


def test_a_client_that_sends_its_head_too_slowly_gets_408() -> None:
    async def scenario() -> None:
        config = ProxyConfig(header_timeout_s=0.3)
        async with upstream() as up, lab_proxy(config, resolver_for(up.port)) as proxy:
            c = await client(proxy)
            c.send(b"CONNECT echo.lab.test:443 HTTP/1.1\r\nX-Slow: ")  # slowloris: never finishes
            answer = await c.read_response()
            assert answer.status == 408 and answer.header("Connection") == "close"
            await c.close()
            # negative control: a complete head within the same limit is served
            c = await client(proxy)
            assert (await c.connect("echo.lab.test:443")).status == 200
            await c.close()

    run(scenario())


def test_connect_to_the_proxy_itself_is_refused_as_a_loop() -> None:
    async def scenario() -> None:
        async with lab_proxy() as proxy:
            host, port = proxy.address
            c = await client(proxy)
            answer = await c.connect(f"{host}:{port}")
            assert answer.status == 403 and b"forwarding loop" in answer.body
            assert "loop" in proxy.log[-1].reason
            await c.close()

    run(scenario())


def test_connections_beyond_max_connections_get_503() -> None:
    async def scenario() -> None:
        async with (
            upstream() as up,
            # silent connections count only once accepted: without TCP_DEFER_ACCEPT, at once
            lab_proxy(ProxyConfig(max_connections=1, defer_accept=False), resolver_for(up.port)) as proxy,
        ):
            first = await client(proxy)
            await eventually(lambda: proxy.stats.connections == 1, "the first connection accepted")
            second = await client(proxy)
            assert (await second.connect("echo.lab.test:443")).status == 503
            await second.close()
            # negative control: the connection within the limit is served
            assert (await first.connect("echo.lab.test:443")).status == 200
            await first.close()

    run(scenario())


def test_an_upstream_that_refuses_gives_503_err_connect_fail_111() -> None:
    async def scenario() -> None:
        async with lab_proxy(resolver=resolver_for(closed_port())) as proxy:
            c = await client(proxy)
            answer = await c.connect("echo.lab.test:443")
            assert answer.status == 503
            assert answer.header("X-Squid-Error") == "ERR_CONNECT_FAIL 111"
            assert answer.header("Connection") == "close"
            await c.close()

    run(scenario())


def test_an_upstream_that_never_answers_gives_504_after_the_connect_timeout() -> None:
    hole = Blackhole()

    async def scenario() -> None:
        resolver = MapResolver({("slow.lab.test", None): hole.address})
        async with lab_proxy(ProxyConfig(connect_timeout_s=0.5), resolver) as proxy:
            c = await client(proxy)
            loop = asyncio.get_running_loop()
            started = loop.time()
            answer = await c.connect("slow.lab.test:443")
            assert answer.status == 504 and answer.header("X-Squid-Error") == "ERR_CONNECT_FAIL 110"
            assert 0.4 < loop.time() - started < 2.0
            await c.close()

    try:
        run(scenario())
    finally:
        hole.close()


def test_a_name_the_resolver_does_not_know_gives_503_err_dns_fail() -> None:
    async def scenario() -> None:
        async with lab_proxy() as proxy:
            c = await client(proxy)
            answer = await c.connect("nowhere.lab.test:443")
            assert answer.status == 503 and answer.header("X-Squid-Error") == "ERR_DNS_FAIL 0"
            assert b"Unable to determine IP address from host name" in answer.body
            await c.close()

    run(scenario())


def test_a_bracketed_ipv6_target_is_tunnelled() -> None:
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")

    async def scenario() -> None:
        async with upstream(host="::1") as up, lab_proxy() as proxy:
            c = await client(proxy)
            assert (await c.connect(f"[::1]:{up.port}")).status == 200
            c.send(b"v6")
            assert await c.read_exactly(2) == b"v6"
            await c.close()

    run(scenario())


def test_stop_closes_open_tunnels_and_leaves_no_task() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            # The idle client below must be accepted before stop(): no TCP_DEFER_ACCEPT.
            proxy = LabProxy(ProxyConfig(defer_accept=False), resolver_for(up.port))
            await proxy.start()
            c = await client(proxy)
            assert (await c.connect("echo.lab.test:443")).status == 200
            idle = await client(proxy)  # connected, never sends a request
            await eventually(lambda: proxy.stats.connections == 2, "the idle connection accepted")
            await proxy.stop(grace_s=0.2)
            assert await c.read_to_eof() == b""
            assert await idle.read_to_eof() == b""
            left = [
                t.get_name() for t in running_tasks() if t.get_name().startswith("proxy-") and not t.done()
            ]
            assert left == []
            await c.close()
            await idle.close()

    run(scenario())


def test_an_open_proxy_on_a_public_address_refuses_to_start() -> None:
    async def scenario() -> None:
        proxy = LabProxy(ProxyConfig(listen=("0.0.0.0", 0)), MapResolver())
        with pytest.raises(ConfigError, match="open proxy"):
            await proxy.start()

    run(scenario())
    # negative controls: users, or an explicit allow_open, make the same address acceptable
    ProxyConfig(listen=("0.0.0.0", 0), users={"u": "p"}).check_exposure()
    ProxyConfig(listen=("0.0.0.0", 0), allow_open=True).check_exposure()


def test_bad_configuration_names_the_field() -> None:
    with pytest.raises(ConfigError, match="connect_timeout_s"):
        ProxyConfig(connect_timeout_s=0)
    with pytest.raises(ConfigError, match="user name"):
        ProxyConfig(users={"a:b": "x"})
    with pytest.raises(ConfigError, match="not a Fault"):
        ProxyConfig(faults=["allow_ports"])  # type: ignore[list-item]
