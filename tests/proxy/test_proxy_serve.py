"""serve_forever: the CLI's entry point runs until told to stop and exits 0, or 2 when it cannot start."""

from __future__ import annotations

import asyncio
import logging

import pytest
from proxy_testkit import run

from proxy_lab.proxy import ProxyConfig, serve_forever
from proxy_lab.resolver import MapResolver


def test_serve_forever_stops_cleanly_when_its_event_is_set() -> None:
    async def scenario() -> int:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return await serve_forever(ProxyConfig(), MapResolver(), stop)

    assert run(scenario()) == 0


def test_serve_forever_refuses_to_run_an_open_proxy(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="proxy_lab.proxy"):
        assert run(serve_forever(ProxyConfig(listen=("0.0.0.0", 0)), MapResolver(), asyncio.Event())) == 2
    assert "open proxy" in caplog.text
