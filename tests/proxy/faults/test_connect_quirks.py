"""connect_quirks: the tunnel announced with 204, framing headers, early bytes or HTTP/1.0."""

from __future__ import annotations

import asyncio

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx
from proxy_lab.proxy.responses import ESTABLISHED
from tests.proxy.proxy_testkit import TIMEOUT_S, client, lab_proxy, run, upstream

CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "distservp1.pb.com", 443)


def test_the_default_head_is_left_as_200_connection_established() -> None:
    assert make_fault("connect_quirks", {}).established_response(CTX, ESTABLISHED) == ESTABLISHED


def test_each_quirk_rewrites_the_head() -> None:
    def head(**settings: object) -> bytes:
        return make_fault("connect_quirks", settings).established_response(CTX, ESTABLISHED)

    assert head(status=204) == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert (
        head(content_length_on_200=True)
        == b"HTTP/1.1 200 Connection established\r\nContent-Length: 0\r\n\r\n"
    )
    assert head(transfer_encoding_on_200=True).endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    assert head(http10=True) == b"HTTP/1.0 200 Connection established\r\n\r\n"
    assert head(bytes_after_head="junk") == ESTABLISHED + b"junk"
    assert head(status=200, reason="OK") == b"HTTP/1.1 200 OK\r\n\r\n"


def test_through_the_proxy_early_bytes_arrive_before_the_upstreams_bytes() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            from proxy_lab.resolver import MapResolver

            resolver = MapResolver({("distservp1.pb.com", None): ("127.0.0.1", up.port)})
            fault = make_fault("connect_quirks", {"status": 204, "bytes_after_head": "EARLY"})
            async with lab_proxy(ProxyConfig(faults=[fault]), resolver) as proxy:
                c = await client(proxy)
                c.send(b"CONNECT distservp1.pb.com:443 HTTP/1.1\r\n\r\nping")
                got = await asyncio.wait_for(
                    c.reader.readexactly(len(b"HTTP/1.1 204 No Content\r\n\r\nEARLYping")), TIMEOUT_S
                )
                assert got == b"HTTP/1.1 204 No Content\r\n\r\nEARLYping"
                await c.close()
            async with lab_proxy(ProxyConfig(), resolver) as proxy:  # negative control: no quirk
                c = await client(proxy)
                answer = await c.connect("distservp1.pb.com:443")
                assert answer.raw_head == ESTABLISHED
                await c.close()

    run(scenario())
