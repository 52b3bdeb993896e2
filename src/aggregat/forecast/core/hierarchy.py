"""A coherent portfolio: forecasts of a target hierarchy reconciled so parents equal the sum of
their children.

Targets name their ``parent``; the leaves' loads sum to every ancestor's. Each target is
forecast on its own (its "base" forecast), then P50 is projected onto the coherent subspace,
``reconciled = S G base`` with the summing matrix ``S`` (nodes x leaves):

- ``bottom_up``: G picks the leaves' base forecasts (parents are their children's sum);
- ``ols``: G = (S'S)^-1 S' (every node's base forecast counts equally);
- ``mint_shrink``: G = (S'W^-1 S)^-1 S'W^-1 with W the covariance of the base forecasts'
  errors, shrunk towards its diagonal (Schäfer and Strimmer 2005; Wickramasuriya et al. 2019).

The method is chosen on past out-of-sample forecasts only (:func:`choose_method`: W from the
first half of them, the error scored on the second half, the best mean nMAE over all nodes).
Quantiles: P10 and P90 move by the same amount as P50 on each row (the band keeps its width
around the reconciled median; reconciling each quantile level separately is not coherent for
quantiles anyway, a sum of P10s is not the P10 of the sum).

Written with NumPy rather than ``hierarchicalforecast``: that package pulls scikit-learn,
clarabel, qpsolvers and utilsforecast for three closed forms of a few lines each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aggregat.errors import ConfigError

METHODS = ("bottom_up", "ols", "mint_shrink")


@dataclass(frozen=True)
class Hierarchy:
    """Nodes (parents first, then leaves, in configuration order), their parent and the summing
    matrix ``S`` (nodes x leaves)."""

    nodes: tuple[str, ...]
    parents: dict[str, str | None]
    leaves: tuple[str, ...]
    S: np.ndarray

    @classmethod
    def from_parents(cls, parents: dict[str, str | None]) -> Hierarchy:
        """The hierarchy of ``{target: parent or None}``; unknown parents and cycles are a
        ConfigError naming the target."""
        for node, parent in parents.items():
            if parent is not None and parent not in parents:
                raise ConfigError(f"forecast target {node!r}: parent {parent!r} is not a "
                                  f"configured target (targets: {', '.join(parents)})")
        for node in parents:
            seen, p = {node}, parents[node]
            while p is not None:
                if p in seen:
                    raise ConfigError(f"forecast target {node!r}: its parents form a cycle "
                                      f"({' -> '.join([*seen, p])})")
                seen.add(p)
                p = parents[p]
        has_child = {p for p in parents.values() if p is not None}
        leaves = tuple(n for n in parents if n not in has_child)
        inner = tuple(n for n in parents if n in has_child)
        nodes = inner + leaves
        S = np.zeros((len(nodes), len(leaves)))
        for j, leaf in enumerate(leaves):
            n = leaf
            while n is not None:
                S[nodes.index(n), j] = 1.0
                n = parents[n]
        return cls(nodes, dict(parents), leaves, S)

    def children(self, node: str) -> list[str]:
        return [n for n, p in self.parents.items() if p == node]

    def level(self, node: str) -> int:
        """0 for a top node, 1 for its children, ..."""
        depth, p = 0, self.parents[node]
        while p is not None:
            depth, p = depth + 1, self.parents[p]
        return depth


def shrunk_covariance(residuals: np.ndarray) -> tuple[np.ndarray, float]:
    """Covariance of ``residuals`` (times x nodes) with the correlations shrunk towards 0 by the
    Schäfer-Strimmer intensity; returns (W, intensity)."""
    r = residuals - residuals.mean(axis=0)
    n = len(r)
    sd = r.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, 1e-9)
    x = r / sd
    corr = (x.T @ x) / (n - 1)
    prods = x[:, :, None] * x[:, None, :]
    var = n / (n - 1) ** 3 * ((prods - prods.mean(axis=0)) ** 2).sum(axis=0)
    off = ~np.eye(r.shape[1], dtype=bool)
    denom = float((corr[off] ** 2).sum())
    lam = 1.0 if denom == 0 else float(np.clip(var[off].sum() / denom, 0.0, 1.0))
    shrunk = np.where(off, (1 - lam) * corr, 1.0)
    return shrunk * np.outer(sd, sd), lam


def projection(S: np.ndarray, method: str, residuals: np.ndarray | None = None) -> np.ndarray:
    """The matrix ``P = S G`` (nodes x nodes) taking base forecasts to reconciled ones."""
    n, m = S.shape
    if method == "bottom_up":
        G = np.hstack([np.zeros((m, n - m)), np.eye(m)])
    elif method == "ols":
        G = np.linalg.solve(S.T @ S, S.T)
    elif method == "mint_shrink":
        if residuals is None or len(residuals) < 3:
            raise ValueError("mint_shrink needs the residuals of at least 3 past forecasts")
        W, _ = shrunk_covariance(residuals)
        Wi = np.linalg.pinv(W)
        G = np.linalg.solve(S.T @ Wi @ S, S.T @ Wi)
    else:
        raise ValueError(f"reconciliation method {method!r}: use one of {', '.join(METHODS)}")
    return S @ G


def reconcile(base: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Reconciled forecasts (times x nodes) of base forecasts (times x nodes)."""
    return base @ P.T


def _nmae(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """nMAE per node (MAE / mean |actual|): nodes of every size count alike."""
    scale = np.maximum(np.abs(actual).mean(axis=0), 1e-9)
    return np.abs(pred - actual).mean(axis=0) / scale


def choose_method(base: np.ndarray, actual: np.ndarray, S: np.ndarray
                  ) -> tuple[str, dict[str, float]]:
    """The method with the lowest mean nMAE over all nodes on past forecasts (times x nodes,
    rows with a missing value dropped): W from the first half of the rows, scores on the second
    half. With fewer than 6 complete rows: bottom-up."""
    ok = np.isfinite(base).all(axis=1) & np.isfinite(actual).all(axis=1)
    base, actual = base[ok], actual[ok]
    if len(base) < 6:
        return "bottom_up", {}
    half = len(base) // 2
    res = actual[:half] - base[:half]
    scores = {"base": float(_nmae(base[half:], actual[half:]).mean())}
    for method in METHODS:
        P = projection(S, method, res)
        scores[method] = float(_nmae(reconcile(base[half:], P), actual[half:]).mean())
    best = min(METHODS, key=lambda m: scores[m])  # ties: the simpler method (METHODS order)
    return best, scores
