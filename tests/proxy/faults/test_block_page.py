"""block_page: plain-HTTP requests in the tunnel answered by a web filter (200 HTML, 302 or 403) and
never forwarded; TLS, TeamViewer and other non-HTTP bytes pass untouched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from proxy_lab.cloud import Cloud
from proxy_lab.device.device import Device
from proxy_lab.device.settings import DeviceSettings, ProxySettings
from proxy_lab.errors import ConfigError
from proxy_lab.http1 import parse_head
from proxy_lab.outcomes import Outcome
from proxy_lab.pki import PKI
from proxy_lab.proxy import Fault, ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx, Direction
from proxy_lab.proxy.faults.httpsniff import HttpScanner, MessageHead, Opaque
from tests.proxy.proxy_testkit import client, lab_proxy, run

PROBE = b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n"


class FakeTunnel:
    """Records what the stage sends and whether it closed the tunnel (a socket-free playbook)."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.calls: list[tuple[str, tuple[Direction, bytes] | str]] = []
        self.bytes_client_to_upstream = self.bytes_upstream_to_client = 0
        self.closed = False

    def send(self, direction: Direction, data: bytes) -> None:
        self.calls.append(("send", (direction, data)))

    async def flush(self, timeout_s: float = 2.0) -> None: ...

    def close(self, why: str) -> None:
        self.calls.append(("close", why))

    def reset(self, why: str) -> None:
        self.calls.append(("reset", why))


def filtered(settings: dict[str, object], data: bytes, piece: int = 0) -> tuple[bytes, FakeTunnel]:
    """Feed the client's bytes to a fresh block_page stage; what it forwards, and what it did."""
    tunnel = FakeTunnel(Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "connectivitycheck.gstatic.com", 80))
    stage = make_fault("block_page", settings).stream(tunnel.ctx)
    assert stage is not None
    assert stage.inspects("client_to_upstream") and not stage.inspects("upstream_to_client")
    stage.bind(tunnel)

    async def script() -> bytes:
        step = piece or len(data) or 1
        out = b""
        for i in range(0, len(data), step):
            out += await stage.client_to_upstream(data[i : i + step])
        return out + await stage.at_eof("client_to_upstream")

    return asyncio.run(script()), tunnel


def answer_of(tunnel: FakeTunnel) -> tuple[int, dict[str, str], bytes]:
    assert [name for name, _ in tunnel.calls] == ["send", "close"]  # the answer, then FIN both ways
    sent = tunnel.calls[0][1]
    assert isinstance(sent, tuple)
    direction, data = sent
    assert direction == "upstream_to_client"
    head = parse_head(data, request=False)
    assert head is not None
    body = data[head.size :]
    assert head.get("Content-Length") == str(len(body)) and head.get("Connection") == "close"
    return int(head.start_line.split()[1]), {k.lower(): v for k, v in head.headers}, body


@pytest.mark.parametrize("piece", [0, 1, 10])  # at once, byte by byte, split inside the request line
def test_the_connectivity_probe_is_answered_200_with_html_by_the_filter_and_never_forwarded(
    piece: int,
) -> None:
    forwarded, tunnel = filtered({}, PROBE, piece)
    assert forwarded == b""
    status, headers, body = answer_of(tunnel)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<title>Access Blocked</title>" in body
    assert (
        "GET http://connectivitycheck.gstatic.com/generate_204 matches '*'" in tunnel.ctx.notes["block_page"]
    )


def test_redirect302_sends_the_client_to_the_block_url_naming_what_was_asked() -> None:
    _, tunnel = filtered({"style": "redirect302", "block_url": "http://portal.test/login"}, PROBE)
    status, headers, _ = answer_of(tunnel)
    assert status == 302
    assert (
        headers["location"]
        == "http://portal.test/login?url=http%3A%2F%2Fconnectivitycheck.gstatic.com%2Fgenerate_204"
    )


def test_forbidden403_answers_with_the_web_filters_block_page() -> None:
    _, tunnel = filtered({"style": "forbidden403", "category": "Remote Access"}, PROBE)
    status, headers, body = answer_of(tunnel)
    assert status == 403 and headers["x-web-filter-category"] == "Remote Access"
    assert b"Web Page Blocked" in body


def test_a_request_whose_target_matches_no_pattern_is_forwarded_byte_for_byte() -> None:
    request = b"GET /din.aspx?s=1&id=0&client=DynGate HTTP/1.1\r\nHost: master3.teamviewer.com\r\n\r\n"
    forwarded, tunnel = filtered({"paths": ["/generate_204", "/gen_204"]}, request, 5)
    assert forwarded == request and tunnel.calls == []


def test_patterns_match_query_strings_and_absolute_form_targets() -> None:
    dyngate = b"GET /din.aspx?s=1&id=0&client=DynGate HTTP/1.1\r\nHost: master3.teamviewer.com\r\n\r\n"
    _, tunnel = filtered({"paths": ["/d*.aspx?*client=DynGate*"]}, dyngate)
    assert answer_of(tunnel)[0] == 200
    absolute = b"GET http://connectivitycheck.gstatic.com/generate_204 HTTP/1.1\r\nHost: x\r\n\r\n"
    _, tunnel = filtered({"paths": ["/generate_204"]}, absolute)
    assert answer_of(tunnel)[0] == 200


def test_a_request_body_is_forwarded_and_the_next_request_on_the_connection_is_still_inspected() -> None:
    post = b"POST /dout.aspx?s=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 13\r\n\r\nGET /generate"  # body looks like a request
    forwarded, tunnel = filtered({"paths": ["/generate_204"]}, post + PROBE, 4)
    assert forwarded == post  # the body was not taken for a request; the probe after it was
    assert answer_of(tunnel)[0] == 200


@pytest.mark.parametrize(
    "data",
    [
        b"\x17\x24HELLO PBLAB-0001\n\x17\x24PING\n",  # TeamViewer's binary protocol on 5938
        b"MTALK HELLO\n",  # mtalk: an upper-case word, but not an HTTP method
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(64),  # a TLS ClientHello
        b"GET / HTTP/2.0\r\n\r\n",  # not HTTP/1.x
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 preface
    ],
)
def test_bytes_that_are_not_an_http1_request_pass_untouched_and_at_once(data: bytes) -> None:
    for piece in (0, 1):
        forwarded, tunnel = filtered({}, data, piece)
        assert forwarded == data and tunnel.calls == []
    scanner = HttpScanner("request")  # nothing is held back waiting for a head that never comes
    assert scanner.feed(data) == [Opaque(data)]


def test_an_incomplete_head_at_eof_is_passed_on_as_it_is() -> None:
    forwarded, tunnel = filtered({}, b"GET /generate_204 HTTP/1.1\r\nHost: conn")
    assert forwarded == b"GET /generate_204 HTTP/1.1\r\nHost: conn" and tunnel.calls == []


def test_the_request_scanner_reads_method_and_target() -> None:
    [head] = HttpScanner("request").feed(PROBE)
    assert isinstance(head, MessageHead)
    assert (head.method, head.target, head.framing, head.body_length) == ("GET", "/generate_204", "length", 0)


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"style": "html"}, "expected 'html200'"),
        ({"paths": []}, "at least one"),
        ({"block_url": "a\r\nb"}, "CR or LF"),
    ],
)
def test_bad_settings_are_rejected(settings: dict[str, object], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        make_fault("block_page", settings)


def test_through_the_proxy_the_clouds_generate_204_is_replaced_by_the_block_page(pki: PKI) -> None:
    async def probe(faults: list[Fault]) -> bytes:
        async with Cloud(pki) as cloud, lab_proxy(ProxyConfig(faults=faults), cloud.resolver) as proxy:
            c = await client(proxy)
            assert (await c.connect("connectivitycheck.gstatic.com:80")).status == 200
            c.send(PROBE)
            got = await c.read_to_eof()
            await c.close()
            return got

    assert run(probe([make_fault("block_page", {"paths": ["/generate_204"]})])).startswith(b"HTTP/1.1 200 OK")
    assert run(probe([])).startswith(b"HTTP/1.1 204")  # negative control: the cloud's own answer


async def _device_sees(pki: PKI, journal: Path, faults: list[Fault]) -> dict[str, Outcome]:
    async with Cloud(pki) as cloud, lab_proxy(ProxyConfig(faults=faults), cloud.resolver) as proxy:
        settings = DeviceSettings(proxy=ProxySettings(*proxy.address), teamviewer_hold_s=0.05)
        with Device(settings, pki, cloud.resolver, journal_path=journal) as device:
            results = await device.run(["connectivity_check", "online_help", "remote_access"])
    return {r.endpoint: r.outcome for r in results if not r.endpoint.startswith("dns")}


CHECK = "http://connectivitycheck.gstatic.com/generate_204"
HELP = "http://eureka.pitneybowes.com/sendpro-c-series/gb/SV63242-gb-help/Default.htm"
TEAMVIEWER = "tcp://master3.teamviewer.com:5938/"


@pytest.mark.parametrize(
    ("style", "outcome"),
    [("html200", Outcome.TAMPERED), ("redirect302", Outcome.TAMPERED), ("forbidden403", Outcome.REFUSED)],
)
def test_the_device_reports_the_check_and_help_by_the_filters_style_and_teamviewer_passes(
    pki: PKI, tmp_path: Path, style: str, outcome: Outcome
) -> None:
    fault = make_fault("block_page", {"style": style, "paths": ["/generate_204", "/sendpro-c-series/*"]})
    seen = run(_device_sees(pki, tmp_path / "j", [fault]))
    assert seen.pop(CHECK) == outcome and seen.pop(HELP) == outcome
    assert seen.pop(TEAMVIEWER) == Outcome.PASS  # binary 5938 bytes: nothing for the filter to read
    assert set(seen.values()) == {Outcome.PASS}  # DynGate: its paths are not in the list


def test_the_device_passes_when_the_filters_patterns_match_nothing_it_asks(pki: PKI, tmp_path: Path) -> None:
    fault = make_fault("block_page", {"paths": ["/ads/*"]})  # negative control: same filter, other paths
    seen = run(_device_sees(pki, tmp_path / "j", [fault]))
    assert set(seen.values()) == {Outcome.PASS}
