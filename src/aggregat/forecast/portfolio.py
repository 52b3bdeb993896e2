"""A coherent portfolio in production: reconcile the forecasts of a target hierarchy.

- Weekly training (:func:`fit_reconciliation`): the validation forecasts of every target of the
  hierarchy (out of sample: each fitted before its validation days) choose the method and give
  the error covariance of MinT (:func:`aggregat.forecast.core.hierarchy.choose_method`); the
  projection is kept in the registry (``_portfolio/<horizon>.json``). Until the first fit, and
  when a target's training failed, the reconciliation is bottom-up.
- Prediction (:func:`reconcile_issue`): once every target of the hierarchy has its forecast of an
  issue, P50 is reconciled and P10/P90 move with it; rows say how (column ``reconciliation``) and
  the explanation gets a "reconciliation" group, so contributions still sum to P50.
- Backtest (:func:`reconcile_backtests`): week by week, the method chosen on the earlier test
  weeks' forecasts only; each level's error before and after.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from aggregat.bank import (
    Bank,
    read_forecast,
    read_forecast_explain,
    write_forecast,
    write_forecast_explain,
)
from aggregat.config import Environment
from aggregat.forecast.core.explain import add_group
from aggregat.forecast.core.hierarchy import (
    Hierarchy,
    choose_method,
    projection,
    reconcile,
)
from aggregat.forecast.registry import Registry
from aggregat.forecast.targets import hierarchy, resolve_targets
from aggregat.timeutil import Horizon

SPEC_FILE = "_portfolio/{horizon}.json"
QUANTILES = ("p10_mw", "p50_mw", "p90_mw")


def env_hierarchy(env: Environment) -> Hierarchy | None:
    """The hierarchy of ``env``'s configured targets, or None."""
    return hierarchy(resolve_targets(env, Bank(env.bank))) if env.forecast.targets else None


def _key(node: str, horizon: str) -> str:
    return node if horizon == Horizon.DAY_AHEAD else f"{node}@{horizon}"


def _matrix(frames: dict[str, pd.DataFrame], nodes: tuple[str, ...], col: str) -> pd.DataFrame:
    """One column per node of ``col``, rows aligned on (issue_time, valid_time)."""
    parts = [frames[n].set_index(["issue_time", "valid_time"])[col].rename(n) for n in nodes]
    return pd.concat(parts, axis=1, join="inner").sort_index()


def fit_reconciliation(env: Environment, validations: dict[str, pd.DataFrame],
                       horizon: str = Horizon.DAY_AHEAD) -> dict | None:
    """Choose the method on the targets' validation forecasts (``issue_time, valid_time,
    p50_mw, actual_mw`` per target key) and keep the projection in the registry."""
    hy = env_hierarchy(env)
    if hy is None or any(_key(n, horizon) not in validations for n in hy.nodes):
        return None
    frames = {n: validations[_key(n, horizon)] for n in hy.nodes}
    base = _matrix(frames, hy.nodes, "p50_mw").to_numpy(dtype=float)
    actual = _matrix(frames, hy.nodes, "actual_mw").to_numpy(dtype=float)
    method, scores = choose_method(base, actual, hy.S)
    ok = np.isfinite(base).all(axis=1) & np.isfinite(actual).all(axis=1)
    P = projection(hy.S, method, (actual - base)[ok])
    spec = {"method": method, "nodes": list(hy.nodes), "projection": P.tolist(),
            "scores_nmae": scores, "rows": int(ok.sum()),
            "fitted_at": pd.Timestamp.now(tz="UTC").isoformat()}
    Registry(env.registry).store.write_bytes(SPEC_FILE.format(horizon=horizon),
                                             json.dumps(spec, indent=1).encode())
    return spec


def _spec(env: Environment, hy: Hierarchy, horizon: str) -> tuple[str, np.ndarray]:
    """The fitted (method, projection), or bottom-up when none fits this hierarchy."""
    store = Registry(env.registry).store
    rel = SPEC_FILE.format(horizon=horizon)
    if store.exists(rel):
        try:
            spec = json.loads(store.read_bytes(rel))
            if tuple(spec["nodes"]) == hy.nodes:
                return spec["method"], np.asarray(spec["projection"], dtype=float)
        except (ValueError, KeyError):  # unreadable: bottom-up until the next training
            pass
    return "bottom_up", projection(hy.S, "bottom_up")


def reconcile_issue(env: Environment, issue: pd.Timestamp, horizon: str = Horizon.DAY_AHEAD
                    ) -> dict | None:
    """Reconcile the forecasts of every hierarchy target issued at ``issue`` (rewrites their
    partitions of ``forecast`` and ``forecast_explain``); None without a hierarchy, a note
    when a target has no forecast of that issue."""
    hy = env_hierarchy(env)
    if hy is None:
        return None
    bank = Bank(env.bank)
    frames = {n: read_forecast(bank, [_key(n, horizon)], issue_time=issue) for n in hy.nodes}
    missing = [n for n, f in frames.items() if f.empty]
    if missing:
        return {"method": None, "note": f"not reconciled: no forecast of {', '.join(missing)}"}
    method, P = _spec(env, hy, horizon)
    base = _matrix(frames, hy.nodes, "p50_mw")
    rec = pd.DataFrame(reconcile(base.to_numpy(dtype=float), P), index=base.index,
                       columns=base.columns)
    for node in hy.nodes:
        f = frames[node].set_index(["issue_time", "valid_time"])
        before = f.copy()
        shift = (rec[node] - base[node]).reindex(f.index).fillna(0.0)
        for q in QUANTILES:
            f[q] = f[q] + shift
        f["reconciliation"] = method
        after = f.reset_index()
        write_forecast(bank, after)
        explained = read_forecast_explain(bank, _key(node, horizon), issue)
        if len(explained):
            explained = add_group(explained[["issue_time", "valid_time", "group",
                                             "contribution_mw"]], "reconciliation",
                                  before.reset_index(), after)
            write_forecast_explain(bank, explained.assign(target_id=_key(node, horizon)))
    return {"method": method, "rows": int(len(rec) * len(hy.nodes))}


def _levels(hy: Hierarchy, pred: pd.DataFrame, actual: pd.DataFrame) -> dict[str, float]:
    """MAE per node and per level (mean of its nodes' MAE) of ``pred`` against ``actual``."""
    mae = (pred - actual).abs().mean()
    out = {f"node {n}": float(mae[n]) for n in hy.nodes}
    for lvl in sorted({hy.level(n) for n in hy.nodes}):
        nodes = [n for n in hy.nodes if hy.level(n) == lvl]
        out[f"level {lvl}"] = float(mae[nodes].mean())
    return out


def reconcile_backtests(hy: Hierarchy, forecasts: dict[str, pd.DataFrame],
                        retrain_days: int = 7) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Reconcile backtest forecasts (per node: ``issue_time, valid_time, p50_mw, actual_mw``)
    week by week, choosing the method and the MinT covariance from the earlier weeks only
    (bottom-up in the first week). Returns the report (each node's and level's MAE before and
    after, the method of each week) and the frames with ``p50_reconciled_mw``."""
    base = _matrix(forecasts, hy.nodes, "p50_mw")
    actual = _matrix(forecasts, hy.nodes, "actual_mw")
    issues = pd.DatetimeIndex(base.index.get_level_values("issue_time"))
    start = issues.min()
    week = ((issues - start) // pd.Timedelta(days=retrain_days)).to_numpy()
    rec = base.copy()
    methods = []
    for k in np.unique(week):
        past, now = week < k, week == k
        b, a = base.to_numpy(dtype=float)[past], actual.to_numpy(dtype=float)[past]
        method, scores = choose_method(b, a, hy.S)
        ok = np.isfinite(b).all(axis=1) & np.isfinite(a).all(axis=1)
        P = projection(hy.S, method, (a - b)[ok])
        rec.loc[now] = reconcile(base.to_numpy(dtype=float)[now], P)
        methods.append({"week": int(k), "method": method, "scores_nmae": scores})
    inner = len(hy.nodes) - len(hy.leaves)  # parents come first in hy.nodes
    coherent = np.allclose(rec.to_numpy()[:, :inner],
                           rec[list(hy.leaves)].to_numpy() @ hy.S[:inner].T)
    report = {"methods": methods, "mae_before": _levels(hy, base, actual),
              "mae_after": _levels(hy, rec, actual), "coherent": bool(coherent)}
    out = {}
    for n in hy.nodes:
        col = rec[n].rename("p50_reconciled_mw")
        out[n] = forecasts[n].merge(col.reset_index(), on=["issue_time", "valid_time"],
                                    how="left")
    return report, out
