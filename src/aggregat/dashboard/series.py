"""Forecast against actual load, shaped for the chart: one time axis, downsampled per pixel.

A chart ``width`` pixels wide shows at most ``width`` buckets: each bucket keeps the first and
last time of its points and, per series, the min and the max (in the order they occur), so peaks
and troughs survive at any zoom while 3 years of half-hourly points (52 000) become ~2 000. The
band keeps the bucket's lowest P10 and highest P90. Zoomed in far enough, the points are sent as
they are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SERIES = ("actual", "p10", "p50", "p90")


def combine(forecast: pd.DataFrame, load: pd.DataFrame, issue: pd.Timestamp | None
            ) -> pd.DataFrame:
    """One row per valid time (UTC, sorted): ``actual``, ``p10``, ``p50``, ``p90`` (NaN where
    absent). Without an ``issue``, each time takes its newest forecast."""
    fc = forecast
    if len(fc):
        if issue is not None:
            fc = fc[fc["issue_time"] == issue]
        fc = (fc.sort_values(["valid_time", "issue_time"])
                .drop_duplicates("valid_time", keep="last")
                .set_index("valid_time")[["p10_mw", "p50_mw", "p90_mw"]]
                .rename(columns={"p10_mw": "p10", "p50_mw": "p50", "p90_mw": "p90"}))
    else:
        fc = pd.DataFrame(columns=["p10", "p50", "p90"], dtype=float,
                          index=pd.DatetimeIndex([], tz="UTC"))
    actual = (load.drop_duplicates("time", keep="last").set_index("time")["load_mw"]
              .rename("actual") if len(load) else pd.Series(
                  dtype=float, name="actual", index=pd.DatetimeIndex([], tz="UTC")))
    frame = pd.concat([actual, fc], axis=1).sort_index()
    frame.index.name = "time"
    return frame.astype(float)


def downsample(frame: pd.DataFrame, width: int) -> tuple[dict[str, list], bool]:
    """(columns for uPlot: ``x`` in epoch seconds then each series, raw?) at most ``2 * width``
    points, NaN as None (a gap)."""
    n = len(frame)
    # Epoch seconds whatever the index's unit (pandas 3 reads Parquet times as microseconds).
    x = frame.index.as_unit("s").asi8 if n else np.array([], dtype=np.int64)
    if n <= 2 * width:
        return _columns(x, {c: frame[c].to_numpy() for c in SERIES}), True
    edges = np.linspace(x[0], x[-1] + 1, width + 1)
    bucket = np.searchsorted(edges, x, side="right") - 1
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], n] - 1
    out_x = np.empty(2 * len(starts), dtype=np.int64)
    out_x[0::2], out_x[1::2] = x[starts], x[ends]
    cols: dict[str, np.ndarray] = {}
    for name in SERIES:
        values = frame[name].to_numpy()
        lo = _reduce(np.fmin, values, starts)
        hi = _reduce(np.fmax, values, starts)
        if name == "p10":
            cols[name] = np.repeat(lo, 2)
        elif name == "p90":
            cols[name] = np.repeat(hi, 2)
        else:  # min then max, or max then min: the order they occur in the bucket
            first_is_min = _argfirst(values, starts, ends, lo, hi)
            pair = np.empty(2 * len(starts))
            pair[0::2] = np.where(first_is_min, lo, hi)
            pair[1::2] = np.where(first_is_min, hi, lo)
            cols[name] = pair
    return _columns(out_x, cols), False


def _reduce(fn: np.ufunc, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # an all-NaN bucket stays NaN
        return fn.reduceat(values, starts)


def _argfirst(values, starts, ends, lo, hi) -> np.ndarray:
    """Per bucket: does its min occur before its max?"""
    idx = np.arange(len(values))
    bucket = np.repeat(np.arange(len(starts)), ends - starts + 1)
    big = len(values) + 1
    at_min = np.where(values == lo[bucket], idx, big)
    at_max = np.where(values == hi[bucket], idx, big)
    return np.minimum.reduceat(at_min, starts) <= np.minimum.reduceat(at_max, starts)


def _columns(x: np.ndarray, cols: dict[str, np.ndarray]) -> dict[str, list]:
    out: dict[str, list] = {"x": x.tolist()}
    for name, values in cols.items():
        rounded = np.round(values.astype(float), 3)
        out[name] = [None if v != v else v for v in rounded.tolist()]  # NaN -> null
    return out


def daily_error(frame: pd.DataFrame, tz: str) -> list[dict]:
    """Per local day with both: MAE of P50 (MW), bias, share of actuals inside P10–P90."""
    both = frame.dropna(subset=["actual", "p50"])
    if both.empty:
        return []
    err = both["p50"] - both["actual"]
    inside = ((both["actual"] >= both["p10"]) & (both["actual"] <= both["p90"])).astype(float)
    day = both.index.tz_convert(tz).date
    table = pd.DataFrame({"abs": err.abs().to_numpy(), "err": err.to_numpy(),
                          "inside": inside.to_numpy(), "day": day}).groupby("day")
    stats = table.agg(mae=("abs", "mean"), bias=("err", "mean"), coverage=("inside", "mean"),
                      n=("abs", "size"))
    return [{"day": d.isoformat(), "mae": round(float(r.mae), 3), "bias": round(float(r.bias), 3),
             "coverage": round(float(r.coverage), 3), "n": int(r.n)}
            for d, r in stats.iterrows()]
