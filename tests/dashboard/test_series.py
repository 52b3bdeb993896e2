"""Downsampling for the chart: bounded points, extremes kept, raw when zoomed in."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aggregat.dashboard.series import combine, daily_error, downsample


def _frame(n: int) -> pd.DataFrame:
    times = pd.date_range("2023-01-01", periods=n, freq="30min", tz="UTC").as_unit("us")
    rng = np.random.default_rng(1)
    actual = 50 + 10 * np.sin(np.arange(n) / 48 * 2 * np.pi) + rng.normal(0, 1, n)
    frame = pd.DataFrame({"actual": actual, "p50": actual + 0.5, "p10": actual - 3,
                          "p90": actual + 3}, index=times)
    frame.iloc[n // 2, 0] = 500.0  # one spike the chart must still show
    frame.iloc[n // 3, 0] = -40.0
    return frame


def test_three_years_become_two_points_per_pixel_with_the_extremes():
    frame = _frame(3 * 365 * 48)
    cols, raw = downsample(frame, 1000)
    assert not raw and len(cols["x"]) <= 2000
    assert max(v for v in cols["actual"] if v is not None) == 500.0
    assert min(v for v in cols["actual"] if v is not None) == -40.0
    assert min(cols["p10"]) == round(frame["p10"].min(), 3)
    assert max(cols["p90"]) == round(frame["p90"].max(), 3)
    assert cols["x"] == sorted(cols["x"])
    assert cols["x"][0] == int(frame.index[0].timestamp())  # epoch seconds, as uPlot reads x


def test_few_points_are_sent_as_they_are_with_gaps_as_null():
    frame = _frame(100)
    frame.iloc[5, 1] = np.nan
    cols, raw = downsample(frame, 1000)
    assert raw and len(cols["x"]) == 100 and cols["p50"][5] is None


def test_combine_takes_the_newest_issue_of_each_time_and_daily_error():
    t = pd.date_range("2026-11-28", periods=4, freq="h", tz="UTC")
    fc = pd.DataFrame({"valid_time": list(t) * 2,
                       "issue_time": [t[0] - pd.Timedelta(days=1)] * 4 + [t[0]] * 4,
                       "p10_mw": 0.0, "p50_mw": [1.0] * 4 + [2.0] * 4, "p90_mw": 9.0})
    load = pd.DataFrame({"time": t, "load_mw": 3.0})
    frame = combine(fc, load, None)
    assert list(frame["p50"]) == [2.0] * 4
    assert list(combine(fc, load, t[0] - pd.Timedelta(days=1))["p50"]) == [1.0] * 4
    [day] = daily_error(frame, "Europe/Paris")
    assert day["mae"] == 1.0 and day["coverage"] == 1.0 and day["n"] == 4


def test_series_cache_warms_and_refreshes_without_making_a_page_wait(monkeypatch):
    """The app's start reads every target's series (the first view is served from memory); an
    entry older than the TTL is served as it is while a background thread reads it again."""
    import threading

    from aggregat.dashboard import pages

    reads: list[str] = []
    gate = threading.Event()

    def read(env, target, horizon, start=None, end=None):
        reads.append(target)
        if len(reads) > 1:  # the refresh: slow, and must not hold the page
            gate.wait(10)
        return pd.DataFrame({"n": [len(reads)]}), pd.DataFrame()

    monkeypatch.setattr(pages, "read_series", read)
    cache = pages.SeriesCache(env=None)
    cache.warm(["a"], ("day-ahead",)).join(10)
    assert reads == ["a"]
    fc, _ = cache.get("a", "day-ahead")
    assert reads == ["a"] and fc["n"].iloc[0] == 1  # served from memory
    monkeypatch.setattr(pages, "SERIES_TTL_S", 0.0)
    fc, _ = cache.get("a", "day-ahead")  # stale: served at once, refreshed behind
    assert fc["n"].iloc[0] == 1
    gate.set()
    for _ in range(100):
        if cache._data[("a", "day-ahead")][1]["n"].iloc[0] == 2:
            break
        threading.Event().wait(0.05)
    monkeypatch.setattr(pages, "SERIES_TTL_S", 60.0)
    assert cache.get("a", "day-ahead")[0]["n"].iloc[0] == 2
