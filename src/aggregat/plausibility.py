"""Plausible measured load per target: bounds checked by ``load import`` and ``energy sync``.

A value is implausible when it is outside ``[min_mw, max_mw]`` of its target
(``[[env.X.forecast.targets]]``): ``max_mw`` defaults to ``[energy] max_load_mw`` (1e5 MW, far
above any portfolio: a 1e12 is always caught), ``min_mw`` to 0, or to ``-max_mw`` for a
``net_load`` target (on-site generation can exceed consumption).

Implausible rows are REJECTED, the same way on both paths: never written to the bank, counted,
and named (file line or target/time, value, bound) in the summary, the log and the job ledger.
A rejected correction leaves the earlier stored value in place. Training and prediction apply
the same bounds when they read load (:meth:`Plausibility.mask`), so a value stored before the
check, or by a looser configuration, is treated as missing, never learnt from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aggregat.config import EnergySettings, Environment, TargetSettings
from aggregat.errors import ConfigError

DEFAULT_MAX_LOAD_MW: float = EnergySettings.model_fields["max_load_mw"].default
MAX_EXAMPLES = 10  # rejected rows named in a report / ledger entry


@dataclass(frozen=True)
class Bounds:
    """Plausible load of one target, MW (inclusive)."""

    min_mw: float
    max_mw: float

    def describe(self, value: float) -> str:
        if value > self.max_mw:
            return f"{value:.6g} MW above max {self.max_mw:.6g} MW"
        if value < 0 <= self.min_mw:
            return f"{value:.6g} MW is negative (not a net_load target)"
        return f"{value:.6g} MW below min {self.min_mw:.6g} MW"


@dataclass
class Plausibility:
    """Bounds of every configured target; others get the environment-wide default."""

    max_load_mw: float = DEFAULT_MAX_LOAD_MW
    targets: dict[str, Bounds] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_load_mw) and self.max_load_mw > 0):
            raise ConfigError(f"[energy] max_load_mw = {self.max_load_mw}: give a positive number "
                              "of MW (default 1e5)")

    @classmethod
    def from_settings(cls, max_load_mw: float, targets: list[TargetSettings] | None = None
                      ) -> Plausibility:
        out = cls(max_load_mw)
        for t in targets or []:
            out.targets[t.id] = _bounds(t, max_load_mw)
        return out

    @classmethod
    def from_env(cls, env: Environment) -> Plausibility:
        return cls.from_settings(env.energy.max_load_mw, env.forecast.targets)

    def bounds(self, target_id: str) -> Bounds:
        return self.targets.get(target_id) or Bounds(0.0, self.max_load_mw)

    def implausible(self, target_ids: pd.Series, values: np.ndarray) -> np.ndarray:
        """Boolean mask of the values outside their target's bounds (NaN is not judged here)."""
        ids = pd.Series(target_ids).astype(str).to_numpy()
        values = np.asarray(values, dtype=float)
        lo = np.zeros(len(values))
        hi = np.full(len(values), self.max_load_mw)
        for tid, b in self.targets.items():
            sel = ids == tid
            lo[sel], hi[sel] = b.min_mw, b.max_mw
        with np.errstate(invalid="ignore"):
            return (values < lo) | (values > hi)

    def mask(self, target_id: str, load: pd.Series) -> pd.Series:
        """``load`` with implausible values as NaN (missing), for training and prediction."""
        b = self.bounds(target_id)
        return load.where(~((load < b.min_mw) | (load > b.max_mw)))

    def describe(self, target_id: str, value: float) -> str:
        return self.bounds(target_id).describe(value)


def _bounds(t: TargetSettings, max_load_mw: float) -> Bounds:
    where = f"forecast target {t.id!r}"
    hi = max_load_mw if t.max_mw is None else t.max_mw
    lo = (-hi if t.net_load else 0.0) if t.min_mw is None else t.min_mw
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise ConfigError(f"{where}: min_mw / max_mw must be finite numbers of MW")
    if lo < 0 and not t.net_load:
        raise ConfigError(f"{where}: min_mw = {lo} is negative; set net_load = true if the "
                          "target's load can be negative (on-site generation)")
    if lo >= hi:
        raise ConfigError(f"{where}: min_mw ({lo}) must be below max_mw ({hi})")
    return Bounds(float(lo), float(hi))
