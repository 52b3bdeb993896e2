"""A real HTTP server on loopback serving a generated Météo-France archive, with failure modes.

``ArchiveServer(root, base_path="/pnt")`` serves the files under ``root`` (laid out as the real
open-data URLs: ``{run}/{model}/{res}/{PKG}/{file}``) at ``http://127.0.0.1:{port}/pnt/...``,
answers ``Range`` requests with 206, and applies a :class:`Failure` configured per URL path:
404, truncated body, connection reset mid-body, slow response, fail N times then succeed,
ignore Range. Every request is logged in ``server.requests`` so tests can assert what was asked.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from aggregat.weather.products import Product, run_label

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class Failure:
    """How the server misbehaves for one path (GET bodies; ``status`` also applies to HEAD).

    ``times``: the failure applies to the first ``times`` GET requests only (None: always).
    """

    status: int | None = None  # answer this status with an empty body
    truncate_at: int | None = None  # send this many body bytes, then close (full Content-Length)
    reset_at: int | None = None  # send this many body bytes, then reset the connection (RST)
    delay_s: float = 0.0  # sleep before answering
    times: int | None = None
    ignore_range: bool = False  # answer 200 with the whole body even to a Range request


@dataclass
class Request:
    method: str
    path: str
    range: str | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet tests
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        rng = self.headers.get("Range")
        failure = owner.take_failure(self.command, path, rng)
        if failure and failure.delay_s:
            time.sleep(failure.delay_s)
        if failure and failure.status:
            self._empty(failure.status)
            return
        file = owner.file_for(path)
        if file is None:
            self._empty(404)
            return
        body = file.read_bytes()
        size = len(body)
        status, start, end = 200, 0, size - 1
        match = _RANGE.match(rng or "")
        if match and not (failure and failure.ignore_range):
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        chunk = body[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(chunk)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        cut = None
        if failure and failure.truncate_at is not None:
            cut = failure.truncate_at
        if failure and failure.reset_at is not None:
            cut = failure.reset_at
        if cut is None:
            self.wfile.write(chunk)
            return
        self.wfile.write(chunk[:cut])
        self.wfile.flush()
        self.close_connection = True
        if failure.reset_at is not None:
            # SO_LINGER 0: close() sends RST instead of FIN, the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self._reset = True

    def finish(self) -> None:
        if getattr(self, "_reset", False):
            return  # the socket is gone on purpose
        super().finish()

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ArchiveServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # broken pipes from deliberately broken connections are expected


class ArchiveServer:
    """Serve ``root`` below ``base_path`` on 127.0.0.1 (ephemeral port) from a thread."""

    def __init__(self, root: str | Path, base_path: str = "/pnt") -> None:
        self.root = Path(root)
        self.base_path = "/" + base_path.strip("/")
        self.failures: dict[str, Failure] = {}
        self.requests: list[Request] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.base_path}"

    def start(self) -> ArchiveServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ArchiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------------
    def url_path(self, rel: str) -> str:
        return f"{self.base_path}/{rel.lstrip('/')}"

    def fail(self, rel: str, failure: Failure) -> None:
        """Misbehave for archive path ``rel`` (relative to the archive root)."""
        self.failures[self.url_path(rel)] = failure

    def file_for(self, path: str) -> Path | None:
        prefix = self.base_path + "/"
        if not path.startswith(prefix):
            return None
        file = (self.root / path[len(prefix):]).resolve()
        if self.root.resolve() not in file.parents or not file.is_file():
            return None
        return file

    def take_failure(self, method: str, path: str, rng: str | None) -> Failure | None:
        with self._lock:
            self.requests.append(Request(method, path, rng))
            failure = self.failures.get(path)
            if failure is None:
                return None
            if method == "HEAD":
                return Failure(status=failure.status, delay_s=failure.delay_s) \
                    if failure.status and failure.times is None else None
            count = self._counts.get(path, 0) + 1
            self._counts[path] = count
            if failure.times is not None and count > failure.times:
                return None
            return failure

    def gets(self, suffix: str = "") -> list[Request]:
        """GET requests received (whose path ends with ``suffix``)."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.path.endswith(suffix)]


# -- archive content ---------------------------------------------------------------------------
def grib2_messages(count: int, seed: int = 0, ni: int = 4, nj: int = 3) -> bytes:
    """``count`` tiny valid GRIB2 messages (regular lat/lon grid, a different step each)."""
    import eccodes as ec

    rng = np.random.default_rng(seed)
    out = bytearray()
    for i in range(count):
        h = ec.codes_grib_new_from_samples("GRIB2")
        try:
            ec.codes_set(h, "Ni", ni)
            ec.codes_set(h, "Nj", nj)
            ec.codes_set(h, "forecastTime", i)
            ec.codes_set_values(h, 280.0 + rng.random(ni * nj))
            out += ec.codes_get_message(h)
        finally:
            ec.codes_release(h)
    return bytes(out)


def archive_rel(product: Product, run: datetime, package: str, group: tuple[int, int]) -> str:
    """Path of a file below the base URL: ``{run}/{model}/{res}/{PKG}/{file}``."""
    return (f"{run_label(run)}/{product.model}/{product.res}/{package}/"
            f"{product.filename(run, package, group)}")


def write_archive(root: Path, product: Product, runs: Iterable[datetime],
                  packages: Sequence[str] = ("SP1", "SP2"), messages: int = 2,
                  skip: Iterable[str] = ()) -> dict[str, bytes]:
    """Write tiny GRIB2 files for every (run, package, group); return {archive rel: bytes}.

    ``skip``: archive rel paths not to write (a group missing on the server).
    """
    skipped = set(skip)
    written: dict[str, bytes] = {}
    seed = 0
    for run in runs:
        for pkg in packages:
            for group in product.groups:
                rel = archive_rel(product, run, pkg, group)
                seed += 1
                if rel in skipped:
                    continue
                data = grib2_messages(messages, seed=seed)
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                written[rel] = data
    return written
