"""Ridge regressions by hour of the day: the linear member of the P50 ensemble.

Trees and a linear model err differently: the trees fit interactions but move in steps and
cannot extrapolate, a ridge regression on the same features follows a temperature or a level
smoothly. Averaging both cut day-ahead MAE (vic_elec: two tree members 113.4, the ridge alone
127.4, the mean of the three 105.8; openstef_307: 2.373, 2.422, 2.324).

One regression per local hour, per 3 hours or for the whole day, whichever cross-validates
best (the load's response changes through the day, but a short history cannot feed 24
regressions), on every feature of the trees, plus weekday indicators, two harmonics of the
day of year (only when the training rows span a year: fitted on a few months, an annual cycle
is a curve that bends away outside them — openstef_307's 99 days: the ridge alone 2.48 with
them, 2.36 without) and hinge functions of the weather (max(x - knot, 0) at the 10/30/50/70/90 %
quantiles: heating and cooling are not linear in temperature). Features are standardised on
the training rows and clipped at 5 standard deviations (a value far outside training must not
dominate a linear model); unknown values count as the training mean.

Rows weigh less with age (half-life: half the issue days of the training history, so the
oldest weigh a quarter of the newest): a load's response to the weather drifts as assets are
connected or consumption changes (openstef_307: the effect of wind on its net load doubled
between August and November; the ridge alone went from MAE 2.42 to 2.28, on vic_elec from
127.4 to 126.0). Rows older than a few months also weigh by their season
(:mod:`aggregat.forecast.core.weights`: last year's same weeks fully, the opposite season a
fifth; figures in docs/forecasting.md). The trees are not weighted: there it cost accuracy.

The penalty is chosen per group of hours by cross-validation over 5 contiguous blocks of issue
days: the intervals of one day are nearly copies of each other, and leave-one-row-out picked
far too weak a penalty (openstef_307: MAE 7.4 instead of 2.5). Written in NumPy rather than
with scikit-learn: the Gram matrices per hour and block make the whole penalty path, for the
three groupings of hours, cost one pass over the rows (under 1 s on three years of half-hourly
data), and no dependency is added.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from aggregat.forecast.core.features import EWM_HALFLIFE_H, is_temperature
from aggregat.forecast.core.threads import one_blas_thread
from aggregat.forecast.core.weights import recency_weights

ALPHAS = np.logspace(-2, 5, 15)   # ridge penalties tried, on standardised features
KNOT_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
CV_BLOCKS = 5
# Regressions per 1, 3 or 24 hours of the day, whichever cross-validates best: a short history
# cannot feed 24 separate regressions.
GROUP_HOURS = (1, 3, 24)
CLIP_SD = 5.0
# The day-of-year harmonics need a year of history to be estimated (see the module's docstring).
SEASONAL_MIN_DAYS = 365
# Temperature aggregates that also get hinges (the raw weather columns always do).
_TEMP_SUFFIXES = ("_day_mean", "_day_min", "_day_max", "_prev_day_mean", "_prev_day_max",
                  *(f"_ewm_{h}h" for h in EWM_HALFLIFE_H))


@dataclass
class LinearMember:
    """Fitted ridge regressions by hour of the day on feature rows (:func:`fit_linear`)."""

    feature_names: list[str]
    hinges: list[tuple[int, float]]        # (feature index, knot)
    mean: np.ndarray                       # of the design columns on the training rows
    scale: np.ndarray
    hours_per_group: int = 1               # one regression per 1, 3 or 24 hours of the day
    seasonal: bool = True                  # day-of-year harmonics in the design
    coefs: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)  # group -> (w, b)
    alphas: dict[int, float] = field(default_factory=dict)

    @one_blas_thread
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Prediction for rows of ``X`` (columns in ``feature_names`` order); NaN in hours
        whose group has no fitted regression."""
        Z = self._design(X)
        group = _hours(X, self.feature_names) // self.hours_per_group
        out = np.full(len(X), np.nan)
        for g, (w, b) in self.coefs.items():
            m = group == g
            out[m] = Z[m] @ w + b
        return out

    @one_blas_thread
    def terms(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows x features) coefficient x standardised value of each design column, summed
        onto the feature it is built from, and each row's intercept: they sum to
        :meth:`predict`; zeros where no regression serves the row's hour (NaN prediction)."""
        names = self.feature_names
        Z = self._design(X)
        to_feature = np.zeros((Z.shape[1], len(names)))
        to_feature[np.arange(Z.shape[1]), _owners(names, self.hinges, self.seasonal)] = 1.0
        group = _hours(X, names) // self.hours_per_group
        terms, intercept = np.zeros((len(X), len(names))), np.zeros(len(X))
        for g, (w, b) in self.coefs.items():
            m = group == g
            terms[m] = (Z[m] * w) @ to_feature
            intercept[m] = b
        return terms, intercept

    def digest(self) -> bytes:
        """Bytes that identify the fitted coefficients (for the model's content hash)."""
        parts = [repr((self.feature_names, self.hinges, self.hours_per_group,
                       self.seasonal)).encode(),
                 self.mean.tobytes(), self.scale.tobytes()]
        for g in sorted(self.coefs):
            parts += [str(g).encode(), self.coefs[g][0].tobytes(), repr(self.coefs[g][1]).encode()]
        return b"".join(parts)

    def _design(self, X: np.ndarray) -> np.ndarray:
        Z = _raw_design(X, self.feature_names, self.hinges, self.seasonal)
        Z = np.clip((Z - self.mean) / self.scale, -CLIP_SD, CLIP_SD)
        return np.nan_to_num(Z, nan=0.0)


def _hours(X: np.ndarray, names: list[str]) -> np.ndarray:
    if "hour_local" not in names:
        return np.zeros(len(X), dtype=int)
    return np.floor(np.nan_to_num(X[:, names.index("hour_local")])).astype(int)


def _raw_design(X: np.ndarray, names: list[str], hinges: list[tuple[int, float]],
                seasonal: bool = True) -> np.ndarray:
    """Features, weekday indicators, day-of-year harmonics (if ``seasonal``) and hinges
    (unscaled)."""
    X = X.astype(float)
    cols = [X]
    if "weekday" in names:
        wd = X[:, names.index("weekday")]
        cols.append(np.stack([(wd == k).astype(float) for k in range(7)], axis=1))
    if seasonal and "day_of_year" in names:
        doy = 2 * np.pi * X[:, names.index("day_of_year")] / 365.25
        cols.append(np.stack([np.sin(doy), np.cos(doy), np.sin(2 * doy), np.cos(2 * doy)], 1))
    if hinges:
        cols.append(np.stack([np.clip(X[:, i] - k, 0, None) for i, k in hinges], axis=1))
    return np.hstack(cols)


def _owners(names: list[str], hinges: list[tuple[int, float]], seasonal: bool) -> list[int]:
    """The feature each column of :func:`_raw_design` is built from, in its order."""
    owner = list(range(len(names)))
    owner += [names.index("weekday")] * 7 if "weekday" in names else []
    owner += [names.index("day_of_year")] * 4 if seasonal and "day_of_year" in names else []
    return owner + [i for i, _ in hinges]


def hinge_columns(names: list[str], weather_cols: tuple[str, ...]) -> list[int]:
    """Indexes of the features that get hinges: each weather column at valid time, and the
    daily and smoothed aggregates of temperature columns."""
    out = []
    for c in weather_cols:
        cand = [c] + ([c + s for s in _TEMP_SUFFIXES] if is_temperature(c) else [])
        out += [names.index(n) for n in cand if n in names]
    return out


def _ridge_path(G: np.ndarray, Xy: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Coefficients (p x len(alphas)) of ridge regressions with centred Gram matrix ``G``."""
    lam, Q = np.linalg.eigh(G)
    qy = Q.T @ Xy
    return Q @ (qy[:, None] / (np.maximum(lam, 0)[:, None] + alphas[None, :]))


def _block_sums(Z: np.ndarray, y: np.ndarray, block: np.ndarray, weight: np.ndarray,
                n_blocks: int) -> list[tuple]:
    """Weighted sums of each CV block's rows: (Z'WZ, Z'Wy, Z'W1, w'y, sum of w, row count)."""
    S = []
    for j in range(n_blocks):
        m = block == j
        Zw = Z[m] * weight[m, None]
        S.append((Zw.T @ Z[m], Zw.T @ y[m], Zw.sum(0), weight[m] @ y[m], weight[m].sum(),
                  int(m.sum())))
    return S


def _sum_blocks(parts: list[list[tuple]]) -> list[tuple]:
    """:func:`_block_sums` of several hours added up, block by block."""
    return [tuple(map(sum, zip(*blocks, strict=True))) for blocks in zip(*parts, strict=True)]


def _fit_group(Z: np.ndarray, y: np.ndarray, block: np.ndarray, weight: np.ndarray,
               S: list[tuple]) -> tuple[np.ndarray, float, float, float]:
    """Weighted ridge fit of one group of hours, its penalty chosen by blocked cross-validation;
    also returns the cross-validated (weighted) sum of squared errors at that penalty. ``S``:
    the group's :func:`_block_sums`, so each training fold's centred Gram matrix is the total
    minus one block."""
    tot = [sum(s[i] for s in S) for i in range(6)]

    def centred(ZZ, Zy, zs, ys, n, _count):
        zm, ym = zs / n, ys / n
        return ZZ - n * np.outer(zm, zm), Zy - n * zm * ym, zm, ym

    err = np.zeros(len(ALPHAS))
    for j, s in enumerate(S):
        if tot[5] - s[5] < 2 or s[5] == 0:
            continue
        m = block == j
        G, Xy, zm, ym = centred(*(tot[i] - s[i] for i in range(6)))
        W = _ridge_path(G, Xy, ALPHAS)
        pred = (Z[m] - zm) @ W + ym
        err += (((pred - y[m, None]) ** 2) * weight[m, None]).sum(0)
    best = int(np.argmin(err))
    alpha = float(ALPHAS[best])
    G, Xy, zm, ym = centred(*tot)
    w = _ridge_path(G, Xy, np.array([alpha]))[:, 0]
    return w, float(ym - zm @ w), alpha, float(err[best])


@one_blas_thread  # the same coefficients on any machine or worker, and faster (threads.py)
def fit_linear(X: np.ndarray, y: np.ndarray, names: list[str], groups: np.ndarray,
               weather_cols: tuple[str, ...] = (), row_weight: np.ndarray | None = None
               ) -> LinearMember:
    """Fit ridge regressions of ``y`` on feature rows ``X``, by hour of the day (groups of 1, 3
    or 24 hours, whichever cross-validates best).

    ``groups``: the issue day of each row (sortable); cross-validation blocks are contiguous
    runs of them, and rows weigh less with their day's age (``weights.recency_weights``),
    times ``row_weight`` when given (the seasonal weights of :mod:`.weights`). Groups of
    hours seen on fewer than ``2 * CV_BLOCKS`` issue days get no regression (NaN predictions).
    """
    X = np.asarray(X, dtype=float)
    hinges = []
    for i in hinge_columns(names, weather_cols):
        v = X[:, i][np.isfinite(X[:, i])]
        if len(v):
            hinges += [(i, float(k)) for k in np.unique(np.quantile(v, KNOT_QUANTILES))]
    days = np.asarray(groups).astype("datetime64[D]")
    seasonal = bool(len(days)) and int((days.max() - days.min()).astype(int)) >= SEASONAL_MIN_DAYS
    Z = _raw_design(X, names, hinges, seasonal)
    finite = np.where(np.isfinite(Z), Z, np.nan)
    with warnings.catch_warnings():  # a column unknown on every row (e.g. school holidays
        warnings.simplefilter("ignore", RuntimeWarning)  # outside coverage) gets 0 / 1
        mean, sd = np.nan_to_num(np.nanmean(finite, axis=0)), np.nanstd(finite, axis=0)
    scale = np.where(np.isfinite(sd) & (sd > 1e-9), sd, 1.0)
    member = LinearMember(list(names), hinges, mean, scale, seasonal=seasonal)
    Z = np.nan_to_num(np.clip((Z - mean) / scale, -CLIP_SD, CLIP_SD), nan=0.0)
    hour = _hours(X, names)
    _, day_index = np.unique(groups, return_inverse=True)
    n_days = max(int(day_index.max()) + 1, 1)
    block = day_index * CV_BLOCKS // n_days
    weight = recency_weights(groups)
    if row_weight is not None:
        weight = weight * row_weight
    # The Gram matrices of each hour and block, once: groups of 3 and 24 hours sum them.
    by_hour = {int(h): _block_sums(Z[hour == h], y[hour == h], block[hour == h],
                                   weight[hour == h], CV_BLOCKS) for h in np.unique(hour)}
    best = None
    for size in GROUP_HOURS:
        group = hour // size
        fits, sse, n = {}, 0.0, 0
        for g in np.unique(group):
            m = group == g
            if len(np.unique(day_index[m])) < 2 * CV_BLOCKS:
                continue
            sums = _sum_blocks([by_hour[h] for h in by_hour if h // size == g])
            w, b, alpha, err = _fit_group(Z[m], y[m], block[m], weight[m], sums)
            fits[int(g)] = (w, b, alpha)
            sse, n = sse + err, n + float(weight[m].sum())
        if n and (best is None or sse / n < best[0]):
            best = (sse / n, size, fits)
    if best is not None:
        member.hours_per_group = best[1]
        member.coefs = {g: (w, b) for g, (w, b, _) in best[2].items()}
        member.alphas = {g: a for g, (_, _, a) in best[2].items()}
    return member
