"""Backtest a CSV through the bank: import it into a temporary bank, run the bank pipeline.

``aggregat model backtest --csv`` does not call the core directly: the parsed CSV (see
:func:`aggregat.forecast.core.backtest.read_csv_inputs`) is written into a temporary bank as one
load series and as pseudo weather runs of model ``csv``, and the bank-mode
:func:`aggregat.forecast.pipeline.backtest_target` runs on it: the weather each issue sees is
selected from the runs available at that issue (:func:`~aggregat.forecast.targets.select_runs`),
exactly as on production data.

The CSV weather columns count as the forecast available for each valid time, so the pseudo-runs
are laid out to make every value visible to every issue that needs it:

- one run per UTC day ``R`` (00 UTC), published at its nominal time
  (:func:`~aggregat.bank.nominal_available_at`, the time ``select_runs`` assumes);
- run ``R`` holds the CSV rows with valid times in ``[R - BACK, R + AHEAD]``, where
  ``AHEAD = delay + 24 h + DAY_AHEAD_SPAN + 2 h``: an issue's newest run (published at most
  ``delay + 24 h`` before it) reaches the end of its target day (at most 49 h after the issue,
  on a 25-hour DST day), or the end of an intraday window when that is longer; and
  ``BACK = 24 h * (warmup_days - 1) - delay + 2 h``: the older of the two runs the first issue
  selects reaches back over the weather warm-up of the features (``warmup_days`` before the
  target day). Later issues see older runs through the earlier issues' selections.

Runs overlap, and overlapping rows hold the same values, so whichever run an issue picks gives
the CSV value. The bank stores weather as float32 (see ``bank.datasets``).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from aggregat.bank import Bank, nominal_available_at, weather_run_partition, write_load
from aggregat.config import Environment, ForecastSettings
from aggregat.errors import ConfigError, InputError
from aggregat.forecast.core.features import FeatureConfig
from aggregat.forecast.targets import DAY_AHEAD_SPAN, WEATHER_DATASET, Target, forecast_span
from aggregat.timeutil import Horizon

CSV_MODEL = "csv"  # pseudo weather model of the imported columns
CSV_TARGET = "csv"  # target id of the imported load
CSV_LOCATION = "csv"  # the one location of the imported weather
BANK_LABEL = "temporary (csv import)"
# Bank columns of dataset weather_forecast; DuckDB matches names case-insensitively.
_RESERVED = {"model", "run_time", "available_at", "valid_time", "step_h", "location"}


def run_window(warmup_days: int, model: str = CSV_MODEL, span: pd.Timedelta = DAY_AHEAD_SPAN
               ) -> tuple[pd.Timedelta, pd.Timedelta]:
    """``(BACK, AHEAD)``: valid times of pseudo-run ``R`` span ``[R - BACK, R + AHEAD]``, for
    issues reaching ``span`` ahead (at least a day-ahead's)."""
    ref = pd.Timestamp("2000-01-01", tz="UTC")
    delay = nominal_available_at(model, ref) - ref
    margin = pd.Timedelta(hours=2)  # DST days are 25 h; issue and run hours are not aligned
    back = max(pd.Timedelta(days=warmup_days - 1) - delay + margin, pd.Timedelta(0))
    ahead = delay + pd.Timedelta(days=1) + max(span, DAY_AHEAD_SPAN) + margin
    return back, ahead


def check_columns(cols: Sequence[str]) -> None:
    """Refuse column names the bank cannot hold as weather variables (one-line ConfigError)."""
    seen: dict[str, str] = {}
    for c in cols:
        low = c.lower()
        if low in _RESERVED:
            raise ConfigError(f"column {c!r}: the name is reserved in the bank "
                              f"({', '.join(sorted(_RESERVED))}); rename it in the CSV")
        if low in seen:
            raise ConfigError(f"columns {seen[low]!r} and {c!r} differ only by case; rename one "
                              "in the CSV")
        seen[low] = c


def import_csv_inputs(bank: Bank, load: pd.Series, weather: pd.DataFrame,
                      cols: Sequence[str], warmup_days: int, target_id: str = CSV_TARGET,
                      model: str = CSV_MODEL, location: str = CSV_LOCATION,
                      span: pd.Timedelta = DAY_AHEAD_SPAN) -> dict[str, Any]:
    """Write ``load`` (UTC-indexed) as target ``target_id`` and the columns ``cols`` of
    ``weather`` (``valid_time`` + columns) as daily pseudo-runs of ``model`` (module doc).

    Returns counts and the seconds spent: ``load_rows``, ``runs``, ``weather_rows``, ``s``.
    """
    t0 = time.perf_counter()
    check_columns(cols)
    idx = pd.DatetimeIndex(load.index).tz_convert("UTC")
    n_load = write_load(bank, pd.DataFrame({
        "target_id": target_id, "time": idx,
        "load_mw": pd.to_numeric(load.to_numpy(), errors="coerce").astype(float)}))
    runs = rows = 0
    if cols and len(weather):
        w = pd.DataFrame({"valid_time": pd.DatetimeIndex(weather["valid_time"])
                          .tz_convert("UTC").as_unit("us")})
        for c in cols:
            w[c] = weather[c].to_numpy(dtype=float)
        w = (w.drop_duplicates("valid_time", keep="last").sort_values("valid_time")
             .reset_index(drop=True))
        table = pa.Table.from_pandas(w, preserve_index=False)
        vt = pd.DatetimeIndex(w["valid_time"]).as_unit("ns").asi8
        back, ahead = run_window(warmup_days, model, span)
        first = (w["valid_time"].iloc[0] - ahead).floor("D")
        last = (w["valid_time"].iloc[-1] + back).floor("D")
        for run in pd.date_range(first, last, freq="D"):
            lo = int(np.searchsorted(vt, (run - back).value, side="left"))
            hi = int(np.searchsorted(vt, (run + ahead).value, side="right"))
            if hi > lo:
                _write_run(bank, model, location, run, table.slice(lo, hi - lo), vt[lo:hi])
                runs += 1
                rows += hi - lo
    return {"load_rows": int(n_load), "runs": runs, "weather_rows": int(rows),
            "s": round(time.perf_counter() - t0, 2)}


def _write_run(bank: Bank, model: str, location: str, run: pd.Timestamp, part: pa.Table,
               valid_ns: np.ndarray) -> None:
    """One pseudo-run, as :func:`aggregat.bank.write_weather_run` writes it (same partition,
    part and columns) but from Arrow slices: a frame per run made long CSVs slow to import."""
    n = part.num_rows
    step = np.round((valid_ns - run.value) / 3.6e12).astype(np.int16)
    ts = pa.timestamp("us", tz="UTC")
    out = part.append_column("model", pa.array([model] * n, pa.string()))
    out = out.append_column("run_time", pa.array(np.full(n, run.value // 1000), ts))
    avail = nominal_available_at(model, run)
    out = out.append_column("available_at", pa.array(np.full(n, avail.value // 1000), ts))
    out = out.append_column("step_h", pa.array(step))
    out = out.append_column("location", pa.array([location] * n, pa.string()))
    keys, name = weather_run_partition(model, run)
    bank.write_partition(WEATHER_DATASET, keys, out, part=name)


def csv_environment(root: str, tz: str, issue_hour: float, holidays: str | None,
                    max_lead_h: float, model_params: dict[str, Any] | None = None,
                    intraday_every_h: float = 6.0, intraday_hours: float = 36.0,
                    school_holidays: str | None = None, intraday_blend: bool = True
                    ) -> Environment:
    """An in-memory environment whose bank, registry, ... live under ``root`` (the fractional
    part of ``issue_hour`` is passed to the pipeline separately: the setting is whole hours)."""
    forecast = ForecastSettings(timezone=tz, issue_hour_local=int(math.floor(issue_hour)),
                                holidays=holidays or "none", max_lead_h=max_lead_h,
                                model_params=dict(model_params or {}),
                                intraday_every_h=intraday_every_h,
                                intraday_hours=intraday_hours,
                                school_holidays=school_holidays or "",
                                intraday_blend=intraday_blend)
    return Environment(name="csv-import", root=root, datalake=f"{root}/datalake",
                       bank=f"{root}/bank", registry=f"{root}/registry",
                       quarantine=f"{root}/quarantine", energy_db=f"sqlite:///{root}/energy.db",
                       forecast=forecast)


def backtest_csv(load: pd.Series, weather: pd.DataFrame, weather_cols: Sequence[str] = (),
                 known_cols: Sequence[str] = (), *, tz: str = "Europe/Paris",
                 issue_hour: float = 10.0, holidays: str | None = "FR", test_weeks: int = 8,
                 model_params: dict[str, Any] | None = None, horizon: str = Horizon.DAY_AHEAD,
                 intraday_every_h: float = 6.0, intraday_hours: float = 36.0,
                 school_holidays: str | None = None, intraday_blend: bool = True,
                 progress: Callable[[str], None] | None = None):
    """Backtest CSV inputs (as returned by ``read_csv_inputs``) through a temporary bank with
    the bank-mode pipeline; the bank is removed afterwards, also on error.

    ``model_params``: overrides of the core's ModelConfig, as ``forecast.model_params``;
    ``horizon``: "day-ahead" or "intraday" (an issue every ``intraday_every_h`` hours for the
    next ``intraday_hours``; ``intraday_blend``: blended with the day-ahead backtest's
    forecasts, as ``forecast.intraday_blend`` does in production).

    Returns the core's :class:`~aggregat.forecast.core.backtest.BacktestResult`; its report says
    ``inputs.bank = "temporary (csv import)"`` and ``timing_s.csv_import``.
    """
    from aggregat.forecast.pipeline import backtest_target

    if int(pd.Series(load).notna().sum()) < 3:
        raise InputError("CSV load column: fewer than 3 values; give at least a few weeks of "
                         "load")
    cols = (*weather_cols, *known_cols)
    warmup = FeatureConfig().warmup_days
    span = forecast_span(horizon, intraday_hours)
    back, ahead = run_window(warmup, span=span)
    max_lead_h = math.ceil(ahead / pd.Timedelta(hours=1)) + 24.0  # never cuts a pseudo-run
    with tempfile.TemporaryDirectory(prefix="aggregat-csv-") as root:
        env = csv_environment(root, tz, issue_hour, holidays, max_lead_h, model_params,
                              intraday_every_h, intraday_hours, school_holidays,
                              intraday_blend)
        stats = import_csv_inputs(Bank(env.bank), load, weather, cols, warmup, span=span)
        if progress:
            progress(f"imported into a temporary bank: {stats['load_rows']} load rows, "
                     f"{stats['runs']} pseudo-runs ({stats['weather_rows']} weather rows), "
                     f"{stats['s']:.1f} s")
        target = Target(id=CSV_TARGET, weather_models=(CSV_MODEL,), weather_cols=cols,
                        configured=False)
        result = backtest_target(env, target, test_weeks, progress=progress,
                                 known_cols=tuple(known_cols), issue_hour=issue_hour,
                                 horizon=horizon)
    result.report["inputs"]["bank"] = BANK_LABEL
    result.report["inputs"]["csv_import"] = {**stats, "model": CSV_MODEL,
                                             "run_back_h": back / pd.Timedelta(hours=1),
                                             "run_ahead_h": ahead / pd.Timedelta(hours=1)}
    result.report["timing_s"]["csv_import"] = stats["s"]
    return result
