from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from aggregat.errors import InputError
from aggregat.forecast.core.features import (
    build_features,
    features,
    issue_time_for_day,
    prepare_load,
    prepare_weather,
)

ISSUE = issue_time_for_day("2026-04-20", "Europe/Paris", 10)  # 19 April 10:00 CEST


def _perturb_after(load: pd.Series, t: pd.Timestamp) -> pd.Series:
    out = load.copy()
    res = load.index[1] - load.index[0]
    later = out.index + res > t
    out[later] = out[later] * 3 + 1000
    return out


def test_issue_time_and_target_day_rows(load, weather, fcfg):
    assert ISSUE == pd.Timestamp("2026-04-19 08:00", tz="UTC")
    f = features(load, weather, ISSUE, fcfg)
    assert len(f) == 24
    assert f["valid_time"].iloc[0] == pd.Timestamp("2026-04-19 22:00", tz="UTC")
    assert f["lead_h"].min() == 14 and f["lead_h"].max() == 37
    # DST change (29 March 2026 has 23 local hours).
    dst = features(load, weather, issue_time_for_day("2026-03-29", "Europe/Paris", 10), fcfg)
    assert len(dst) == 23


def test_no_look_ahead_in_features(load, weather, fcfg):
    base = features(load, weather, ISSUE, fcfg)
    moved = features(_perturb_after(load, ISSUE), weather, ISSUE, fcfg)
    pd.testing.assert_frame_equal(base, moved)
    # ... whereas load observed before the issue time does matter.
    changed = load.copy()
    changed[ISSUE - pd.Timedelta(hours=2)] += 500
    assert not base.equals(features(changed, weather, ISSUE, fcfg))


def test_lags_masked_by_availability(load, weather, fcfg):
    f = features(load, weather, ISSUE, fcfg)
    res = pd.Timedelta(hours=1)
    src = pd.DatetimeIndex(f["valid_time"]) - pd.Timedelta(hours=24)
    observed = (src + res <= ISSUE)
    assert observed.any() and not observed.all()  # early hours of D: D-1 morning is known
    assert f.loc[observed, "load_lag_24h"].notna().all()
    assert f.loc[~observed, "load_lag_24h"].isna().all()
    assert f["load_lag_48h"].notna().all() and f["load_lag_168h"].notna().all()
    last = load[load.index + res <= ISSUE].iloc[-1]
    assert (f["load_last"] == last).all()
    assert f["load_mean_24h"].iloc[0] == pytest.approx(
        load[(load.index + res <= ISSUE) & (load.index + res > ISSUE - pd.Timedelta("24h"))].mean())


def test_weather_only_from_runs_available_at_issue(load, weather, fcfg):
    old = weather.assign(available_at=ISSUE - pd.Timedelta(hours=6))
    new = weather.assign(available_at=ISSUE + pd.Timedelta(hours=1),
                         t2m_c=weather["t2m_c"] + 10)
    both = pd.concat([old, new], ignore_index=True)
    f = features(load, both, ISSUE, fcfg)
    pd.testing.assert_frame_equal(f, features(load, old, ISSUE, fcfg))
    # Once available, the newer run wins.
    later = ISSUE + pd.Timedelta(hours=2)
    g = features(load, both, later, fcfg)
    v = pd.DatetimeIndex(g["valid_time"])
    expected = weather.set_index("valid_time")["t2m_c"].reindex(v).to_numpy() + 10
    np.testing.assert_allclose(g["t2m_c"].to_numpy(), expected)


def test_batch_equals_single_issue(load, weather, fcfg):
    s = prepare_load(load)
    res = s.index[1] - s.index[0]
    w = prepare_weather(weather, ["t2m_c", "ssrd_wm2", "holiday"], res)
    issues = pd.DatetimeIndex([issue_time_for_day(d, fcfg.tz, 10)
                               for d in pd.date_range("2026-04-10", "2026-04-25")])
    batch = build_features(s, w, issues, fcfg, res)
    one = batch[batch["issue_time"] == ISSUE].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, features(load, weather, ISSUE, fcfg))
    assert {"t2m_c_day_max", "t2m_c_hdd", "t2m_c_ewm_24h", "t2m_c_prev_day_mean",
            "ssrd_wm2_day_max", "is_bridge", "holiday"} <= set(batch.columns)


def test_wind_directions_are_circular(load, weather, fcfg):
    # A north wind swinging between 350 and 10 degrees: its day mean is north, not south.
    w = weather.assign(wind_dir_10m_deg=np.where(np.arange(len(weather)) % 2, 350.0, 10.0))
    cfg = replace(fcfg, weather_cols=("t2m_c", "wind_dir_10m_deg"))
    f = features(load, w, ISSUE, cfg)
    np.testing.assert_allclose(f["wind_dir_10m_deg_cos_day_mean"], np.cos(np.deg2rad(10)))
    np.testing.assert_allclose(f["wind_dir_10m_deg_sin_day_mean"], 0, atol=0.02)
    np.testing.assert_allclose(np.hypot(f["wind_dir_10m_deg_sin"], f["wind_dir_10m_deg_cos"]), 1)
    assert not [c for c in f.columns if c.startswith("wind_dir_10m_deg")
                and ("anom" in c or c.endswith("deg_day_mean"))]
    assert "wind_dir_10m_deg_power" not in f.columns  # not a wind speed
    assert "t2m_c_anom" in f.columns


def test_hourly_weather_is_interpolated_to_quarter_hours():
    t = pd.date_range("2026-01-01", periods=4 * 24 * 30, freq="15min", tz="UTC")
    w = pd.DataFrame({"valid_time": pd.date_range("2026-01-01", periods=3, freq="1h", tz="UTC"),
                      "t2m_c": [0.0, 4.0, 8.0]})
    out = prepare_weather(w, ["t2m_c"], t[1] - t[0])
    assert out["t2m_c"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    # A direction turns the short way round, through north.
    w["wind_dir_10m_deg"] = [350.0, 10.0, 90.0]
    out = prepare_weather(w, ["wind_dir_10m_deg"], t[1] - t[0])
    assert out["wind_dir_10m_deg"].tolist() == [350, 355, 0, 5, 10, 30, 50, 70, 90]


def test_bad_load_inputs_are_input_errors():
    with pytest.raises(InputError, match="tz-aware"):
        prepare_load(pd.Series([1.0, 2, 3], index=pd.date_range("2026-01-01", periods=3,
                                                                 freq="h")))
    idx = pd.DatetimeIndex(["2026-01-01 00:00", "2026-01-01 01:00", "2026-01-01 02:00",
                            "2026-01-01 02:20"], tz="UTC")
    with pytest.raises(InputError, match="off the"):
        prepare_load(pd.Series([1.0, 2, 3, 4], index=idx))
