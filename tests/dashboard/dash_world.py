"""What the dashboard tests share: the secrets and the hostile target id of their environment,
Chromium's path and flags, and where screenshots go (tests/dashboard/artifacts/, gitignored)."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = os.environ.get("AGGREGAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TOKEN = "tok-Vq3-9xZ!dash"
ZONE_KEY = "hunter2-Zq9w"
EVIL = "<script>alert('x')</script>"
ARTIFACTS = Path(__file__).parent / "artifacts"
PAGES = ["/", "/runs", "/calendar", "/forecasts/portfolio", "/models"]


def shot(pg, name: str) -> Path:
    """A full-page screenshot of ``pg`` as artifacts/NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path
