"""A small client of the OpenDataSoft Explore API v2.1 (the ODRE portal), over urllib3.

Two ways to read a dataset's rows in a time window, both ordered by the time field:

- ``exports``: ``GET {base}/api/explore/v2.1/catalog/datasets/{id}/exports/json?where=...`` returns
  every matching row as one JSON array (no row limit; the default);
- ``records``: ``GET .../records?where=...&limit=100&offset=...`` returns pages
  ``{"total_count": n, "results": [...]}`` (the API caps offset + limit at 10 000 per query; our
  windows stay far below).

urllib3 as in :mod:`aggregat.weather.fetch` (one PoolManager, no hidden retries): 429 and 5xx
are retried with bounded exponential backoff, honouring ``Retry-After``; connection errors are
retried too, then end in one line naming the portal and the setting to check.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import urllib3

from aggregat.config import RteSettings
from aggregat.errors import FetchError
from aggregat.weather.fetch import RetryPolicy, make_http

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _odsql_time(value: datetime) -> str:
    """An ODSQL date literal (ISO 8601, UTC) of an aware time."""
    return f"date'{value.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'"


def window_filter(field: str, start: datetime, end: datetime) -> str:
    """``field`` in ``[start, end)`` as an ODSQL where clause."""
    return f"{field} >= {_odsql_time(start)} and {field} < {_odsql_time(end)}"


class OdsClient:
    """Rows of ODRE datasets; ``requests`` counts the HTTP requests made (retries included)."""

    def __init__(self, settings: RteSettings, http: urllib3.PoolManager | None = None) -> None:
        self.settings = settings
        self.base = settings.base_url.rstrip("/")
        self.http = http or make_http(2)
        self.policy = RetryPolicy(settings.retries, settings.retry_backoff_s,
                                  settings.retry_backoff_max_s)
        self.timeout = urllib3.Timeout(connect=settings.timeout_s, read=settings.timeout_s)
        self.requests = 0

    def rows(self, dataset: str, field: str, start: datetime, end: datetime
             ) -> list[dict[str, Any]]:
        """Every row of ``dataset`` whose ``field`` is in ``[start, end)``, ordered by it."""
        query = {"where": window_filter(field, start, end), "order_by": field}
        root = f"{self.base}/api/explore/v2.1/catalog/datasets/{dataset}"
        if self.settings.api == "exports":
            data = self._get(f"{root}/exports/json?{urlencode(query)}", dataset)
            if not isinstance(data, list):
                raise FetchError(f"RTE open data {root}/exports/json: expected a JSON array, got "
                                 f"{type(data).__name__}; check [rte] base_url and api")
            return data
        out: list[dict[str, Any]] = []
        limit = self.settings.page_size
        while True:
            page = self._get(f"{root}/records?"
                             f"{urlencode({**query, 'limit': limit, 'offset': len(out)})}", dataset)
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list):
                raise FetchError(f"RTE open data {root}/records: no 'results' in the answer; "
                                 "check [rte] base_url and api")
            out.extend(results)
            if len(results) < limit or len(out) >= int(page.get("total_count", 0)):
                return out

    def _get(self, url: str, dataset: str) -> Any:
        attempts = self.policy.retries + 1
        error = ""
        for attempt in range(1, attempts + 1):
            retry_after = None
            self.requests += 1
            try:
                resp = self.http.request("GET", url, timeout=self.timeout, retries=False,
                                         headers={"Accept": "application/json"})
            except _NETWORK_ERRORS as exc:
                inner = exc.args[-1] if exc.args and isinstance(exc.args[-1],
                                                                BaseException) else exc
                error = f"{type(inner).__name__}: {inner}"[:160]
            else:
                if resp.status == 200:
                    try:
                        return json.loads(resp.data)
                    except ValueError:
                        error = "an answer that is not JSON"
                elif resp.status == 404:
                    raise FetchError(f"RTE open data: dataset {dataset!r} not found at "
                                     f"{self.base} (HTTP 404); check the dataset ids in [rte] "
                                     "(docs/rte.md)")
                elif resp.status in _RETRY_STATUS:
                    error = f"HTTP {resp.status}"
                    value = resp.headers.get("Retry-After", "")
                    retry_after = float(value) if value.strip().isdigit() else None
                else:
                    raise FetchError(f"RTE open data {dataset!r}: HTTP {resp.status} "
                                     f"({_message(resp.data)}); check [rte] settings")
            if attempt < attempts:
                wait = self.policy.delay(attempt, retry_after)
                log.warning("RTE open data %s: %s, retry %d/%d in %.1fs", dataset, error,
                            attempt, attempts - 1, wait)
                time.sleep(wait)
        raise FetchError(f"RTE open data unreachable at {self.base} after {attempts} attempts "
                         f"({error}); check [rte] base_url and the network, then rerun")


def _message(body: bytes) -> str:
    """The portal's error message (``{"message": ...}``), else the start of the body."""
    try:
        data = json.loads(body)
        return str(data.get("message") or data.get("error_code") or data)[:160]
    except (ValueError, AttributeError):
        return body[:160].decode("utf-8", "replace")
