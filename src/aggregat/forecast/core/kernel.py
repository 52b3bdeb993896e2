"""The kernel member of P50: a smooth nonlinear regression on every feature.

The trees move in steps and the ridge (:mod:`aggregat.forecast.core.linear`) is linear within
an hour of the day; a Gaussian-kernel ridge regression pooled over the day is neither, and on a
short history it generalises best of the three (openstef_307, 99 days: the kernel member alone
MAE 2.18-2.29 over three seeds, the trees 2.44-2.45, the ridge 2.36-2.48).

Kernel ridge regression itself costs O(n^3); random Fourier features (Rahimi & Recht, 2007)
approximate the Gaussian kernel with ``N_FEATURES`` cosines of random projections, so the fit
is a ridge regression on ``[features, cosines]``: one Gram matrix per length scale, the penalty
path from its eigendecomposition. Written in NumPy (no scikit-learn): the same Gram matrices
serve the choice on the calibration window and the final fit.

Inputs: the features standardised on the training rows, clipped at 5 standard deviations,
unknown values at the mean, plus two harmonics of the hour of the day and weekday indicators.
The length scale and the penalty are chosen on the calibration window (the rows of the last
``calibration_days``, the trees' early-stopping window) by MAE, fitted on the rows before it;
the member is then fitted on every row. Rows weigh as the ridge's (recency and season). Its
random projections come from the model's seed: the same inputs give the same forecast.

Explained exactly (:meth:`KernelMember.terms`): the linear part as coefficient x value; each
cosine by integrated gradients from the training mean (zero) to the row, which splits
``f(z) - f(0)`` over the features without remainder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aggregat.forecast.core.threads import one_blas_thread

N_FEATURES = 500
# Length scales in units of the typical distance between two standardised rows (sqrt(2 p)); a
# third, 0.35, was never chosen on either reference set.
LENGTH_SCALES = (0.7, 1.4)
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
CLIP_SD = 5.0
# Rows used for the Gram matrices: enough for ~600 coefficients, and it bounds the cost on
# long histories (every k-th row, so every season and hour stays represented).
MAX_ROWS = 16384


@dataclass
class KernelMember:
    """A fitted kernel member: predicts the target it was fitted on (load minus the level)."""

    feature_names: list[str]
    mean: np.ndarray                 # of the features on the training rows
    scale: np.ndarray
    projection: np.ndarray           # (design columns x N_FEATURES)
    phase: np.ndarray                # (N_FEATURES,)
    amplitude: float                 # of each cosine
    coef: np.ndarray                 # (design columns + N_FEATURES,)
    intercept: float
    length_scale: float = 0.0
    alpha: float = 0.0

    def _design(self, X: np.ndarray) -> np.ndarray:
        return _design(X, self.feature_names, self.mean, self.scale)

    @one_blas_thread
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Prediction for rows of ``X`` (columns in ``feature_names`` order)."""
        Z = self._design(X)
        return _features(Z, self.projection, self.phase, self.amplitude) @ self.coef \
            + self.intercept

    @one_blas_thread
    def terms(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows x features) contributions and each row's intercept, summing to
        :meth:`predict`: linear terms plus the integrated gradients of the cosines."""
        names = self.feature_names
        Z = self._design(X)
        p = Z.shape[1]
        lin = Z * self.coef[:p]
        a = self.coef[p:] * self.amplitude
        u = Z @ self.projection
        # Integrated gradients of a cos(u + phase) along t z, t in [0, 1]: for feature i,
        # a w_i z_i (cos(u + phase) - cos(phase)) / u; the limit at u = 0 is -a w_i z_i sin(phase).
        safe = np.where(np.abs(u) > 1e-9, u, 1.0)
        ratio = np.where(np.abs(u) > 1e-9,
                         (np.cos(u + self.phase) - np.cos(self.phase)) / safe,
                         -np.sin(self.phase))
        ig = Z * ((ratio * a) @ self.projection.T)
        per_column = lin + ig
        owner = _owners(names)
        out = np.zeros((len(X), len(names)))
        np.add.at(out.T, owner, per_column.T)
        at_zero = float(np.cos(self.phase) @ a) + self.intercept
        return out, np.full(len(X), at_zero)

    def digest(self) -> bytes:
        """Bytes that identify the fitted member (for the model's content hash)."""
        return b"".join([repr(self.feature_names).encode(), self.mean.tobytes(),
                         self.scale.tobytes(), self.projection.tobytes(), self.phase.tobytes(),
                         self.coef.tobytes(), repr((self.amplitude, self.intercept)).encode()])


def _design(X: np.ndarray, names: list[str], mean: np.ndarray, scale: np.ndarray
            ) -> np.ndarray:
    """Standardised features (clipped, unknown values at the mean) and :func:`_calendar`."""
    Z = (np.asarray(X, dtype=float) - mean) / scale
    Z = np.nan_to_num(np.clip(Z, -CLIP_SD, CLIP_SD), nan=0.0)
    return np.hstack([Z, _calendar(X, names)])


def _calendar(X: np.ndarray, names: list[str]) -> np.ndarray:
    """Two harmonics of the hour of the day and weekday indicators (zeros when absent)."""
    n = len(X)
    if "hour_local" in names:
        h = np.nan_to_num(np.asarray(X[:, names.index("hour_local")], dtype=float)) \
            * 2 * np.pi / 24
        hours = np.stack([np.sin(h), np.cos(h), np.sin(2 * h), np.cos(2 * h)], axis=1)
    else:
        hours = np.zeros((n, 4))
    if "weekday" in names:
        wd = np.asarray(X[:, names.index("weekday")], dtype=float)
        days = np.stack([(wd == k).astype(float) for k in range(7)], axis=1)
    else:
        days = np.zeros((n, 7))
    return np.hstack([hours, days])


def _owners(names: list[str]) -> np.ndarray:
    """The feature each design column is built from (hour harmonics to the hour, weekday
    indicators to the weekday; to the first feature when absent, where they are zero)."""
    hour = names.index("hour_local") if "hour_local" in names else 0
    weekday = names.index("weekday") if "weekday" in names else 0
    return np.array([*range(len(names)), *[hour] * 4, *[weekday] * 7])


def _features(Z: np.ndarray, projection: np.ndarray, phase: np.ndarray,
              amplitude: float) -> np.ndarray:
    return np.hstack([Z, amplitude * np.cos(Z @ projection + phase)])


def _moments(F: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple:
    """Weighted sums (F'WF, F'Wy, F'W1, w'y, sum of w) of some rows, from float32 ``F``."""
    sw = np.sqrt(w).astype(np.float32)
    A = F * sw[:, None]
    FF, Fy, fs = A.T @ A, A.T @ (sw * y.astype(np.float32)), A.T @ sw  # A'A: one BLAS syrk
    return (FF.astype(float), Fy.astype(float), fs.astype(float), float(w @ y),
            float(w.sum()))


def _solve(moments: tuple, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (columns x alphas) and intercepts of weighted ridge regressions."""
    FF, Fy, fs, ys, n = moments
    fm, ym = fs / n, ys / n
    G = FF - n * np.outer(fm, fm)
    r = Fy - n * fm * ym
    lam, Q = np.linalg.eigh(G)
    coef = Q @ ((Q.T @ r)[:, None] / (np.maximum(lam, 0)[:, None] + alphas[None, :]))
    return coef, ym - fm @ coef


@one_blas_thread
def fit_kernel(X: np.ndarray, y: np.ndarray, names: list[str], cal: np.ndarray,
               weight: np.ndarray, seed: int = 0) -> KernelMember | None:
    """Fit the kernel member of ``y`` on feature rows ``X``; ``cal`` marks the calibration
    window (the choice of length scale and penalty), ``weight`` the rows' weights. None when
    either side of the window is empty."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(y)
    step = max(1, -(-int(keep.sum()) // MAX_ROWS))
    rows = np.flatnonzero(keep)[::step]
    X, y, cal, weight = X[rows], y[rows], np.asarray(cal)[rows], np.asarray(weight)[rows]
    if cal.all() or not cal.any():
        return None
    with np.errstate(invalid="ignore"):
        mean = np.nan_to_num(np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0))
        sd = np.nanstd(np.where(np.isfinite(X), X, np.nan), axis=0)
    scale = np.where(np.isfinite(sd) & (sd > 1e-9), sd, 1.0)
    Z = _design(X, names, mean, scale)
    p = Z.shape[1]
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((p, N_FEATURES))
    phase = rng.uniform(0, 2 * np.pi, N_FEATURES)
    # Cosines scaled so that they carry as much variance as the p standardised columns.
    amplitude = float(np.sqrt(2 * p / N_FEATURES))
    typical = np.sqrt(2 * p)
    alphas = np.asarray(ALPHAS)
    best = None
    # Training in float32 (NumPy's float32 cosine is vectorised, 8x faster; the Gram matrices
    # are summed in float32 and solved in float64), prediction in float64: they differ by
    # ~1e-4 of the target's spread. The projections for every length scale: one product.
    Z32 = Z.astype(np.float32)
    raw = Z32 @ direction.astype(np.float32)
    phase32 = phase.astype(np.float32)
    for ls in LENGTH_SCALES:
        projection = direction / (ls * typical)
        F = np.hstack([Z32, np.float32(amplitude)
                       * np.cos(raw * np.float32(1 / (ls * typical)) + phase32)])
        before, window = _moments(F[~cal], y[~cal], weight[~cal]), _moments(
            F[cal], y[cal], weight[cal])
        coef, icpt = _solve(before, alphas)
        err = np.abs(F[cal] @ coef + icpt - y[cal][:, None]).mean(axis=0)
        k = int(np.argmin(err))
        if best is None or err[k] < best[0]:
            best = (float(err[k]), ls, float(alphas[k]), projection, before, window)
    _, ls, alpha, projection, before, window = best
    everything = tuple(a + b for a, b in zip(before, window, strict=True))
    coef, icpt = _solve(everything, np.array([alpha]))
    return KernelMember(list(names), mean, scale, projection, phase, amplitude, coef[:, 0],
                        float(icpt[0]), length_scale=ls, alpha=alpha)
