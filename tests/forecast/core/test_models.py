import dataclasses

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from aggregat.forecast.core.features import issue_time_for_day
from aggregat.forecast.core.models import _conformal_margin, predict, train

ISSUE = issue_time_for_day("2026-04-22", "Europe/Paris", 10)  # a Wednesday


@pytest.fixture(scope="module")
def model(load, weather, small_cfg):
    return train(load, weather, small_cfg, until=ISSUE)


def test_trained_model_predicts_quantiles(model, load, weather):
    assert not model.is_baseline
    out = predict(model, load, weather, ISSUE)
    assert list(out.columns) == ["issue_time", "valid_time", "p10_mw", "p50_mw", "p90_mw",
                                 "is_baseline", "model_version"]
    assert len(out) == 24 and not out["is_baseline"].any()
    assert (out["p10_mw"] <= out["p50_mw"]).all() and (out["p50_mw"] <= out["p90_mw"]).all()
    actual = load.reindex(pd.DatetimeIndex(out["valid_time"])).to_numpy()
    pers = load.reindex(pd.DatetimeIndex(out["valid_time"]) - pd.Timedelta(days=7)).to_numpy()
    assert np.mean(np.abs(out["p50_mw"] - actual)) < np.mean(np.abs(pers - actual))
    assert out["model_version"].iloc[0].startswith("lgbm-")


def test_predictions_ignore_future_load_and_late_weather(model, load, weather):
    base = predict(model, load, weather, ISSUE)
    res = pd.Timedelta(hours=1)
    future = load.copy()
    future[future.index + res > ISSUE] = -1e6
    pd.testing.assert_frame_equal(base, predict(model, future, weather, ISSUE))
    late = pd.concat([weather.assign(available_at=ISSUE - pd.Timedelta(days=1)),
                      weather.assign(available_at=ISSUE + pd.Timedelta(minutes=1),
                                     t2m_c=weather["t2m_c"] + 20)], ignore_index=True)
    pd.testing.assert_frame_equal(base, predict(model, load, late, ISSUE))


def test_training_ignores_data_after_until(load, weather, small_cfg):
    a = train(load, weather, small_cfg, until=ISSUE)
    future = load.copy()
    future[future.index + pd.Timedelta(hours=1) > ISSUE] *= 5
    b = train(future, weather, small_cfg, until=ISSUE)
    assert a.version == b.version


def test_the_model_does_not_depend_on_the_thread_counts(load, weather, small_cfg):
    """A Dask worker starts with OMP/OPENBLAS/MKL_NUM_THREADS=1 (its nanny sets them), a forked
    pool worker with a thread per core: the same data gives the same model and forecasts in
    both (issue 15: the ridge's coefficients followed the BLAS thread count)."""
    def trained_under(threads: int):
        with threadpool_limits(limits=threads):  # BLAS and OpenMP, as the variables set them
            assert {i["num_threads"] for i in threadpool_info()} == {threads}
            model = train(load, weather, small_cfg, until=ISSUE)
            return model, predict(model, load, weather, ISSUE)

    one, many = trained_under(1), trained_under(4)
    assert not one[0].is_baseline and one[0].linear is not None
    assert many[0].version == one[0].version
    pd.testing.assert_frame_equal(many[1], one[1], check_exact=True)


def test_baseline_when_history_is_short(load, weather, small_cfg):
    issue = issue_time_for_day("2026-03-20", "Europe/Paris", 10)  # < 14 training days
    m = train(load, weather, small_cfg, until=issue)
    assert m.is_baseline
    out = predict(m, load, weather, issue)
    assert out["is_baseline"].all()
    v = pd.DatetimeIndex(out["valid_time"])
    np.testing.assert_allclose(out["p50_mw"], load.reindex(v - pd.Timedelta(days=7)).to_numpy())
    assert (out["p10_mw"] < out["p50_mw"]).all() and (out["p90_mw"] > out["p50_mw"]).all()
    assert out["model_version"].iloc[0].startswith("baseline-")


def test_baseline_falls_back_to_two_weeks_and_when_weather_is_missing(model, load, weather):
    v_day = pd.date_range("2026-04-21 22:00", periods=24, freq="h", tz="UTC")
    holey = load.drop(v_day - pd.Timedelta(days=7))
    out = predict(model, holey, weather.loc[~weather["valid_time"].isin(v_day)], ISSUE)
    assert out["is_baseline"].all()
    np.testing.assert_allclose(out["p50_mw"], load.reindex(v_day - pd.Timedelta(days=14)))


def test_conformal_margin_is_a_finite_sample_quantile():
    scores = np.arange(1.0, 10.0)  # 9 scores: ceil(10 * 0.9) / 9 = 1 -> the max
    assert _conformal_margin(scores, 0.9) == 9.0
    assert _conformal_margin(np.arange(1.0, 100.0), 0.9) == 90.0


def test_quantile_models_use_their_own_learning_rate(model, small_cfg):
    def rate(text: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith("[learning_rate: "))
        return float(line.split(": ")[1].rstrip("]"))

    assert small_cfg.learning_rate != small_cfg.quantile_learning_rate
    assert rate(model.boosters[0.5]) == small_cfg.learning_rate
    assert rate(model.extra_p50[0]) == small_cfg.learning_rate
    q_rate = small_cfg.quantile_learning_rate
    assert rate(model.boosters[0.1]) == rate(model.boosters[0.9]) == q_rate


def test_p50_trees_bag_rows_by_index(model):
    # At a bagging fraction of 1/2 or less LightGBM copies the bagged rows every round; just
    # over 1/2 it indexes them (0.1 % more rows per round, less work).
    for text in (model.boosters[0.5], *model.extra_p50):
        line = next(x for x in text.splitlines() if x.startswith("[bagging_fraction: "))
        assert 0.5 < float(line.split(": ")[1].rstrip("]")) <= 0.501


def test_p50_is_the_mean_of_its_members_each_plus_its_base(model, load, weather, small_cfg):
    import dataclasses

    import lightgbm as lgb

    from aggregat.forecast.core.features import features
    from aggregat.forecast.core.models import p50_bases

    assert small_cfg.p50_members == ("level", "nowcast", "linear", "linear_residual", "kernel")
    assert model.relative and model.extra_p50_bases == ("nowcast", "linear_residual")
    assert model.linear is not None and model.linear.coefs
    assert model.kernel is not None
    f = features(load, weather, ISSUE, small_cfg.features)
    X = f[model.feature_names].to_numpy(dtype=np.float32)
    bases = p50_bases(f, True)
    assert np.allclose(bases["level"], f["load_mean_7d"])
    assert np.allclose(bases["nowcast"], f["load_nowcast"])
    ridge = model.linear.predict(X) + bases["level"]
    assert np.isfinite(ridge).all()
    members = [model.booster(0.5).predict(X) + bases["level"],
               lgb.Booster(model_str=model.extra_p50[0]).predict(X) + bases["nowcast"],
               ridge,
               # A tree on what the ridge misses: the ridge's prediction is its base.
               lgb.Booster(model_str=model.extra_p50[1]).predict(X) + ridge,
               model.kernel.predict(X) + bases["level"]]
    out = predict(model, load, weather, ISSUE)
    # P50 is the members' mean even outside the quantile trees' band: the band widens to it.
    assert np.allclose(out["p50_mw"], np.mean(members, axis=0))
    assert (out["p10_mw"] <= out["p50_mw"]).all() and (out["p50_mw"] <= out["p90_mw"]).all()
    one = train(load, weather, dataclasses.replace(small_cfg, p50_members=("level",)),
                until=ISSUE)
    assert one.extra_p50 == () and one.version != model.version
    assert np.allclose(one.predict_p50(X, bases), members[0] - bases["level"]
                       + one.booster(0.5).predict(X) - model.booster(0.5).predict(X)
                       + bases["level"])


def test_members_built_on_the_ridge_fade_out_towards_lead_zero(model, load, weather,
                                                               small_cfg):
    import lightgbm as lgb

    from aggregat.forecast.core.features import features
    from aggregat.forecast.core.models import RIDGE_FULL_LEAD_H, p50_bases

    f = features(load, weather, ISSUE, small_cfg.features)
    bases = p50_bases(f, True)
    X = f[model.feature_names].to_numpy(dtype=np.float32)
    lead = model.feature_names.index("lead_h")

    def members(X):
        ridge = model.linear.predict(X) + bases["level"]
        extra = [lgb.Booster(model_str=t).predict(X) for t in model.extra_p50]
        return (model.booster(0.5).predict(X) + bases["level"], extra[0] + bases["nowcast"],
                ridge, extra[1] + ridge, model.kernel.predict(X) + bases["level"])

    X[:, lead] = 0.0  # the trees alone
    level, nowcast, _, _, _ = members(X)
    assert np.allclose(model.predict_p50(X, bases), (level + nowcast) / 2)
    X[:, lead] = RIDGE_FULL_LEAD_H / 2  # the ridge's two members and the kernel at half weight
    level, nowcast, ridge, residual, kernel = members(X)
    assert np.allclose(model.predict_p50(X, bases),
                       (level + nowcast + (ridge + residual + kernel) / 2) / 3.5)


def test_a_model_pickled_before_the_linear_member_still_predicts(model, load, weather):
    import pickle

    state = model.__getstate__()
    state.pop("kernel")  # what a registry entry written by older code holds: no kernel, ...
    state.pop("linear")  # ... no ridge, ...
    state["extra_p50"], state["extra_p50_bases"] = state["extra_p50"][:1], ("nowcast",)  # ...
    # ... and no tree on its residuals
    old = object.__new__(type(model))
    old.__dict__.update(pickle.loads(pickle.dumps(state)))
    out = predict(old, load, weather, ISSUE)
    assert out["p50_mw"].notna().all() and old.linear is None and old.kernel is None
    assert old.version != model.version


def test_the_ridge_learns_with_seasonal_row_weights(load, weather, small_cfg, monkeypatch):
    # Every training row reaches the ridge with its seasonal weight (forecast/core/weights.py),
    # the trees without: the weights are all 1 on a history shorter than RECENT_DAYS.
    from aggregat.forecast.core import linear, models, weights

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("row_weight", args[5] if len(args) > 5 else None))
        return linear.fit_linear(*args, **kwargs)

    monkeypatch.setattr(models, "fit_linear", spy)
    monkeypatch.setattr(weights, "RECENT_DAYS", 7.0)  # the test history is a few weeks
    monkeypatch.setattr(weights, "FADE_DAYS", 7.0)
    train(load, weather, small_cfg, until=ISSUE)
    (w,) = seen
    assert w is not None and w.min() < 1 and w.max() == 1


def _param(text: str, name: str) -> str:
    line = next(x for x in text.splitlines() if x.startswith(f"[{name}: "))
    return line.split(": ")[1].rstrip("]")


def test_p50_trees_build_histograms_row_wise_the_quantiles_column_wise(model):
    # P50's bag is indexed (rows stay where they are: a row's bins are contiguous row-wise),
    # P10/P90's is copied each round (column-wise scans it faster); chosen, not auto-tested.
    for text in (model.boosters[0.5], *model.extra_p50):
        assert (_param(text, "force_row_wise"), _param(text, "force_col_wise")) == ("1", "0")
    for q in (0.1, 0.9):
        text = model.boosters[q]
        assert (_param(text, "force_row_wise"), _param(text, "force_col_wise")) == ("0", "1")


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_row_wise_and_column_wise_histograms_grow_the_same_trees(load, weather, small_cfg, q):
    # What lets each model take the faster layout: the trees (and so the forecasts) are the same.
    import lightgbm as lgb

    from aggregat.forecast.core.features import (
        build_features,
        feature_names,
        prepare_load,
        prepare_weather,
    )
    from aggregat.forecast.core.models import _params, training_issues

    fc = small_cfg.features
    s = prepare_load(load)
    res = s.index[1] - s.index[0]
    w = prepare_weather(weather, [*fc.weather_cols, *fc.known_cols], res)
    feats = build_features(s, w, training_issues(s, fc, ISSUE, res), fc, res)
    y = s.reindex(pd.DatetimeIndex(feats["valid_time"])).to_numpy(dtype=float)
    X = feats[feature_names(feats)].to_numpy(dtype=np.float32)[np.isfinite(y)]
    y = y[np.isfinite(y)]

    def trees(row_wise: bool) -> str:
        params = {**_params(small_cfg, q), "force_row_wise": row_wise,
                  "force_col_wise": not row_wise}
        text = lgb.train(params, lgb.Dataset(X, y), num_boost_round=30).model_to_string()
        return text[:text.index("parameters:")]

    assert trees(True) == trees(False)


@pytest.mark.parametrize("share, quantile_fits", [(1.0, 4), (0.0, 6)])
def test_quantile_trees_early_stopped_on_nearly_every_row_are_kept(
        load, weather, small_cfg, monkeypatch, share, quantile_fits):
    # With a calibration window of at most KEEP_QUANTILE_FIT_MAX_CAL_SHARE of the rows, P10/P90
    # are the trees early-stopped before it (the ones the margins were measured on): fitted
    # twice each (early stopping, the older calibration window) instead of three times.
    import lightgbm as lgb

    from aggregat.forecast.core import models

    fits, real_train = [], lgb.train

    def spy(params, *args, **kwargs):
        fits.append(params["objective"])
        return real_train(params, *args, **kwargs)

    monkeypatch.setattr(lgb, "train", spy)
    monkeypatch.setattr(models, "KEEP_QUANTILE_FIT_MAX_CAL_SHARE", share)
    cfg = dataclasses.replace(small_cfg, min_rounds=1)  # the best round is within the fit
    m = train(load, weather, cfg, until=ISSUE)
    assert fits.count("quantile") == quantile_fits
    # P50 as before: level and ridge-residual trees early-stopped then refitted, nowcast fitted
    assert fits.count(cfg.p50_objective) == 5
    lo, hi = m.booster(0.1), m.booster(0.9)
    assert 1 <= lo.num_trees() <= cfg.max_rounds and 1 <= hi.num_trees() <= cfg.max_rounds
    out = predict(m, load, weather, ISSUE)
    assert (out["p10_mw"] <= out["p50_mw"]).all() and (out["p50_mw"] <= out["p90_mw"]).all()
