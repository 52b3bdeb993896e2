"""Download Météo-France runs into the datalake: parallel, retried, resumed, verified.

Each expected file (package x time group) is fetched by a worker of a thread pool. A download
goes to a ``.part`` file (next to its final name on a local datalake, in a local temp folder for
remote stores), is resumed with an HTTP ``Range`` after a dropped connection (restarted when the
server ignores ``Range``), and is published (rename, or one upload) only once its size matches
the announced length and its GRIB framing is sound. The run's manifest then records size, hash
(xxh3_128), URL and fetch time; a later fetch skips files present and matching it, without any
request. A missing group (404) or a download that keeps failing is reported by name, and the
others still arrive: :class:`FetchReport` says which, and the CLI exits with
:class:`PartialRunError`.

HTTP client: urllib3, not requests or httpx. Its PoolManager is thread-safe and shared by all
workers (one keep-alive pool per host), it streams bodies chunk by chunk, and it raises on a body
shorter than its Content-Length instead of passing it silently; with ``retries=False`` it hides
no retries, so backoff, jitter and resume are ours and bounded. requests would add a dependency
and nothing we use.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3

from aggregat import __version__
from aggregat.errors import FetchError, GribError, PartialRunError
from aggregat.weather.datalake import HASH, Datalake, check_grib_framing, file_digest
from aggregat.weather.products import Product, get_product, run_label

log = logging.getLogger(__name__)

DOWNLOADED, SKIPPED, MISSING, FAILED = "downloaded", "skipped", "missing", "failed"
_MISSING_STATUS = {404, 410}
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError,
                   TimeoutError)
# No connection at all (DNS failure, refused, connect timeout). A host that never answered is
# given up after this many of them across all workers: one clear error, not a retry storm.
_CONNECT_ERRORS = (urllib3.exceptions.ConnectTimeoutError,)  # NewConnectionError, NameResolution
_UNREACHABLE_AFTER = 3
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")
_CHUNK = 1 << 20


@dataclass
class FileResult:
    """What happened to one file of a run."""

    name: str
    package: str
    group: str
    rel: str  # path in the datalake
    url: str
    status: str = "pending"  # downloaded | skipped | missing | failed
    bytes: int = 0
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None


@dataclass
class FetchReport:
    """Per-file results and totals of one ``fetch_run``."""

    product: str
    run: datetime
    base_url: str
    datalake: str
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def with_status(self, status: str) -> list[FileResult]:
        return [f for f in self.files if f.status == status]

    @property
    def downloaded(self) -> int:
        return len(self.with_status(DOWNLOADED))

    @property
    def skipped(self) -> int:
        return len(self.with_status(SKIPPED))

    @property
    def missing(self) -> int:
        return len(self.with_status(MISSING))

    @property
    def failed(self) -> int:
        return len(self.with_status(FAILED))

    @property
    def bytes_downloaded(self) -> int:
        return sum(f.bytes for f in self.with_status(DOWNLOADED))

    @property
    def problems(self) -> list[FileResult]:
        return [f for f in self.files if f.status in (MISSING, FAILED)]

    @property
    def complete(self) -> bool:
        """True when every expected file is in the datalake (downloaded or skipped)."""
        return not self.problems

    def summary(self) -> str:
        mb = self.bytes_downloaded / 1e6
        return (f"{self.product} run {run_label(self.run)}: {self.downloaded} downloaded "
                f"({mb:.1f} MB), {self.skipped} skipped, {self.missing} missing, "
                f"{self.failed} failed in {self.seconds:.1f} s")

    def raise_for_partial(self) -> None:
        """Raise :class:`PartialRunError` naming the missing and failed files, if any."""
        if self.complete:
            return
        shown = self.problems[:4]
        names = ", ".join(f"{f.name} ({f.status})" for f in shown)
        if len(self.problems) > len(shown):
            names += f" and {len(self.problems) - len(shown)} more"
        # One line however many files failed: the first error says why (DNS, 404, ...).
        first = next((f.error for f in self.problems if f.error), None)
        why = f" (first error: {first})" if first else ""
        raise PartialRunError(
            f"{self.product} run {run_label(self.run)} is partial: {len(self.problems)} of "
            f"{len(self.files)} files not fetched: {names}{why}; rerun the fetch later to "
            "complete it"
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter: ``retries`` retries after the first attempt."""

    retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
        wait = cap * random.uniform(0.5, 1.0)  # jitter: workers that failed together spread out
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max_s))
        return wait


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Corrupt(Exception):
    """Complete body, bad content: start again from byte 0."""


class _Missing(Exception):
    pass


class _Fatal(Exception):
    pass


class _Unreachable(Exception):
    """The host never answered and cannot be connected to: no file of it will arrive."""


def make_http(workers: int = 8) -> urllib3.PoolManager:
    """A thread-safe connection pool for ``workers`` parallel downloads, with no hidden retries."""
    return urllib3.PoolManager(
        num_pools=4, maxsize=max(1, workers), retries=False,
        headers={"User-Agent": f"aggregat/{__version__}", "Accept-Encoding": "identity"},
    )


def _brief(exc: BaseException) -> str:
    """One short line for a network error (urllib3 wraps the real cause in its args)."""
    inner = exc.args[-1] if exc.args and isinstance(exc.args[-1], BaseException) else exc
    name, text = type(inner).__name__, str(inner)
    text = text if text.startswith(name) else f"{name}: {text}" if text else name
    return text if len(text) <= 120 else text[:117] + "..."


def _connect_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return "name not found in DNS"
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return _brief(exc)
    return "connection timed out"


def _retry_after(resp: urllib3.BaseHTTPResponse) -> float | None:
    value = resp.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


class _Fetcher:
    """Downloads files of one run; shared by the worker threads."""

    def __init__(self, datalake: Datalake, http: urllib3.PoolManager, policy: RetryPolicy,
                 timeout_s: float) -> None:
        self.datalake = datalake
        self.http = http
        self.policy = policy
        self.timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        tag = hashlib.sha1(datalake.url.encode()).hexdigest()[:12]
        self.tmp_root = Path(tempfile.gettempdir()) / "aggregat-fetch" / tag
        self._hosts = threading.Lock()
        self.reached: set[str] = set()  # hosts that answered at least once
        self.connect_failures: dict[str, int] = {}
        self.unreachable: dict[str, str] = {}  # host -> why (given up: see _UNREACHABLE_AFTER)

    def _connect_failed(self, host: str, exc: BaseException) -> None:
        """Count a failed connection; raise :class:`_Unreachable` once ``host`` is given up."""
        with self._hosts:
            if host not in self.reached and host not in self.unreachable:
                failures = self.connect_failures[host] = self.connect_failures.get(host, 0) + 1
                if failures >= min(_UNREACHABLE_AFTER, self.policy.retries + 1):
                    self.unreachable[host] = _connect_reason(exc)
        if host in self.unreachable:
            raise _Unreachable(host)

    def part_path(self, rel: str) -> Path:
        if self.datalake.is_local:
            return Path(f"{self.datalake.local_path(rel)}.part")
        return self.tmp_root / f"{rel}.part"

    def fetch(self, result: FileResult) -> dict[str, Any] | None:
        """Download ``result.url`` into the datalake; fill ``result``; manifest entry if ok."""
        start = time.monotonic()
        part = self.part_path(result.rel)
        part.parent.mkdir(parents=True, exist_ok=True)
        corrupt = 0
        try:
            for attempt in range(1, self.policy.retries + 2):
                result.attempts = attempt
                retry_after = None
                try:
                    total = self._download(result.url, part)
                    self._verify(part, total, result.name)
                    entry = self._publish(part, result)
                    result.status, result.error = DOWNLOADED, None
                    return entry
                except _Missing:
                    part.unlink(missing_ok=True)  # nothing left to resume
                    result.status, result.error = MISSING, "not on the server (HTTP 404)"
                    return None
                except _Fatal as exc:
                    part.unlink(missing_ok=True)  # a retry later starts afresh
                    result.status, result.error = FAILED, str(exc)
                    return None
                except _Unreachable as exc:  # fetch_run raises one FetchError for the host
                    result.status, result.error = FAILED, f"{exc} unreachable"
                    return None
                except _Corrupt as exc:
                    part.unlink(missing_ok=True)
                    result.error = str(exc)
                    corrupt += 1
                    if corrupt >= 2:  # a second full download was bad too: the source is bad
                        break
                except _Retryable as exc:
                    result.error, retry_after = str(exc), exc.retry_after
                if attempt <= self.policy.retries:
                    wait = self.policy.delay(attempt, retry_after)
                    log.debug("%s: attempt %d failed (%s); retrying in %.2f s",
                              result.name, attempt, result.error, wait)
                    time.sleep(wait)
            result.status = FAILED
            if not self.datalake.is_local:
                part.unlink(missing_ok=True)  # local temp space is not ours to fill
            return None
        finally:
            result.seconds = time.monotonic() - start

    def _download(self, url: str, part: Path) -> int | None:
        """Fetch ``url`` into ``part`` (resuming it); return the full size announced, if any."""
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        host = urllib3.util.parse_url(url).netloc or url
        if host in self.unreachable:
            raise _Unreachable(host)
        try:
            resp = self.http.request("GET", url, headers=headers, preload_content=False,
                                     timeout=self.timeout, retries=False, redirect=True)
        except _CONNECT_ERRORS as exc:
            self._connect_failed(host, exc)
            raise _Retryable(f"connection failed ({_brief(exc)})") from None
        except _NETWORK_ERRORS as exc:
            raise _Retryable(f"connection failed ({_brief(exc)})") from None
        with self._hosts:
            self.reached.add(host)
        complete = False
        try:
            status = resp.status
            if status in _MISSING_STATUS:
                raise _Missing()
            if status == 416 and offset:
                match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if match and match.group(3) == str(offset):
                    return offset  # the partial file was already complete
                part.unlink(missing_ok=True)
                raise _Retryable("stale partial download (range not satisfiable); restarting")
            if status in _RETRY_STATUS:
                raise _Retryable(f"HTTP {status}", _retry_after(resp))
            if status == 206:
                match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if not match or match.group(1) is None or int(match.group(1)) != offset:
                    part.unlink(missing_ok=True)
                    raise _Retryable("server answered an unexpected range; restarting")
                total = None if match.group(3) == "*" else int(match.group(3))
                mode = "ab"
            elif status == 200:  # whole body: no Range sent, or the server ignored it
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                mode = "wb"
            else:
                raise _Fatal(f"HTTP {status} {resp.reason or ''}".strip())
            try:
                # read1 hands over whatever has arrived, so bytes received before a drop are
                # kept in the .part file and the retry resumes after them.
                with open(part, mode) as fh:
                    while chunk := resp.read1(_CHUNK):
                        fh.write(chunk)
            except _NETWORK_ERRORS as exc:
                got = part.stat().st_size if part.exists() else 0
                of = f" of {total}" if total else ""
                raise _Retryable(f"connection dropped at byte {got}{of} ({_brief(exc)})") from None
            complete = True
            return total
        finally:
            if not complete:
                resp.close()  # unread or broken body: this connection cannot be reused as is
            resp.release_conn()  # back to the pool (a closed one reconnects on next use)

    def _verify(self, part: Path, total: int | None, name: str) -> None:
        size = part.stat().st_size
        if total is not None and size < total:
            raise _Retryable(f"body ended early ({size} of {total} bytes)")
        if total is not None and size > total:
            raise _Corrupt(f"{name}: {size} bytes downloaded, {total} announced")
        try:
            check_grib_framing(part, name=name)
        except GribError as exc:
            raise _Corrupt(str(exc)) from None

    def _publish(self, part: Path, result: FileResult) -> dict[str, Any]:
        size = part.stat().st_size
        digest = file_digest(part)
        store = self.datalake.store
        if self.datalake.is_local:
            with open(part, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(part, self.datalake.local_path(result.rel))
        else:
            # One upload of a complete object: readers see it whole or not at all.
            store.fs.put_file(str(part), store.full(result.rel))
            part.unlink(missing_ok=True)
        result.bytes = size
        return {"size": size, "hash": f"{HASH}:{digest}", "url": result.url,
                "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}


def _resolve(product: str | Product, run: datetime,
             packages: Sequence[str] | None) -> tuple[Product, datetime, list[str]]:
    product = get_product(product) if isinstance(product, str) else product
    run = product.check_run(run)
    pkgs = [product.check_package(p) for p in (packages or product.default_packages)]
    return product, run, list(dict.fromkeys(pkgs))


def fetch_run(
    product: str | Product, run: datetime, datalake: Datalake, *, base_url: str,
    packages: Sequence[str] | None = None, workers: int = 8, retries: int = 5,
    timeout_s: float = 60.0, progress: bool = True, backoff_s: float = 0.5,
    backoff_max_s: float = 30.0, verify_hash: bool = True,
    http: urllib3.PoolManager | None = None,
) -> FetchReport:
    """Fetch every file of ``packages`` (default: the product's) for one run into ``datalake``.

    Files present and matching the manifest (size, and hash unless ``verify_hash=False``)
    are skipped without any request. Never raises for a missing or failed file: they are in the
    report (see :meth:`FetchReport.raise_for_partial`). ``progress`` shows a bar on a terminal.
    Raises :class:`FetchError` when the server's host cannot be reached at all (DNS failure,
    connection refused or timed out, and no answer yet): one error, not every file "failed".
    """
    product, run, pkgs = _resolve(product, run, packages)
    started = time.monotonic()
    report = FetchReport(product.id, run, base_url, datalake.url)
    manifest = datalake.read_manifest(product, run)
    todo: list[FileResult] = []
    for pkg, group in datalake.expected_files(product, run, pkgs):
        rel = datalake.file_rel(product, run, pkg, group)
        result = FileResult(name=rel.rsplit("/", 1)[-1], package=pkg,
                            group=product.group_label(group), rel=rel,
                            url=product.url(base_url, run, pkg, group))
        report.files.append(result)
        if datalake.is_verified(product, run, rel, manifest, check_hash=verify_hash):
            key = datalake.manifest_key(product, run, rel)
            result.status, result.bytes = SKIPPED, int(manifest["files"][key]["size"])
            if datalake.is_local:  # a .part of a fetch killed after another one completed
                Path(f"{datalake.local_path(rel)}.part").unlink(missing_ok=True)
        else:
            todo.append(result)
    if todo:
        fetcher = _Fetcher(datalake, http or make_http(workers),
                           RetryPolicy(retries, backoff_s, backoff_max_s), timeout_s)
        lock = threading.Lock()

        def work(result: FileResult) -> FileResult:
            try:
                entry = fetcher.fetch(result)
                if entry is not None:
                    # Written after each file, under a lock: a killed fetch loses no verified file.
                    with lock:
                        key = datalake.manifest_key(product, run, result.rel)
                        manifest["files"][key] = entry
                        datalake.write_manifest(product, run, manifest)
            except Exception as exc:  # disk full, store upload error...: this file only fails
                log.debug("%s: unexpected error", result.name, exc_info=True)
                result.status, result.error = FAILED, f"{type(exc).__name__}: {exc}"
            if result.status in (MISSING, FAILED) and not fetcher.unreachable:
                log.warning("%s: %s (%s)", result.name, result.status, result.error)
            return result

        _run_pool(work, todo, workers, progress, f"{product.id} {run_label(run)}")
        if not datalake.is_local:  # remote stores: the local staging folder of this run goes
            staging = fetcher.tmp_root / datalake.run_prefix(product, run)
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):  # and its parents, when nothing else is staged
                os.removedirs(staging.parent)
        for host, why in fetcher.unreachable.items():  # not "partial": nothing can arrive
            raise FetchError(f"cannot reach {host} ({why}): no file of {product.id} run "
                             f"{run_label(run)} fetched from {base_url}; check weather.base_url "
                             "(or base_url) and the network (DNS, proxy, firewall), then fetch "
                             "again", param="base_url")
    report.seconds = time.monotonic() - started
    return report


def _run_pool(work: Any, todo: list[FileResult], workers: int, progress: bool,
              label: str) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("files {task.fields[mb]:.1f} MB"), TimeElapsedColumn(),
                   console=console, disable=not (progress and console.is_terminal))
    with bar, ThreadPoolExecutor(max_workers=max(1, workers),
                                 thread_name_prefix="fetch") as pool:
        task = bar.add_task(label, total=len(todo), mb=0.0)
        futures = [pool.submit(work, r) for r in todo]
        mb = 0.0
        for future in as_completed(futures):
            mb += future.result().bytes / 1e6
            bar.update(task, advance=1, mb=mb)
