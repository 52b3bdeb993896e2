import numpy as np
import pytest

from aggregat.forecast.core import metrics


def test_point_metrics_on_known_arrays():
    y = np.array([10.0, 20.0, 30.0, np.nan])
    p = np.array([12.0, 18.0, 33.0, 5.0])
    assert metrics.mae(y, p) == pytest.approx(7 / 3)
    assert metrics.rmse(y, p) == pytest.approx(np.sqrt((4 + 4 + 9) / 3))
    assert metrics.nmae(y, p) == pytest.approx((7 / 3) / 20)
    assert metrics.mape(y, p) == pytest.approx((0.2 + 0.1 + 0.1) / 3)


def test_mape_skips_near_zero_loads():
    y = np.array([100.0, 0.5, -100.0])
    p = np.array([110.0, 5.0, -90.0])
    assert metrics.mape(y, p) == pytest.approx(0.1)


def test_pinball_coverage_skill():
    y = np.array([0.0, 10.0])
    assert metrics.pinball(y, np.array([5.0, 5.0]), 0.9) == pytest.approx((0.1 * 5 + 0.9 * 5) / 2)
    assert metrics.pinball(y, np.array([5.0, 5.0]), 0.1) == pytest.approx((0.9 * 5 + 0.1 * 5) / 2)
    lo, hi = np.array([-1.0, 11.0]), np.array([1.0, 12.0])
    assert metrics.coverage(y, lo, hi) == 0.5
    assert metrics.skill(50.0, 200.0) == 0.75
    assert np.isnan(metrics.skill(1.0, 0.0))


def test_scores_and_breakdown():
    import pandas as pd

    y = np.array([1.0, 2.0, 3.0, 4.0])
    s = metrics.scores(y, y - 1, y, y + 1, persistence=y + 2)
    assert s["mae"] == 0 and s["coverage_10_90"] == 1 and s["skill"] == 1
    assert s["mae_persistence"] == 2
    f = pd.DataFrame({"lead_h": [14, 14, 15, 15], "actual_mw": y, "p10_mw": y - 1,
                      "p50_mw": y + [0, 2, 0, 0], "p90_mw": y + 1})
    rows = metrics.by_lead(f)
    assert [r["lead_h"] for r in rows] == [14, 15]
    assert rows[0]["mae"] == 1.0 and rows[1]["mae"] == 0.0


def test_crps_from_quantiles_is_twice_the_mean_pinball():
    y = np.array([0.0, 10.0, 20.0, np.nan])
    q = {0.1: np.array([-2.0, 8.0, 21.0, 0.0]), 0.5: np.array([0.0, 12.0, 20.0, 0.0]),
         0.9: np.array([3.0, 13.0, 25.0, 0.0])}
    expected = 2 * np.mean([metrics.pinball(y, q[t], t) for t in (0.1, 0.5, 0.9)])
    assert metrics.crps(y, q) == pytest.approx(expected)
    # A sharp, exact forecast scores 0; a wrong one scores its absolute error (a point mass).
    assert metrics.crps(y, {t: y for t in q}) == 0
    assert metrics.crps(y, {t: y + 3 for t in q}) == pytest.approx(3.0)


def test_rcrps_divides_by_the_p1_p99_range_of_the_load():
    rng = np.random.default_rng(0)
    y = rng.normal(100.0, 10.0, 1000)
    s = metrics.scores(y, y - 5, y, y + 5)
    span = np.quantile(y, 0.99) - np.quantile(y, 0.01)
    assert s["crps"] == pytest.approx(2 * (0.1 * 5 + 0.1 * 5) / 3)
    assert s["rcrps"] == pytest.approx(s["crps"] / span)
    # A given range (the whole test period's, for per-lead rows) is used as given.
    assert metrics.scores(y, y - 5, y, y + 5, load_range=2.0)["rcrps"] == pytest.approx(
        s["crps"] / 2)


def test_breakdown_by_lead_scores_crps_against_the_whole_periods_range():
    import pandas as pd

    y = np.array([0.0, 100.0, 0.0, 100.0])
    f = pd.DataFrame({"lead_h": [14, 14, 15, 15], "actual_mw": y, "p10_mw": y - 1,
                      "p50_mw": y, "p90_mw": y + 1})
    rows = metrics.by_lead(f)
    span = np.quantile(y, 0.99) - np.quantile(y, 0.01)
    assert rows[0]["crps"] == pytest.approx(2 * 0.2 / 3)
    assert rows[0]["rcrps"] == pytest.approx(rows[0]["crps"] / span)
