"""Makes the lab proxy's test helpers (tests/proxy/proxy_testkit.py) importable here."""

from __future__ import annotations

import sys
from pathlib import Path

_KIT = str(Path(__file__).resolve().parent.parent / "proxy")
if _KIT not in sys.path:
    sys.path.insert(0, _KIT)
