"""tamper: plain-HTTP response bodies altered after the head (flip, truncate, banner); TLS and other
bytes untouched. Scripts feed response bytes to the stage in pieces and assert the bytes out."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from proxy_lab.cloud import Cloud
from proxy_lab.device.device import Device
from proxy_lab.device.settings import DeviceSettings, ProxySettings
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome
from proxy_lab.pki import PKI
from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx
from proxy_lab.proxy.faults.httpsniff import Body, HttpScanner, MessageHead, Opaque
from tests.proxy.proxy_testkit import client, lab_proxy, run

CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "distservp1.pb.com", 80)
XML = b'<?xml version="1.0"?><AuthResponse status="ok" meter="M" session="S"/>'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"


def response(body: bytes) -> bytes:
    return OK % len(body) + body


def tampered(settings: dict[str, object], data: bytes, piece: int = 0) -> tuple[bytes, Ctx]:
    """Feed `data` to a fresh tamper stage (in pieces of `piece` bytes; 0: at once), then EOF."""
    ctx = Ctx(CTX.client, CTX.proxy, CTX.host, CTX.port)
    stage = make_fault("tamper", settings).stream(ctx)
    assert stage is not None
    assert stage.inspects("upstream_to_client") and not stage.inspects("client_to_upstream")

    async def script() -> bytes:
        step = piece or len(data) or 1
        out = b""
        for i in range(0, len(data), step):
            out += await stage.upstream_to_client(data[i : i + step])
        return out + await stage.at_eof("upstream_to_client")

    return asyncio.run(script()), ctx


@pytest.mark.parametrize("piece", [0, 1, 7, 64])  # at once, byte by byte, and splits inside the head
def test_flip_byte_flips_one_body_byte_and_keeps_the_length(piece: int) -> None:
    out, ctx = tampered({"mode": "flip_byte", "offset_bytes": 0}, response(XML), piece)
    assert out == response(bytes([XML[0] ^ 0xFF]) + XML[1:])
    assert ctx.notes["tamper"] == "flip_byte at body byte 0 of 'HTTP/1.1 200 OK'"


@pytest.mark.parametrize("piece", [0, 1, 9])
def test_truncate_keeps_offset_bytes_and_announces_the_shorter_length(piece: int) -> None:
    out, _ = tampered({"mode": "truncate", "offset_bytes": 10}, response(XML), piece)
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 10" in head and body == XML[:10]  # well framed, wrong content


@pytest.mark.parametrize("piece", [0, 1, 13])
def test_banner_is_injected_at_the_offset_and_counted_in_content_length(piece: int) -> None:
    out, _ = tampered({"mode": "banner", "offset_bytes": 21, "banner": "<!-- AV -->"}, response(XML), piece)
    head, body = out.split(b"\r\n\r\n", 1)
    assert body == XML[:21] + b"<!-- AV -->" + XML[21:]
    assert f"Content-Length: {len(body)}".encode() in head


def test_a_banner_offset_past_the_end_appends_it() -> None:
    out, _ = tampered({"mode": "banner", "offset_bytes": 10_000, "banner": "!"}, response(b"abc"), 1)
    assert out.endswith(b"Content-Length: 4\r\n\r\nabc!")


def test_every_response_of_a_keep_alive_stream_is_altered_and_the_framing_stays_intact() -> None:
    two = response(b"first") + response(b"second")
    out, _ = tampered({"mode": "truncate", "offset_bytes": 2}, two, 3)
    assert out.count(b"Content-Length: 2\r\n") == 2
    assert [b.split(b"\r\n\r\n")[1] for b in out.split(b"HTTP/1.1 ")[1:]] == [b"fi", b"se"]


def test_a_body_read_until_close_is_altered_without_a_length() -> None:
    data = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nDYNGATE OK s=1"
    out, _ = tampered({"mode": "flip_byte", "offset_bytes": 1}, data, 5)
    assert out == data.replace(b"DYNGATE", bytes([ord("D"), ord("Y") ^ 0xFF]) + b"NGATE")


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",  # generate_204: no body to alter
        b"HTTP/1.1 304 Not Modified\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",  # chunked: left alone
        b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03"
        + bytes(100),  # a TLS ServerHello: opaque to the proxy
        b"\x17\x24OK TV00000001\n\x17\x24PONG\n",  # TeamViewer's binary protocol
        b"HTTP/2 200\r\n\r\n",  # not HTTP/1.x
    ],
)
def test_bytes_that_are_not_an_http1_body_pass_untouched(data: bytes) -> None:
    for piece in (0, 1):
        out, _ = tampered({"mode": "banner"}, data, piece)
        assert out == data


def test_a_chunked_body_is_noted_as_left_alone() -> None:
    _, ctx = tampered({}, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert "chunked or unframed body left alone" in ctx.notes["tamper"]


def test_the_scanner_gives_back_every_byte_it_was_fed_whatever_the_splits() -> None:
    rng = random.Random(1)
    stream = (
        response(XML)
        + b"HTTP/1.1 204 No Content\r\n\r\n"
        + response(b"x" * 300)
        + b"HTTP/1.1 200 OK\r\n\r\ntail"
    )
    for _ in range(50):
        scanner, items = HttpScanner("response"), []
        i = 0
        while i < len(stream):
            n = rng.randint(1, 40)
            items += scanner.feed(stream[i : i + n])
            i += n
        items += scanner.close()
        joined = b"".join(it.raw if isinstance(it, MessageHead) else it.data for it in items)
        assert joined == stream
        heads = [it.status for it in items if isinstance(it, MessageHead)]
        assert heads == [200, 204, 200, 200]
        assert not any(isinstance(it, Opaque) for it in items)
        assert sum(len(it.data) for it in items if isinstance(it, Body)) == len(XML) + 300 + 4


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"mode": "scramble"}, "expected 'flip_byte'"),
        ({"offset_bytes": -1}, "negative"),
        ({"mode": "banner", "banner": ""}, "empty"),
    ],
)
def test_bad_settings_are_rejected(settings: dict[str, object], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        make_fault("tamper", settings)


def test_through_the_proxy_the_clouds_help_page_arrives_truncated_with_a_matching_length(pki: PKI) -> None:
    async def fetch(faults: list[object]) -> bytes:
        async with Cloud(pki) as cloud, lab_proxy(ProxyConfig(faults=faults), cloud.resolver) as proxy:  # type: ignore[arg-type]
            c = await client(proxy)
            assert (await c.connect("eureka.pitneybowes.com:80")).status == 200
            c.send(b"GET /sendpro-c-series/gb/SV63242-gb-help/Default.htm HTTP/1.1\r\n"
                   b"Host: eureka.pitneybowes.com\r\nConnection: close\r\n\r\n")  # fmt: skip
            got = await c.read_to_eof()
            await c.close()
            return got

    cut = run(fetch([make_fault("tamper", {"mode": "truncate", "offset_bytes": 20})]))
    assert cut.startswith(b"HTTP/1.1 200") and b"Content-Length: 20\r\n" in cut
    assert len(cut.split(b"\r\n\r\n", 1)[1]) == 20
    whole = run(fetch([]))  # negative control
    assert b"<title>SendPro C Series Help</title>" in whole


async def _device_sees(pki: PKI, journal: Path, faults: list[object]) -> dict[str, Outcome]:
    async with Cloud(pki) as cloud, lab_proxy(ProxyConfig(faults=faults), cloud.resolver) as proxy:  # type: ignore[arg-type]
        settings = DeviceSettings(proxy=ProxySettings(*proxy.address))
        with Device(settings, pki, cloud.resolver, journal_path=journal) as device:
            results = await device.run(["distributor", "online_help"])
    return {r.endpoint: r.outcome for r in results}


def test_the_device_finds_plain_http_answers_tampered_and_tls_ones_intact(pki: PKI, tmp_path: Path) -> None:
    seen = run(
        _device_sees(pki, tmp_path / "j", [make_fault("tamper", {"mode": "truncate", "offset_bytes": 30})])
    )
    assert seen == {
        "http://distservp1.pb.com/csd/dstproduct": Outcome.TAMPERED,  # the XML answer no longer parses
        "https://distservp1.pb.com/csd/dstproduct": Outcome.PASS,  # TLS: the proxy cannot see inside
        "http://eureka.pitneybowes.com/sendpro-c-series/gb/SV63242-gb-help/Default.htm": Outcome.TAMPERED,
    }


def test_the_device_passes_the_same_services_without_tamper(pki: PKI, tmp_path: Path) -> None:
    seen = run(_device_sees(pki, tmp_path / "j", []))  # negative control
    assert set(seen.values()) == {Outcome.PASS}
