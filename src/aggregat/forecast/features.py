"""Day-ahead feature rows: one row per (issue time, valid time), with no look-ahead.

Frames (the core's convention):

- load: a Series (or a frame with ``load_mw``) indexed by UTC interval start times;
- weather: a frame with ``valid_time`` (UTC), optional ``available_at`` (UTC; when absent the
  values count as known forever, as for a CSV), and numeric columns (weather with units, and
  columns known in advance such as a holiday flag). One row per (available_at, valid_time): the
  site/area aggregation of a target is done before.

For an issue time ``t`` (``issue_hour`` local on day D-1) the rows cover every interval of local
day D. A load interval starting at ``s`` is observed at ``t`` only if ``s + resolution <= t``;
weather for valid time ``v`` comes from the newest row with ``available_at <= t``. Nothing else
is read, so a feature row never depends on data after its issue time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aggregat.errors import InputError
from aggregat.forecast.calendar import calendar_features

NS_PER_H = 3_600_000_000_000
NEVER = pd.Timestamp("1900-01-01", tz="UTC")  # available_at of values known forever (CSV input)
LAGS_H = (24, 48, 168, 336)
EWM_HALFLIFE_H = (6, 24, 72)  # building inertia: hours to half-forget a temperature
HDD_BASE_C, CDD_BASE_C = 18.0, 22.0

_TEMP = re.compile(r"(^|_)(t|t2m|tmp|temp|temperature|tair|air_temp\w*)($|_)|_(c|degc)$", re.I)
_RAD = re.compile(r"ssrd|radiation|irradiance|ghi|solar|_wm2$|(^|_)rad($|_)", re.I)


@dataclass(frozen=True)
class FeatureConfig:
    """What the features of one target are built from."""

    tz: str = "Europe/Paris"
    issue_hour: float = 10.0
    holidays: str | None = "FR"
    weather_cols: tuple[str, ...] = ()
    known_cols: tuple[str, ...] = ()
    warmup_days: int = 3  # weather history used by smoothed temperatures / previous-day means
    lags_h: tuple[int, ...] = LAGS_H
    extra: dict = field(default_factory=dict, compare=False)


def is_temperature(col: str) -> bool:
    """Whether a weather column looks like a temperature (daily min/max, HDD/CDD, smoothing)."""
    return bool(_TEMP.search(col))


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
    parts = [w]
    for k in range(1, int(gap[ok].max() // r)):
        m = ok & (gap > k * r)
        frac = (k * r / gap[m])[:, None]
        new = pd.DataFrame(vals[m] + frac * (nxt[m] - vals[m]), columns=cols)
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


def issue_grid(issue_times: pd.DatetimeIndex, cfg: FeatureConfig, res: pd.Timedelta,
               warmup_days: int = 0) -> pd.DataFrame:
    """(issue_time, valid_time, in_target) pairs: every interval of each issue's target day D,
    preceded by ``warmup_days`` of valid times (weather history) flagged ``in_target=False``."""
    issues = pd.DatetimeIndex(issue_times).tz_convert("UTC").as_unit("ns")
    days = pd.DatetimeIndex([target_day(t, cfg.tz) for t in issues])
    start, end = _day_bounds(days, cfg.tz)
    r = res.value
    first = start - warmup_days * 24 * NS_PER_H
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

    out["load_mean_24h"] = window_mean(p_max, 24)
    out["load_mean_7d"] = window_mean(p_max, 168)
    out["load_mean_24h_week_before"] = window_mean(p_max - 168 * NS_PER_H // r, 24)
    # The same, relative to the 7-day mean: shapes that carry over when the level drifts.
    level = out["load_mean_7d"]
    for k in [f"load_lag_{lag}h" for lag in lags_h] + ["load_last", "load_mean_24h"]:
        out[f"{k}_rel"] = out[k] - level
    return pd.DataFrame(out)


def _weather_rows(grid: pd.DataFrame, w: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """For each (issue, valid) pair, the newest weather row available at issue time."""
    if not cols:
        return pd.DataFrame(index=grid.index)
    left = grid[["issue_time", "valid_time"]].reset_index().sort_values("issue_time")
    right = w[["available_at", "valid_time", *cols]].sort_values("available_at")
    m = pd.merge_asof(left, right, left_on="issue_time", right_on="available_at",
                      by="valid_time", direction="backward")
    return m.set_index("index").sort_index()[cols]


def build_features(load: pd.Series, weather: pd.DataFrame, issue_times: pd.DatetimeIndex,
                   cfg: FeatureConfig, res: pd.Timedelta) -> pd.DataFrame:
    """Feature rows for every interval of each issue's target day.

    ``load`` comes from :func:`prepare_load`, ``weather`` from :func:`prepare_weather` (with the
    weather and known columns of ``cfg``). Returns ``issue_time``, ``valid_time`` and the feature
    columns (floats, NaN where unknown at issue time); see :func:`feature_names`.
    """
    wcols, kcols = list(cfg.weather_cols), list(cfg.known_cols)
    grid = issue_grid(issue_times, cfg, res, warmup_days=cfg.warmup_days if wcols else 0)
    wx = _weather_rows(grid, weather, wcols + kcols)
    extra: dict[str, pd.Series] = {}
    for c in wcols:
        if is_temperature(c):
            for hl in EWM_HALFLIFE_H:
                hl_rows = hl * NS_PER_H / res.value
                sm = wx[c].groupby(grid["issue_time"]).ewm(halflife=hl_rows).mean()
                extra[f"{c}_ewm_{hl}h"] = sm.reset_index(level=0, drop=True).reindex(grid.index)
    # The day before the target day (D-1), for previous-day means.
    dstart = (grid["valid_time"].where(grid["in_target"])
              .groupby(grid["issue_time"]).transform("min"))
    prev = ~grid["in_target"] & (grid["valid_time"] >= dstart - pd.Timedelta(days=1))
    keep = grid["in_target"].to_numpy()
    f = grid.loc[keep, ["issue_time", "valid_time"]].reset_index(drop=True)
    issue = _ns(f["issue_time"])
    valid = _ns(f["valid_time"])
    cols: dict[str, np.ndarray | pd.Series] = {"lead_h": (valid - issue) / NS_PER_H}
    g = f["issue_time"]
    for c in wcols:
        v = wx.loc[keep, c].reset_index(drop=True)
        cols[c] = v
        day = v.groupby(g)
        cols[f"{c}_day_mean"] = day.transform("mean")
        if is_temperature(c):
            mean = cols[f"{c}_day_mean"]
            cols[f"{c}_day_min"] = day.transform("min")
            cols[f"{c}_day_max"] = day.transform("max")
            cols[f"{c}_hdd"] = (HDD_BASE_C - mean).clip(lower=0)
            cols[f"{c}_cdd"] = (mean - CDD_BASE_C).clip(lower=0)
            pm = wx.loc[prev.to_numpy(), c].groupby(grid.loc[prev, "issue_time"]).mean()
            cols[f"{c}_prev_day_mean"] = g.map(pm).astype(float)
            for hl in EWM_HALFLIFE_H:
                cols[f"{c}_ewm_{hl}h"] = extra[f"{c}_ewm_{hl}h"][keep].reset_index(drop=True)
        if is_radiation(c):
            cols[f"{c}_day_max"] = day.transform("max")
    for c in kcols:
        cols[c] = wx.loc[keep, c].reset_index(drop=True)
    body = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in cols.items()})
    lf = load_features(load, issue, valid, cfg.lags_h)
    cal = calendar_features(f["valid_time"], cfg.tz, cfg.holidays)
    return pd.concat([f, body, lf, cal], axis=1)


def feature_names(frame: pd.DataFrame) -> list[str]:
    """Model inputs of a :func:`build_features` frame (everything but the keys)."""
    return [c for c in frame.columns if c not in ("issue_time", "valid_time")]


def features(load: pd.Series | pd.DataFrame, weather: pd.DataFrame | None,
             issue_time: pd.Timestamp, cfg: FeatureConfig,
             resolution: pd.Timedelta | None = None) -> pd.DataFrame:
    """Feature rows of one issue: the intervals of day D for the issue at ``issue_time``.

    Load observed after ``issue_time`` and weather made available after it are dropped first,
    so the result cannot depend on them.
    """
    issue_time = pd.Timestamp(issue_time).tz_convert("UTC")
    s = prepare_load(load, resolution)
    res = resolution or (s.index[1] - s.index[0])
    s = s[s.index + res <= issue_time]
    if s.empty:
        raise InputError(f"load series: nothing observed before the issue time {issue_time}")
    w = prepare_weather(weather, [*cfg.weather_cols, *cfg.known_cols], res)
    w = w[w["available_at"] <= issue_time]
    return build_features(s, w, pd.DatetimeIndex([issue_time]), cfg, res)
