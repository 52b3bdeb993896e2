"""LightGBM settings of the P50 trees chosen per training by time-series cross-validation.

Each candidate is fitted on the issue days before a validation window, early-stopped on that
window and scored by the MAE of its best round there (P50 is scored by MAE); the windows are the
last ``folds`` blocks of ``window_days`` issue days of the training data. The candidate with the
lowest mean MAE is kept. Nothing here sees data after the training cut-off, so the choice is
redone at every retrain and no setting is fixed per data set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Candidates for the P50 trees (overrides of ModelConfig's settings; {} = the defaults).
TREE_CANDIDATES: tuple[dict, ...] = (
    {},
    {"num_leaves": 15, "min_data_in_leaf": 100},
    {"num_leaves": 63},
    {"feature_fraction": 0.5, "lambda_l2": 10.0},
)


@dataclass(frozen=True)
class TreeChoice:
    """The chosen overrides and every candidate's mean validation MAE (same order)."""

    params: dict
    scores: tuple[float, ...]


def choose_tree_params(rows: Callable[[np.ndarray, np.ndarray], object], X: np.ndarray,
                       target: np.ndarray, issue_day: pd.Series, days: pd.Series,
                       window_days: int, folds: int, base_params: dict, max_rounds: int,
                       patience: int, min_days: int,
                       candidates: Sequence[dict] = TREE_CANDIDATES) -> TreeChoice:
    """The candidate whose early-stopped fits score the lowest mean MAE over the last ``folds``
    windows of ``window_days`` issue days (each fitted on the days before it; folds leaving
    fewer than ``min_days`` training days are skipped). ``rows(mask, label)`` gives the binned
    LightGBM dataset of those rows; ``base_params`` the P50 trees' parameters."""
    import lightgbm as lgb

    windows = []
    for k in range(folds):
        win = days.iloc[len(days) - (k + 1) * window_days:len(days) - k * window_days]
        if len(days) - (k + 1) * window_days < min_days or win.empty:
            break
        windows.append(((issue_day < win.iloc[0]).to_numpy(), issue_day.isin(win).to_numpy()))
    if not windows or len(candidates) < 2:
        return TreeChoice(dict(candidates[0]) if candidates else {}, ())
    scores = []
    for cand in candidates:
        params = {**base_params, **cand, "metric": "l1"}
        maes = []
        for before, inside in windows:
            b = lgb.train(params, rows(before, target), num_boost_round=max_rounds,
                          valid_sets=[rows(inside, target)],
                          callbacks=[lgb.early_stopping(patience, verbose=False)])
            pred = b.predict(X[inside], num_iteration=b.best_iteration)
            maes.append(float(np.mean(np.abs(pred - target[inside]))))
        scores.append(float(np.mean(maes)))
    return TreeChoice(dict(candidates[int(np.argmin(scores))]), tuple(scores))
