"""Checks for every test module: no embedded mitmproxy engine outlives the module that started it.

The engine is one per process (its options are process-global), so one left running makes every
later module that inspects with another CA fail far from the cause; this names the cause instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy_lab.proxy.inspection.engine import engine_counts


@pytest.fixture(scope="module", autouse=True)
def no_inspection_engine_outlives_the_module(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    assert engine_counts() is None, f"{request.module.__name__} left the inspection engine running"
