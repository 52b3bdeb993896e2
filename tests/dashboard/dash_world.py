"""What the dashboard tests share: the secrets and the hostile target id of their environment,
Chromium's path and flags, where screenshots go (tests/dashboard/artifacts/, gitignored), and
the live server."""

from __future__ import annotations

import os
import socket
import threading
import time
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
