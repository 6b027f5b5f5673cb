"""Served-lab tests reuse the lab proxy's real-socket helpers (tests/proxy/proxy_testkit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_PROXY_TESTS = str(Path(__file__).resolve().parent.parent / "proxy")
if _PROXY_TESTS not in sys.path:
    sys.path.insert(0, _PROXY_TESTS)
