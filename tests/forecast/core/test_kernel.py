import pickle

import numpy as np

from aggregat.forecast.core.kernel import MAX_ROWS, fit_kernel
from aggregat.forecast.core.linear import fit_linear

NAMES = ["t2m_c", "hour_local", "weekday", "noise"]


def rows(n_days: int, seed: int = 0):
    """Hourly rows: a load that bends with temperature (cooling above 20 C, more in the
    afternoon) and drops at weekends; the last fifth of the days is the calibration window."""
    rng = np.random.default_rng(seed)
    hour = np.tile(np.arange(24), n_days)
    day = np.repeat(np.arange(n_days), 24)
    temp = 18 + 8 * np.sin(day / 7.0) + 3 * np.sin(hour / 24 * 2 * np.pi) \
        + rng.normal(0, 1, len(day))
    X = np.column_stack([temp, hour, day % 7, rng.normal(0, 1, len(day))])
    y = (1 + np.sin(hour / 24 * np.pi)) * np.clip(temp - 20, 0, None) ** 1.5 \
        - 4 * (day % 7 >= 5) + rng.normal(0, 0.3, len(day))
    cal = day >= int(n_days * 0.8)
    return X, y, day, cal


def test_fits_a_smooth_non_linear_response_better_than_a_line():
    X, y, day, cal = rows(100)
    test = rows(30, seed=1)
    m = fit_kernel(X, y, NAMES, cal, np.ones(len(y)))
    line = fit_linear(X, y, NAMES, day)  # without hinges: a straight line per hour
    err = np.abs(m.predict(test[0]) - test[1]).mean()
    assert err < 0.5 * np.abs(line.predict(test[0]) - test[1]).mean()
    assert err < 0.25 * np.abs(test[1] - test[1].mean()).mean()


def test_same_inputs_same_member_and_the_seed_draws_the_projections():
    X, y, _, cal = rows(40)
    a, b = (fit_kernel(X, y, NAMES, cal, np.ones(len(y)), seed=3) for _ in range(2))
    assert a.digest() == b.digest()
    assert np.array_equal(a.predict(X), pickle.loads(pickle.dumps(a)).predict(X))
    assert fit_kernel(X, y, NAMES, cal, np.ones(len(y)), seed=4).digest() != a.digest()


def test_contributions_sum_to_the_prediction_and_follow_the_inputs():
    X, y, _, cal = rows(60)
    m = fit_kernel(X, y, NAMES, cal, np.ones(len(y)))
    terms, intercept = m.terms(X[:200])
    assert terms.shape == (200, len(NAMES))
    assert np.allclose(terms.sum(axis=1) + intercept, m.predict(X[:200]))
    # The load depends on temperature, hour and weekday, not on the noise column.
    share = np.abs(terms).mean(axis=0) / np.abs(terms).mean(axis=0).sum()
    assert share[NAMES.index("t2m_c")] > 0.3 and share[NAMES.index("noise")] < 0.05


def test_unknown_values_count_as_the_mean_and_long_histories_are_thinned():
    X, y, _, cal = rows(40)
    m = fit_kernel(X, y, NAMES, cal, np.ones(len(y)))
    gap = X[:5].copy()
    gap[:, 0] = np.nan
    at_mean = X[:5].copy()
    at_mean[:, 0] = m.mean[0]
    assert np.allclose(m.predict(gap), m.predict(at_mean))
    n = MAX_ROWS * 2 + 10
    big = np.resize(X, (n, X.shape[1]))
    assert fit_kernel(big, np.resize(y, n), NAMES, np.arange(n) > n * 0.8, np.ones(n)) is not None


def test_no_member_without_both_sides_of_the_window():
    X, y, _, cal = rows(20)
    assert fit_kernel(X, y, NAMES, np.zeros(len(y), bool), np.ones(len(y))) is None
    assert fit_kernel(X, y, NAMES, np.ones(len(y), bool), np.ones(len(y))) is None
