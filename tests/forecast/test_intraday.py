"""The intraday horizon: an issue every few hours for the next 36 h, from the core to the CLI."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aggregat.cli.main import app
from aggregat.errors import InputError
from aggregat.forecast.core.backtest import run_backtest
from aggregat.forecast.core.features import (
    FeatureConfig,
    build_features,
    features,
    issue_schedule,
    prepare_load,
    prepare_weather,
)
from aggregat.forecast.core.models import predict, train, training_issues

ISSUE = pd.Timestamp("2026-04-19T08:00Z")  # 10:00 Paris


@pytest.fixture(scope="module")
def icfg(fcfg) -> FeatureConfig:
    return dataclasses.replace(fcfg, horizon="intraday", intraday_every_h=6,
                               intraday_hours=36)


def test_schedule_is_every_n_hours_aligned_on_the_issue_hour_in_local_time(icfg):
    # Across the spring DST change (29 March 2026): 04, 10, 16, 22 h local every day.
    t = issue_schedule(pd.Timestamp("2026-03-28T00:00Z"), pd.Timestamp("2026-03-31T00:00Z"),
                       icfg)
    local = t.tz_convert("Europe/Paris")
    assert sorted(set(local.hour)) == [4, 10, 16, 22]
    assert len(t) == 12
    day_ahead = issue_schedule(t[0], t[-1], dataclasses.replace(icfg, horizon="day-ahead"))
    assert set(day_ahead.tz_convert("Europe/Paris").hour) == {10}
    with pytest.raises(InputError, match="horizon 'weekly'"):
        FeatureConfig(horizon="weekly")
    with pytest.raises(InputError, match="every_h"):
        FeatureConfig(horizon="intraday", intraday_every_h=0)


def test_intraday_rows_cover_the_next_36_hours_without_look_ahead(load, weather, icfg):
    f = features(load, weather, ISSUE, icfg)
    assert len(f) == 36
    assert f["valid_time"].iloc[0] == ISSUE and f["lead_h"].tolist() == list(range(36))
    # The first hours know the last observed value and how far it is from its usual level.
    res = pd.Timedelta(hours=1)
    last = load[load.index + res <= ISSUE].iloc[-1]
    assert (f["load_last"] == last).all()
    faded = f["load_last_dev_faded"].abs().to_numpy()
    assert faded[0] > faded[-1] > 0
    moved = load.copy()
    moved[moved.index + res > ISSUE] *= 3
    w2 = weather.copy()
    w2.loc[w2["valid_time"] > ISSUE + pd.Timedelta(hours=40), "t2m_c"] += 20
    pd.testing.assert_frame_equal(f, features(moved, w2, ISSUE, icfg))


def test_batch_features_equal_one_issue_at_a_time(load, weather, icfg):
    s = prepare_load(load)
    res = s.index[1] - s.index[0]
    w = prepare_weather(weather, ["t2m_c", "ssrd_wm2", "holiday"], res)
    issues = issue_schedule(ISSUE - pd.Timedelta(hours=18), ISSUE, icfg)
    batch = build_features(s, w, issues, icfg, res)
    for t in issues:
        one = features(load, weather, t, icfg).reset_index(drop=True)
        got = batch[batch["issue_time"] == t].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, one)


def test_training_keeps_recent_issues_and_one_a_day_before(load, icfg):
    s = prepare_load(load)
    until = s.index[-1]
    issues = training_issues(s, dataclasses.replace(icfg), until, pd.Timedelta(hours=1))
    assert issues[-1] + pd.Timedelta(hours=36) <= until
    per_day = pd.Series(1, index=issues.tz_convert("Europe/Paris").date).groupby(level=0).sum()
    assert per_day.max() == 4  # the last 8 weeks: every issue ...
    thin = dataclasses.replace(icfg)
    import aggregat.forecast.core.models as models

    old = models.INTRADAY_DENSE_DAYS
    try:
        models.INTRADAY_DENSE_DAYS = 10  # ... before them: one issue a day, at issue_hour
        sparse = training_issues(s, thin, until, pd.Timedelta(hours=1))
    finally:
        models.INTRADAY_DENSE_DAYS = old
    early = sparse[sparse < until - pd.Timedelta(days=13)]
    assert len(early) and set(early.tz_convert("Europe/Paris").hour) == {10}


def test_intraday_backtest_scores_every_lead(load, weather, small_cfg, icfg):
    cfg = dataclasses.replace(small_cfg, features=icfg)
    r = run_backtest(load, weather, cfg, test_weeks=1)
    rep, f = r.report, r.forecasts
    assert rep["protocol"]["horizon"] == "intraday" and rep["protocol"]["every_h"] == 6
    assert f["lead_h"].min() == 0 and f["lead_h"].max() == 35
    assert rep["protocol"]["issues"] == f["issue_time"].nunique() >= 20
    assert f.groupby("issue_time").size().eq(36).all()
    assert f["actual_mw"].notna().all()
    assert rep["metrics"]["mae"] < rep["metrics"]["mae_persistence"]
    leads = {x["lead_h"]: x["mae"] for x in rep["by_lead_h"]}
    # The first hours use the last observed value: better than a day and a half ahead.
    assert np.mean([leads[h] for h in range(3)]) < np.mean([leads[h] for h in range(30, 36)])


def test_trained_intraday_model_predicts_its_window(load, weather, small_cfg, icfg):
    model = train(load, weather, dataclasses.replace(small_cfg, features=icfg), until=ISSUE)
    out = predict(model, load, weather, ISSUE)
    assert len(out) == 36 and out["valid_time"].iloc[0] == ISSUE
    assert (out["p10_mw"] <= out["p50_mw"]).all() and (out["p50_mw"] <= out["p90_mw"]).all()
    # Conformal margins per 6 h of lead, used row by row.
    assert [b[0] for b in model.lead_margins] == [0, 6, 12, 18, 24, 30]
    assert len({(lo, hi) for _, lo, hi in model.lead_margins}) > 1
    flat = dataclasses.replace(model, lead_margins=(), _cache={})
    wide = predict(flat, load, weather, ISSUE)
    assert (wide["p50_mw"] == out["p50_mw"]).all()
    changed = (wide["p90_mw"] - wide["p10_mw"] - out["p90_mw"] + out["p10_mw"]).abs() > 1e-9
    assert changed.any() and flat.version != model.version


def test_cli_backtest_intraday_and_bad_horizon(tmp_path, synth):
    df = synth.rename(columns={"time": "Time", "load_mw": "Demand"})
    df["Time"] = df["Time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    df.to_csv(tmp_path / "in.csv", index=False)
    args = ["model", "backtest", "--csv", str(tmp_path / "in.csv"), "--time-col", "Time",
            "--load-col", "Demand", "--weather-cols", "t2m_c", "--known-cols", "holiday",
            "--test-weeks", "1", "--out", str(tmp_path / "bt")]
    res = CliRunner().invoke(app, [*args, "--horizon", "intraday", "--every-h", "12"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "bt" / "report.json").read_text())
    assert rep["protocol"]["horizon"] == "intraday" and rep["protocol"]["every_h"] == 12
    assert {x["lead_h"] for x in rep["by_lead_h"]} == set(range(36))
    # Blended with the day-ahead backtest's forecasts (run first), as production does.
    assert rep["protocol"]["day_ahead_blend"]["rows"] > 0
    assert rep["day_ahead"]["metrics"]["n"] == 7 * 24
    bad = subprocess.run([sys.executable, "-m", "aggregat.cli.main", *args, "--horizon",
                          "weekly"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2, bad.stderr
    err = bad.stderr.strip().splitlines()
    assert len(err) == 1 and "--horizon 'weekly'" in err[0], bad.stderr
