"""Download Météo-France runs into the datalake: parallel, retried, resumed, verified.

Each expected file (package x time group) is fetched by a worker of a thread pool, from the
first of the configured sources (:mod:`aggregat.weather.sources`) that serves it: a file missing,
truncated, refused or failing at one source is tried at the next, and the manifest records which
source served it. A source that cannot be connected to, that refuses our credentials, or (when
another follows) that keeps answering server errors is given up for the rest of the run, and its
files go to the next one at once. A download
goes to a ``.part`` file (next to its final name on a local datalake, in a local temp folder for
remote stores), is resumed with an HTTP ``Range`` after a dropped connection (restarted when the
server ignores ``Range``), and is published (rename, or one upload) only once its size matches
the announced length and its GRIB framing is sound. The run's manifest then records size, hash
(xxh3_128), URL and fetch time; a later fetch skips files present and matching it, without any
request. A missing group (404 everywhere) or a download that keeps failing is reported by name,
and the others still arrive: :class:`FetchReport` says which, and the CLI exits with
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
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import urllib3

from aggregat import __version__
from aggregat.errors import FetchError, GribError, PartialRunError
from aggregat.weather.datalake import HASH, Datalake, check_grib_framing, file_digest
from aggregat.weather.mfapi import AuthRefused, TokenUnavailable, retry_after_s
from aggregat.weather.products import Product, get_product, run_label
from aggregat.weather.sources import EcmwfSource, MirrorSource, Source, source_at

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
# A source answering server errors (5xx, or no answer within the timeout) this many times in a
# row, no file served in between, is given up when another source follows: its files go there
# instead of through every backoff.
_FAILING_AFTER = 3
_SERVER_ERRORS = {500, 502, 503, 504}
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")
_CHUNK = 1 << 20


@dataclass
class FileResult:
    """What happened to one file of a run."""

    name: str
    package: str
    group: str
    rel: str  # path in the datalake
    url: str  # at the source that served it (or was tried last); never holds a credential
    status: str = "pending"  # downloaded | skipped | missing | failed
    source: str | None = None  # the name of the source that served it
    bytes: int = 0
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None


@dataclass
class FetchReport:
    """Per-file results and totals of one ``fetch_run``."""

    product: str
    run: datetime
    base_url: str  # the first source's address
    datalake: str
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    sources: list[str] = field(default_factory=list)  # names, in the order they were tried
    # Sources given up during the run (unreachable, credentials refused, failing): name -> why.
    sources_given_up: dict[str, str] = field(default_factory=dict)

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
    def served(self) -> dict[str, int]:
        """Files downloaded in this run per source, in the sources' order."""
        counts = Counter(f.source for f in self.with_status(DOWNLOADED))
        return {name: counts[name] for name in self.sources if counts[name]}

    @property
    def problems(self) -> list[FileResult]:
        return [f for f in self.files if f.status in (MISSING, FAILED)]

    @property
    def complete(self) -> bool:
        """True when every expected file is in the datalake (downloaded or skipped)."""
        return not self.problems

    def summary(self) -> str:
        mb = self.bytes_downloaded / 1e6
        text = (f"{self.product} run {run_label(self.run)}: {self.downloaded} downloaded "
                f"({mb:.1f} MB), {self.skipped} skipped, {self.missing} missing, "
                f"{self.failed} failed in {self.seconds:.1f} s")
        if self.served:
            text += "; served by " + ", ".join(f"{n} {c}" for n, c in self.served.items())
        if self.sources_given_up:
            text += "; given up: " + "; ".join(f"{n} ({why})"
                                               for n, why in self.sources_given_up.items())
        return text

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
    def __init__(self, message: str, retry_after: float | None = None,
                 connect: bool = False, server: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.connect = connect  # no connection at all: the next source is tried at once
        self.server = server  # the server failed on its side (5xx, or no answer in time)


class _Corrupt(Exception):
    """Complete body, bad content: start again from byte 0."""


class _Missing(Exception):
    pass


class _Fatal(Exception):
    pass


class _GivenUp(Exception):
    """The source is given up for this run (unreachable, credentials refused, failing)."""


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


class _Fetcher:
    """Downloads files of one run from its sources; shared by the worker threads."""

    def __init__(self, datalake: Datalake, http: urllib3.PoolManager, policy: RetryPolicy,
                 timeout_s: float, product: Product, run: datetime,
                 sources: Sequence[Source]) -> None:
        self.datalake = datalake
        self.http = http
        self.policy = policy
        self.timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        self.product, self.run, self.sources = product, run, list(sources)
        tag = hashlib.sha1(datalake.url.encode()).hexdigest()[:12]
        self.tmp_root = Path(tempfile.gettempdir()) / "aggregat-fetch" / tag
        self._lock = threading.Lock()
        self.reached: set[str] = set()  # sources that answered at least once
        self.connect_failures: dict[str, int] = {}
        self.unreachable: dict[str, str] = {}  # source -> why (see _UNREACHABLE_AFTER)
        self.refused: dict[str, str] = {}  # source -> why (credentials refused)
        self.server_errors: dict[str, int] = {}  # source -> 5xx answers in a row
        self.failing: dict[str, str] = {}  # source -> why (see _FAILING_AFTER)

    def given_up(self, source: Source) -> str | None:
        """Why ``source`` is given up for this run, or None."""
        if source.name in self.unreachable:
            return f"{source.host} unreachable ({self.unreachable[source.name]})"
        return self.refused.get(source.name) or self.failing.get(source.name)

    def _answered(self, source: Source, server_error: str | None, has_next: bool) -> None:
        """Count a source's server errors in a row (reset by any other answer); give it up
        after :data:`_FAILING_AFTER` of them when another source follows."""
        with self._lock:
            if server_error is None:
                self.server_errors[source.name] = 0
                return
            count = self.server_errors[source.name] = self.server_errors.get(source.name, 0) + 1
            if count >= _FAILING_AFTER and has_next and source.name not in self.failing:
                self.failing[source.name] = (f"answered {server_error} {count} times in a row")
                log.warning("weather source %s given up for this run: %s; its files go to the "
                            "next source", source.name, self.failing[source.name])

    def _connect_failed(self, source: Source, exc: BaseException) -> None:
        """Count a failed connection; raise :class:`_GivenUp` once ``source`` is given up."""
        with self._lock:
            name = source.name
            if name not in self.reached and name not in self.unreachable:
                failures = self.connect_failures[name] = self.connect_failures.get(name, 0) + 1
                if failures >= min(_UNREACHABLE_AFTER, self.policy.retries + 1):
                    self.unreachable[name] = _connect_reason(exc)
                    if len(self.sources) > 1:
                        log.warning("weather source %s given up for this run: %s unreachable "
                                    "(%s); its files go to the next source", name, source.host,
                                    self.unreachable[name])
        if name in self.unreachable:
            raise _GivenUp(self.given_up(source))

    def _refuse(self, source: Source, why: str) -> NoReturn:
        with self._lock:
            if source.name not in self.refused:
                self.refused[source.name] = why
                log.warning("weather source %s given up for this run: %s", source.name, why)
        raise _GivenUp(why)

    def part_path(self, rel: str) -> Path:
        if self.datalake.is_local:
            return Path(f"{self.datalake.local_path(rel)}.part")
        return self.tmp_root / f"{rel}.part"

    def fetch(self, result: FileResult) -> dict[str, Any] | None:
        """Download one file from the first source that serves it; fill ``result``; return
        its manifest entry if it arrived."""
        start = time.monotonic()
        part = self.part_path(result.rel)
        part.parent.mkdir(parents=True, exist_ok=True)
        group = self.product.group_of(result.group)
        several = len(self.sources) > 1
        errors: list[str] = []
        missing_everywhere = True
        try:
            for index, source in enumerate(self.sources):
                has_next = index + 1 < len(self.sources)
                result.url = source.location(self.product, self.run, result.package, group)
                why = self.given_up(source)
                if why is None:
                    entry = self._fetch_from(source, result, part, has_next)
                    if entry is not None:
                        result.source = source.name
                        return entry
                else:
                    result.status, result.error = FAILED, why
                missing_everywhere &= result.status == MISSING
                errors.append(f"{source.name}: {result.error}" if several else result.error or "")
                if has_next:
                    part.unlink(missing_ok=True)  # the next source may serve other bytes
            result.status = MISSING if missing_everywhere else FAILED
            result.error = "; ".join(errors)
            if not self.datalake.is_local and result.status == FAILED:
                part.unlink(missing_ok=True)  # local temp space is not ours to fill
            return None
        finally:
            result.seconds = time.monotonic() - start

    def _fetch_from(self, source: Source, result: FileResult, part: Path,
                    has_next: bool) -> dict[str, Any] | None:
        """Try one source with retries; the manifest entry, or None with ``result`` saying
        why (status MISSING or FAILED)."""
        corrupt = 0
        for attempt in range(1, self.policy.retries + 2):
            result.attempts += 1
            retry_after = None
            try:
                if isinstance(source, MirrorSource):
                    total = self._copy(source, result, part)
                elif isinstance(source, EcmwfSource):
                    total = self._download_fields(source, result, part)
                else:
                    total = self._download(source, result.url, part)
                self._verify(part, total, result.name)
                entry = self._publish(part, result, source)
                result.status, result.error = DOWNLOADED, None
                self._answered(source, None, has_next)
                return entry
            except _Missing as exc:
                self._answered(source, None, has_next)
                part.unlink(missing_ok=True)  # nothing left to resume
                result.status, result.error = MISSING, str(exc) or "not on the server (HTTP 404)"
                return None
            except _Fatal as exc:
                part.unlink(missing_ok=True)  # a retry later starts afresh
                result.status, result.error = FAILED, str(exc)
                return None
            except _GivenUp as exc:  # fetch_run raises one FetchError if every source is
                result.status, result.error = FAILED, str(exc)
                return None
            except _Corrupt as exc:
                part.unlink(missing_ok=True)
                result.error = str(exc)
                corrupt += 1
                if corrupt >= 2:  # a second full download was bad too: the source is bad
                    break
            except _Retryable as exc:
                result.error, retry_after = str(exc), exc.retry_after
                if exc.connect and has_next:
                    break  # no connection: the next source now, not after a backoff here
                if exc.server:
                    self._answered(source, str(exc), has_next)
                    if source.name in self.failing:
                        break
            if attempt <= self.policy.retries:
                wait = self.policy.delay(attempt, retry_after)
                log.debug("%s: attempt %d at %s failed (%s); retrying in %.2f s",
                          result.name, attempt, source.name, result.error, wait)
                time.sleep(wait)
        result.status = FAILED
        return None

    def _download(self, source: Source, url: str, part: Path) -> int | None:
        """Fetch ``url`` into ``part`` (resuming it); return the full size announced, if any."""
        if self.given_up(source):
            raise _GivenUp(self.given_up(source))
        for renewed in (False, True):
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                auth = source.headers(self.http)
            except AuthRefused as exc:
                self._refuse(source, source.refusal(str(exc)))
            except TokenUnavailable as exc:
                raise _Retryable(str(exc)) from None
            source.limiter.acquire()
            try:
                resp = self.http.request("GET", url, headers={**headers, **auth},
                                         preload_content=False, timeout=self.timeout,
                                         retries=False, redirect=True)
            except _CONNECT_ERRORS as exc:
                self._connect_failed(source, exc)
                raise _Retryable(f"connection failed ({_brief(exc)})", connect=True) from None
            except _NETWORK_ERRORS as exc:  # a server that accepts and never answers counts
                silent = isinstance(exc, urllib3.exceptions.ReadTimeoutError)  # as failing
                raise _Retryable(f"connection failed ({_brief(exc)})", server=silent) from None
            with self._lock:
                self.reached.add(source.name)
            if resp.status == 401:
                resp.close()
                resp.release_conn()
                if not renewed and source.refused(auth):
                    continue  # an expired token: once more with a fresh one
                self._refuse(source, source.refusal(f"HTTP {resp.status}"))
            return self._receive(source, resp, part, offset)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _receive(self, source: Source, resp: urllib3.BaseHTTPResponse, part: Path,
                 offset: int) -> int | None:
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
                retry_after = retry_after_s(resp)
                if status == 429:  # the source's rate limit: every thread waits, not only this
                    source.limiter.pause(retry_after if retry_after is not None
                                         else self.policy.backoff_s)
                raise _Retryable(f"HTTP {status}", retry_after, server=status in _SERVER_ERRORS)
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

    def _download_fields(self, source: EcmwfSource, result: FileResult, part: Path) -> int:
        """ECMWF: read the step's ``.index``, then fetch only the catalogue's fields by byte
        range into ``part`` (a few MB instead of the whole step file); return their size."""
        from aggregat.weather import ecmwf

        group = self.product.group_of(result.group)
        index_url = self.product.index_url(source.base_url, self.run, group)
        text = self._get(source, index_url).decode("utf-8", errors="replace")
        entries = ecmwf.parse_index(text, index_url.rsplit("/", 1)[-1])
        wanted = ecmwf.wanted_entries(self.product, entries, [result.package])
        if not wanted:
            raise _Missing("none of our fields in its index")
        absent = ecmwf.missing_fields(self.product, entries, [result.package])
        if absent:
            log.warning("%s: %s not in its index; the other fields are used", result.name,
                        ", ".join(absent))
        total = 0
        with open(part, "wb") as fh:  # small: restarted whole after a failure, never resumed
            for first, last in ecmwf.byte_ranges(wanted):
                body = self._get(source, result.url, (first, last))
                if len(body) != last - first + 1:
                    raise _Retryable(f"bytes {first}-{last}: {len(body)} received")
                fh.write(body)
                total += len(body)
        return total

    def _get(self, source: Source, url: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """One small GET (an index, or one byte range that must come back as asked)."""
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
        source.limiter.acquire()
        try:
            resp = self.http.request("GET", url, headers=headers, timeout=self.timeout,
                                     retries=False, redirect=True)
        except _CONNECT_ERRORS as exc:
            self._connect_failed(source, exc)
            raise _Retryable(f"connection failed ({_brief(exc)})", connect=True) from None
        except _NETWORK_ERRORS as exc:
            raise _Retryable(f"connection failed ({_brief(exc)})") from None
        with self._lock:
            self.reached.add(source.name)
        if resp.status in _MISSING_STATUS or resp.status == 403:
            raise _Missing(f"not on the server (HTTP {resp.status})")
        if resp.status in _RETRY_STATUS:
            retry_after = retry_after_s(resp)
            if resp.status == 429:  # the source's rate limit: every thread waits
                source.limiter.pause(retry_after or self.policy.backoff_s)
            raise _Retryable(f"HTTP {resp.status}", retry_after,
                             server=resp.status in _SERVER_ERRORS)
        if byte_range is not None and resp.status != 206:
            # A server ignoring Range would send the whole step file (hundreds of MB).
            raise _Fatal(f"HTTP {resp.status} to a byte-range request; this server cannot serve "
                         "single fields")
        if resp.status not in (200, 206):
            raise _Fatal(f"HTTP {resp.status} {resp.reason or ''}".strip())
        return resp.data

    def _copy(self, source: MirrorSource, result: FileResult, part: Path) -> int:
        """Copy the file from a mirror into ``part`` (resuming it); return its size."""
        path = source.path(self.product, self.run, result.package,
                           self.product.group_of(result.group))
        offset = part.stat().st_size if part.exists() else 0
        try:
            total = int(source.fs.size(path))
            if offset > total:
                part.unlink(missing_ok=True)
                raise _Retryable("stale partial download (longer than the file); restarting")
            with source.fs.open(path, "rb") as src, open(part, "ab" if offset else "wb") as dst:
                src.seek(offset)
                shutil.copyfileobj(src, dst, _CHUNK)
        except FileNotFoundError:
            raise _Missing("not in the mirror") from None
        except OSError as exc:
            raise _Retryable(f"mirror read failed ({_brief(exc)})") from None
        return total

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

    def _publish(self, part: Path, result: FileResult, source: Source) -> dict[str, Any]:
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
                "source": source.name,
                "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}


def _resolve(product: str | Product, run: datetime,
             packages: Sequence[str] | None) -> tuple[Product, datetime, list[str]]:
    product = get_product(product) if isinstance(product, str) else product
    run = product.check_run(run)
    pkgs = [product.check_package(p) for p in (packages or product.default_packages)]
    return product, run, list(dict.fromkeys(pkgs))


def _sources(sources: Sequence[Source] | None, base_url: str | None,
             product: Product) -> list[Source]:
    if (sources is None) == (base_url is None):
        raise ValueError("give either sources or base_url")
    return list(sources) if sources is not None else [source_at(base_url or "", product)]


def fetch_run(
    product: str | Product, run: datetime, datalake: Datalake, *,
    sources: Sequence[Source] | None = None, base_url: str | None = None,
    packages: Sequence[str] | None = None, workers: int = 8, retries: int = 5,
    timeout_s: float = 60.0, progress: bool = True, backoff_s: float = 0.5,
    backoff_max_s: float = 30.0, verify_hash: bool = True,
    http: urllib3.PoolManager | None = None,
) -> FetchReport:
    """Fetch every file of ``packages`` (default: the product's) for one run into ``datalake``,
    each from the first of ``sources`` that serves it (``base_url``: one open-data source).

    Files present and matching the manifest (size, and hash unless ``verify_hash=False``)
    are skipped without any request. Never raises for a missing or failed file: they are in the
    report (see :meth:`FetchReport.raise_for_partial`). ``progress`` shows a bar on a terminal.
    Raises :class:`FetchError` when every source is given up (its host cannot be reached at all:
    DNS failure, connection refused or timed out, and no answer yet; or it refused our
    credentials): one error, not every file "failed".
    """
    product, run, pkgs = _resolve(product, run, packages)
    chain = _sources(sources, base_url, product)
    started = time.monotonic()
    report = FetchReport(product.id, run, chain[0].address, datalake.url,
                         sources=[s.name for s in chain])
    manifest = datalake.read_manifest(product, run)
    todo: list[FileResult] = []
    for pkg, group in datalake.expected_files(product, run, pkgs):
        rel = datalake.file_rel(product, run, pkg, group)
        result = FileResult(name=rel.rsplit("/", 1)[-1], package=pkg,
                            group=product.group_label(group), rel=rel,
                            url=chain[0].location(product, run, pkg, group))
        report.files.append(result)
        if datalake.is_verified(product, run, rel, manifest, check_hash=verify_hash):
            entry = manifest["files"][datalake.manifest_key(product, run, rel)]
            result.status, result.bytes = SKIPPED, int(entry["size"])
            result.source, result.url = entry.get("source"), entry.get("url", result.url)
            if datalake.is_local:  # a .part of a fetch killed after another one completed
                Path(f"{datalake.local_path(rel)}.part").unlink(missing_ok=True)
        else:
            todo.append(result)
    if todo:
        fetcher = _Fetcher(datalake, http or make_http(workers),
                           RetryPolicy(retries, backoff_s, backoff_max_s), timeout_s,
                           product, run, chain)
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
            if result.status in (MISSING, FAILED) and not all(map(fetcher.given_up, chain)):
                log.warning("%s: %s (%s)", result.name, result.status, result.error)
            return result

        _run_pool(work, todo, workers, progress, f"{product.id} {run_label(run)}")
        if not datalake.is_local:  # remote stores: the local staging folder of this run goes
            staging = fetcher.tmp_root / datalake.run_prefix(product, run)
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):  # and its parents, when nothing else is staged
                os.removedirs(staging.parent)
        report.sources_given_up = {s.name: why for s in chain if (why := fetcher.given_up(s))}
        if report.problems and len(report.sources_given_up) == len(chain):
            raise _all_given_up(report, chain, fetcher)  # not "partial": nothing can arrive
    report.seconds = time.monotonic() - started
    return report


def _all_given_up(report: FetchReport, chain: list[Source], fetcher: _Fetcher) -> FetchError:
    what = f"{report.product} run {run_label(report.run)}"
    if len(chain) == 1 and chain[0].name in fetcher.unreachable:  # the one open-data address
        source = chain[0]
        return FetchError(f"cannot reach {source.host} ({fetcher.unreachable[source.name]}): "
                          f"no file of {what} fetched from {source.address}; check "
                          "weather.base_url (or base_url) and the network (DNS, proxy, "
                          "firewall), then fetch again", param="base_url")
    whys = "; ".join(f"{name}: {why}" for name, why in report.sources_given_up.items())
    return FetchError(f"no weather source could serve {what} ({whys}); fix the source "
                      "settings or the network, then fetch again")


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
