"""What each page shows, as plain JSON-able dicts built from the public API only: the HTML
templates render them and ``/api/...`` returns them as they are."""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

import pandas as pd

import aggregat
from aggregat.config import Environment
from aggregat.dashboard.series import combine, daily_error, downsample
from aggregat.timeutil import Horizon

# A forecast page reads every issue of a target once, then zooms in memory; reread after this.
SERIES_TTL_S = 60.0
STATUSES = ("running", "ok", "partial", "failed", "skipped")


def _iso(ts: Any) -> str | None:
    return None if ts is None or (not isinstance(ts, str) and pd.isna(ts)) else (
        pd.Timestamp(ts).isoformat())


# -- overview -------------------------------------------------------------------------------
def overview(env: Environment) -> dict[str, Any]:
    health = aggregat.health(env)
    last: dict[str, aggregat.JobRun] = {}
    for run in aggregat.runs(env):  # newest first
        last.setdefault(run.job, run)
    return {
        "env": env.name, "status": health.status, "exit_code": health.exit_code,
        "checked_at": _iso(health.checked_at),
        "checks": [i.as_dict() for i in health.items],
        "last_runs": [{k: v for k, v in r.as_dict().items() if k != "steps"}
                      | {"steps": len(r.steps)} for r in sorted(last.values(),
                                                               key=lambda r: r.job)],
        "next_runs": [{"job": job, "at": _iso(at)}
                      for job, at in sorted(aggregat.next_runs(env).items(),
                                            key=lambda kv: kv[1])],
        "live_models": [_model(v) for v in aggregat.models(env) if v.current],
    }


# -- runs -----------------------------------------------------------------------------------
def runs(env: Environment, *, job: str | None, step: str | None, status: str | None,
         day: date | None, partition: str | None, limit: int) -> dict[str, Any]:
    since = until = None
    if day is not None:
        since = pd.Timestamp(day, tz="UTC")
        until = since + pd.Timedelta(days=1)
    found = aggregat.runs(env, job=job, step=step, status=status, since=since, until=until,
                          partition=partition)
    jobs = sorted({r.job for r in aggregat.runs(env)})
    return {"env": env.name, "filters": {"job": job, "step": step, "status": status,
                                         "date": day.isoformat() if day else None,
                                         "partition": partition},
            "jobs": jobs, "steps": aggregat.ledger_steps(env), "statuses": list(STATUSES),
            "total": len(found), "runs": [_run(r) for r in found[:limit]]}


def _run(run: aggregat.JobRun) -> dict[str, Any]:
    out = run.as_dict()
    span = max(run.seconds or 0.0, 1e-3)
    for step, entry in zip(out["steps"], run.steps, strict=True):
        # Position on the run's timeline, in percent of its span (the SVG bars).
        offset = (entry.started_at - run.started_at).total_seconds()
        step["x_pct"] = round(100 * offset / span, 2)
        step["w_pct"] = round(max(100 * (entry.duration_s or 0.0) / span, 0.5), 2)
    return out


# -- calendar -------------------------------------------------------------------------------
def calendar(env: Environment, days: int, last: date | None) -> dict[str, Any]:
    return aggregat.calendar(env, days, last).as_dict()


# -- models ---------------------------------------------------------------------------------
_METRICS = ("mae", "rmse", "nmae", "coverage_10_90", "skill")


def _model(v: aggregat.ModelVersion) -> dict[str, Any]:
    validation = v.metrics.get("validation") or {}
    return {"target": v.target, "version": v.version, "current": v.current,
            "trained_at": _iso(v.trained_at), "code_version": v.code_version,
            "data_start": _iso(v.data_start), "data_end": _iso(v.data_end),
            "metrics": {k: validation.get(k) for k in _METRICS if k in validation},
            "promoted": v.promoted, "reason": v.promotion.get("reason"),
            "previous": v.promotion.get("previous")}


def models(env: Environment) -> dict[str, Any]:
    by_target: dict[str, list[dict[str, Any]]] = {}
    for v in aggregat.models(env):
        by_target.setdefault(v.target, []).append(_model(v))
    for versions in by_target.values():
        versions.sort(key=lambda m: m["version"], reverse=True)
    return {"env": env.name, "targets": by_target, "backtests": []}


# -- forecasts ------------------------------------------------------------------------------
def read_series(env: Environment, target: str, horizon: Horizon | str = Horizon.DAY_AHEAD,
                start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(forecasts, load) of ``target``; none for a configured id the bank cannot even name as
    a partition (it was never written)."""
    try:
        return (aggregat.forecasts(env, target, start, end, horizon=horizon),
                aggregat.load(env, target, start, end))
    except aggregat.BankError:
        return pd.DataFrame(), pd.DataFrame()


class SeriesCache:
    """Each (target, horizon)'s forecasts and load, kept in memory: read on first use (or by
    :meth:`warm` when the app starts, so the first page is fast too), and, once older than
    :data:`SERIES_TTL_S`, served as they are while a background thread reads them again."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._data: dict[tuple[str, str], tuple[float, pd.DataFrame, pd.DataFrame]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[tuple[str, str]] = set()

    def _read(self, key: tuple[str, str]) -> tuple[float, pd.DataFrame, pd.DataFrame]:
        fc, load = read_series(self.env, key[0], key[1])
        hit = (time.monotonic(), fc, load)
        with self._lock:
            self._data[key] = hit
            self._refreshing.discard(key)
        return hit

    def get(self, target: str, horizon: Horizon) -> tuple[pd.DataFrame, pd.DataFrame]:
        key = (target, str(horizon))
        with self._lock:
            hit = self._data.get(key)
            stale = hit is not None and time.monotonic() - hit[0] > SERIES_TTL_S
            if stale and key not in self._refreshing:
                self._refreshing.add(key)
                threading.Thread(target=self._read, args=(key,), daemon=True).start()
        if hit is None:
            hit = self._read(key)
        return hit[1], hit[2]

    def warm(self, targets: list[str], horizons: tuple[Horizon, ...]) -> threading.Thread:
        """Read every target's series in a background thread (the app's start)."""
        def run() -> None:
            for target in targets:
                for horizon in horizons:
                    try:
                        self.get(target, horizon)
                    except Exception:  # noqa: BLE001 - the page shows the error when asked
                        pass

        thread = threading.Thread(target=run, daemon=True, name="series-warm")
        thread.start()
        return thread

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def forecast_page(env: Environment, cache: SeriesCache, target: str, horizon: Horizon,
                  issue: pd.Timestamp | None) -> dict[str, Any]:
    fc, load = cache.get(target, horizon)
    issues = sorted(fc["issue_time"].unique(), reverse=True) if len(fc) else []
    frame = combine(fc, load, issue)
    return {"env": env.name, "target": target, "horizon": str(horizon),
            "issue": _iso(issue), "issues": [_iso(i) for i in issues[:500]],
            "n_issues": len(issues), "tz": env.forecast.timezone,
            "start": _iso(frame.index[0]) if len(frame) else None,
            "end": _iso(frame.index[-1]) if len(frame) else None,
            "has_forecast": bool(len(fc)), "has_load": bool(len(load)),
            "daily_error": daily_error(frame, env.forecast.timezone)}


def forecast_series(cache: SeriesCache, target: str, horizon: Horizon,
                    issue: pd.Timestamp | None, start: pd.Timestamp | None,
                    end: pd.Timestamp | None, width: int) -> dict[str, Any]:
    fc, load = cache.get(target, horizon)
    frame = combine(fc, load, issue)
    if issue is not None and len(frame):  # one issue: its valid times (and the load then)
        valid = frame["p50"].notna()
        if valid.any():
            first, last = frame.index[valid][0], frame.index[valid][-1]
            frame = frame[(frame.index >= first) & (frame.index <= last)]
    if start is not None:
        frame = frame[frame.index >= start]
    if end is not None:
        frame = frame[frame.index <= end]
    columns, raw = downsample(frame, width)
    return {"target": target, "horizon": str(horizon), "issue": _iso(issue), "raw": raw,
            "points": len(frame), **columns}
