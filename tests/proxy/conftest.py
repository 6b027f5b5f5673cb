"""Makes this directory's helpers (proxy_testkit.py) importable from tests/proxy and tests/proxy/faults.

pytest's default (prepend) import mode already puts this directory on sys.path because a conftest
lives here; the explicit insert keeps that true under `--import-mode=importlib` too.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
