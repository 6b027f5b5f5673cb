"""Makes the repository root (for `bench.fuzz`) and this directory (for hardening_kit.py) importable.

`.venv/bin/pytest` does not put the working directory on sys.path, and `--import-mode=importlib`
does not add test directories either; the explicit inserts keep both imports working.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
