"""Input guards: stuck meters, gaps, spikes, a load that changed scale, missing or drifted weather.

Storage-free checks on the core's frames (a load series on a regular UTC grid, weather rows with
``valid_time``), one function per guard, each switched off by a zero setting (:class:`GuardConfig`,
``[env.X.forecast.guards]``):

- :func:`flatline`: runs of identical values lasting ``flatline_hours`` or more (a stuck meter or
  a value repeated by a data feed);
- :func:`gaps`: UTC days whose share of observed intervals is below ``min_completeness``;
- :func:`spikes`: isolated spikes, an interval whose differences with both neighbours are
  outliers of opposite signs by a robust z-score (median and MAD of all differences), above
  ``spike_z``; a ramp or a step has one large difference, not two;
- :func:`level_shift`: a site added to or removed from the portfolio: the median of the day means
  of the ``level_shift_days`` days after a day against those before it (weekday-matched when
  fewer days follow), as a share of the series' typical level, above ``level_shift``;
- :func:`weather_missing` and :func:`weather_drift`: weather columns a model uses that are absent
  from the forecast window, or whose mean moved more than ``weather_drift_z`` training standard
  deviations away from the training window's (a unit change, a broken feed).

Training masks what the load guards flag (the model never learns a stuck meter or a spike; a level
shift masks the days whose 7- and 14-day lags straddle it); a prediction whose recent load or
weather is flagged falls back to the weekly baseline and says why (forecast column
``guard_flags``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Days after a level shift whose features still read load from before it (lags up to 14 days).
SHIFT_MASK_DAYS = 14
MIN_DAY_COMPLETENESS = 0.5  # a day mean counts for the level-shift guard from this share on
MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class GuardConfig:
    """Guard settings; 0 switches a guard off, ``enabled=False`` all of them."""

    enabled: bool = True
    flatline_hours: float = 6.0      # identical values for this long: a stuck meter
    min_completeness: float = 0.8    # share of observed intervals a day (or the recent load) needs
    spike_z: float = 8.0             # robust z-score of both differences around a spike
    level_shift: float = 0.3         # change of the median day mean, as a share of the level
    level_shift_days: int = 7        # days compared before / after (a week: every weekday)
    weather_drift_z: float = 5.0     # mean shift of a weather column, in training SDs
    weather_missing: bool = True     # a weather column the model uses is absent
    lookback_days: float = 7.0       # recent load a prediction checks

    @classmethod
    def from_dict(cls, values: dict | None) -> GuardConfig:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (values or {}).items() if k in known})


@dataclass
class GuardReport:
    """What the guards found: a mask of flagged load intervals and one entry per guard that
    tripped (``{"intervals": n, "first": iso, "last": iso}`` or ``{"columns": [...]}``)."""

    mask: pd.Series
    found: dict[str, dict] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        return sorted(self.found)

    def summary(self) -> str:
        """One line: ``flatline 12 intervals (2026-10-01T00Z..); spike 1 interval``."""
        parts = []
        for name in self.flags:
            f = self.found[name]
            if "columns" in f:
                parts.append(f"{name} {', '.join(f['columns'])}")
            else:
                n = f["intervals"]
                parts.append(f"{name} {n} interval{'s' if n != 1 else ''} "
                             f"({f['first']}..{f['last']})")
        return "; ".join(parts)


# ----------------------------------------------------------------------------- load guards
def _res(load: pd.Series) -> pd.Timedelta:
    return load.index[1] - load.index[0] if len(load) > 1 else pd.Timedelta(hours=1)


def flatline(load: pd.Series, hours: float) -> pd.Series:
    """Intervals in runs of identical observed values lasting ``hours`` or more."""
    v = load.to_numpy(dtype=float)
    out = np.zeros(len(v), dtype=bool)
    if hours <= 0 or len(v) < 2:
        return pd.Series(out, index=load.index)
    scale = max(float(np.nanmedian(np.abs(v))) if np.isfinite(v).any() else 1.0, 1.0)
    same = np.r_[False, np.abs(np.diff(v)) <= 1e-9 * scale]  # NaN differences are False
    run = np.cumsum(~same)
    sizes = np.bincount(run)
    need = int(np.ceil(pd.Timedelta(hours=hours) / _res(load)))
    out = (sizes[run] >= need) & np.isfinite(v)
    return pd.Series(out, index=load.index)


def completeness(load: pd.Series) -> pd.Series:
    """Share of observed intervals per UTC day."""
    return load.notna().groupby(load.index.floor("D")).mean()


def gaps(load: pd.Series, min_completeness: float) -> pd.Series:
    """Intervals of the UTC days whose completeness is below ``min_completeness`` (their few
    values are masked with the rest of the day: a meter that drops out is seldom right
    around the drop)."""
    if min_completeness <= 0 or load.empty:
        return pd.Series(False, index=load.index)
    day = load.index.floor("D")
    share = completeness(load)
    bad = share.index[share < min_completeness]
    return pd.Series(day.isin(bad), index=load.index)


def spikes(load: pd.Series, z: float) -> pd.Series:
    """Intervals that jump away from both neighbours by more than ``z`` robust SDs of the
    series' differences, in opposite directions."""
    v = load.to_numpy(dtype=float)
    out = np.zeros(len(v), dtype=bool)
    if z <= 0 or len(v) < 3:
        return pd.Series(out, index=load.index)
    d = np.diff(v)
    ok = np.isfinite(d)
    if ok.sum() < 10:
        return pd.Series(out, index=load.index)
    med = float(np.median(d[ok]))
    mad = float(np.median(np.abs(d[ok] - med))) * MAD_TO_SD
    scale = max(mad, 1e-6 * max(float(np.nanmedian(np.abs(v))), 1.0))
    zz = np.where(ok, (d - med) / scale, 0.0)
    into, out_of = zz[:-1], zz[1:]  # the differences into and out of intervals 1..n-2
    out[1:-1] = (np.abs(into) > z) & (np.abs(out_of) > z) & (np.sign(into) != np.sign(out_of))
    return pd.Series(out, index=load.index)


def level_shift(load: pd.Series, threshold: float, days: int = 7) -> list[pd.Timestamp]:
    """UTC days on which the load's level changed by more than ``threshold`` of its typical
    level (median |day mean|): the median day mean of the ``days`` days from that day on
    against the ``days`` days before it. Near the end of the series, with fewer days after
    (at least 2), each day is compared with the same weekday a week before instead (a median
    of 2-6 day means depends on the weekdays it holds)."""
    if threshold <= 0 or load.empty:
        return []
    day = load.index.floor("D")
    g = load.groupby(day)
    m = g.mean().where(g.count() >= MIN_DAY_COMPLETENESS * g.size())
    m = m.asfreq("D")
    v = m.to_numpy(dtype=float)
    scale = float(np.nanmedian(np.abs(v))) if np.isfinite(v).any() else 0.0
    if scale <= 0 or len(v) < days + 2:
        return []
    delta = np.full(len(v), np.nan)
    for k in range(days, len(v) - 1):
        after = v[k:k + days]
        if np.isfinite(after).sum() >= days - 1 and len(after) == days:
            before = v[k - days:k]
            if np.isfinite(before).sum() >= days - 1:
                delta[k] = np.nanmedian(after) - np.nanmedian(before)
        elif k >= 7:
            diff = v[k:] - v[k - 7:len(v) - 7]
            if np.isfinite(diff).sum() >= 2:
                delta[k] = np.nanmedian(diff)
    rel = np.abs(delta) / scale
    hit = np.nan_to_num(rel) > threshold
    out, k = [], 0
    while k < len(hit):  # one shift per run of flagged days: the day of the largest change
        if hit[k]:
            j = k
            while j + 1 < len(hit) and hit[j + 1]:
                j += 1
            # Medians flag a few days around a step; the difference of the 7-day means
            # peaks on the step itself.
            sharp = [abs(np.nanmean(v[i:i + days]) - np.nanmean(v[i - days:i]))
                     if i + days <= len(v) else rel[i] * scale for i in range(k, j + 1)]
            out.append(m.index[k + int(np.nanargmax(sharp))])
            k = j + 1
        else:
            k += 1
    return out


def _found(mask: pd.Series) -> dict:
    idx = mask.index[mask.to_numpy()]
    return {"intervals": int(len(idx)), "first": f"{idx[0]:%Y-%m-%dT%H:%MZ}",
            "last": f"{idx[-1]:%Y-%m-%dT%H:%MZ}"}


def load_masks(load: pd.Series, cfg: GuardConfig) -> dict[str, pd.Series]:
    """The intervals each load guard flags (a level shift flags the ``SHIFT_MASK_DAYS`` days
    from it: their lags read load from before it)."""
    if not cfg.enabled or load.empty:
        return {}
    masks = {"flatline": flatline(load, cfg.flatline_hours),
             "gaps": gaps(load, cfg.min_completeness),
             "spike": spikes(load, cfg.spike_z)}
    shifted = pd.Series(False, index=load.index)
    for s in level_shift(load, cfg.level_shift, cfg.level_shift_days):
        shifted |= (load.index >= s) & (load.index < s + pd.Timedelta(days=SHIFT_MASK_DAYS))
    masks["level_shift"] = shifted
    return masks


def check_load(load: pd.Series, cfg: GuardConfig, within: np.ndarray | None = None
               ) -> GuardReport:
    """Every load guard on ``load`` (a regular UTC series): the flagged intervals and what each
    guard found; ``within``: count only flags inside this boolean mask of intervals."""
    report = GuardReport(pd.Series(False, index=load.index))
    for name, mask in load_masks(load, cfg).items():
        if within is not None:
            mask = mask & within
        if mask.any():
            report.found[name] = _found(mask)
            report.mask |= mask
    return report


def check_recent_load(load: pd.Series, issue_time: pd.Timestamp, cfg: GuardConfig) -> GuardReport:
    """The load guards on the ``lookback_days`` before ``issue_time`` (what a prediction's
    level, profile and lags read), plus the completeness of that window as a whole. The
    level-shift guard compares with the days before the window (give the series from
    ``lookback_days + level_shift_days`` before the issue)."""
    start = issue_time - pd.Timedelta(days=cfg.lookback_days)
    recent = np.asarray((load.index >= start) & (load.index < issue_time))
    report = check_load(load, cfg, within=recent)
    window = load[recent]
    if (cfg.enabled and cfg.min_completeness > 0 and len(window)
            and window.notna().mean() < cfg.min_completeness):
        report.found["gaps"] = {"intervals": int(window.isna().sum()),
                                "first": f"{start:%Y-%m-%dT%H:%MZ}",
                                "last": f"{issue_time:%Y-%m-%dT%H:%MZ}",
                                "completeness": round(float(window.notna().mean()), 3)}
    return report


# -------------------------------------------------------------------------- weather guards
def weather_reference(weather: pd.DataFrame, cols: list[str] | tuple[str, ...]) -> dict:
    """Mean and SD of each weather column over the training rows (what :func:`weather_drift`
    compares with)."""
    out = {}
    for c in cols:
        if c in weather:
            v = pd.to_numeric(weather[c], errors="coerce").dropna()
            if len(v) >= 2:
                out[c] = {"mean": float(v.mean()), "sd": float(v.std())}
    return out


def window_rows(weather: pd.DataFrame, issue_time: pd.Timestamp, end: pd.Timestamp
                ) -> pd.DataFrame:
    """The weather rows a forecast issued at ``issue_time`` uses for valid times in
    ``[issue_time, end)``: per valid time the newest row available then."""
    if weather is None or weather.empty or "valid_time" not in weather:
        return pd.DataFrame()
    w = weather
    vt = pd.DatetimeIndex(w["valid_time"])
    keep = (vt >= issue_time) & (vt < end)
    if "available_at" in w:
        keep &= (pd.DatetimeIndex(w["available_at"]) <= issue_time)
        w = w.loc[keep].sort_values(["valid_time", "available_at"])
    else:
        w = w.loc[keep].sort_values("valid_time")
    return w.drop_duplicates("valid_time", keep="last")


def weather_missing(window: pd.DataFrame, cols: list[str] | tuple[str, ...]) -> list[str]:
    """Columns of ``cols`` absent from the forecast window or unknown on all of its rows."""
    return [c for c in cols if c not in window or window[c].isna().all()]


def weather_drift(window: pd.DataFrame, reference: dict, z: float) -> list[str]:
    """Columns whose mean over the forecast window is more than ``z`` training SDs from their
    training mean (:func:`weather_reference`)."""
    if z <= 0 or window.empty:
        return []
    out = []
    for c, ref in reference.items():
        if c not in window or not ref.get("sd"):
            continue
        v = pd.to_numeric(window[c], errors="coerce").dropna()
        if len(v) and abs(float(v.mean()) - ref["mean"]) / ref["sd"] > z:
            out.append(c)
    return out


def check_weather(window: pd.DataFrame, cols: list[str] | tuple[str, ...], reference: dict,
                  cfg: GuardConfig) -> dict[str, dict]:
    """The weather guards on the rows of one forecast window: ``{guard: {"columns": [...]}}``."""
    if not cfg.enabled or not cols:
        return {}
    found = {}
    missing = weather_missing(window, cols) if cfg.weather_missing else []
    if missing:
        found["weather_missing"] = {"columns": missing}
    drift = weather_drift(window, {c: r for c, r in reference.items() if c not in missing},
                          cfg.weather_drift_z)
    if drift:
        found["weather_drift"] = {"columns": drift}
    return found
