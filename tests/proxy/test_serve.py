"""serve_forever: the CLI's entry point serves real clients until told to stop and exits 0, or 2 when it
cannot start."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxy_lab.proxy import LabProxy, ProxyConfig, serve_forever
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, client, run, upstream


def test_serve_forever_tunnels_a_real_client_both_ways_then_stops_cleanly_when_its_event_is_set() -> None:
    async def scenario() -> tuple[int, bytes, bytes]:
        async with upstream() as up:
            stop = asyncio.Event()
            serving: asyncio.Future[LabProxy] = asyncio.get_running_loop().create_future()
            stopped: list[bool] = []

            def follow(proxy: LabProxy):  # type: ignore[no-untyped-def]
                serving.set_result(proxy)
                return lambda: stopped.append(True)

            resolver = MapResolver({("echo.lab.test", None): ("127.0.0.1", up.port)})
            served = asyncio.ensure_future(serve_forever(ProxyConfig(), resolver, stop, follow=follow))
            proxy = await asyncio.wait_for(serving, TIMEOUT_S)
            c = await client(proxy)
            assert (await c.connect("echo.lab.test:443")).status == 200
            c.send(b"up and down")
            echoed = await c.read_exactly(11)  # upstream -> client: the echo of client -> upstream
            c.writer.write_eof()
            tail = await c.read_to_eof()
            await c.close()
            assert not stopped and not served.done()  # still serving until told
            stop.set()
            code = await asyncio.wait_for(served, TIMEOUT_S)
            assert stopped == [True]  # what follow() returned ran at the stop
            # negative control: once stopped, the address refuses connections
            with pytest.raises(OSError):
                await asyncio.wait_for(asyncio.open_connection(*proxy.address), TIMEOUT_S)
            return code, echoed, tail

    code, echoed, tail = run(scenario())
    assert code == 0
    assert echoed == b"up and down" and tail == b"[eof after 11 bytes]"


def test_serve_forever_refuses_to_run_an_open_proxy(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="proxy_lab.proxy"):
        assert run(serve_forever(ProxyConfig(listen=("0.0.0.0", 0)), MapResolver(), asyncio.Event())) == 2
    assert "open proxy" in caplog.text
