"""Intraday forecasts blended with the newest day-ahead forecast issued before them."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from aggregat.forecast.core import blend
from aggregat.forecast.core.backtest import run_backtest
from aggregat.forecast.core.blend import blend_with_day_ahead, day_ahead_weight

T = pd.Timestamp("2026-03-02T09:00Z")
H = pd.Timedelta(hours=1)


def _frame(issue, first_h, hours, level, baseline=False):
    valid = T + first_h * H + np.arange(hours) * H
    return pd.DataFrame({"issue_time": issue, "valid_time": valid,
                         "p10_mw": level - 1.0, "p50_mw": float(level), "p90_mw": level + 1.0,
                         "is_baseline": baseline})


def test_weight_ramps_from_zero_to_half():
    assert list(day_ahead_weight([0, 3, 6, 20])) == [0, 0.25, 0.5, 0.5]
    assert blend.MAX_WEIGHT == 0.5 and blend.RAMP_H == 6


def test_each_row_uses_the_newest_day_ahead_issued_before_it():
    intraday = _frame(T, 0, 12, 100.0)
    intraday.loc[11, "is_baseline"] = True
    old = _frame(T - 24 * H, 2, 6, 60.0)         # covers leads 2-7
    new = _frame(T - H, 5, 7, 80.0)              # newer, covers leads 5-11
    late = _frame(T + H, 0, 12, 0.0)             # issued after the intraday issue: unusable
    flagged = _frame(T - H / 2, 9, 1, 0.0, baseline=True)  # a baseline row is never blended in
    out, n = blend_with_day_ahead(intraday, pd.concat([late, new, flagged, old]))
    lead = np.arange(12)
    w = day_ahead_weight(lead)
    want = np.full(12, 100.0)
    want[2:5] = (1 - w[2:5]) * 100 + w[2:5] * 60     # only the old one covers 2-4
    want[5:11] = (1 - w[5:11]) * 100 + w[5:11] * 80  # the new one wins from 5 h
    want[11] = 100.0                                  # the intraday row is a baseline
    np.testing.assert_allclose(out["p50_mw"], want)
    np.testing.assert_allclose(out["p90_mw"] - out["p50_mw"], 1.0)
    assert n == 9 and list(out.index) == list(intraday.index)
    assert (intraday["p50_mw"] == 100).all()  # the input is not modified
    same, none = blend_with_day_ahead(intraday, None)
    assert none == 0 and same.equals(intraday)


def test_backtest_blends_the_day_ahead_backtest_as_production_does(load, weather, small_cfg,
                                                                   fcfg):
    intraday = dataclasses.replace(small_cfg, features=dataclasses.replace(
        fcfg, horizon="intraday", intraday_every_h=6, intraday_hours=36))
    day_ahead = run_backtest(load, weather, small_cfg, test_weeks=1)
    plain = run_backtest(load, weather, intraday, test_weeks=1)
    mixed = run_backtest(load, weather, intraday, test_weeks=1,
                         day_ahead=day_ahead.forecasts)
    want, n = blend_with_day_ahead(plain.forecasts.drop(columns="lead_h"), day_ahead.forecasts)
    assert n > 0 and mixed.report["protocol"]["day_ahead_blend"]["rows"] == n
    assert "day_ahead_blend" not in plain.report["protocol"]
    cols = ["p10_mw", "p50_mw", "p90_mw"]
    np.testing.assert_allclose(mixed.forecasts[cols].to_numpy(), want[cols].to_numpy())
    assert mixed.report["metrics"]["mae"] != pytest.approx(plain.report["metrics"]["mae"])
