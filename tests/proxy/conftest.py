"""Makes this directory's helpers (proxy_testkit.py) importable from tests/proxy and tests/proxy/faults.

pytest's default (prepend) import mode already puts this directory on sys.path because a conftest
lives here; the explicit insert keeps that true under `--import-mode=importlib` too.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_lab.pki import PKI

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """One lab PKI (PB root, corporate CA, signing key) for every proxy test."""
    return PKI.load(Path(tmp_path_factory.mktemp("proxy-pki")) / "certs")


@pytest.fixture(autouse=True)
def no_inspection_engine_left() -> Iterator[None]:
    """Every test leaves no mitmproxy engine (and so no engine thread) behind."""
    yield
    from proxy_lab.proxy.inspection import engine_counts

    assert engine_counts() is None
    assert not [t for t in threading.enumerate() if t.name == "proxy-lab-inspection"]


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> object:
    """A test taking this fixture runs on asyncio's standard loop and on uvloop (the CLI's loop)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.new_event_loop
    return None
