"""Each input guard trips on a series built to trip it, and stays quiet on the clean series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aggregat.forecast.core import guards
from aggregat.forecast.core.guards import GuardConfig

CFG = GuardConfig()


@pytest.fixture()
def clean(load) -> pd.Series:
    s = load.copy()
    s.index = pd.DatetimeIndex(s.index).tz_convert("UTC")
    return s


def test_clean_series_trips_no_guard(clean):
    report = guards.check_load(clean, CFG)
    assert report.found == {}
    assert not report.mask.any()


def test_flatline_flags_a_stuck_meter(clean):
    s = clean.copy()
    s.iloc[200:210] = s.iloc[200]  # 10 h identical (> 6 h)
    s.iloc[400:403] = s.iloc[400]  # 3 h: a plateau, not a stuck meter
    mask = guards.flatline(s, 6)
    assert mask.iloc[200:210].all() and mask.sum() == 10
    assert guards.check_load(s, CFG).flags == ["flatline"]
    assert not guards.flatline(s, 0).any()  # 0 switches it off


def test_gaps_flag_incomplete_days(clean):
    s = clean.copy()
    s.iloc[24 * 10:24 * 10 + 12] = np.nan  # half of day 10 missing (< 80 %)
    mask = guards.gaps(s, 0.8)
    day = s.index[24 * 10].floor("D")
    assert mask[s.index.floor("D") == day].all() and mask.sum() == 24
    assert guards.check_load(s, CFG).flags == ["gaps"]


def test_spike_flags_an_isolated_jump_but_not_a_step(clean):
    s = clean.copy()
    s.iloc[300] += 20 * s.std()
    mask = guards.spikes(s, 8)
    assert list(np.flatnonzero(mask)) == [300]
    step = clean.copy()
    step.iloc[300:] += 20 * clean.std()  # a step has one large difference, not two
    assert not guards.spikes(step, 8).any()


def test_level_shift_finds_the_day_a_site_was_added(clean):
    s = clean.copy()
    day = s.index[24 * 30]
    s[s.index >= day] *= 1.6  # a site as large as 60 % of the portfolio joins
    assert guards.level_shift(s, 0.3, 7) == [day.floor("D")]
    report = guards.check_load(s, CFG)
    assert report.flags == ["level_shift"]
    masked = report.mask[report.mask].index
    assert masked[0] == day and masked[-1] < day + pd.Timedelta(days=guards.SHIFT_MASK_DAYS)
    assert guards.level_shift(s, 0, 7) == []


def test_level_shift_in_the_last_days_before_an_issue(clean):
    s = clean.iloc[: 24 * 40].copy()
    s.iloc[-24 * 3:] *= 0.5  # half the portfolio gone 3 days before the issue
    issue = s.index[-1] + pd.Timedelta(hours=1)
    report = guards.check_recent_load(s, issue, CFG)
    assert "level_shift" in report.flags


def test_recent_load_checks_only_the_lookback_window(clean):
    s = clean.iloc[: 24 * 40].copy()
    s.iloc[24 * 5:24 * 5 + 10] = s.iloc[24 * 5]  # stuck a month before the issue
    issue = s.index[-1] + pd.Timedelta(hours=1)
    assert guards.check_recent_load(s, issue, CFG).found == {}
    s.iloc[-30:] = np.nan  # the last 30 h missing: the week is 82 % complete
    s.iloc[-24 * 3:-24 * 2 - 12] = np.nan
    assert "gaps" in guards.check_recent_load(s, issue, CFG).flags


def test_weather_missing_and_drift(weather):
    w = weather.copy()
    w["valid_time"] = pd.DatetimeIndex(w["valid_time"]).tz_convert("UTC")
    ref = guards.weather_reference(w, ["t2m_c", "ssrd_wm2"])
    issue = w["valid_time"].iloc[24 * 50]
    window = guards.window_rows(w, issue, issue + pd.Timedelta(days=1))
    assert len(window) == 24
    assert guards.check_weather(window, ["t2m_c", "ssrd_wm2"], ref, CFG) == {}
    kelvin = window.assign(t2m_c=window["t2m_c"] + 273.15)  # a feed switched to kelvin
    assert guards.check_weather(kelvin, ["t2m_c", "ssrd_wm2"], ref, CFG) == {
        "weather_drift": {"columns": ["t2m_c"]}}
    gone = window.drop(columns="ssrd_wm2")
    assert guards.check_weather(gone, ["t2m_c", "ssrd_wm2"], ref, CFG) == {
        "weather_missing": {"columns": ["ssrd_wm2"]}}
    off = GuardConfig(weather_missing=False, weather_drift_z=0)
    assert guards.check_weather(gone.assign(t2m_c=kelvin["t2m_c"].to_numpy()),
                                ["t2m_c", "ssrd_wm2"], ref, off) == {}


def test_disabled_guards_flag_nothing(clean):
    s = clean.copy()
    s.iloc[200:220] = s.iloc[200]
    assert guards.check_load(s, GuardConfig(enabled=False)).found == {}


def test_training_on_load_the_guards_masked_almost_whole_is_the_baseline():
    """A stuck meter for weeks leaves a few scattered values: no level can be made of them, so
    training gives the (flagged) baseline instead of LightGBM failing on zero rows."""
    from aggregat.forecast.core.models import ModelConfig, prepare_load
    from aggregat.forecast.core.validation import fit_and_validate

    times = pd.date_range("2026-10-25", periods=34 * 24, freq="h", tz="UTC")
    hour = times.hour.to_numpy()
    stepped = pd.Series(10.0 + 2 * ((hour >= 6) & (hour < 22)), index=times)  # flat for hours
    load = prepare_load(stepped)
    guarded = guards.check_load(load, GuardConfig())
    assert guarded.found.get("flatline") and guarded.mask.mean() > 0.9
    fit = fit_and_validate(load.mask(guarded.mask), None, ModelConfig(min_train_days=5),
                           validation_days=7)
    assert fit.model.is_baseline
