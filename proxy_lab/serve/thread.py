"""A served lab on its own event loop in a background thread, for synchronous code (the pytest
fixture `proxy_lab_served`, scripts): `with ServedLabThread(ServeConfig(...)) as lab: lab.client...`."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from proxy_lab.client import LabClient
from proxy_lab.serve.served import ServeConfig, ServedLab

START_TIMEOUT_S = 120.0


class ServedLabThread:
    """Starts on construction, stops on `close()` (or leaving `with`)."""

    def __init__(self, config: ServeConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors: list[BaseException] = []
        self.loop.set_exception_handler(
            lambda _loop, ctx: self.errors.append(ctx.get("exception") or RuntimeError(ctx["message"]))
        )
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy-lab-serve", daemon=True)
        self.thread.start()
        self.served = ServedLab(config)
        try:
            self._call(self.served.start(), START_TIMEOUT_S)
        except BaseException:
            self._end_loop()
            raise
        self.client = LabClient(self.served.ui_url, token=config.ui_token)

    @property
    def proxy_url(self) -> str:
        return self.served.proxy_url

    @property
    def ui_url(self) -> str:
        return self.served.ui_url

    def _call(self, coro: Any, timeout_s: float) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout_s)

    def close(self) -> None:
        try:
            self._call(self.served.stop(), 60)
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()

    def __enter__(self) -> ServedLabThread:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
