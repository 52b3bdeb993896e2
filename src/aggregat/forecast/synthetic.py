"""Synthetic load and weather with realistic structure, for tests, benchmarks and demos.

The load has a daily and a weekly shape, heating below 15 °C and cooling above 22 °C with
building inertia (smoothed temperature), a holiday dip and noise; the temperature has a seasonal
and a daily cycle plus a persistent random anomaly. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aggregat.forecast.core.calendar import holiday_dates


def synthetic_load_weather(start: str = "2022-01-01", days: int = 365, freq: str = "30min",
                           tz: str = "Europe/Paris", holidays: str | None = "FR",
                           seed: int = 0) -> pd.DataFrame:
    """Frame with ``time`` (UTC), ``load_mw``, ``t2m_c``, ``ssrd_wm2``, ``holiday``."""
    rng = np.random.default_rng(seed)
    t = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=int(days * pd.Timedelta("1D")
                      / pd.Timedelta(freq)), freq=freq)
    local = t.tz_convert(tz)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60
    doy = local.day_of_year.to_numpy()
    n = len(t)
    steps_per_h = pd.Timedelta("1h") / pd.Timedelta(freq)
    # Temperature: season + day cycle + an AR(1) anomaly that lasts a few days.
    anomaly = np.zeros(n)
    phi = np.exp(-1 / (48 * steps_per_h))
    shocks = rng.normal(0, 0.08, n)
    for i in range(1, n):
        anomaly[i] = phi * anomaly[i - 1] + shocks[i]
    t2m = 12 - 8 * np.cos(2 * np.pi * (doy - 15) / 365) - 4 * np.cos(2 * np.pi * (hour - 3) / 24)
    t2m = t2m + anomaly
    sun = np.clip(np.sin(np.pi * (hour - 6) / 12), 0, None) * (
        500 + 300 * np.sin(2 * np.pi * (doy - 80) / 365))
    ssrd = sun * rng.uniform(0.3, 1.0, n).round(1)
    # Building inertia: the load follows a smoothed temperature.
    alpha = 1 - np.exp(-np.log(2) / (12 * steps_per_h))
    smooth = pd.Series(t2m).ewm(alpha=alpha).mean().to_numpy()
    hol = holiday_dates(holidays, range(t[0].year - 1, t[-1].year + 2))
    is_hol = np.array([d in hol for d in local.date], dtype=float)
    off = (local.day_of_week.to_numpy() >= 5) | (is_hol > 0)
    shape = 1 + 0.25 * np.sin(np.pi * np.clip(hour - 6, 0, 14) / 14) + 0.1 * (
        (hour >= 18) & (hour < 21))
    load = 100 * shape * np.where(off, 0.8, 1.0)
    load = load + 3.0 * np.clip(15 - smooth, 0, None) + 4.0 * np.clip(smooth - 22, 0, None)
    load = load - 0.02 * ssrd + rng.normal(0, 2.0, n)
    return pd.DataFrame({"time": t, "load_mw": load, "t2m_c": t2m.round(2),
                         "ssrd_wm2": ssrd.round(1), "holiday": is_hol})
