"""Feature-group contributions add up to P50, member by member and in their weighted mean."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from aggregat.forecast.core import explain
from aggregat.forecast.core.features import FeatureConfig
from aggregat.forecast.core.models import train
from aggregat.timeutil import Horizon


def _check_sum(model, load, weather, issue):
    out, ex = explain.predict_explained(model, load, weather, issue)
    total = ex.groupby("valid_time")["contribution_mw"].sum()
    p50 = out.set_index("valid_time")["p50_mw"]
    assert len(total) == len(p50) > 0
    np.testing.assert_allclose(total.reindex(p50.index).to_numpy(), p50.to_numpy(),
                               rtol=1e-5, atol=1e-3 * float(np.abs(p50).mean()))
    return out, ex


@pytest.fixture(scope="module")
def model(load, weather, small_cfg):
    until = pd.Timestamp(load.index[-1]) - pd.Timedelta(days=5)
    return train(load, weather, small_cfg, until=until)


def test_contributions_plus_base_equal_p50(model, load, weather):
    assert model.linear is not None and len(model.extra_p50) == 2  # every kind of member
    issue = pd.Timestamp(load.index[-1]) - pd.Timedelta(days=3)
    issue = issue.floor("D") + pd.Timedelta(hours=9)
    _, ex = _check_sum(model, load, weather, issue)
    groups = set(ex["group"])
    assert {"base", "temperature", "radiation", "calendar", "holidays", "lags", "level",
            "known"} <= groups
    by = ex.groupby("group")["contribution_mw"].apply(lambda v: np.abs(v).mean())
    assert by["level"] > 0 and by["temperature"] > 0  # the load follows the temperature


def test_each_member_alone_is_exact(model, load, weather, small_cfg):
    issue = pd.Timestamp(load.index[-1]).floor("D") - pd.Timedelta(days=2, hours=15)
    assert model.kernel is not None
    for members in (("level",), ("level", "nowcast"), ("level", "linear"), ("level", "kernel")):
        m = dataclasses.replace(model, extra_p50=(), extra_p50_bases=(), linear=None,
                                kernel=None, _cache={})
        if "nowcast" in members:
            m = dataclasses.replace(m, extra_p50=model.extra_p50[:1],
                                    extra_p50_bases=("nowcast",))
        if "linear" in members:
            m = dataclasses.replace(m, linear=model.linear)
        if "kernel" in members:
            m = dataclasses.replace(m, kernel=model.kernel)
        _check_sum(m, load, weather, issue)


def test_intraday_ramp_is_attributed_exactly(load, weather, small_cfg):
    fc = dataclasses.replace(small_cfg.features, horizon=Horizon.INTRADAY)
    cfg = dataclasses.replace(small_cfg, features=fc)
    until = pd.Timestamp(load.index[-1]) - pd.Timedelta(days=3)
    m = train(load, weather, cfg, until=until)
    _check_sum(m, load, weather, until.floor("h") + pd.Timedelta(hours=3))


def test_baseline_rows_are_all_lags(model, load, weather):
    issue = pd.Timestamp(load.index[-1]).floor("D") - pd.Timedelta(days=2, hours=15)
    no_weather = weather.assign(t2m_c=np.nan, ssrd_wm2=np.nan)
    out, ex = _check_sum(model, load, no_weather, issue)
    assert out["is_baseline"].all()
    assert set(ex.loc[ex["contribution_mw"] != 0, "group"]) == {"lags"}


def test_feature_groups():
    fc = FeatureConfig(weather_cols=("t2m_c", "ssrd_wm2", "wind_speed_10m_ms", "rh2m_pct"),
                       known_cols=("holiday",))
    g = {n: explain.feature_group(n, fc.weather_cols, fc.known_cols) for n in (
        "t2m_c_hdd", "ssrd_wm2_day_max", "wind_speed_10m_ms_cube", "rh2m_pct_anom", "holiday",
        "is_bridge", "weekday", "load_lag_24h", "lead_h")}
    assert g == {"t2m_c_hdd": "temperature", "ssrd_wm2_day_max": "radiation",
                 "wind_speed_10m_ms_cube": "wind", "rh2m_pct_anom": "weather",
                 "holiday": "known", "is_bridge": "holidays", "weekday": "calendar",
                 "load_lag_24h": "lags", "lead_h": "lead"}
