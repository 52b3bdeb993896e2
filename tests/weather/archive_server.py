"""A real HTTP server on loopback serving a generated Météo-France archive, with failure modes.

``ArchiveServer(root, base_path="/pnt")`` serves the files under ``root`` (laid out as the real
open-data URLs: ``{run}/{model}/{res}/{PKG}/{file}``) at ``http://127.0.0.1:{port}/pnt/...``,
answers ``Range`` requests with 206, and applies a :class:`Failure` configured per URL path:
404, truncated body, connection reset mid-body, slow response, fail N times then succeed,
ignore Range, 429 with Retry-After. Every request is logged in ``server.requests`` so tests can
assert what was asked.

``ArchiveServer(root, base_path="/previnum", api=ApiAuth(...))`` serves the same archive the way
Météo-France's authenticated API does (``.../DPPaquetAROME/v1/models/AROME/grids/0.025/packages/
SP1/productARO?referencetime=...&time=00H06H&format=grib2``): every request needs the
``apikey`` header or a bearer token from ``POST /token`` (OAuth2 client credentials, HTTP basic
auth), else 401.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np

from aggregat.weather.products import Product, run_label

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_API_PATH = re.compile(r"/DPPaquet(?P<model>[A-Z]+)/v1/models/(?P=model)/grids/(?P<grid>[\d.]+)/"
                       r"packages/(?P<pkg>\w+)/product\w+$")


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
    retry_after: str | None = None  # Retry-After header sent with ``status``


@dataclass
class ApiAuth:
    """The authenticated API's credentials: an API key, or OAuth2 client credentials."""

    api_key: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_life_s: int = 3600
    tokens: set[str] = field(default_factory=set)  # valid bearer tokens
    token_requests: int = 0
    _serial: itertools.count = field(default_factory=lambda: itertools.count(1))

    def revoke_tokens(self) -> None:
        """Every issued token expires now (the next request with one gets 401)."""
        self.tokens.clear()


@dataclass
class Request:
    method: str
    path: str  # the archive path asked for (for the API: resolved from its query)
    range: str | None
    at: float = 0.0  # time.monotonic() when it arrived
    status: int | None = None  # the failure status answered, if any
    headers: dict[str, str] = field(default_factory=dict)
    target: str = ""  # the request line's target, query included


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet tests
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def do_POST(self) -> None:  # noqa: N802
        owner = self.server.owner
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        auth = owner.api
        with owner._lock:
            owner.requests.append(Request("POST", self.path, None, time.monotonic(),
                                          headers=dict(self.headers), target=self.path))
        if auth is None or self.path != "/token" or auth.client_id is None:
            self._empty(404)
            return
        basic = base64.b64encode(f"{auth.client_id}:{auth.client_secret}".encode()).decode()
        if (self.headers.get("Authorization") != f"Basic {basic}"
                or parse_qs(body).get("grant_type") != ["client_credentials"]):
            self._empty(401)
            return
        with owner._lock:
            auth.token_requests += 1
            token = f"tok{next(auth._serial)}"
            auth.tokens.add(token)
        payload = json.dumps({"access_token": token, "token_type": "Bearer",
                              "expires_in": auth.token_life_s}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _authorized(self) -> bool:
        auth = self.server.owner.api
        if auth is None:
            return True
        if auth.api_key is not None:
            return self.headers.get("apikey") == auth.api_key
        bearer = self.headers.get("Authorization", "")
        return bearer.startswith("Bearer ") and bearer[7:] in auth.tokens

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        path = owner.archive_path(self.path)
        rng = self.headers.get("Range")
        failure = owner.take_failure(self.command, path, rng, dict(self.headers), self.path)
        if not self._authorized():
            owner.requests[-1].status = 401
            self._empty(401)
            return
        if failure and failure.delay_s:
            time.sleep(failure.delay_s)
        if failure and failure.status:
            self._empty(failure.status, failure.retry_after)
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

    def _empty(self, status: int, retry_after: str | None = None) -> None:
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ArchiveServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # broken pipes from deliberately broken connections are expected


class ArchiveServer:
    """Serve ``root`` below ``base_path`` on 127.0.0.1 (ephemeral port) from a thread."""

    def __init__(self, root: str | Path, base_path: str = "/pnt",
                 api: ApiAuth | None = None) -> None:
        self.root = Path(root)
        self.base_path = "/" + base_path.strip("/")
        self.api = api  # None: the open-data layout; else the authenticated API's
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

    def archive_path(self, target: str) -> str:
        """The URL path of the archive file a request asks for (the API's query resolved to
        ``{base_path}/{run}/{model}/{res}/{PKG}/{file}``; anything else: the path as sent)."""
        path, _, query = target.partition("?")
        match = _API_PATH.search(path) if self.api is not None else None
        if match is None:
            return path
        args = {k: v[0] for k, v in parse_qs(query).items()}
        model, res = match["model"].lower(), match["grid"].replace(".", "")
        run, group, pkg = args.get("referencetime", ""), args.get("time", ""), match["pkg"]
        return (f"{self.base_path}/{run}/{model}/{res}/{pkg}/"
                f"{model}__{res}__{pkg}__{group}__{run}.grib2")

    def file_for(self, path: str) -> Path | None:
        prefix = self.base_path + "/"
        if not path.startswith(prefix):
            return None
        file = (self.root / path[len(prefix):]).resolve()
        if self.root.resolve() not in file.parents or not file.is_file():
            return None
        return file

    def take_failure(self, method: str, path: str, rng: str | None,
                     headers: dict[str, str] | None = None, target: str = "") -> Failure | None:
        with self._lock:
            request = Request(method, path, rng, time.monotonic(), headers=headers or {},
                              target=target or path)
            self.requests.append(request)
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
            request.status = failure.status
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
