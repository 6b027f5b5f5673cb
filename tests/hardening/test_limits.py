"""Hostile input against a real lab proxy on loopback: each is answered (or cut) and the proxy stays up.

tests/proxy covers each limit once (414, 431, 408, 503, loop, foreign first bytes, bad authority);
these are the combinations and extremes: NUL and control bytes, header injection with a bare CR,
thousands of headers, a head in 10,000 one-byte writes, a slowloris that trickles within every read
timeout, garbage pipelined after a refusal, clients that reset mid-CONNECT. Every test ends by
proving the proxy still serves a good CONNECT and that its log holds no traceback.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct

import pytest

from proxy_lab.proxy import LabProxy, ProxyConfig
from tests.hardening.hardening_kit import (
    ECHO_HOST,
    Captured,
    Raw,
    captured_proxy_log,
    proxy_to_echo,
    run,
    until_idle,
)

GOOD = f"CONNECT {ECHO_HOST}:443 HTTP/1.1\r\nHost: {ECHO_HOST}:443\r\n\r\n".encode()


async def assert_still_serving(proxy: LabProxy, log: Captured) -> None:
    """A good CONNECT after the abuse gets its tunnel, and nothing was logged as a crash."""
    c = await Raw.open(proxy)
    await c.send(GOOD)
    status, _ = await c.head()
    assert status == 200
    await c.send(b"still alive")
    assert await asyncio.wait_for(c.reader.readexactly(11), 5) == b"still alive"
    await c.close()
    assert log.tracebacks == []


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"CONNECT echo.lab.test:443\x00 HTTP/1.1\r\n\r\n", 400),  # NUL inside the request line
        (b"CONNECT echo.lab.test:443 HTTP/1.1\r\nX-Nul: a\x00b\r\n\r\n", 400),  # NUL in a field value
        (
            b"CONNECT echo.lab.test:443 HTTP/1.1\r\nX-Inject: a\rProxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\n",
            400,
        ),  # header injection with a bare CR (no LF) inside a value
        (b"CONNECT echo.lab.test:443 HTTP/1.1\r\nX-Ctl: a\x01b\r\n\r\n", 400),  # SOH control byte in a value
        (b"CONNECT echo.lab.test:443 HTTP/1.1\r\nX-Del: a\x7fb\r\n\r\n", 400),  # DEL in a value
        (b"CONNECT echo.lab.test:443 HTTP/1.1\r\nProxy-Authorization: Basic \x1bZm9v\r\n\r\n", 400),  # ESC in credentials
        (b"CONNECT echo.lab.test:443\r\nInjected: 1 HTTP/1.1\r\n\r\n", 400),  # CRLF injected into the target
        (b"CONNECT echo.lab.test:443 HTTP/1.1\r\n: no-name\r\n\r\n", 400),  # a field with an empty name
        (b"CONNECT echo.lab.test:443 HTTP/1.1\r\nno colon at all\r\n\r\n", 400),  # a field line without ':'
        (b"CONNECT caf\xe9.lab.test:443 HTTP/1.1\r\n\r\n", 400),  # Latin-1 byte in the target
        (b"CONNECT echo.lab.test:443 HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n", 400),  # two lengths
        (b"\r\n" * 1000 + GOOD, 400),  # 1000 empty lines before the request line (RFC 9112 §2.2 skips a few)
        (b"CONNECT " + b"9" * 20 + b" HTTP/1.1\r\n\r\n", 400),  # a target that is only digits, no host
        (b"CONNECT echo.lab.test:00000000443 HTTP/1.1\r\n\r\n", 400),  # port longer than 5 digits
        (b"CONNECT [::1%lo]:443 HTTP/1.1\r\n\r\n", 400),  # IPv6 zone id in the brackets
    ],
)
def test_hostile_bytes_in_a_head_get_an_error_answer_and_a_close_never_a_crash(
    request_bytes: bytes, status: int
) -> None:
    async def scenario() -> None:
        async with captured_proxy_log() as log, proxy_to_echo() as proxy:
            c = await Raw.open(proxy)
            await c.send(request_bytes)
            got, head = await c.head()
            assert got == status
            assert head.get("Connection") == "close"
            await c.rest()  # the proxy closes
            await c.close()
            assert proxy.stats.tunnels == 0
            assert "Zm9vOmJhcg" not in log.text  # a value carried in the refused head is not logged
            await assert_still_serving(proxy, log)

    run(scenario())


def test_thousands_of_tiny_headers_within_the_byte_limit_are_served_and_beyond_it_get_431() -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(3000))  # ~27 KB of 3000 fields

    async def scenario() -> None:
        async with captured_proxy_log() as log, proxy_to_echo(ProxyConfig(max_header_bytes=32768)) as proxy:
            loop = asyncio.get_running_loop()
            c = await Raw.open(proxy)
            started = loop.time()
            await c.send(GOOD[:-2] + many + b"\r\n")
            status, _ = await c.head()
            assert status == 200 and loop.time() - started < 2.0
            await c.close()
            c = await Raw.open(proxy)
            await c.send(GOOD[:-2] + many + many + b"\r\n")  # 6000 fields, ~55 KB
            status, _ = await c.head()
            assert status == 431
            await c.close()
            await assert_still_serving(proxy, log)

    run(scenario())


def test_a_head_sent_in_ten_thousand_one_byte_writes_is_served_and_so_is_a_tunnel_of_tiny_writes() -> None:
    head = GOOD[:-2] + b"X-Pad: " + b"p" * (10_000 - len(GOOD) - 9) + b"\r\n\r\n"
    assert len(head) == 10_000

    async def scenario() -> None:
        async with captured_proxy_log() as log, proxy_to_echo(ProxyConfig(header_timeout_s=15)) as proxy:
            c = await Raw.open(proxy)
            sock = c.writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(head)):
                c.writer.write(head[i : i + 1])
                if i % 64 == 0:
                    await c.writer.drain()
                    await asyncio.sleep(0)  # let each byte leave as its own segment, mostly
            status, _ = await c.head()
            assert status == 200
            for i in range(10_000):  # 10,000 one-byte writes inside the tunnel
                c.writer.write(bytes([i % 251]))
                if i % 256 == 0:
                    await c.writer.drain()
            echoed = await asyncio.wait_for(c.reader.readexactly(10_000), 10)
            assert echoed == bytes(i % 251 for i in range(10_000))
            await c.close()
            await assert_still_serving(proxy, log)

    run(scenario(), timeout_s=30)


def test_a_slowloris_that_trickles_a_byte_at_a_time_still_gets_408_at_the_head_deadline() -> None:
    async def scenario() -> None:
        async with captured_proxy_log() as log, proxy_to_echo(ProxyConfig(header_timeout_s=0.5)) as proxy:
            loop = asyncio.get_running_loop()
            c = await Raw.open(proxy)
            started = loop.time()

            async def trickle() -> None:
                for b in GOOD[:-4] + b"\r\nX-Slow: " + b"s" * 100:  # never ends the head
                    c.writer.write(bytes([b]))
                    await asyncio.sleep(0.05)  # each byte well inside any per-read timeout

            dripping = asyncio.ensure_future(trickle())
            try:
                status, head = await c.head()
            finally:
                dripping.cancel()
            elapsed = loop.time() - started
            assert status == 408 and head.get("Connection") == "close"
            assert 0.4 < elapsed < 2.0  # the deadline is for the whole head, not for each read
            await c.rest()
            await c.close()
            # a connection that never sends a byte is answered the same way
            idle = await Raw.open(proxy)
            status, _ = await idle.head()
            assert status == 408
            await idle.close()
            await assert_still_serving(proxy, log)

    run(scenario())


def test_capacity_comes_back_after_connections_beyond_max_connections_are_refused_and_closed() -> None:
    async def scenario() -> None:
        # Silent connections held by the proxy itself: accepted at once, not deferred to their first byte.
        config = ProxyConfig(max_connections=3, defer_accept=False)
        async with captured_proxy_log() as log, proxy_to_echo(config) as proxy:
            held = [await Raw.open(proxy) for _ in range(3)]
            for _ in range(250):  # bounded (5 s): the proxy has accepted the three it holds
                if proxy.stats.connections_open == 3:
                    break
                await asyncio.sleep(0.02)
            assert proxy.stats.connections_open == 3
            extra = [await Raw.open(proxy) for _ in range(4)]
            for c in extra:
                await c.send(GOOD)
                status, _ = await c.head()
                assert status == 503
                await c.close()
            for c in held:
                await c.close()
            await until_idle(proxy)  # the proxy notices the closes
            assert proxy.stats.connections_open == 0
            again = [await Raw.open(proxy) for _ in range(3)]
            for c in again:
                await c.send(GOOD)
                status, _ = await c.head()
                assert status == 200
            for c in again:
                await c.close()
            await until_idle(proxy)  # else the next connection may be the fourth one open: 503
            assert proxy.stats.connections_open == 0
            await assert_still_serving(proxy, log)

    run(scenario())


def test_a_loop_is_refused_when_the_target_is_a_name_for_the_proxy_itself() -> None:
    async def scenario() -> None:
        async with captured_proxy_log() as log, proxy_to_echo() as proxy:
            host, port = proxy.address
            proxy.resolver.add("alias.lab.test", None, (host, port))  # type: ignore[attr-defined]
            for target in (f"alias.lab.test:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
                c = await Raw.open(proxy)
                await c.send(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
                status, _ = await c.head()
                assert status == 403, target
                await c.close()
                assert "loop" in proxy.log[-1].reason
            await assert_still_serving(proxy, log)

    run(scenario())


def _client_hello() -> bytes:
    """A real TLS ClientHello, as a client configured for an HTTPS proxy would send first."""
    ctx = ssl.create_default_context()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="proxy.lab.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_real_tls_client_hello_is_rejected_at_once_not_after_the_header_timeout() -> None:
    hello = _client_hello()
    assert hello[0] == 0x16 and b"\r\n\r\n" not in hello

    async def scenario() -> None:
        async with captured_proxy_log() as log, proxy_to_echo(ProxyConfig(header_timeout_s=10)) as proxy:
            loop = asyncio.get_running_loop()
            c = await Raw.open(proxy)
            started = loop.time()
            await c.send(hello)
            status, _ = await c.head()
            assert status == 400 and loop.time() - started < 1.0
            await c.close()
            assert "TLS ClientHello" in proxy.log[-1].message
            await assert_still_serving(proxy, log)

    run(scenario())


def test_garbage_pipelined_after_a_407_is_answered_400_and_the_connection_closed() -> None:
    async def scenario() -> None:
        config = ProxyConfig(users={"meter": "S3cret"})
        async with captured_proxy_log() as log, proxy_to_echo(config) as proxy:
            c = await Raw.open(proxy)
            await c.send(GOOD + b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100)  # a TLS record where the retry belongs
            status, head = await c.head()
            assert status == 407 and head.get("Connection") == "keep-alive"
            await c.reader.readexactly(int(head.get("Content-Length") or 0))
            status, head = await c.head()
            assert status == 400 and head.get("Connection") == "close"
            await c.rest()
            await c.close()
            # and garbage after a refusal that closes (403 loop) is simply dropped with the connection
            c = await Raw.open(proxy)
            host, port = proxy.address
            await c.send(f"CONNECT {host}:{port} HTTP/1.1\r\nProxy-Authorization: Basic bWV0ZXI6UzNjcmV0\r\n\r\n".encode()
                         + b"garbage\r\n\r\n" * 50)  # fmt: skip
            status, _ = await c.head()
            assert status == 403
            await c.rest()
            await c.close()
            assert "S3cret" not in log.text and "bWV0ZXI6UzNjcmV0" not in log.text
            c = await Raw.open(proxy)
            await c.send(GOOD[:-2] + b"Proxy-Authorization: Basic bWV0ZXI6UzNjcmV0\r\n\r\n")
            status, _ = await c.head()
            assert status == 200
            await c.close()
            assert log.tracebacks == []

    run(scenario())


def test_clients_that_reset_right_after_sending_connect_leave_nothing_behind() -> None:
    linger_reset = struct.pack("ii", 1, 0)

    async def scenario() -> None:
        async with captured_proxy_log() as log, proxy_to_echo() as proxy:
            for i in range(60):
                c = await Raw.open(proxy)
                sock = c.writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_reset)
                c.writer.write(GOOD if i % 3 else GOOD[:20])  # whole heads and half heads
                if i % 2:
                    await asyncio.sleep(0.002)
                c.writer.transport.abort()  # RST (SO_LINGER 0)
            await until_idle(proxy)
            assert proxy.stats.connections_open == 0 and proxy.stats.tunnels_open == 0
            await assert_still_serving(proxy, log)

    run(scenario())
