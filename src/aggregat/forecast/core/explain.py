"""What each feature group contributes to a forecast's P50.

P50 is the weighted mean of its members (:meth:`ForecastModel.predict_p50`), each an additive
model of the features plus its base, so the attribution is exact member by member and the mean
keeps it exact:

- a LightGBM member: its SHAP values (``pred_contrib=True``, which sum to its prediction with the
  expected value), times the member's weight;
- the ridge member: coefficient x standardised value for every design column, a column going to
  the group of the feature it is built from (weekday indicators and day-of-year harmonics to
  "calendar", a hinge to its weather column), its intercept to "base";
- the kernel member (:mod:`aggregat.forecast.core.kernel`): its linear part as the ridge's, each
  cosine split over the features by integrated gradients from the training mean (exact: they
  sum to the member's prediction minus its value at the mean, which goes to "base");
- the members' bases (the 7-day level, the nowcast, the ridge under the tree of its residuals):
  "level", and the ridge part of a base like the ridge member itself.

Each member counts with its weight in the mean (the ridge members ramp in over the first hours
of lead), so contributions + ``base`` = P50 on every row, to rounding. Rows served by the weekly
baseline are "lags" entirely; the intraday blend with the day-ahead forecast and the portfolio
reconciliation add their own groups ("day_ahead_blend", "reconciliation") so the sum still equals
the published P50.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aggregat.forecast.core.features import (
    is_direction,
    is_radiation,
    is_temperature,
    is_wind_speed,
)
from aggregat.forecast.core.models import (
    RIDGE_FULL_LEAD_H,
    ForecastModel,
    p50_bases,
    predict_rows,
)

BASE = "base"
GROUPS = ("temperature", "radiation", "wind", "weather", "known", "calendar", "holidays",
          "lags", "level", "lead")
HOLIDAY_FEATURES = ("is_holiday", "is_bridge", "is_offday", "day_after_offday",
                    "day_before_offday", "day_after_holiday", "day_before_holiday",
                    "holidays_within_7d", "school_holiday")


def feature_group(name: str, weather_cols: tuple[str, ...], known_cols: tuple[str, ...]) -> str:
    """The group of a feature (one of :data:`GROUPS`)."""
    if name in known_cols:
        return "known"
    for col in sorted(weather_cols, key=len, reverse=True):  # t2m_c before t2m
        if name == col or name.startswith(col + "_"):
            if is_temperature(col):
                return "temperature"
            if is_radiation(col):
                return "radiation"
            if is_wind_speed(col) or is_direction(col):
                return "wind"
            return "weather"
    if name in HOLIDAY_FEATURES:
        return "holidays"
    if name.startswith("load_"):
        return "lags"
    if name == "lead_h":
        return "lead"
    return "calendar"


def p50_contributions(model: ForecastModel, feats: pd.DataFrame) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """(rows x features) contributions and the base value of each row, summing to the P50 of
    the model's members (before the baseline fallback of :func:`predict_frame`)."""
    import lightgbm as lgb

    names = model.feature_names
    X = feats[names].to_numpy(dtype=np.float32)
    n, n_feat = len(X), len(names)
    bases = p50_bases(feats, model.relative)
    contrib, base, level = np.zeros((n, n_feat)), np.zeros(n), np.zeros(n)
    count = np.ones(n)

    def tree(booster, w) -> None:
        nonlocal base
        c = booster.predict(X, pred_contrib=True)
        contrib[:] += w[:, None] * c[:, :n_feat]
        base = base + w * c[:, n_feat]

    one = np.ones(n)
    tree(model.booster(0.5), one)
    level += bases["level"]
    lin_terms, lin_icpt, lin = None, None, None
    if model.linear is not None:
        lin = model.linear.predict(X)
        lin_terms, lin_icpt = model.linear.terms(X)
    ramp = (np.clip(X[:, names.index("lead_h")] / RIDGE_FULL_LEAD_H, 0, 1)
            if "lead_h" in names else np.ones(n))
    if model.extra_p50:
        boosters = [lgb.Booster(model_str=t) for t in model.extra_p50]
        kinds = model.extra_p50_bases or ("level",) * len(model.extra_p50)
        for b, kind in zip(boosters, kinds, strict=True):
            w = ramp if kind == "linear_residual" else one
            tree(b, w)
            count = count + w
            if kind == "linear_residual":
                level += w * bases["level"]
                if lin_terms is not None:
                    ok = np.isfinite(lin)
                    contrib[:] += (w * ok)[:, None] * lin_terms
                    base = base + w * ok * lin_icpt
            else:
                level += w * bases[kind]
    if lin is not None:
        w = np.where(np.isfinite(lin), ramp, 0.0)
        contrib[:] += w[:, None] * lin_terms
        base = base + w * lin_icpt
        level += w * bases["level"]
        count = count + w
    if model.kernel is not None:
        k_terms, k_icpt = model.kernel.terms(X)
        contrib[:] += ramp[:, None] * k_terms
        base = base + ramp * k_icpt
        level += ramp * bases["level"]
        count = count + ramp
    return np.hstack([contrib, level[:, None]]) / count[:, None], base / count


def explain_frame(model: ForecastModel, feats: pd.DataFrame, out: pd.DataFrame) -> pd.DataFrame:
    """Long frame ``issue_time, valid_time, group, contribution_mw`` for the rows of ``out``
    (:func:`predict_frame` of ``feats``): per row the groups and ``base`` sum to its P50."""
    keys = out[["issue_time", "valid_time"]].reset_index(drop=True)
    groups = {g: np.zeros(len(out)) for g in (BASE, *GROUPS)}
    baseline = out["is_baseline"].to_numpy(dtype=bool)
    if not model.is_baseline and (~baseline).any():
        fc = model.config.features
        contrib, base = p50_contributions(model, feats.reset_index(drop=True))
        owners = [feature_group(n, fc.weather_cols, fc.known_cols) for n in model.feature_names]
        for j, g in enumerate([*owners, "level"]):
            groups[g] += np.where(baseline, 0.0, contrib[:, j])
        groups[BASE] += np.where(baseline, 0.0, base)
    groups["lags"] += np.where(baseline, out["p50_mw"].to_numpy(dtype=float), 0.0)
    wide = pd.concat([keys, pd.DataFrame(groups)], axis=1)
    return long_frame(wide)


def long_frame(wide: pd.DataFrame) -> pd.DataFrame:
    """``issue_time, valid_time`` + one column per group -> one row per (valid time, group)."""
    cols = [c for c in wide.columns if c not in ("issue_time", "valid_time")]
    return (wide.melt(id_vars=["issue_time", "valid_time"], value_vars=cols, var_name="group",
                      value_name="contribution_mw")
            .sort_values(["valid_time", "group"], kind="stable").reset_index(drop=True))


def add_group(explained: pd.DataFrame, group: str, before: pd.DataFrame, after: pd.DataFrame
              ) -> pd.DataFrame:
    """``explained`` plus ``after.p50_mw - before.p50_mw`` per valid time in ``group`` (added
    to what it holds: a blend or a reconciliation moved P50, the sum keeps equal to it)."""
    delta = (after.set_index("valid_time")["p50_mw"]
             - before.set_index("valid_time")["p50_mw"]).rename("contribution_mw")
    held = explained[explained["group"] == group].set_index("valid_time")["contribution_mw"]
    delta = delta.add(held, fill_value=0.0).rename("contribution_mw")
    rows = delta.reset_index().assign(group=group,
                                      issue_time=explained["issue_time"].iloc[0]
                                      if len(explained) else pd.NaT)
    rest = explained[explained["group"] != group]
    return (pd.concat([rest, rows[rest.columns]], ignore_index=True)
            .sort_values(["valid_time", "group"], kind="stable").reset_index(drop=True))


def predict_explained(model: ForecastModel, load: pd.Series | pd.DataFrame,
                      weather: pd.DataFrame | None, issue_time: pd.Timestamp,
                      extras: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`aggregat.forecast.core.models.predict` and its :func:`explain_frame`."""
    feats, out = predict_rows(model, load, weather, issue_time, extras)
    return out, explain_frame(model, feats, out)
