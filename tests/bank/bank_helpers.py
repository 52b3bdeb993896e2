"""Helpers of the bank tests: small weather runs with known values."""

from __future__ import annotations

import numpy as np
import pandas as pd

LOCATIONS = ["lille", "lyon", "paris"]


def weather_run(run: str | pd.Timestamp, steps: int = 49, locations: list[str] = LOCATIONS,
                seed: int = 0) -> pd.DataFrame:
    """One run: every location x hourly step from ``run``, random float64 values."""
    run = pd.Timestamp(run)
    valid = run + pd.to_timedelta(np.arange(steps), unit="h")
    df = pd.DataFrame({
        "valid_time": np.repeat(valid, len(locations)),
        "location": np.tile(locations, steps),
    })
    rng = np.random.default_rng(seed)
    df["t2m_c"] = rng.normal(10, 5, len(df))  # float64 on purpose: stored as float32
    df["ssrd_wm2"] = rng.uniform(0, 800, len(df))
    return df

