import pickle

import numpy as np
import pytest

from aggregat.errors import ModelError
from aggregat.forecast.core.linear import CLIP_SD, fit_linear
from aggregat.forecast.core.models import check_members

NAMES = ["t2m_c", "hour_local", "weekday", "day_of_year", "noise"]


def rows(n_days: int, seed: int = 0):
    """Hourly rows of n_days: load = per-hour slope x cooling above 20 C + weekday effect."""
    rng = np.random.default_rng(seed)
    hour = np.tile(np.arange(24), n_days)
    day = np.repeat(np.arange(n_days), 24)
    temp = (15 + 10 * np.sin(day / 9.0) + 3 * np.sin(hour / 24 * 2 * np.pi)
            + rng.normal(0, 1, len(day)))
    X = np.column_stack([temp, hour, day % 7, day % 365 + 1, rng.normal(0, 1, len(day))])
    y = (1 + hour / 12) * np.clip(temp - 20, 0, None) + 5 * (day % 7 >= 5)
    return X, y, day


def test_fits_a_non_linear_response_per_hour():
    X, y, day = rows(120)
    m = fit_linear(X, y + np.random.default_rng(1).normal(0, 0.1, len(y)), NAMES, day,
                   weather_cols=("t2m_c",))
    # The slope changes with the hour: one regression per hour cross-validates best.
    assert m.hours_per_group == 1 and sorted(m.coefs) == list(range(24))
    Xt, yt, _ = rows(30, seed=2)
    err = np.abs(m.predict(Xt) - yt)
    assert np.mean(err) < 0.15 * np.mean(np.abs(yt - yt.mean()))
    # Without hinges (the temperature not declared as weather) a straight line fits worse.
    flat = fit_linear(X, y, NAMES, day)
    assert np.mean(np.abs(flat.predict(Xt) - yt)) > 2 * np.mean(err)


def test_penalty_follows_the_signal():
    X, y, day = rows(100)
    noise = np.random.default_rng(3).normal(0, 1, len(y))
    pure_noise = fit_linear(X, noise, NAMES, day, ("t2m_c",))
    signal = fit_linear(X, y, NAMES, day, ("t2m_c",))
    assert np.median(list(pure_noise.alphas.values())) > 100 * np.median(
        list(signal.alphas.values()))
    # Shrunk to the mean: a noise fit predicts almost a constant.
    assert np.std(pure_noise.predict(X)) < 0.3


def test_unknown_and_extreme_values_stay_bounded():
    X, y, day = rows(60)
    m = fit_linear(X, y, NAMES, day, ("t2m_c",))
    probe = X[:24].copy()
    probe[:, 0] = np.nan
    assert np.isfinite(m.predict(probe)).all()  # unknown = the training mean
    hot = X[:24].copy()
    hot[:, 0] = 1e6
    capped = X[:24].copy()
    capped[:, 0] = m.mean[0] + CLIP_SD * m.scale[0]
    np.testing.assert_allclose(m.predict(hot), m.predict(capped))


def test_a_response_shared_by_all_hours_is_pooled_on_short_histories():
    X, y, day = rows(15)
    y = np.clip(X[:, 0] - 20, 0, None) + np.random.default_rng(4).normal(0, 0.3, len(y))
    m = fit_linear(X, y, NAMES, day, ("t2m_c",))
    assert m.hours_per_group == 24 and list(m.coefs) == [0]
    assert np.isfinite(m.predict(X)).all()


def test_recent_days_weigh_more_when_the_response_drifts(monkeypatch):
    # The response to the "noise" column (think: wind on a net load) doubles over the history,
    # as when a wind farm is connected; the next days follow the newest response.
    X, _, day = rows(90, seed=5)
    slope = np.where(day < 45, -1.0, -2.0)
    y = slope * X[:, 4] + np.random.default_rng(6).normal(0, 0.2, len(day))
    Xt = X[-24:].copy()
    Xt[:, 4] = np.linspace(-2, 2, 24)
    expected = -2.0 * Xt[:, 4]

    def error(halflife):
        monkeypatch.setattr("aggregat.forecast.core.weights.RECENCY_HALFLIFE", halflife)
        m = fit_linear(X, y, NAMES, day, ("t2m_c",))
        return np.mean(np.abs(m.predict(Xt) - expected))

    recency, equal = error(0.5), error(None)
    assert recency < 0.75 * equal  # measured: 0.35 against 0.59 MW


def test_a_column_unknown_on_every_row_is_ignored_without_warnings():
    import warnings

    X, y, day = rows(30)
    X[:, 4] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = fit_linear(X, y, NAMES, day, ("t2m_c",))
        assert np.isfinite(m.predict(X)).all()


def test_hours_without_enough_days_are_left_out(monkeypatch):
    monkeypatch.setattr("aggregat.forecast.core.linear.GROUP_HOURS", (1,))
    X, y, day = rows(40)
    keep = (X[:, 1] != 3) | (day < 5)  # hour 3 seen on 5 days only
    m = fit_linear(X[keep], y[keep], NAMES, day[keep], ("t2m_c",))
    assert 3 not in m.coefs and len(m.coefs) == 23
    out = m.predict(X[:24])
    assert np.isnan(out[3]) and np.isfinite(np.delete(out, 3)).all()


def test_pickles_and_digest_identifies_coefficients():
    X, y, day = rows(40)
    m = fit_linear(X, y, NAMES, day, ("t2m_c",))
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(back.predict(X), m.predict(X))
    assert back.digest() == m.digest()
    assert fit_linear(X, y * 2, NAMES, day, ("t2m_c",)).digest() != m.digest()


@pytest.mark.parametrize("members", [(), ("nowcast", "level"), ("level", "ridge"),
                                     ("level", "linear_residual")])
def test_bad_member_lists_are_refused(members):
    with pytest.raises(ModelError, match="p50_members"):
        check_members(members)


def test_fits_with_one_blas_thread(monkeypatch):
    # On a busy 2-core machine OpenBLAS threads spin-wait: each small eigendecomposition ran
    # 11x slower with the default threads (figures in docs/forecasting.md, "Speed").
    from threadpoolctl import threadpool_info

    from aggregat.forecast.core import linear

    seen = []
    real = linear._ridge_path

    def spy(*args):
        seen.append({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        return real(*args)

    monkeypatch.setattr(linear, "_ridge_path", spy)
    X, y, day = rows(40)
    fit_linear(X, y, NAMES, day, weather_cols=("t2m_c",))
    assert seen and all(s <= {1} for s in seen)


def test_groups_of_hours_sum_the_per_hour_gram_matrices():
    # fit_linear computes each hour's block sums once and adds them up for groups of 3 and 24
    # hours: the result must be the fit on the group's own rows.
    from aggregat.forecast.core.linear import CV_BLOCKS, _block_sums, _fit_group, _sum_blocks

    rng = np.random.default_rng(7)
    X, y, day = rows(40)
    Z, hour = rng.normal(size=(len(y), 6)), X[:, 1].astype(int)
    block, weight = day * CV_BLOCKS // 40, rng.uniform(0.5, 1, len(y))
    m = hour < 3
    own = _fit_group(Z[m], y[m], block[m], weight[m],
                     _block_sums(Z[m], y[m], block[m], weight[m], CV_BLOCKS))
    per_hour = [_block_sums(Z[hour == h], y[hour == h], block[hour == h], weight[hour == h],
                            CV_BLOCKS) for h in range(3)]
    got = _fit_group(Z[m], y[m], block[m], weight[m], _sum_blocks(per_hour))
    np.testing.assert_allclose(got[0], own[0], rtol=1e-9)
    np.testing.assert_allclose(got[1:], own[1:], rtol=1e-9)


def test_row_weights_count_in_the_fit():
    # The response to the "noise" column (think: heating) is three times as strong in November
    # and December; rows weighted (almost) only in those months learn that response, as the
    # seasonal weights of forecast/core/weights.py make older rows of other seasons count less.
    import pandas as pd

    X, _, day = rows(3 * 365 - 60, seed=7)
    t = pd.Timestamp("2012-01-01", tz="UTC") + pd.to_timedelta(day, unit="D")
    winter = np.isin(t.month, (11, 12))
    y = np.where(winter, -3.0, -1.0) * X[:, 4] + np.random.default_rng(8).normal(0, 0.2, len(day))
    Xt = X[-24:].copy()
    Xt[:, 4] = np.linspace(-2, 2, 24)

    def slope(weight):
        m = fit_linear(X, y, NAMES, day, ("t2m_c",), row_weight=weight)
        return np.polyfit(Xt[:, 4], m.predict(Xt), 1)[0]

    assert slope(None) > -1.5
    assert slope(np.where(winter, 1.0, 0.01)) < -2.5


def test_day_of_year_harmonics_need_a_year_of_history():
    # Fitted on a few months, an annual cycle is a curve that bends away outside them.
    X, y, day = rows(120)
    short = fit_linear(X, y, NAMES, day, ("t2m_c",))
    assert not short.seasonal
    X, y, day = rows(400)
    long = fit_linear(X, y, NAMES, day, ("t2m_c",))
    assert long.seasonal
    # Their designs differ by the four harmonics, at fitting and at prediction alike.
    assert long._design(X[:5]).shape[1] == short._design(X[:5]).shape[1] + 4
    assert np.isfinite(short.predict(X[:5])).all()


@pytest.mark.parametrize("n_days", [40, 400])  # without and with the day-of-year harmonics
def test_terms_sum_to_the_prediction_and_land_on_their_features(monkeypatch, n_days):
    monkeypatch.setattr("aggregat.forecast.core.linear.GROUP_HOURS", (1,))
    X, y, day = rows(n_days)
    keep = (X[:, 1] != 3) | (day < 5)  # hour 3 has no regression: zero terms there
    m = fit_linear(X[keep], y[keep], NAMES, day[keep], ("t2m_c",))
    Xd = X[12 * 24:14 * 24]  # two warm days (about 25 C)
    terms, intercept = m.terms(Xd)
    pred = m.predict(Xd)
    served = np.isfinite(pred)
    assert terms.shape == (48, len(NAMES)) and not served[3]
    np.testing.assert_allclose(terms[served].sum(axis=1) + intercept[served], pred[served],
                               rtol=1e-9, atol=1e-9)
    assert not terms[~served].any()
    # The response is cooling times an hourly slope, plus the weekend: the hinges' terms land
    # on the temperature, the weekday indicators' on the weekday; the noise column gets little.
    hot = served & (Xd[:, 0] > 22)
    assert hot.sum() > 10
    assert np.abs(terms[hot, 0]).mean() > 5 * np.abs(terms[hot, 4]).mean()
    assert m.seasonal == (n_days >= 365)
