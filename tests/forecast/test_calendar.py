import pandas as pd
import pytest

from aggregat.errors import ConfigError
from aggregat.forecast.calendar import calendar_features, day_table, parse_holiday_code


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
