"""The demo's "true" world: hourly weather at the sites and the load it drives.

One deterministic truth feeds everything the demo shows, so the parts agree with each other: the
simulated Météo-France archive reproduces it at the sites (PointDriver), the migrated forecast
history is it plus a lead-time error, and the energy DB's measured load is computed from it
(heating-driven industrial consumption with weekly and daily profiles and French holidays).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aggregat.weather.sites import Locations


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float, shape: int = 1) -> np.ndarray:
    """AR(1) noise with lag-one correlation ``phi`` and stationary deviation ``sigma``."""
    eps = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), (n, shape))
    out = np.empty((n, shape))
    out[0] = rng.normal(0.0, sigma, shape)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def truth_weather(locations: Locations, start: pd.Timestamp, end: pd.Timestamp,
                  seed: int = 2026) -> dict[str, pd.DataFrame]:
    """Hourly weather at the sites in bank units, keyed by parameter name (t2m, u10, ...)."""
    times = pd.date_range(start, end, freq="h", tz="UTC")
    n, k = len(times), len(locations.site_ids)
    rng = np.random.default_rng(seed)
    doy = times.day_of_year.to_numpy()[:, None]
    hour = (times.hour.to_numpy()[:, None] + locations.lons[None, :] / 15.0) % 24  # solar time
    lat = locations.lats[None, :]
    # A shared synoptic anomaly (weather systems cover France) plus a local one.
    synoptic = _ar1(rng, n, 0.995, 3.5) + 0.5 * _ar1(rng, n, 0.98, 1.5, k)
    cloud = np.clip(55 + _ar1(rng, n, 0.97, 30.0) + _ar1(rng, n, 0.9, 10.0, k), 0, 100)
    season = 11.5 - 7.5 * np.cos(2 * np.pi * (doy - 20) / 365.25) - 0.6 * (lat - 46.5)
    diurnal = (4.5 - 2.5 * cloud / 100) * np.cos(2 * np.pi * (hour - 15) / 24)
    t2m = season + synoptic + diurnal
    decl = 23.44 * np.sin(2 * np.pi * (doy - 81) / 365.25)
    cos_zenith = (np.sin(np.radians(lat)) * np.sin(np.radians(decl))
                  + np.cos(np.radians(lat)) * np.cos(np.radians(decl))
                  * np.cos(np.radians(15 * (hour - 12))))
    clear = 1098 * np.clip(cos_zenith, 0, None) * np.exp(-0.057 / np.clip(cos_zenith, 0.05, None))
    ssrd = np.where(cos_zenith > 0, clear * (1 - 0.72 * (cloud / 100) ** 2), 0.0)
    wind = np.abs(4 + _ar1(rng, n, 0.95, 2.5) + _ar1(rng, n, 0.8, 1.0, k))
    direction = np.radians(240 + _ar1(rng, n, 0.97, 60.0))
    rain = np.where((cloud > 80) & (rng.random((n, k)) < 0.25), rng.gamma(1.2, 0.8, (n, k)), 0.0)
    rh = np.clip(75 + 0.2 * (cloud - 55) - 1.5 * diurnal + rng.normal(0, 3, (n, k)), 20, 100)

    def frame(values: np.ndarray) -> pd.DataFrame:
        values = np.broadcast_to(values, (n, k))
        return pd.DataFrame(np.array(values, dtype=float), index=times,
                            columns=list(locations.site_ids))

    return {
        "t2m": frame(t2m), "rh2m": frame(rh), "u10": frame(-wind * np.sin(direction)),
        "v10": frame(-wind * np.cos(direction)), "ssrd": frame(ssrd), "tp": frame(rain),
        "tcc": frame(cloud), "lcc": frame(cloud * 0.6), "mcc": frame(cloud * 0.4),
        "hcc": frame(cloud * 0.3),
    }


def portfolio_load(t2m: pd.DataFrame, weights: dict[str, float], seed: int = 7) -> pd.Series:
    """Hourly load (MW) of the portfolio: weighted sites, heating below 15 °C with building
    inertia, shift profiles, weekends and French public holidays at reduced activity."""
    import holidays

    rng = np.random.default_rng(seed)
    local = t2m.index.tz_convert("Europe/Paris")
    years = range(local.year.min() - 1, local.year.max() + 2)
    fr = holidays.country_holidays("FR", years=years)
    is_holiday = np.array([d in fr for d in local.date])
    weekday = local.day_of_week.to_numpy()
    hour = local.hour.to_numpy()
    activity = np.where(weekday < 5, 1.0, np.where(weekday == 5, 0.75, 0.6))
    activity = np.where(is_holiday, 0.6, activity)
    shift = 0.85 + 0.15 * ((hour >= 6) & (hour < 22))  # two shifts, lighter night shift
    total = np.zeros(len(t2m))
    for site, weight in weights.items():
        smoothed = t2m[site].ewm(halflife=12).mean().to_numpy()  # building inertia (hours)
        heating = 0.045 * np.clip(15.0 - smoothed, 0, None)
        total += weight * (1.0 + heating) * activity * shift
    noise = 1 + 0.015 * _ar1(rng, len(total), 0.9, 1.0)[:, 0]
    return pd.Series(total * noise, index=t2m.index, name="load_mw")


def forecast_history(truth: dict[str, pd.DataFrame], runs: pd.DatetimeIndex, model: str,
                     max_step: int = 51, seed: int = 11) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    """Past runs as a legacy data bank held them: truth plus an error growing with lead time.

    Returns ``(run_time, frame)`` in the bank's ``weather_forecast`` layout (one row per valid
    time and site), ready for :func:`aggregat.bank.write_weather_run`.
    """
    from aggregat.weather.products import PARAMETERS

    rng = np.random.default_rng(seed)
    names = list(truth)
    index = truth[names[0]].index
    sites = list(truth[names[0]].columns)
    out = []
    for run in runs:
        steps = np.arange(max_step + 1)
        valid = run + pd.to_timedelta(steps, unit="h")
        pos = index.get_indexer(valid)
        keep = pos >= 0
        steps, valid, pos = steps[keep], valid[keep], pos[keep]
        growth = np.sqrt(steps / 24.0)[:, None]
        cols = {}
        for name in names:
            values = truth[name].to_numpy()[pos]
            scale = {"t2m": 0.8, "rh2m": 4.0, "u10": 0.8, "v10": 0.8, "tcc": 12.0}.get(name, 0.0)
            if scale:
                values = values + rng.normal(0, scale, values.shape) * growth
            cols[PARAMETERS[name].column] = values
        if "tcc" in truth:
            cols["tcc_pct"] = np.clip(cols["tcc_pct"], 0, 100)
        u, v = cols["u10_ms"], cols["v10_ms"]
        cols["wind_speed_10m_ms"] = np.hypot(u, v)
        cols["wind_dir_10m_deg"] = np.mod(270 - np.degrees(np.arctan2(v, u)), 360)
        n = len(sites)
        frame = pd.DataFrame({
            "valid_time": np.repeat(valid, n), "step_h": np.repeat(steps, n).astype("int16"),
            "location": np.tile(sites, len(steps)),
            **{c: v.reshape(-1).astype("float32") for c, v in cols.items()},
        })
        frame.loc[frame.step_h == 0, ["ssrd_wm2", "tp_mm"]] = np.nan
        out.append((run, frame))
    return out
