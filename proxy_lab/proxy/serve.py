"""One lab proxy as a process's main job: `serve_forever` until SIGINT/SIGTERM, on `run_in_loop`'s loop.

`proxy-lab proxy` runs `proxy_lab.proxy.workers.run_proxy`, which calls these in one process or
in each of its worker processes; nothing here starts a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from proxy_lab.errors import ConfigError
from proxy_lab.proxy.config import ProxyConfig
from proxy_lab.proxy.server import LabProxy
from proxy_lab.resolver import Resolver

logger = logging.getLogger("proxy_lab.proxy")


async def serve_forever(
    config: ProxyConfig,
    resolver: Resolver,
    stop_event: asyncio.Event | None = None,
    *,
    listen_socket: socket.socket | None = None,
    follow: Callable[[LabProxy], Callable[[], None]] | None = None,
) -> int:
    """Run the proxy until `stop_event` is set or SIGINT/SIGTERM arrives; 0 on a clean stop, 2 when it
    cannot start. `follow(proxy)` runs once it listens, and what it returns when it stops."""
    proxy = LabProxy(config, resolver, listen_socket=listen_socket)
    try:
        await proxy.start()
    except (OSError, ConfigError) as exc:
        logger.error("lab proxy cannot start on %s:%s: %s", config.listen[0], config.listen[1], exc)
        return 2
    unfollow = follow(proxy) if follow is not None else None
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if unfollow is not None:
            unfollow()
        await proxy.stop()
    return 0


def run_in_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run `main` on a fresh event loop: uvloop when it is installed, else asyncio's."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
