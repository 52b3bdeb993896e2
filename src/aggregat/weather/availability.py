"""Which runs are at the source, file by file: the one rule that says a run is complete.

A run is probed file by file (package x time group) at every source with two tiny ranged GETs
(no body is downloaded), on a bounded thread pool sharing one urllib3 PoolManager as fetch does.
One file is:

- ``present``: the server has it whole: it starts with a GRIB indicator section, is at least as
  long as the first message it announces, and ends with ``7777`` (the end of a GRIB message);
- ``missing``: 404, 410 or 403 (S3 answers 403 for an absent key);
- ``incomplete``: the server has something, but not a whole GRIB file: empty, not GRIB, shorter
  than its first message, or not ending with ``7777`` (a file still being written or copied);
- ``error``: the source did not answer usefully after the retries (network, 5xx).

A run is ``complete`` when every file is present at one source at least (fetch fails over per
file), ``incomplete`` when some are (its later time groups are not published yet, or a file is
truncated), ``missing`` when none is, ``error`` when none is and a source did not answer.
:func:`newest_complete_run` is what ``weather fetch --latest`` and the jobs use to choose a run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Protocol

import urllib3

from aggregat.errors import FetchError
from aggregat.results import AvailabilityReport, RunAvailability
from aggregat.weather.fetch import (
    _CONNECT_ERRORS,
    _MISSING_STATUS,
    _NETWORK_ERRORS,
    _RETRY_STATUS,
    RetryPolicy,
    _brief,
    make_http,
)
from aggregat.weather.products import Product, as_utc, run_label

log = logging.getLogger(__name__)

PRESENT, MISSING, INCOMPLETE, ERROR = "present", "missing", "incomplete", "error"
STATUSES = (PRESENT, INCOMPLETE, MISSING, ERROR)
_HEAD = 16  # GRIB indicator section: "GRIB", edition (byte 7), message length (GRIB2: bytes 8-15)
_END = b"7777"
LOOKBACK_H = 48.0  # how far back `fetch --latest` and a job's fallback look for a complete run
MAX_SINCE_DAYS = 31  # the matrix's longest window (the open data keeps a few days)


class Source(Protocol):
    """What availability needs of a weather source: a name and a cheap probe of one file."""

    name: str

    def probe(self, product: Product, run: datetime, package: str, group: tuple[int, int],
              http: urllib3.PoolManager) -> str:
        """``present`` | ``missing`` | ``incomplete`` | ``error`` (see the module doc)."""
        ...


# ---- ADAPTER (to be replaced at the merge with aggregat.weather.sources.configured_sources) ---
# The single open-data source over `weather.base_url`, as fetch downloads today. Only this block
# and `configured_sources` change when ordered sources land.
class OpenDataSource:
    """The public open-data bucket layout at ``base_url``, probed with two ranged GETs."""

    kind = "open-data"

    def __init__(self, base_url: str, name: str = "open-data", retries: int = 2,
                 backoff_s: float = 0.5, timeout_s: float = 20.0) -> None:
        self.name, self.base_url = name, base_url
        self.policy = RetryPolicy(retries, backoff_s, max(backoff_s, 5.0))
        self.timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        self._lock = threading.Lock()
        self._reached = False
        self._connect_failures = 0
        self.last_error: str | None = None

    def probe(self, product: Product, run: datetime, package: str, group: tuple[int, int],
              http: urllib3.PoolManager) -> str:
        url = product.url(self.base_url, run, package, group)
        status, head, total, ranged = self._get(http, url, f"bytes=0-{_HEAD - 1}")
        if status != PRESENT:
            return status
        if len(head) < _HEAD or head[:4] != b"GRIB" or total is None or total < _HEAD:
            return INCOMPLETE
        # GRIB2 states its first message's length in 8 bytes, GRIB1 in 3.
        first = int.from_bytes(head[8:16] if head[7] == 2 else head[4:7], "big")
        if total < first:
            return INCOMPLETE
        if not ranged:  # a server ignoring Range: the tail would cost the whole file
            return PRESENT
        status, tail, _, ranged = self._get(http, url, f"bytes={total - len(_END)}-{total - 1}")
        if status in (MISSING, ERROR) or not ranged:  # deleted meanwhile, or no answer
            return status
        return PRESENT if tail == _END else INCOMPLETE

    def _get(self, http: urllib3.PoolManager, url: str, rng: str
             ) -> tuple[str, bytes, int | None, bool]:
        """(status, first bytes of the range, full size, whether the server honoured the
        range) of one ranged GET, retried."""
        for attempt in range(1, self.policy.retries + 2):
            if self._unreachable():
                return ERROR, b"", None, False
            try:
                resp = http.request("GET", url, headers={"Range": rng}, timeout=self.timeout,
                                    retries=False, preload_content=False)
            except _CONNECT_ERRORS as exc:
                self._failed_connect(exc)
            except _NETWORK_ERRORS as exc:
                self.last_error = _brief(exc)
            else:
                with self._lock:
                    self._reached = True
                try:
                    if resp.status in _MISSING_STATUS or resp.status == 403:
                        return MISSING, b"", None, True
                    if resp.status == 416:  # nothing in the range: an empty (or shrunk) file
                        return INCOMPLETE, b"", None, True
                    if resp.status in (200, 206):
                        body = resp.read(_HEAD)  # a server ignoring Range: 16 bytes are enough
                        return PRESENT, body, _full_size(resp), resp.status == 206
                    self.last_error = f"HTTP {resp.status}"
                    if resp.status not in _RETRY_STATUS:
                        return ERROR, b"", None, True
                except _NETWORK_ERRORS as exc:
                    self.last_error = _brief(exc)
                finally:
                    if resp.status == 200:  # the whole file follows: drop it, do not read it
                        resp.close()
                    else:
                        resp.drain_conn()
                    resp.release_conn()
            if attempt <= self.policy.retries:
                time.sleep(self.policy.delay(attempt))
        return ERROR, b"", None, False

    def _failed_connect(self, exc: BaseException) -> None:
        with self._lock:
            self._connect_failures += 1
            self.last_error = _brief(exc)

    def _unreachable(self) -> bool:
        # A host that never answered is given up after a few connect failures: one slow probe
        # of a dead host, not one per file.
        with self._lock:
            return not self._reached and self._connect_failures >= 3


def configured_sources(weather, base_url: str | None = None, *, retries: int = 2,
                       timeout_s: float | None = None) -> list[Source]:
    """The sources of ``weather`` (:class:`~aggregat.config.WeatherSettings`) in order; today the
    one open-data source at ``base_url`` (default ``weather.base_url``)."""
    return [OpenDataSource(base_url or weather.base_url, retries=retries,
                           backoff_s=weather.retry_backoff_s,
                           timeout_s=min(weather.timeout_s, timeout_s or 20.0))]
# ---- end of ADAPTER -----------------------------------------------------------------------


def _full_size(resp: urllib3.BaseHTTPResponse) -> int | None:
    """The whole file's size: ``Content-Range: bytes a-b/TOTAL`` of a 206, else Content-Length."""
    value = resp.headers.get("Content-Range", "")
    if resp.status == 206 and "/" in value:
        total = value.rsplit("/", 1)[1].strip()
        return int(total) if total.isdigit() else None
    length = resp.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def candidate_runs(product: Product, newest: datetime, oldest: datetime) -> list[datetime]:
    """Runs of ``product`` from ``newest`` back to ``oldest`` (both included), newest first."""
    hour = as_utc(newest).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour >= as_utc(oldest, param="since"):
        if hour.hour in product.run_hours:
            out.append(hour)
        hour -= timedelta(hours=1)
    return out


def probe_runs(product: Product, runs: Sequence[datetime], packages: Sequence[str],
               sources: Sequence[Source], *, http: urllib3.PoolManager | None = None,
               workers: int = 8) -> list[RunAvailability]:
    """Every file of ``runs`` x ``packages`` at every source, probed in parallel."""
    pkgs = [product.check_package(p) for p in packages]
    http = http or make_http(workers)
    cells = [(s, r, p, g) for r in runs for s in sources for p in pkgs for g in product.groups]

    def probe(cell) -> str:
        source, run, package, group = cell
        try:
            return source.probe(product, run, package, group, http)
        except Exception as exc:  # a source's bug must not hide the others' answers
            log.debug("%s: probe of %s failed", source.name, run_label(run), exc_info=True)
            source.last_error = f"{type(exc).__name__}: {exc}"  # type: ignore[attr-defined]
            return ERROR

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="probe") as pool:
        answers = list(pool.map(probe, cells))
    files: dict[datetime, dict[str, dict[str, dict[str, str]]]] = {
        r: {s.name: {p: {} for p in pkgs} for s in sources} for r in runs}
    for (source, run, package, group), status in zip(cells, answers, strict=True):
        files[run][source.name][package][product.group_label(group)] = status
    return [RunAvailability(run, files[run]) for run in runs]


def availability(product: Product, sources: Sequence[Source], packages: Sequence[str],
                 since: datetime, now: datetime | None = None, *,
                 http: urllib3.PoolManager | None = None, workers: int = 8
                 ) -> AvailabilityReport:
    """The matrix of every run of ``product`` from ``since`` to ``now`` (newest first)."""
    now = as_utc(now or datetime.now(UTC), param="now")
    runs = candidate_runs(product, now, since)
    return AvailabilityReport(
        model=product.id, packages=[product.check_package(p) for p in packages],
        groups=[product.group_label(g) for g in product.groups],
        sources=[s.name for s in sources],
        runs=probe_runs(product, runs, packages, sources, http=http, workers=workers),
        checked_at=now)


def latest_complete_run(product: Product, sources: Sequence[Source], packages: Sequence[str],
                        *, min_run_age_h: float, now: datetime | None = None,
                        lookback_h: float = LOOKBACK_H, **kw) -> RunAvailability | None:
    """The newest run at least ``min_run_age_h`` old (younger ones are not probed) and at most
    ``lookback_h`` older than that, complete at the sources: what ``fetch --latest`` takes."""
    newest = as_utc(now or datetime.now(UTC), param="now") - timedelta(hours=min_run_age_h)
    return newest_complete_run(product, sources, packages, newest,
                               newest - timedelta(hours=lookback_h), **kw)


def newest_complete_run(product: Product, sources: Sequence[Source], packages: Sequence[str],
                        newest: datetime, oldest: datetime, *,
                        http: urllib3.PoolManager | None = None, workers: int = 8,
                        have: Callable[[datetime], bool] | None = None
                        ) -> RunAvailability | None:
    """The newest run from ``newest`` back to ``oldest`` complete at the sources (or, cheaper,
    for which ``have(run)`` is True: complete in the datalake), probed run by run."""
    http = http or make_http(workers)
    errors = probed = 0
    for run in candidate_runs(product, newest, oldest):
        if have is not None and have(run):
            return RunAvailability(run, {}, in_datalake=True)
        found = probe_runs(product, [run], packages, sources, http=http, workers=workers)[0]
        probed += 1
        if found.complete:
            return found
        errors += found.state == ERROR
        if found.state == INCOMPLETE:
            log.info("%s run %s is incomplete at the source", product.id, run_label(run))
    if probed and errors == probed:  # no source told anything about any run
        why = "; ".join(f"{s.name}: {getattr(s, 'last_error', '')}" for s in sources)
        raise FetchError(f"cannot probe {product.id} runs ({why}); check weather.base_url and "
                         "the network")
    return None
