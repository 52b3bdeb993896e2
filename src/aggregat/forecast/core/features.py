"""Feature rows: one row per (issue time, valid time), with no look-ahead.

Frames (the core's convention):

- load: a Series (or a frame with ``load_mw``) indexed by UTC interval start times;
- weather: a frame with ``valid_time`` (UTC), optional ``available_at`` (UTC; when absent the
  values count as known forever, as for a CSV), and numeric columns (weather with units, and
  columns known in advance such as a holiday flag). One row per (available_at, valid_time): the
  site/area aggregation of a target is done before.
- extras (optional): other series, long: ``feature, time, available_at, value``, one row per
  (feature, time). A ``known`` feature (``extra_known``) is its value at the valid time if it
  was available at the issue time (a contract, RTE's forecast, a Tempo colour); a ``lagged``
  one (``extra_lagged``) gives its values 1, 2 and 7 days before the valid time and its last
  value, each only if available at the issue time (like load lags).

For an issue time ``t`` the rows cover the forecast window of the horizon: every interval of local
day D for a day-ahead issue (``issue_hour`` local on day D-1), the next ``intraday_hours`` for an
intraday issue (issued every ``intraday_every_h`` hours). A load interval starting at ``s`` is
observed at ``t`` only if ``s + resolution <= t``; weather for valid time ``v`` comes from the
newest row with ``available_at <= t``. Nothing else is read, so a feature row never depends on
data after its issue time.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aggregat.errors import InputError
from aggregat.forecast.core.calendar import calendar_features
from aggregat.timeutil import Horizon

NS_PER_H = 3_600_000_000_000
NEVER = pd.Timestamp("1900-01-01", tz="UTC")  # available_at of values known forever (CSV input)
# Same time 1..7 days and two weeks before: with the 7-day profile they carry the weekly shape
# and the recent level.
LAGS_H = (24, 48, 72, 96, 120, 144, 168, 336)
EXTRA_LAGS_H = (24, 48, 168)  # lags of a lagged extra series (national load: day, week)
EWM_HALFLIFE_H = (6, 24, 72)  # building inertia: hours to half-forget a temperature
ANOMALY_DAYS = 7  # weather is also compared with its mean over the days before issue
LAST_VALUE_FADE_H = 6.0  # e-folding lead time of the last observed deviation
HDD_BASE_C, CDD_BASE_C = 18.0, 22.0

_TEMP = re.compile(r"(^|_)(t|t2m|tmp|temp|temperature|tair|air_temp\w*)($|_)|_(c|degc)$", re.I)
_WIND = re.compile(r"wind_?speed|(^|_)(ws|ff|wspd)\d*($|_)", re.I)
# A wind farm's power curve, roughly: ~v^3 from cut-in, flat from the rated speed (m/s).
RATED_WIND_MS = 12.0
_RAD = re.compile(r"ssrd|radiation|irradiance|ghi|solar|_wm2$|(^|_)rad($|_)", re.I)
_DIR = re.compile(r"dir|deg$", re.I)  # wind_dir_10m_deg, winddeg (not t2m_degc)


@dataclass(frozen=True)
class FeatureConfig:
    """What the features of one target are built from."""

    tz: str = "Europe/Paris"
    issue_hour: float = 10.0
    holidays: str | None = "FR"
    # School holidays (calendar.school_holiday_share): "FR" (share of zones A/B/C on holiday),
    # "FR-Zone C", "NL-Zuid", ...; None: no school-holiday feature.
    school_holidays: str | None = None
    weather_cols: tuple[str, ...] = ()
    known_cols: tuple[str, ...] = ()
    # Weather history before the issue: smoothed temperatures, previous-day means, anomalies.
    warmup_days: int = ANOMALY_DAYS
    lags_h: tuple[int, ...] = LAGS_H
    horizon: str = Horizon.DAY_AHEAD  # or Horizon.INTRADAY
    intraday_hours: float = 36.0      # an intraday issue covers the next 36 h ...
    intraday_every_h: float = 6.0     # ... and one is issued every 6 h (aligned on issue_hour)
    extra_known: tuple[str, ...] = ()   # extras used at their valid time (module doc)
    extra_lagged: tuple[str, ...] = ()  # extras used up to the issue time only
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        Horizon.parse(self.horizon, error=InputError)
        if self.horizon == Horizon.INTRADAY and not (0 < self.intraday_every_h <= 24
                                               and 0 < self.intraday_hours <= 72):
            raise InputError("intraday horizon: every_h must be in (0, 24] and hours in (0, 72]")


def is_temperature(col: str) -> bool:
    """Whether a weather column looks like a temperature (daily min/max, HDD/CDD, smoothing)."""
    return bool(_TEMP.search(col))


def is_wind_speed(col: str) -> bool:
    """Whether a weather column looks like a wind speed (power-curve features)."""
    return bool(_WIND.search(col)) and "dir" not in col.lower() and "gust" not in col.lower()


def is_direction(col: str) -> bool:
    """Whether a weather column looks like a direction in degrees (circular: sine and cosine
    instead of means and anomalies, which make no sense across north)."""
    return bool(_DIR.search(col)) and not is_temperature(col)


def is_radiation(col: str) -> bool:
    """Whether a weather column looks like solar radiation."""
    return bool(_RAD.search(col))


# ---------------------------------------------------------------------------------- inputs
def _ns(values) -> np.ndarray:
    """Nanoseconds since the epoch of tz-aware timestamps."""
    return pd.DatetimeIndex(values).as_unit("ns").asi8


def infer_resolution(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The load's interval length: the most common step between consecutive timestamps."""
    if len(index) < 3:
        raise InputError("load series: fewer than 3 timestamps; give at least a few days of load")
    steps = pd.Series(np.diff(index.as_unit("ns").asi8))
    step = int(steps[steps > 0].mode().iloc[0])
    if step < 60_000_000_000:
        raise InputError(f"load series: interval of {step / 1e9:.0f} s is below one minute; "
                         "check the time column")
    return pd.Timedelta(step, unit="ns")


def prepare_load(load: pd.Series | pd.DataFrame, resolution: pd.Timedelta | None = None
                 ) -> pd.Series:
    """Regular UTC series ``load_mw`` (missing intervals as NaN) on the inferred resolution."""
    if isinstance(load, pd.DataFrame):
        if "load_mw" not in load:
            raise InputError("load frame: no 'load_mw' column")
        load = load["load_mw"]
    idx = pd.DatetimeIndex(load.index)
    if idx.tz is None:
        raise InputError("load series: time index must be tz-aware (UTC)")
    s = pd.Series(pd.to_numeric(load.to_numpy(), errors="coerce"), dtype=float,
                  index=idx.tz_convert("UTC").as_unit("ns"), name="load_mw")
    s = s[~s.index.duplicated(keep="last")].sort_index()
    res = resolution or infer_resolution(s.index)
    grid = pd.date_range(s.index[0].floor(res), s.index[-1], freq=res, unit="ns")
    if not s.index.isin(grid).all():
        bad = s.index[~s.index.isin(grid)][0]
        raise InputError(f"load series: timestamp {bad} is off the {res} grid; resample the load")
    return s.reindex(grid)


def prepare_weather(weather: pd.DataFrame | None, cols: list[str],
                    resolution: pd.Timedelta) -> pd.DataFrame:
    """Weather rows sorted by ``available_at``, interpolated in time to the load resolution."""
    if weather is None or not cols:
        return pd.DataFrame({"valid_time": pd.DatetimeIndex([], tz="UTC").as_unit("ns"),
                             "available_at": pd.DatetimeIndex([], tz="UTC").as_unit("ns")})
    missing = [c for c in cols if c not in weather.columns]
    if missing:
        raise InputError(f"weather frame: missing column(s) {', '.join(missing)}")
    w = pd.DataFrame({"valid_time": pd.DatetimeIndex(weather["valid_time"]).tz_convert("UTC")})
    w["available_at"] = (pd.DatetimeIndex(weather["available_at"]).tz_convert("UTC")
                         if "available_at" in weather else NEVER)
    for c in cols:
        w[c] = pd.to_numeric(weather[c].to_numpy(), errors="coerce").astype(float)
    w["valid_time"] = w["valid_time"].astype("datetime64[ns, UTC]")
    w["available_at"] = w["available_at"].astype("datetime64[ns, UTC]")
    w = w.drop_duplicates(["available_at", "valid_time"], keep="last")
    w = w.sort_values(["available_at", "valid_time"]).reset_index(drop=True)
    return _upsample(w, cols, resolution)


def _upsample(w: pd.DataFrame, cols: list[str], res: pd.Timedelta, max_gap_h: float = 6
              ) -> pd.DataFrame:
    """Linear interpolation between consecutive valid times of one forecast (hourly -> 15 min)."""
    if len(w) < 2:
        return w
    vt = _ns(w["valid_time"])
    av = _ns(w["available_at"])
    r = res.value
    gap = np.r_[vt[1:] - vt[:-1], 0]
    same = np.r_[av[1:] == av[:-1], False]
    ok = same & (gap > r) & (gap <= max_gap_h * NS_PER_H) & (gap % r == 0)
    if not ok.any():
        return w
    vals = w[cols].to_numpy()
    nxt = np.vstack([vals[1:], vals[-1:]])
    # Directions turn the short way round (350 -> 10 passes north, not south).
    circ = np.array([is_direction(c) for c in cols], dtype=bool)
    if circ.any():
        nxt[:, circ] = vals[:, circ] + (nxt[:, circ] - vals[:, circ] + 180) % 360 - 180
    parts = [w]
    for k in range(1, int(gap[ok].max() // r)):
        m = ok & (gap > k * r)
        frac = (k * r / gap[m])[:, None]
        new = pd.DataFrame(vals[m] + frac * (nxt[m] - vals[m]), columns=cols)
        if circ.any():
            new.iloc[:, circ] = new.iloc[:, circ] % 360
        new.insert(0, "valid_time", pd.to_datetime(vt[m] + k * r, utc=True).as_unit("ns"))
        new.insert(1, "available_at", w["available_at"].iloc[np.flatnonzero(m)].to_numpy())
        parts.append(new)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["available_at", "valid_time"]).reset_index(drop=True)


# --------------------------------------------------------------------------- issue times
def issue_time_for_day(day: pd.Timestamp | str, tz: str, issue_hour: float) -> pd.Timestamp:
    """UTC issue time of the day-ahead forecast for local day ``day`` (``issue_hour`` on D-1)."""
    d = pd.Timestamp(day).normalize().tz_localize(None) - pd.Timedelta(days=1)
    local = (d + pd.Timedelta(hours=issue_hour)).tz_localize(
        tz, ambiguous=True, nonexistent="shift_forward")
    return local.tz_convert("UTC")


def target_day(issue_time: pd.Timestamp, tz: str) -> pd.Timestamp:
    """Local day D (naive midnight) forecast by a day-ahead issue at ``issue_time``."""
    return issue_time.tz_convert(tz).tz_localize(None).normalize() + pd.Timedelta(days=1)


def _day_bounds(days: pd.DatetimeIndex, tz: str) -> tuple[np.ndarray, np.ndarray]:
    start = days.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
    end = (days + pd.Timedelta(days=1)).tz_localize(
        tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
    return start.as_unit("ns").asi8, end.as_unit("ns").asi8


def issue_schedule(first: pd.Timestamp, last: pd.Timestamp, cfg: FeatureConfig
                   ) -> pd.DatetimeIndex:
    """Issue times (UTC) of ``cfg``'s horizon within ``[first, last]``: one a day at
    ``issue_hour`` local (day-ahead), or every ``intraday_every_h`` hours aligned on it."""
    first, last = pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(last).tz_convert("UTC")
    d0 = first.tz_convert(cfg.tz).tz_localize(None).normalize() - pd.Timedelta(days=1)
    d1 = last.tz_convert(cfg.tz).tz_localize(None).normalize() + pd.Timedelta(days=1)
    every = cfg.intraday_every_h if cfg.horizon == Horizon.INTRADAY else 24.0
    offsets = np.arange(cfg.issue_hour % every, 24.0, every)
    out = []
    for d in pd.date_range(d0, d1, freq="D"):
        for h in offsets:
            out.append(issue_time_for_day(d + pd.Timedelta(days=1), cfg.tz, float(h)))
    idx = pd.DatetimeIndex(sorted(set(out))).as_unit("ns")
    return idx[(idx >= first) & (idx <= last)]


def forecast_window(issue_times: pd.DatetimeIndex, cfg: FeatureConfig
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (ns, UTC; end exclusive) of the intervals each issue forecasts: local day D
    (day-ahead), or from the first interval starting at or after the issue time to
    ``intraday_hours`` after it (intraday)."""
    issues = pd.DatetimeIndex(issue_times).tz_convert("UTC").as_unit("ns")
    if cfg.horizon == Horizon.INTRADAY:
        t = issues.asi8
        return t, t + int(cfg.intraday_hours * NS_PER_H)
    days = pd.DatetimeIndex([target_day(t, cfg.tz) for t in issues])
    return _day_bounds(days, cfg.tz)


def issue_grid(issue_times: pd.DatetimeIndex, cfg: FeatureConfig, res: pd.Timedelta,
               warmup_days: int = 0) -> pd.DataFrame:
    """(issue_time, valid_time, in_target) pairs: every interval of each issue's forecast window,
    preceded by the valid times of the ``warmup_days`` before the issue (weather history),
    flagged ``in_target=False``."""
    issues = pd.DatetimeIndex(issue_times).tz_convert("UTC").as_unit("ns")
    start, end = forecast_window(issues, cfg)
    r = res.value
    first = np.minimum(start, issues.asi8 - warmup_days * 24 * NS_PER_H)
    start = start + (-start % r)  # first interval on the load grid
    first = first + (-first % r)
    counts = (end - first + r - 1) // r
    rep = np.repeat(np.arange(len(issues)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    valid = first[rep] + offs * r
    return pd.DataFrame({
        "issue_time": issues.asi8[rep].view("datetime64[ns]"),
        "valid_time": valid.view("datetime64[ns]"),
        "in_target": valid >= start[rep],
    }).assign(issue_time=lambda f: f["issue_time"].dt.tz_localize("UTC"),
              valid_time=lambda f: f["valid_time"].dt.tz_localize("UTC"))


# ------------------------------------------------------------------------------ features
def _nanmean(arrays: list[np.ndarray]) -> np.ndarray:
    """Element-wise mean ignoring NaN; NaN (without a warning) where all are NaN."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.vstack(arrays), axis=0)


def load_features(load: pd.Series, issue: np.ndarray, valid: np.ndarray,
                  lags_h: tuple[int, ...]) -> pd.DataFrame:
    """Lags and recent statistics of ``load`` (regular grid) masked by availability at issue."""
    res = load.index[1] - load.index[0] if len(load) > 1 else pd.Timedelta(hours=1)
    r, t0 = res.value, load.index[0].value
    arr = load.to_numpy(dtype=float)
    n = len(arr)
    out: dict[str, np.ndarray] = {}
    for lag in lags_h:
        src = valid - lag * NS_PER_H
        pos = (src - t0) // r
        ok = (src + r <= issue) & (pos >= 0) & (pos < n)
        vals = np.full(len(valid), np.nan)
        vals[ok] = arr[pos[ok]]
        out[f"load_lag_{lag}h"] = vals
    # Last interval fully observed at issue time, and the last non-missing value up to it.
    p_max = np.minimum((issue - r - t0) // r, n - 1)
    notna = ~np.isnan(arr)
    last_idx = np.where(notna, np.arange(n), -1)
    last_idx = np.maximum.accumulate(last_idx) if n else last_idx
    li = np.where(p_max >= 0, last_idx[np.clip(p_max, 0, max(n - 1, 0))], -1)
    has = li >= 0
    out["load_last"] = np.where(has, arr[np.clip(li, 0, max(n - 1, 0))], np.nan)
    out["load_last_age_h"] = np.where(has, (issue - (t0 + (li + 1) * r)) / NS_PER_H, np.nan)
    csum = np.r_[0.0, np.cumsum(np.where(notna, arr, 0.0))]
    ccnt = np.r_[0, np.cumsum(notna)]

    def window_mean(end_pos: np.ndarray, hours: float) -> np.ndarray:
        k = max(int(hours * NS_PER_H // r), 1)
        hi = np.clip(end_pos + 1, 0, n)
        lo = np.clip(end_pos + 1 - k, 0, n)
        cnt = ccnt[hi] - ccnt[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt >= k / 2, (csum[hi] - csum[lo]) / cnt, np.nan)

    # How far the last value is from the usual load at its time of day (the mean of the same
    # interval over the 7 days before), and that deviation faded with the lead: what persists
    # over the next hours (intraday), which trees would not find among the lead-time splits.
    day = int(24 * NS_PER_H // r)
    usual = _nanmean([np.where(li - k * day >= 0, arr[np.clip(li - k * day, 0, max(n - 1, 0))],
                               np.nan) for k in range(1, 8)])
    out["load_last_dev"] = out["load_last"] - usual
    out["load_last_dev_faded"] = out["load_last_dev"] * np.exp(
        -(valid - issue) / (LAST_VALUE_FADE_H * NS_PER_H))
    out["load_mean_24h"] = window_mean(p_max, 24)
    out["load_mean_7d"] = window_mean(p_max, 168)
    out["load_mean_24h_week_before"] = window_mean(p_max - 168 * NS_PER_H // r, 24)
    # Profiles: the mean of the same time of day over the last 7 days (the lags observed at
    # issue), and over the same weekday one and two weeks before.
    daily = [out[f"load_lag_{24 * d}h"] for d in range(1, 8) if 24 * d in lags_h]
    if daily:
        out["load_profile_7d"] = _nanmean(daily)
    weekly = [out[f"load_lag_{h}h"] for h in (168, 336) if h in lags_h]
    if weekly:
        out["load_profile_weekday"] = _nanmean(weekly)
    # The same, relative to the 7-day mean: shapes that carry over when the level drifts.
    level = out["load_mean_7d"]
    rel = [f"load_lag_{lag}h" for lag in lags_h] + ["load_last", "load_mean_24h"]
    if "load_profile_7d" in out:
        # The usual load plus the faded last deviation, as one feature: at short leads the
        # best single guess, which trees could only rebuild from two features by many splits.
        out["load_nowcast"] = out["load_profile_7d"] + np.nan_to_num(out["load_last_dev_faded"])
    rel += [k for k in ("load_profile_7d", "load_profile_weekday", "load_nowcast") if k in out]
    for k in rel:
        out[f"{k}_rel"] = out[k] - level
    return pd.DataFrame(out)


def _extra_series(extras: pd.DataFrame | None, name: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Times, availability (ns), values of one extra feature, and its step (ns; 1 day if
    unknown): a value holds from its time until the next one, at most one step."""
    if extras is None or extras.empty:
        return np.array([], np.int64), np.array([], np.int64), np.array([]), 24 * NS_PER_H
    rows = extras[extras["feature"] == name].sort_values("time")
    t = _ns(rows["time"])
    a = _ns(rows["available_at"])
    v = pd.to_numeric(rows["value"], errors="coerce").to_numpy(dtype=float)
    steps = np.diff(t)
    steps = steps[steps > 0]
    step = int(pd.Series(steps).mode().iloc[0]) if len(steps) else 24 * NS_PER_H
    return t, a, v, step


def _value_at(t: np.ndarray, a: np.ndarray, v: np.ndarray, step: int, when: np.ndarray,
              issue: np.ndarray) -> np.ndarray:
    """The value holding at each time ``when`` if it was available at ``issue`` (else NaN)."""
    out = np.full(len(when), np.nan)
    if not len(t):
        return out
    pos = np.searchsorted(t, when, side="right") - 1
    p = np.clip(pos, 0, len(t) - 1)
    ok = (pos >= 0) & (when - t[p] < step) & (a[p] <= issue)
    out[ok] = v[p[ok]]
    return out


def extra_features(extras: pd.DataFrame | None, cfg: FeatureConfig, issue: np.ndarray,
                   valid: np.ndarray) -> dict[str, np.ndarray]:
    """Known and lagged extra features (module doc) for rows (issue, valid), in ns."""
    out: dict[str, np.ndarray] = {}
    for name in getattr(cfg, "extra_known", ()):
        t, a, v, step = _extra_series(extras, name)
        out[name] = _value_at(t, a, v, step, valid, issue)
    for name in getattr(cfg, "extra_lagged", ()):
        t, a, v, step = _extra_series(extras, name)
        for lag in EXTRA_LAGS_H:
            out[f"{name}_lag_{lag}h"] = _value_at(t, a, v, step, valid - lag * NS_PER_H, issue)
        # The newest value available at issue (availability as its running max: a late
        # correction never makes an earlier value count as known sooner), and its 24 h mean.
        last, age, mean = (np.full(len(issue), np.nan) for _ in range(3))
        if len(t):
            known = np.maximum.accumulate(a)
            idx = np.searchsorted(known, issue, side="right") - 1
            ok_v = ~np.isnan(v)
            last_ok = np.maximum.accumulate(np.where(ok_v, np.arange(len(v)), -1))
            li = np.where(idx >= 0, last_ok[np.clip(idx, 0, len(v) - 1)], -1)
            has = li >= 0
            lic = np.clip(li, 0, len(v) - 1)
            last = np.where(has, v[lic], np.nan)
            age = np.where(has, (issue - t[lic]) / NS_PER_H, np.nan)
            csum = np.r_[0.0, np.cumsum(np.where(ok_v, v, 0.0))]
            ccnt = np.r_[0, np.cumsum(ok_v)]
            lo = np.searchsorted(t, t[lic] - 24 * NS_PER_H, side="right")
            cnt = ccnt[lic + 1] - ccnt[lo]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(has & (cnt > 0), (csum[lic + 1] - csum[lo]) / cnt, np.nan)
        out[f"{name}_last"] = last
        out[f"{name}_last_age_h"] = age
        out[f"{name}_mean_24h"] = mean
    return out


def _weather_rows(grid: pd.DataFrame, w: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """For each (issue, valid) pair, the newest weather row available at issue time."""
    if not cols:
        return pd.DataFrame(index=grid.index)
    left = grid[["issue_time", "valid_time"]].reset_index().sort_values("issue_time")
    right = w[["available_at", "valid_time", *cols]].sort_values("available_at")
    m = pd.merge_asof(left, right, left_on="issue_time", right_on="available_at",
                      by="valid_time", direction="backward")
    return m.set_index("index").sort_index()[cols]


def _per_issue_day(grid: pd.DataFrame, tz: str) -> np.ndarray:
    """Integer key of (issue, local day of valid time) for every grid row; the previous day of
    the same issue is ``key - 1``."""
    issue_code = pd.factorize(grid["issue_time"])[0].astype(np.int64)
    local = pd.DatetimeIndex(grid["valid_time"]).tz_convert(tz).tz_localize(None)
    day = local.normalize().as_unit("ns").asi8 // (24 * NS_PER_H)
    return issue_code * 1_000_000 + (day - day.min() if len(day) else day)


def build_features(load: pd.Series, weather: pd.DataFrame, issue_times: pd.DatetimeIndex,
                   cfg: FeatureConfig, res: pd.Timedelta,
                   extras: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature rows for every interval of each issue's forecast window.

    ``load`` comes from :func:`prepare_load`, ``weather`` from :func:`prepare_weather` (with the
    weather and known columns of ``cfg``), ``extras`` as in the module doc. Returns
    ``issue_time``, ``valid_time`` and the feature columns (floats, NaN where unknown at issue
    time); see :func:`feature_names`.
    """
    wcols, kcols = list(cfg.weather_cols), list(cfg.known_cols)
    grid = issue_grid(issue_times, cfg, res, warmup_days=cfg.warmup_days if wcols else 0)
    wx = _weather_rows(grid, weather, wcols + kcols)
    keep = grid["in_target"].to_numpy()
    f = grid.loc[keep, ["issue_time", "valid_time"]].reset_index(drop=True)
    issue = _ns(f["issue_time"])
    valid = _ns(f["valid_time"])
    cols: dict[str, np.ndarray | pd.Series] = {"lead_h": (valid - issue) / NS_PER_H}
    if wcols:
        # Daily statistics per (issue, local day of the valid time) over the whole grid, so the
        # day the issue falls in is complete (its past hours come from the warm-up rows).
        key = _per_issue_day(grid, cfg.tz)
        key_t = key[keep]
        prev_key = key_t - 1
        gi = grid["issue_time"]
        issue_all = _ns(gi)
        before = ((grid["valid_time"] < gi)
                  & (grid["valid_time"] >= gi - pd.Timedelta(days=ANOMALY_DAYS))).to_numpy()
    for c in wcols:
        v = wx[c].to_numpy(dtype=float)
        vt = v[keep]
        cols[c] = vt
        if is_direction(c):
            # 350 and 10 degrees average to 180: use the components, at valid time and as day
            # means.
            rad = np.deg2rad(v)
            for part, comp in (("sin", np.sin(rad)), ("cos", np.cos(rad))):
                cols[f"{c}_{part}"] = comp[keep]
                cols[f"{c}_{part}_day_mean"] = (pd.Series(comp).groupby(key).mean()
                                                .reindex(key_t).to_numpy())
            continue
        by_day = pd.Series(v).groupby(key)
        mean, vmin, vmax = by_day.mean(), by_day.min(), by_day.max()
        cols[f"{c}_day_mean"] = mean.reindex(key_t).to_numpy()
        # Against the mean of the days before issue: what changes relative to the recent load
        # level (the relative models learn load minus its recent mean).
        ref = pd.Series(v[before]).groupby(issue_all[before]).mean()
        ref_t = ref.reindex(issue).to_numpy()
        cols[f"{c}_anom_day"] = cols[f"{c}_day_mean"] - ref_t
        cols[f"{c}_anom"] = vt - ref_t
        if is_temperature(c):
            day_mean = cols[f"{c}_day_mean"]
            cols[f"{c}_day_min"] = vmin.reindex(key_t).to_numpy()
            cols[f"{c}_day_max"] = vmax.reindex(key_t).to_numpy()
            cols[f"{c}_hdd"] = np.clip(HDD_BASE_C - day_mean, 0, None)
            cols[f"{c}_cdd"] = np.clip(day_mean - CDD_BASE_C, 0, None)
            cols[f"{c}_prev_day_mean"] = mean.reindex(prev_key).to_numpy()
            cols[f"{c}_prev_day_max"] = vmax.reindex(prev_key).to_numpy()
            for hl in EWM_HALFLIFE_H:
                sm = wx[c].groupby(grid["issue_time"]).ewm(halflife=hl * NS_PER_H / res.value)
                cols[f"{c}_ewm_{hl}h"] = (sm.mean().reset_index(level=0, drop=True)
                                          .reindex(grid.index).to_numpy()[keep])
        if is_radiation(c):
            cols[f"{c}_day_max"] = vmax.reindex(key_t).to_numpy()
        if is_wind_speed(c):
            # Wind generation in the portfolio (net loads): the day's mean of a power curve is
            # not a function of the day's mean speed, so trees cannot derive it themselves.
            power = np.clip(v, 0, RATED_WIND_MS) ** 3
            cols[f"{c}_power"] = power[keep]
            cols[f"{c}_power_day_mean"] = (pd.Series(power).groupby(key).mean()
                                           .reindex(key_t).to_numpy())
    for c in kcols:
        cols[c] = wx.loc[keep, c].to_numpy(dtype=float)
    cols.update(extra_features(extras, cfg, issue, valid))
    body = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in cols.items()})
    lf = load_features(load, issue, valid, cfg.lags_h)
    cal = calendar_features(f["valid_time"], cfg.tz, cfg.holidays, cfg.school_holidays)
    return pd.concat([f, body, lf, cal], axis=1)


def feature_names(frame: pd.DataFrame) -> list[str]:
    """Model inputs of a :func:`build_features` frame (everything but the keys)."""
    return [c for c in frame.columns if c not in ("issue_time", "valid_time")]


def features(load: pd.Series | pd.DataFrame, weather: pd.DataFrame | None,
             issue_time: pd.Timestamp, cfg: FeatureConfig,
             resolution: pd.Timedelta | None = None,
             extras: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature rows of one issue: the intervals of day D for the issue at ``issue_time``.

    Load observed after ``issue_time``, and weather and extras made available after it, are
    dropped first, so the result cannot depend on them.
    """
    issue_time = pd.Timestamp(issue_time).tz_convert("UTC")
    s = prepare_load(load, resolution)
    res = resolution or (s.index[1] - s.index[0])
    s = s[s.index + res <= issue_time]
    if s.empty:
        raise InputError(f"load series: nothing observed before the issue time {issue_time}")
    w = prepare_weather(weather, [*cfg.weather_cols, *cfg.known_cols], res)
    w = w[w["available_at"] <= issue_time]
    if extras is not None and len(extras):
        extras = extras[pd.DatetimeIndex(extras["available_at"]) <= issue_time]
    return build_features(s, w, pd.DatetimeIndex([issue_time]), cfg, res, extras)
