"""Training-row weights by seasonal similarity to the forecast period.

A row older than half a year weighs by how close its day of the year is to the days being
forecast (a Gaussian kernel on the circular distance, with a floor): last year's same weeks
teach more about heating and cooling than the opposite season. Rows of the last
:data:`RECENT_DAYS` weigh 1 (they are the freshest level and response), and the weight fades
from 1 to the seasonal one over the next :data:`FADE_DAYS`, so a history shorter than
``RECENT_DAYS`` is not weighted at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEASON_SD_DAYS = 30.0   # width of the day-of-year kernel
SEASON_FLOOR = 0.2      # weight of the opposite season
RECENT_DAYS = 120.0     # rows this recent weigh 1 ...
FADE_DAYS = 60.0        # ... then fade to their seasonal weight over this many days
AHEAD_DAYS = 4.0        # the forecast period's centre, after the last training row


def seasonal_weights(valid_time: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Weight of each training row (valid times, UTC) for a forecast just after the last."""
    t = pd.DatetimeIndex(valid_time)
    if len(t) == 0:
        return np.ones(0)
    end = t.max()
    age = ((end - t) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    ref = (end + pd.Timedelta(days=AHEAD_DAYS)).day_of_year
    d = np.abs(t.day_of_year.to_numpy() - ref)
    d = np.minimum(d, 365.25 - d)
    season = SEASON_FLOOR + (1 - SEASON_FLOOR) * np.exp(-0.5 * (d / SEASON_SD_DAYS) ** 2)
    recent = np.clip((RECENT_DAYS + FADE_DAYS - age) / FADE_DAYS, 0.0, 1.0)
    return np.maximum(season, recent)
