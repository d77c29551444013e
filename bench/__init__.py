"""Benchmarks (not tests): AWS calls per HTTP operation and cold-start time.

Run with ``make bench`` (``python -m bench.run`` from the repository root).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The shared layer, as Lambda puts it on the path (pytest does the same in pyproject.toml).
_LAYER = str(Path(__file__).resolve().parent.parent / "layers" / "shared" / "python")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
