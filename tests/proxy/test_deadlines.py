"""deadlines.py: many timeouts of one length on one timer; `Timeouts.within` behaves as asyncio.timeout."""

from __future__ import annotations

import asyncio

import pytest

from proxy_lab.proxy.deadlines import Deadlines, Timeouts
from tests.proxy.proxy_testkit import run


def test_deadlines_expire_in_the_order_they_were_set_and_a_cleared_one_never_fires() -> None:
    async def scenario() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []
        started = loop.time()
        deadlines = Deadlines(0.2, lambda key: fired.append((key, loop.time() - started)))
        deadlines.set("a")
        await asyncio.sleep(0.05)
        deadlines.set("b")
        deadlines.set("c")
        deadlines.clear("b")  # met in time
        for _ in range(100):  # bounded: until both have fired, at most 2 s
            if len(fired) == 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # and nothing else fires after them
        deadlines.close()
        return fired

    fired = run(scenario())
    assert [key for key, _ in fired] == ["a", "c"]
    assert fired[0][1] >= 0.2 and fired[1][1] >= 0.25  # never early (a loaded machine may be late)


def test_set_returns_the_deadline_and_close_drops_every_deadline_without_calling_back() -> None:
    async def scenario() -> list[object]:
        loop = asyncio.get_running_loop()
        fired: list[object] = []
        deadlines = Deadlines(0.05, fired.append)
        due = deadlines.set("x")
        assert loop.time() + 0.04 <= due <= loop.time() + 0.06
        deadlines.close()
        await asyncio.sleep(0.2)
        negative = Deadlines(0.05, fired.append)  # negative control: the same, not closed, fires
        negative.set("y")
        await asyncio.sleep(0.2)
        negative.close()
        return fired

    assert run(scenario()) == ["y"]


def test_within_gives_the_result_in_time_and_timeout_error_when_late() -> None:
    async def scenario() -> None:
        timeouts = Timeouts(0.1)
        assert await timeouts.within(asyncio.sleep(0.01, result="done")) == "done"
        with pytest.raises(TimeoutError):
            await timeouts.within(asyncio.sleep(5))
        timeouts.close()

    run(scenario())


def test_within_lets_a_cancel_from_outside_through_as_a_cancel_not_a_timeout() -> None:
    async def scenario() -> None:
        timeouts = Timeouts(5.0)
        task = asyncio.ensure_future(timeouts.within(asyncio.sleep(10)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        timeouts.close()

    run(scenario())
