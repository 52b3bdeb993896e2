"""A static HTTP server on 127.0.0.1 serving a folder as if it were the open-data bucket.

Used by ``aggregat demo`` (offline: the simulated archive is served over real HTTP, so the
fetcher runs exactly as in production) and handy for trying a configuration locally.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stops reading (an availability probe) resets the connection


@contextlib.contextmanager
def serve_folder(root: str | Path, base_path: str = "/pnt") -> Iterator[str]:
    """Serve ``root`` at ``http://127.0.0.1:PORT{base_path}/``; yields that base URL."""
    root = Path(root)
    base = "/" + base_path.strip("/")

    class Handler(_QuietHandler):
        def translate_path(self, path: str) -> str:
            if not path.startswith(base + "/"):
                return str(root / "__not_found__")
            return super().translate_path(path[len(base):])

    server = _QuietServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{base}"
    finally:
        server.shutdown()
        server.server_close()
