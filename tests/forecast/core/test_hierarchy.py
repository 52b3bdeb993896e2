"""Reconciled forecasts are coherent, and the method is chosen on past forecasts only."""

from __future__ import annotations

import numpy as np
import pytest

from aggregat.errors import ConfigError
from aggregat.forecast.core import hierarchy as h

PARENTS = {"portfolio": None, "north": "portfolio", "a": "north", "b": "north",
           "c": "portfolio"}


def test_summing_matrix_and_levels():
    hy = h.Hierarchy.from_parents(PARENTS)
    assert hy.nodes == ("portfolio", "north", "a", "b", "c") and hy.leaves == ("a", "b", "c")
    assert hy.S.tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert [hy.level(n) for n in hy.nodes] == [0, 1, 2, 2, 1]
    assert hy.children("north") == ["a", "b"]


def test_unknown_parent_and_cycles_are_named():
    with pytest.raises(ConfigError, match="'a': parent 'nope' is not a configured target"):
        h.Hierarchy.from_parents({"a": "nope"})
    with pytest.raises(ConfigError, match="'a': its parents form a cycle"):
        h.Hierarchy.from_parents({"a": "b", "b": "a"})


def _world(seed=0, n=400):
    """Leaves with noisy base forecasts, a parent forecast far better than their sum."""
    rng = np.random.default_rng(seed)
    hy = h.Hierarchy.from_parents(PARENTS)
    leaves = 50 + rng.normal(0, 5, (n, 3)).cumsum(axis=0) * 0.1
    actual = leaves @ hy.S.T
    noise = rng.normal(0, 1, (n, 5)) * np.array([0.5, 4, 4, 4, 4])
    common = rng.normal(0, 3, (n, 1))  # leaves err together (a shared weather error)
    noise[:, 1:] += common
    return hy, actual + noise, actual


@pytest.mark.parametrize("method", h.METHODS)
def test_every_method_is_coherent(method):
    hy, base, actual = _world()
    P = h.projection(hy.S, method, actual[:200] - base[:200])
    rec = h.reconcile(base, P)
    assert np.allclose(rec[:, 0], rec[:, 1] + rec[:, 4])  # portfolio = north + c
    assert np.allclose(rec[:, 1], rec[:, 2] + rec[:, 3])  # north = a + b
    if method == "bottom_up":
        assert np.allclose(rec[:, 2:], base[:, 2:])
    coherent = actual @ P.T  # coherent inputs stay as they are
    assert np.allclose(coherent, actual)


def test_mint_wins_when_the_parent_forecast_is_better_and_is_chosen():
    hy, base, actual = _world()
    method, scores = h.choose_method(base, actual, hy.S)
    assert method == "mint_shrink"
    assert scores["mint_shrink"] < scores["bottom_up"] and scores["mint_shrink"] < scores["base"]
    W, lam = h.shrunk_covariance(actual[:200] - base[:200])
    assert 0 <= lam <= 1 and np.allclose(W, W.T)


def test_too_few_past_forecasts_fall_back_to_bottom_up():
    hy, base, actual = _world(n=5)
    assert h.choose_method(base, actual, hy.S) == ("bottom_up", {})


def test_backtest_reconciles_week_by_week_on_earlier_weeks_only():
    import pandas as pd

    from aggregat.forecast.portfolio import reconcile_backtests

    hy, base, actual = _world(n=24 * 28)
    valid = pd.date_range("2026-01-01", periods=len(base), freq="h", tz="UTC")
    issue = valid.floor("D") - pd.Timedelta(hours=14)
    frames = {n: pd.DataFrame({"issue_time": issue, "valid_time": valid,
                               "p50_mw": base[:, i], "actual_mw": actual[:, i]})
              for i, n in enumerate(hy.nodes)}
    report, out = reconcile_backtests(hy, frames)
    assert [m["method"] for m in report["methods"]][0] == "bottom_up"  # nothing before week 0
    assert report["methods"][-1]["method"] == "mint_shrink" and report["coherent"]
    assert report["mae_after"]["level 2"] < report["mae_before"]["level 2"]
    assert "p50_reconciled_mw" in out["a"] and len(out["a"]) == len(base)
