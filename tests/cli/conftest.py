"""The CLI's tests drive the real ``aggregat`` command over each package's small worlds: the
packages' helper modules (bank_helpers, energy_helpers) are importable from here too."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for package in ("bank", "energy"):
    if str(TESTS / package) not in sys.path:
        sys.path.insert(0, str(TESTS / package))
