import numpy as np
import pandas as pd

from aggregat.forecast.core.tuning import choose_tree_params

BASE = {"objective": "regression", "learning_rate": 0.2, "num_leaves": 31, "min_data_in_leaf": 1,
        "bagging_fraction": 1.0, "feature_fraction": 1.0, "lambda_l2": 0.0, "max_bin": 63,
        "num_threads": 1, "seed": 0, "deterministic": True, "force_col_wise": True,
        "verbose": -1}


def _problem(n_days: int = 60, per_day: int = 24, seed: int = 0):
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    n = n_days * per_day
    X = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    # A smooth signal plus heavy noise: deep trees fit the noise, stumps cannot fit the signal.
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2 + rng.normal(0, 1.0, n)
    issue_day = pd.Series(pd.date_range("2026-01-01", periods=n_days, freq="D", tz="UTC")
                          .repeat(per_day))
    days = issue_day.drop_duplicates().reset_index(drop=True)
    base = lgb.Dataset(X, y, free_raw_data=False, params=BASE).construct()

    def rows(mask, label):
        d = base.subset(np.flatnonzero(mask)).construct()
        d.set_label(label[mask])
        return d

    return rows, X, y, issue_day, days


def test_the_candidate_with_the_lowest_validation_mae_wins():
    rows, X, y, issue_day, days = _problem()
    cands = ({"num_leaves": 255, "min_data_in_leaf": 1, "min_sum_hessian_in_leaf": 0.0},
             {"num_leaves": 4, "min_data_in_leaf": 50})
    choice = choose_tree_params(rows, X, y, issue_day, days, window_days=10, folds=2,
                                base_params=BASE, max_rounds=200, patience=10, min_days=14,
                                candidates=cands)
    assert len(choice.scores) == 2
    assert choice.params == cands[int(np.argmin(choice.scores))] == cands[1]
    again = choose_tree_params(rows, X, y, issue_day, days, window_days=10, folds=2,
                               base_params=BASE, max_rounds=200, patience=10, min_days=14,
                               candidates=cands)
    assert again == choice


def test_too_short_a_history_keeps_the_first_candidate_untried():
    rows, X, y, issue_day, days = _problem(n_days=20)
    choice = choose_tree_params(rows, X, y, issue_day, days, window_days=10, folds=2,
                                base_params=BASE, max_rounds=50, patience=5, min_days=14,
                                candidates=({"num_leaves": 7}, {"num_leaves": 4}))
    assert choice.params == {"num_leaves": 7} and choice.scores == ()
