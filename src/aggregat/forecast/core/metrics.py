"""Forecast scores on plain arrays: point errors, skill, pinball loss, interval coverage.

Conventions (documented in docs/forecasting.md):
- nMAE = MAE / mean(|actual|);
- MAPE skips actual values whose magnitude is below ``mape_floor`` (10 %) of mean(|actual|),
  where percentage errors explode (net loads crossing zero);
- skill = 1 - MAE / MAE(persistence), persistence = same time one week before;
- pinball loss is averaged over the P10/P50/P90 quantiles;
- CRPS is approximated from the quantiles as twice their mean pinball loss (the CRPS is twice
  the integral of the pinball loss over all levels; three levels are a coarse rule), and rCRPS
  divides it by the P1-P99 range of the actual load (the OpenSTEF Liander 2024 benchmark's
  normalisation, so sets of different sizes compare);
- coverage = share of actual values inside [P10, P90] (target 80 %).
Pairs with a missing actual or forecast are skipped; every function states how many it used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _clean(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    arrs = [np.asarray(a, dtype=float) for a in arrays]
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrs])
    return tuple(a[ok] for a in arrs)


def mae(y: np.ndarray, p: np.ndarray) -> float:
    """Mean absolute error."""
    y, p = _clean(y, p)
    return float(np.mean(np.abs(y - p))) if len(y) else float("nan")


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    """Root mean squared error."""
    y, p = _clean(y, p)
    return float(np.sqrt(np.mean((y - p) ** 2))) if len(y) else float("nan")


def nmae(y: np.ndarray, p: np.ndarray) -> float:
    """MAE divided by the mean absolute actual value."""
    y, p = _clean(y, p)
    if not len(y) or np.mean(np.abs(y)) == 0:
        return float("nan")
    return float(np.mean(np.abs(y - p)) / np.mean(np.abs(y)))


def mape(y: np.ndarray, p: np.ndarray, mape_floor: float = 0.1) -> float:
    """Mean absolute percentage error over actual values not near zero."""
    y, p = _clean(y, p)
    if not len(y):
        return float("nan")
    keep = np.abs(y) >= mape_floor * np.mean(np.abs(y))
    if not keep.any():
        return float("nan")
    return float(np.mean(np.abs((y[keep] - p[keep]) / y[keep])))


def pinball(y: np.ndarray, p: np.ndarray, q: float) -> float:
    """Pinball (quantile) loss of forecast ``p`` for quantile ``q``."""
    y, p = _clean(y, p)
    if not len(y):
        return float("nan")
    d = y - p
    return float(np.mean(np.maximum(q * d, (q - 1) * d)))


def crps(y: np.ndarray, quantiles: dict[float, np.ndarray]) -> float:
    """CRPS approximated from quantile forecasts ``{level: values}``: twice the mean pinball
    loss over the levels (a point forecast scores its absolute error)."""
    return float(2 * np.mean([pinball(y, p, q) for q, p in quantiles.items()]))


def p1_p99_range(y: np.ndarray) -> float:
    """P1-P99 range of the actual values (the rCRPS denominator)."""
    (y,) = _clean(y)
    return float(np.quantile(y, 0.99) - np.quantile(y, 0.01)) if len(y) else float("nan")


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of actual values within [lo, hi]."""
    y, lo, hi = _clean(y, lo, hi)
    return float(np.mean((y >= lo) & (y <= hi))) if len(y) else float("nan")


def _share(y, p, cmp) -> float:
    y, p = _clean(y, p)
    return float(np.mean(cmp(y, p))) if len(y) else float("nan")


def skill(mae_model: float, mae_reference: float) -> float:
    """1 - MAE / MAE(reference)."""
    if not np.isfinite(mae_reference) or mae_reference == 0:
        return float("nan")
    return 1.0 - mae_model / mae_reference


def scores(y, p10, p50, p90, persistence=None, load_range: float | None = None
           ) -> dict[str, float]:
    """All scores of one set of forecasts (arrays aligned with the actual values ``y``).

    ``load_range``: the rCRPS denominator (default: the P1-P99 range of ``y``; per-lead scores
    pass the whole period's, so that they add up comparably)."""
    y, p10, p50, p90 = (np.asarray(a, dtype=float) for a in (y, p10, p50, p90))
    span = p1_p99_range(y) if load_range is None else load_range
    score_crps = crps(y, {0.1: p10, 0.5: p50, 0.9: p90})
    out = {
        "n": int(np.isfinite(y).sum()),
        "mae": mae(y, p50), "rmse": rmse(y, p50), "nmae": nmae(y, p50), "mape": mape(y, p50),
        "pinball": float(np.mean([pinball(y, p10, 0.1), pinball(y, p50, 0.5),
                                  pinball(y, p90, 0.9)])),
        "crps": score_crps,
        "rcrps": score_crps / span if span > 0 else float("nan"),
        "coverage_10_90": coverage(y, p10, p90),
        "below_p10": _share(y, p10, lambda a, b: a < b),
        "above_p90": _share(y, p90, lambda a, b: a > b),
    }
    if persistence is not None:
        pers = np.asarray(persistence, dtype=float)
        both = np.isfinite(pers) & np.isfinite(p50)
        out["mae_persistence"] = mae(y[both], pers[both])
        out["skill"] = skill(mae(y[both], p50[both]), out["mae_persistence"])
    return out


def by_lead(frame: pd.DataFrame) -> list[dict]:
    """Scores per whole hour of lead time; ``frame`` has lead_h, actual_mw, p10/p50/p90_mw."""
    rows = []
    span = p1_p99_range(frame["actual_mw"])
    for lead, g in frame.groupby("lead_h", sort=True):
        s = scores(g["actual_mw"], g["p10_mw"], g["p50_mw"], g["p90_mw"], load_range=span)
        rows.append({"lead_h": int(lead), "n": s["n"], "mae": s["mae"], "rmse": s["rmse"],
                     "crps": s["crps"], "rcrps": s["rcrps"],
                     "coverage_10_90": s["coverage_10_90"]})
    return rows
