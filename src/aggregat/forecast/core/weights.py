"""Training-row weights: by age, and by seasonal similarity to the forecast period.

Rows weigh less with age (:func:`recency_weights`): a load's response to the weather drifts as
assets are connected or consumption changes. The ridge and kernel members use both weights, the
trees neither (it cost them accuracy: docs/forecasting.md).

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
# Half-life of the age weights, as a share of the training history's issue days (None: equal
# weights). 1/3 and 1/4 scored alike on openstef_307 and vic_elec: not tuned further.
RECENCY_HALFLIFE = 0.5


def recency_weights(groups: np.ndarray) -> np.ndarray:
    """Row weights halving over ``RECENCY_HALFLIFE`` of the issue days in ``groups`` (each
    row's issue day, sortable; the newest weigh 1)."""
    _, day_index = np.unique(groups, return_inverse=True)
    n_days = max(int(day_index.max()) + 1, 1) if len(day_index) else 1
    if RECENCY_HALFLIFE is None:
        return np.ones(len(day_index))
    return 0.5 ** ((n_days - 1 - day_index) / (RECENCY_HALFLIFE * n_days))


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
