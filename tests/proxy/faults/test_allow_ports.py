"""allow_ports: Squid's `http_access deny CONNECT !SSL_ports`, answered as Squid does (or by close/reset)."""

from __future__ import annotations

import asyncio

import pytest

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import client, lab_proxy, run, upstream


def ctx(port: int, host: str = "master3.teamviewer.com") -> Ctx:
    return Ctx(client=("127.0.0.1", 50000), proxy=("127.0.0.1", 3128), host=host, port=port)


def test_ssl_ports_only_refuses_5938_with_squids_exact_403() -> None:
    refusal = asyncio.run(make_fault("allow_ports", {"preset": "ssl_ports_only"}).on_connect(ctx(5938)))
    assert refusal is not None
    head, _, body = refusal.to_bytes().partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 403 Forbidden",
        b"Server: squid",
        b"Mime-Version: 1.0",
        b"Content-Type: text/html;charset=utf-8",
        f"Content-Length: {len(body)}".encode(),
        b"X-Squid-Error: ERR_ACCESS_DENIED 0",
        b"Vary: Accept-Language",
        b"Content-Language: en",
        b"Connection: close",
    ]
    assert b"Access control configuration prevents your request from being allowed at this time." in body
    assert b"master3.teamviewer.com:5938" in body
    assert "port 5938 is not in [443]" in refusal.why


def test_ssl_ports_only_lets_443_through() -> None:
    assert asyncio.run(make_fault("allow_ports", {"preset": "ssl_ports_only"}).on_connect(ctx(443))) is None


def test_a_custom_list_adds_to_the_preset() -> None:
    fault = make_fault("allow_ports", {"preset": "ssl_ports_only", "ports_allowed": [80]})
    assert asyncio.run(fault.on_connect(ctx(80))) is None
    assert asyncio.run(fault.on_connect(ctx(5938))) is not None


@pytest.mark.parametrize(("action", "status"), [("405", 405), ("close", 0), ("reset", 0)])
def test_other_actions_answer_405_or_no_answer_at_all(action: str, status: int) -> None:
    refusal = asyncio.run(
        make_fault("allow_ports", {"ports_allowed": [443], "action": action}).on_connect(ctx(80))
    )
    assert refusal is not None and refusal.status == status
    assert refusal.action == ("respond" if status else action)


def _resolver(port: int) -> MapResolver:
    return MapResolver({("master3.teamviewer.com", None): ("127.0.0.1", port)})


def test_through_the_proxy_5938_is_refused_and_443_tunnels() -> None:
    async def scenario() -> None:
        config = ProxyConfig(faults=[make_fault("allow_ports", {"preset": "ssl_ports_only"})])
        async with upstream() as up, lab_proxy(config, _resolver(up.port)) as proxy:
            c = await client(proxy)
            answer = await c.connect("master3.teamviewer.com:5938")
            assert answer.status == 403 and answer.header("X-Squid-Error") == "ERR_ACCESS_DENIED 0"
            await c.close()
            c = await client(proxy)  # negative control: 443 is in SSL_ports
            assert (await c.connect("master3.teamviewer.com:443")).status == 200
            await c.close()
            assert proxy.stats.refusals[403] == 1
            assert "allow_ports: port 5938" in next(r for r in proxy.log if r.event == "refused").message

    run(scenario())


def test_through_the_proxy_the_reset_action_resets_the_connection_without_an_answer() -> None:
    async def scenario() -> None:
        config = ProxyConfig(
            faults=[make_fault("allow_ports", {"preset": "ssl_ports_only", "action": "reset"})]
        )
        async with upstream() as up, lab_proxy(config, _resolver(up.port)) as proxy:
            c = await client(proxy)
            c.send(b"CONNECT master3.teamviewer.com:5938 HTTP/1.1\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                await c.read()
            await c.close()
            assert proxy.stats.refusals[0] == 1

    run(scenario())
