"""Backtest: issue every day (day-ahead) or every few hours (intraday) of the last N weeks,
retrain weekly on all earlier data, score.

The same code as production: features are built once for every issue (each row only sees data
available at its own issue time), each weekly model is fitted with :func:`fit_frame` on the rows
observed before the week's first issue, and :func:`predict_frame` makes the forecasts.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aggregat.errors import InputError, ModelError
from aggregat.forecast.core import blend, metrics
from aggregat.forecast.core.features import (
    FeatureConfig,
    build_features,
    issue_schedule,
    issue_time_for_day,
    prepare_load,
    prepare_weather,
)
from aggregat.forecast.core.models import (
    ModelConfig,
    fit_frame,
    lead_hours,
    persistence_errors,
    predict_frame,
    training_issues,
)
from aggregat.timeutil import Horizon, parse_times


@dataclass
class BacktestResult:
    """Forecasts of every test interval (with actual and persistence) and the JSON-able report."""

    forecasts: pd.DataFrame
    report: dict


def check_backtest_options(*, tz: str, issue_hour: float, holidays: str | None,
                           school_holidays: str | None, every_h: float, hours: float,
                           test_weeks: int) -> tuple[str | None, str | None]:
    """Check a backtest's options (errors name the parameter); returns the public- and
    school-holiday codes (None for none)."""
    import zoneinfo

    from aggregat.errors import ConfigError
    from aggregat.forecast.core.calendar import calendar_code, parse_holiday_code, school_zones

    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"tz {tz!r}: unknown time zone; use an IANA name such as "
                          "Europe/Paris", param="tz") from None
    if not 0 <= issue_hour < 24:
        raise ConfigError(f"issue_hour {issue_hour:g}: must be within [0, 24)",
                          param="issue_hour")
    if not (0 < every_h <= 24 and 0 < hours <= 72):
        raise ConfigError(f"every_h {every_h:g} / hours {hours:g}: use 0 < every_h <= 24 and "
                          "0 < hours <= 72", param=("every_h", "hours"))
    if test_weeks < 1:
        raise ConfigError(f"test_weeks {test_weeks}: must be at least 1", param="test_weeks")
    cal, school = calendar_code(holidays), calendar_code(school_holidays)
    if cal:
        parse_holiday_code(cal)
    if school:
        try:
            school_zones(school)
        except ConfigError as exc:
            raise ConfigError(f"school_holidays: {exc}", param="school_holidays") from None
    return cal, school


def expand_paths(paths: Sequence[str]) -> list[Path]:
    """CSV paths, with glob patterns expanded (sorted), duplicates dropped."""
    out: list[Path] = []
    for p in paths:
        hits = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not hits:
            raise InputError(f"csv {p}: no file matches this pattern", param="csv")
        for h in hits:
            path = Path(h)
            if not path.is_file():
                raise InputError(f"csv {h}: file not found", param="csv")
            if path not in out:
                out.append(path)
    return out


def read_csv_inputs(paths: Sequence[str], time_col: str, load_col: str,
                    weather_cols: Sequence[str] = (), known_cols: Sequence[str] = (),
                    naive_tz: str = "UTC", *, time_format: str | None = None,
                    ambiguous: str | None = None, nonexistent: str | None = None
                    ) -> tuple[pd.Series, pd.DataFrame]:
    """Load series and weather frame from one or more CSV files (concatenated, later rows win).

    Times are read by :func:`aggregat.timeutil.parse_times` (ISO 8601 unless ``time_format``;
    without offset in ``naive_tz``, UTC by default, in file order; ``ambiguous``/``nonexistent``
    for DST times the file cannot resolve). An empty ``time_col`` means the first column (an
    unnamed index). Weather values count as forecasts available before any issue time
    (``available_at`` = -inf).
    """
    frames = []
    for path in expand_paths(paths):
        try:
            df = pd.read_csv(path)
        except Exception as exc:  # pandas raises many types for malformed files
            raise InputError(f"{path}: cannot read as CSV ({' '.join(str(exc).split())})"
                             ) from None  # pandas' messages span lines
        col = time_col or df.columns[0]
        need = [col, load_col, *weather_cols, *known_cols]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise InputError(f"{path}: no column(s) {', '.join(map(repr, missing))}; columns are "
                             f"{', '.join(map(str, df.columns[:30]))}")
        t = parse_times(df[col], tz=naive_tz, source=str(path), column=str(col),
                        time_format=time_format, ambiguous=ambiguous, nonexistent=nonexistent)
        part = pd.DataFrame({"time": t}, index=df.index)
        for c in [load_col, *weather_cols, *known_cols]:
            v = df[c]
            if v.dtype == bool or v.dtype == object and set(v.dropna().unique()) <= {
                    "True", "False", "true", "false", True, False}:
                v = v.map({"True": 1.0, "true": 1.0, True: 1.0,
                           "False": 0.0, "false": 0.0, False: 0.0})
            num = pd.to_numeric(v, errors="coerce")
            bad = num.isna() & v.notna()
            if bad.any():
                raise InputError(f"{path}: column {c!r} has non-numeric values such as "
                                 f"{v[bad].iloc[0]!r}")
            part[c] = num.astype(float)
        frames.append(part[~t.isna()])  # NaT: a DST row dropped on request
    data = pd.concat(frames, ignore_index=True).drop_duplicates("time", keep="last")
    data = data.sort_values("time").reset_index(drop=True)
    load = pd.Series(data[load_col].to_numpy(), index=pd.DatetimeIndex(data["time"]),
                     name="load_mw")
    weather = data[["time", *weather_cols, *known_cols]].rename(columns={"time": "valid_time"})
    return load, weather


def test_days(load: pd.Series, tz: str, test_weeks: int) -> pd.DatetimeIndex:
    """The last ``test_weeks`` complete local days of ``load`` (a regular series)."""
    s = load.dropna()
    res = load.index[1] - load.index[0]
    last_local = (s.index[-1] + res).tz_convert(tz).tz_localize(None)
    last_day = last_local.normalize() - pd.Timedelta(days=1)  # the day ending at/before the end
    days = pd.date_range(end=last_day, periods=7 * test_weeks, freq="D")
    return days


def test_issues(days: pd.DatetimeIndex, cfg: FeatureConfig) -> pd.DatetimeIndex:
    """Issue times of the test days (:func:`test_days`): those forecasting them (day-ahead),
    or issued within them and ending by their end (intraday)."""
    start = days[0].tz_localize(cfg.tz, nonexistent="shift_forward").tz_convert("UTC")
    end = (days[-1] + pd.Timedelta(days=1)).tz_localize(
        cfg.tz, nonexistent="shift_forward").tz_convert("UTC")
    if cfg.horizon == Horizon.INTRADAY:
        return issue_schedule(start, end - pd.Timedelta(hours=cfg.intraday_hours), cfg)
    return pd.DatetimeIndex([issue_time_for_day(d, cfg.tz, cfg.issue_hour) for d in days])


def run_backtest(load: pd.Series, weather: pd.DataFrame | None, config: ModelConfig,
                 test_weeks: int = 8, retrain_days: int = 7,
                 progress: Callable[[str], None] | None = None,
                 day_ahead: pd.DataFrame | None = None,
                 extras: pd.DataFrame | None = None) -> BacktestResult:
    """Backtest of ``config``'s horizon over the last ``test_weeks`` weeks of ``load``.

    ``day_ahead``: intraday only, the day-ahead backtest's forecasts of the same period, blended
    into the intraday ones as in production (:mod:`aggregat.forecast.core.blend`).
    """
    t_start = time.perf_counter()
    fc = config.features
    s = prepare_load(load)
    res = s.index[1] - s.index[0]
    w = prepare_weather(weather, [*fc.weather_cols, *fc.known_cols], res)
    days = test_days(s, fc.tz, test_weeks)
    tests = test_issues(days, fc)
    observed = s.dropna()
    if len(tests) == 0 or tests[0] <= observed.index[0] + pd.Timedelta(days=8):
        raise InputError(f"backtest: {test_weeks} test weeks leave no training history "
                         f"(data starts {observed.index[0]:%Y-%m-%d}); use fewer test_weeks",
                         param="test_weeks")
    step = pd.Timedelta(days=retrain_days)
    cutoffs = [tests[0] + k * step for k in range(int((tests[-1] - tests[0]) / step) + 1)]
    # Every issue a retrain learns from (intraday thins the old ones), then the test issues.
    train_sets = [training_issues(observed, fc, c, res) for c in cutoffs]
    issues = pd.DatetimeIndex(sorted(set().union(*train_sets, tests)))
    feats = build_features(s, w, issues, fc, res, extras)
    valid = pd.DatetimeIndex(feats["valid_time"])
    actual = s.reindex(valid).to_numpy(dtype=float)
    t_feat = time.perf_counter() - t_start
    parts, retrains = [], []
    for cutoff, trained_on in zip(cutoffs, train_sets, strict=True):
        block = tests[(tests >= cutoff) & (tests < cutoff + step)]
        if not len(block):
            continue
        train_rows = ((valid + res) <= cutoff) & (feats["issue_time"] < cutoff).to_numpy()
        if fc.horizon == Horizon.INTRADAY:  # old issues thinned as in production
            train_rows &= feats["issue_time"].isin(trained_on).to_numpy()
        model = fit_frame(feats.loc[train_rows], actual[train_rows], config, res,
                          persistence_errors(s[s.index + res <= cutoff]))
        retrains.append({"issue_time": cutoff.isoformat(), "rows": model.n_rows,
                         "baseline": model.is_baseline, "relative": model.relative,
                         "rounds": model.rounds,
                         "margins_mw": list(model.margins), "fit_s": round(model.fit_seconds, 2),
                         "version": model.version})
        if progress:
            progress(f"trained for {cutoff:%Y-%m-%d %H:%M}Z: {model.n_rows} rows, "
                     f"{model.rounds} rounds, {model.fit_seconds:.1f} s")
        rows = feats["issue_time"].isin(block).to_numpy()
        pred = predict_frame(model, feats.loc[rows])
        pred["actual_mw"] = actual[rows]
        pred["persistence_mw"] = s.reindex(valid[rows] - pd.Timedelta(days=7)).to_numpy()
        parts.append(pred)
    fc_all = pd.concat(parts, ignore_index=True)
    blended = None
    if day_ahead is not None and fc.horizon == Horizon.INTRADAY:
        fc_all, blended = blend.blend_with_day_ahead(fc_all, day_ahead)
    fc_all.insert(2, "lead_h", lead_hours(fc_all))
    if not np.isfinite(fc_all["actual_mw"]).any():
        raise ModelError("backtest: no actual load in the test period")
    sc = metrics.scores(fc_all["actual_mw"], fc_all["p10_mw"], fc_all["p50_mw"],
                        fc_all["p90_mw"], fc_all["persistence_mw"])
    sc["load_p1_p99"] = metrics.p1_p99_range(fc_all["actual_mw"])  # rCRPS = crps / this
    report = {
        "protocol": {"horizon": fc.horizon, "issue_hour_local": fc.issue_hour, "tz": fc.tz,
                     **({"every_h": fc.intraday_every_h, "hours": fc.intraday_hours}
                        if fc.horizon == Horizon.INTRADAY else {}),
                     **({"day_ahead_blend": {"rows": blended, "max_weight": blend.MAX_WEIGHT,
                                             "ramp_h": blend.RAMP_H}}
                        if blended is not None else {}),
                     "issues": len(tests), "first_issue": tests[0].isoformat(),
                     "test_weeks": test_weeks, "retrain_every_days": retrain_days,
                     "test_start": f"{days[0]:%Y-%m-%d}", "test_end": f"{days[-1]:%Y-%m-%d}",
                     "resolution_min": res.total_seconds() / 60},
        "inputs": {"weather_cols": list(fc.weather_cols), "known_cols": list(fc.known_cols),
                   "extra_known": list(fc.extra_known), "extra_lagged": list(fc.extra_lagged),
                   "holidays": fc.holidays, "school_holidays": fc.school_holidays,
                   "load_start": s.dropna().index[0].isoformat(),
                   "load_end": s.dropna().index[-1].isoformat()},
        "metrics": sc,
        "baseline_share": float(fc_all["is_baseline"].mean()),
        "by_lead_h": metrics.by_lead(fc_all),
        "retrains": retrains,
        "timing_s": {"features": round(t_feat, 2),
                     "total": round(time.perf_counter() - t_start, 2)},
    }
    return BacktestResult(forecasts=fc_all, report=report)
