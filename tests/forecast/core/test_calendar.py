import numpy as np
import pandas as pd
import pytest

from aggregat.errors import ConfigError
from aggregat.forecast.core.calendar import calendar_features, day_table, parse_holiday_code


def _day(table, d):
    return table.loc[pd.Timestamp(d)]


def test_french_holidays_and_bridge_days():
    days = pd.date_range("2026-05-01", "2026-07-31", freq="D")
    t = day_table(days, "FR")
    assert _day(t, "2026-05-14")["is_holiday"] == 1  # Ascension (Thursday)
    assert _day(t, "2026-05-15")["is_bridge"] == 1  # Friday between Ascension and the weekend
    assert _day(t, "2026-05-15")["is_offday"] == 1
    assert _day(t, "2026-07-13")["is_bridge"] == 1  # Monday before Tuesday 14 July
    assert _day(t, "2026-07-14")["is_holiday"] == 1
    assert _day(t, "2026-07-15")["day_after_holiday"] == 1
    assert _day(t, "2026-07-13")["day_before_holiday"] == 1
    assert _day(t, "2026-05-20")["is_bridge"] == 0  # an ordinary Wednesday
    assert _day(t, "2026-05-20")["is_holiday"] == 0
    assert _day(t, "2026-05-16")["is_bridge"] == 0  # Saturday is an off day, not a bridge


def test_subdivision_calendar_and_year_boundary():
    t = day_table(pd.date_range("2014-11-01", "2015-01-03", freq="D"), "AU-VIC")
    assert _day(t, "2014-11-04")["is_holiday"] == 1  # Melbourne Cup day, Victoria only
    assert _day(t, "2015-01-01")["is_holiday"] == 1  # next year's holidays are loaded too
    assert _day(t, "2014-12-29")["holidays_within_7d"] >= 3
    nsw = day_table(pd.date_range("2014-11-01", "2014-11-10", freq="D"), "AU-NSW")
    assert _day(nsw, "2014-11-04")["is_holiday"] == 0


def test_unknown_codes_are_config_errors():
    with pytest.raises(ConfigError, match="unknown country"):
        parse_holiday_code("XX")
    with pytest.raises(ConfigError, match="no subdivision"):
        parse_holiday_code("AU-ZZZ")
    assert parse_holiday_code("fr") == ("FR", None)


def test_calendar_features_in_local_time():
    vt = pd.DatetimeIndex(["2026-07-13 22:30", "2026-01-01 12:00"], tz="UTC")
    f = calendar_features(vt, "Europe/Paris", "FR")
    assert f.loc[0, "hour_local"] == 0.5  # 00:30 CEST on 14 July
    assert f.loc[0, "is_holiday"] == 1
    assert f.loc[0, "weekday"] == 1
    assert f.loc[1, "hour_local"] == 13.0
    none = calendar_features(vt, "Europe/Paris", None)
    assert none["is_holiday"].sum() == 0


def test_school_holidays_share_of_french_zones_and_one_zone():
    from aggregat.forecast.core.calendar import school_holiday_share

    # Winter 2026: zone A from 7 Feb, zone B from 14 Feb, zone C from 21 Feb (two weeks each).
    days = pd.DatetimeIndex(["2026-02-02", "2026-02-09", "2026-02-16", "2026-02-23",
                             "2026-03-02", "2026-03-10"])
    share = school_holiday_share(days, "FR")
    assert list(share.round(3)) == [0.0, 0.333, 0.667, 0.667, 0.333, 0.0]
    assert list(school_holiday_share(days, "FR-Zone C")) == [0, 0, 0, 1, 1, 0]
    assert list(school_holiday_share(days, "FR-Zone A, FR-Zone C")) == [0, .5, .5, .5, .5, 0]
    assert school_holiday_share(pd.DatetimeIndex(["2025-08-10"]), "FR")[0] == 1.0  # summer


def test_school_holidays_are_unknown_outside_the_package_years():
    from aggregat.forecast.core.calendar import school_holiday_share

    # French school holidays start with the 2017-2018 school year in the package: before its
    # first known break the share is NaN (unknown), not 0.
    share = school_holiday_share(pd.DatetimeIndex(["2016-05-10", "2017-10-02", "2017-12-27"]),
                                 "FR-Zone C")
    assert np.isnan(share[0]) and np.isnan(share[1]) and share[2] == 1.0


def test_school_holiday_feature_and_bad_codes():
    vt = pd.date_range("2026-02-20T12:00", periods=3, freq="D", tz="UTC")
    cal = calendar_features(vt, "Europe/Paris", "FR", "FR")
    assert list(cal["school_holiday"].round(3)) == [0.667, 1.0, 1.0]
    assert "school_holiday" not in calendar_features(vt, "Europe/Paris", "FR").columns
    with pytest.raises(ConfigError, match="has none for GB"):
        calendar_features(vt, "Europe/London", "GB", "GB")
    with pytest.raises(ConfigError, match="has none for 57"):
        calendar_features(vt, "Europe/Paris", "FR", "FR-57")
    with pytest.raises(ConfigError, match="unknown country"):
        calendar_features(vt, "Europe/Paris", "FR", "XX")
