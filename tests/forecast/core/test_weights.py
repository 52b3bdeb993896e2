import numpy as np
import pandas as pd

from aggregat.forecast.core.weights import RECENT_DAYS, SEASON_FLOOR, seasonal_weights


def _days(start: str, end: str) -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq="D", tz="UTC")


def test_a_history_shorter_than_the_recent_days_is_not_weighted():
    t = _days("2020-08-15", "2020-11-22")  # 99 days: openstef_307's history
    assert len(t) < RECENT_DAYS
    np.testing.assert_array_equal(seasonal_weights(t), 1.0)


def test_older_rows_weigh_by_their_season():
    t = _days("2012-01-01", "2014-11-04")  # vic_elec's history before its test weeks
    w = pd.Series(seasonal_weights(t), index=t)
    assert (w["2014-07-01":] >= w["2014-06-01":"2014-06-30"].max()).all()  # recent: 1, fading
    assert (w["2014-08-01":] == 1).all()
    # Last year's and the year before's same weeks count fully, the opposite season little.
    assert w["2013-11-08"] > 0.99 and w["2012-11-08"] > 0.99
    assert abs(w["2013-05-08"] - SEASON_FLOOR) < 1e-3
    assert w["2013-10-01"] < w["2013-10-20"] < w["2013-11-05"]
    # Across the new year: 20 December is as close to 10 January as 31 January is.
    j = _days("2011-01-01", "2013-01-06")
    wj = pd.Series(seasonal_weights(j), index=j)
    assert abs(wj["2011-12-20"] - wj["2012-01-31"]) < 0.02
