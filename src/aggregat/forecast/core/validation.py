"""Validation and promotion of a newly trained model (the registry's gate).

A candidate is fitted on all but the last ``validation_days`` and forecasts them out of sample
(:func:`fit_and_validate`); the current model forecasts the same days it was not fitted on
(:func:`unseen_issues`, :func:`forecast_issues`); :func:`promotion_rule` decides.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from aggregat.errors import InputError, ModelError
from aggregat.forecast.core import metrics
from aggregat.forecast.core.features import build_features, prepare_load, prepare_weather
from aggregat.forecast.core.models import (
    ForecastModel,
    ModelConfig,
    fit_frame,
    persistence_errors,
    predict_frame,
    training_issues,
)

MIN_COMPARE_DAYS = 3  # fewer unseen validation days: no fair comparison, the current model stays


@dataclasses.dataclass
class FitResult:
    """The model fitted on all data, and the forecasts of the same recipe fitted without the
    last ``validation_days`` days (out of sample) on those days."""

    model: ForecastModel
    val_pred: pd.DataFrame
    validation_issues: pd.DatetimeIndex


def validation_scores(pred: pd.DataFrame | None, load: pd.Series) -> dict[str, float]:
    """The metrics of forecasts ``pred`` against ``load`` (persistence: a week before)."""
    if pred is None or pred.empty:
        return {}
    valid = pd.DatetimeIndex(pred["valid_time"])
    y = load.reindex(valid).to_numpy(dtype=float)
    pers = load.reindex(valid - pd.Timedelta(days=7)).to_numpy(dtype=float)
    sc = metrics.scores(y, pred["p10_mw"], pred["p50_mw"], pred["p90_mw"], pers)
    return {k: (float(v) if v is not None else float("nan")) for k, v in sc.items()}


def fit_and_validate(load: pd.Series, weather: pd.DataFrame, cfg: ModelConfig,
                     validation_days: int, extras: pd.DataFrame | None = None) -> FitResult:
    """Features once for every fully observed day; a candidate fitted before the validation
    window forecasts it; then the model fitted on everything (as the core's ``train``)."""
    fc = cfg.features
    s = prepare_load(load)
    res = s.index[1] - s.index[0]
    until = s.dropna().index[-1] + res
    w = prepare_weather(weather, [*fc.weather_cols, *fc.known_cols], res)
    w = w[w["available_at"] <= until]
    issues = training_issues(s, fc, until, res)
    if not len(issues):
        raise ModelError(f"training: load from {s.index[0]:%Y-%m-%d} to {until:%Y-%m-%d} is "
                         "shorter than 10 days; import more load history")
    feats = build_features(s, w, issues, fc, res, extras)
    valid = pd.DatetimeIndex(feats["valid_time"])
    y = s.reindex(valid).to_numpy(dtype=float)
    # The last ``validation_days`` (at most a quarter of the history), in days: intraday has
    # several issues a day.
    span = min(pd.Timedelta(days=validation_days), (issues[-1] - issues[0]) / 4)
    val_issues = issues[issues > issues[-1] - span] if span >= pd.Timedelta(days=1) else (
        pd.DatetimeIndex([], tz="UTC"))
    n_val = len(val_issues)
    val_pred = pd.DataFrame()
    if n_val:
        cutoff = val_issues[0]
        fit_rows = ((valid + res) <= cutoff) & (feats["issue_time"] < cutoff).to_numpy()
        cand = fit_frame(feats.loc[fit_rows], y[fit_rows], cfg, res,
                         persistence_errors(s[s.index + res <= cutoff]))
        rows = feats["issue_time"].isin(val_issues).to_numpy()
        val_pred = predict_frame(cand, feats.loc[rows])
    model = fit_frame(feats, y, cfg, res, persistence_errors(s))
    return FitResult(model, val_pred, val_issues)


def forecast_issues(model: ForecastModel, load: pd.Series, weather: pd.DataFrame,
                    issues: pd.DatetimeIndex, extras: pd.DataFrame | None = None
                    ) -> pd.DataFrame | None:
    """Day-ahead forecasts of an existing ``model`` at ``issues`` (None when it cannot serve
    them, e.g. a different load resolution)."""
    if not len(issues):
        return None
    fc = model.config.features
    try:
        s = prepare_load(load, model.resolution)
        w = prepare_weather(weather, [*fc.weather_cols, *fc.known_cols], model.resolution)
        feats = build_features(s, w, issues, fc, model.resolution, extras)
        return predict_frame(model, feats)
    except (InputError, KeyError, ValueError):
        return None


def unseen_issues(pred: pd.DataFrame, model: ForecastModel | None) -> pd.DatetimeIndex:
    """Issues of ``pred`` whose whole target day is after the data ``model`` was fitted on:
    comparing on days a model was trained on would always favour it."""
    if pred.empty:
        return pd.DatetimeIndex([], tz="UTC")
    first = pred.groupby("issue_time")["valid_time"].min()
    seen_until = getattr(model, "data_end", None) if model is not None else None
    if seen_until is not None:
        first = first[first > seen_until]
    return pd.DatetimeIndex(first.index)


def promotion_rule(current: str | None, old_error: str | None, n_days: int, new_mae: float,
               old_mae: float, margin: float) -> tuple[bool, str]:
    """The promotion rule: the first model; or one better than the current model by ``margin``
    (relative MAE) on at least MIN_COMPARE_DAYS recent days neither was fitted on."""
    if current is None:
        return True, "first model of this target"
    if old_error is not None:
        return True, f"current model {current} is unusable ({old_error})"
    if n_days < MIN_COMPARE_DAYS:
        return False, (f"only {n_days} validation day(s) after the data of current model "
                       f"{current} (need {MIN_COMPARE_DAYS}); kept it")
    if not np.isfinite(new_mae):
        return False, "no validation data to compare with the current model"
    if not np.isfinite(old_mae):
        return True, f"current model {current} cannot forecast the validation days"
    if new_mae <= old_mae * (1.0 - margin):
        return True, (f"MAE {new_mae:.4g} beats current {old_mae:.4g} by >= {margin:.0%} on "
                      f"{n_days} days")
    return False, (f"MAE {new_mae:.4g} not better than current {old_mae:.4g} by {margin:.0%} "
                   f"on {n_days} days; kept {current}")
