"""Which runs are at the source, file by file: the one rule that says a run is complete.

A run is probed file by file (package x time group) at every source with two tiny ranged GETs
(no body is downloaded), on a bounded thread pool sharing one urllib3 PoolManager as fetch does.
One file is:

- ``present``: the server has it whole: it starts with a GRIB indicator section, is at least as
  long as the first message it announces, and ends with ``7777`` (the end of a GRIB message);
- ``missing``: 404, 410 or 403 (S3 answers 403 for an absent key);
- ``incomplete``: the server has something, but not a whole GRIB file: empty, not GRIB, shorter
  than its first message, or not ending with ``7777`` (a file still being written or copied);
- ``error``: the source did not answer usefully after the retries (network, 5xx, a rate
  limit that outlasted them). A 429's ``Retry-After`` holds every probe of that source, and a
  source answering 429 counts as alive (never given up as one that does not answer).

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

import urllib3

from aggregat.errors import FetchError
from aggregat.results import AvailabilityReport, RunAvailability
from aggregat.weather.fetch import RetryPolicy, make_http
from aggregat.weather.products import Product, as_utc, run_label
from aggregat.weather.sources import ERROR, INCOMPLETE, LIMITED, MISSING, PRESENT, Source

log = logging.getLogger(__name__)

STATUSES = (PRESENT, INCOMPLETE, MISSING, ERROR)
_RETRIES = 2  # an "error" probe is asked again this many times
_GIVE_UP_AFTER = 3  # errors of a source that never answered: the rest of its probes are skipped
LOOKBACK_H = 48.0  # how far back `fetch --latest` and a job's fallback look for a complete run
MAX_SINCE_DAYS = 31  # the matrix's longest window (the open data keeps a few days)


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
               workers: int = 8, errors: dict[str, str] | None = None) -> list[RunAvailability]:
    """Every file of ``runs`` x ``packages`` at every source, probed in parallel (``errors``
    gets each source's last error, for messages)."""
    errors = {} if errors is None else errors
    pkgs = [product.check_package(p) for p in packages]
    http = http or make_http(workers)
    cells = [(s, r, p, g) for r in runs for s in sources for p in pkgs for g in product.groups]

    policy = RetryPolicy(_RETRIES, 0.5, 5.0)
    lock = threading.Lock()
    answered: set[str] = set()
    failures: dict[str, int] = {}

    def probe(cell) -> str:
        source, run, package, group = cell
        state = ERROR
        for attempt in range(1, policy.retries + 2):
            with lock:  # a source that never answered is given up: one slow failure, not many
                if source.name not in answered and failures.get(source.name, 0) >= _GIVE_UP_AFTER:
                    return ERROR
            try:
                state, detail = source.check(product, run, package, group, http)
            except Exception as exc:  # a source's bug must not hide the others' answers
                log.debug("%s: probe of %s failed", source.name, run_label(run), exc_info=True)
                state, detail = ERROR, f"{type(exc).__name__}: {exc}"
            with lock:
                if state != ERROR:  # an answer; a rate limit too: asked again after its wait
                    answered.add(source.name)
                    if state != LIMITED:
                        return state
                else:
                    failures[source.name] = failures.get(source.name, 0) + 1
                errors[source.name] = detail
            if attempt <= policy.retries:
                time.sleep(policy.delay(attempt))
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
    failed = probed = 0
    why: dict[str, str] = {}
    for run in candidate_runs(product, newest, oldest):
        if have is not None and have(run):
            return RunAvailability(run, {}, in_datalake=True)
        found = probe_runs(product, [run], packages, sources, http=http, workers=workers,
                           errors=why)[0]
        probed += 1
        if found.complete:
            return found
        failed += found.state == ERROR
        if found.state == INCOMPLETE:
            log.info("%s run %s is incomplete at the source", product.id, run_label(run))
    if probed and failed == probed:  # no source told anything about any run
        detail = "; ".join(f"{name}: {text}" for name, text in why.items())
        raise FetchError(f"cannot probe {product.id} runs ({detail}); check weather.base_url "
                         "(or weather.sources) and the network")
    return None
