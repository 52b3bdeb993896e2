"""Train and predict: LightGBM P10/P50/P90 with conformalised intervals, or a baseline.

P50 is the mean of several members: LightGBM models relative to different bases, a ridge
regression by hour of the day (:mod:`aggregat.forecast.core.linear`), which errs unlike the trees,
a LightGBM model of what the ridge misses, and a kernel ridge regression
(:mod:`aggregat.forecast.core.kernel`), smooth where the trees step. The P10/P90 band widens to
include P50.

Training fits the three quantile models on all data but a recent calibration window, measures on
that window how far actual values fall outside the P10/P90 band (asymmetric conformalised
quantile regression, Romano et al. 2019) and picks the number of boosting rounds by early
stopping there; then it refits on everything with that number of rounds and keeps the two
margins. No hyper-parameter is chosen from test data.

When there is too little history the model is a baseline (same time last week, else two weeks
before) with an interval from the baseline's own past errors, and every row says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aggregat.errors import ModelError
from aggregat.forecast.core.features import (
    NS_PER_H,
    FeatureConfig,
    build_features,
    feature_names,
    issue_schedule,
    issue_time_for_day,
    prepare_load,
    prepare_weather,
    target_day,
)
from aggregat.forecast.core.kernel import KernelMember, fit_kernel
from aggregat.forecast.core.linear import LinearMember, fit_linear
from aggregat.forecast.core.weights import recency_weights, seasonal_weights
from aggregat.timeutil import Horizon

QUANTILES = (0.1, 0.5, 0.9)
# What ModelConfig.p50_members may hold.
P50_MEMBERS = ("level", "nowcast", "linear", "linear_residual", "kernel")
INTRADAY_DENSE_DAYS = 56  # intraday training: every issue of the last 8 weeks, then one a day
# The ridge uses the last observed value poorly (it pools all leads of an hour): its members
# fade in over the first 6 h of lead (figures: docs/forecasting.md, "Measured figures").
RIDGE_FULL_LEAD_H = 6.0
MARGIN_LEAD_BLOCK_H = 6.0  # intraday conformal margins per 6 h of lead ...
MIN_SCORES_PER_BLOCK = 200  # ... when a block has enough calibration scores
# When the calibration window holds at most this share of the rows, the P10/P90 trees
# early-stopped on the other rows are kept instead of refitted on all of them (nearly the same
# rows; and the margins were measured on these very trees).
KEEP_QUANTILE_FIT_MAX_CAL_SHARE = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """Training settings; defaults are generic, not tuned to any data set."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    min_train_days: int = 28       # below this, the baseline is used (and flagged)
    calibration_days: int = 28     # recent window for early stopping and conformal margins
    calibration_windows: int = 2   # windows of calibration_days giving conformal scores
    # P50 minimises squared error: the median objective's sign-only gradients fit day-level
    # swings slowly. "quantile" gives the median model instead.
    p50_objective: str = "regression"
    # 0.1 rather than 0.05: half the rounds for every P50 member (figures: docs/forecasting.md,
    # "Speed").
    learning_rate: float = 0.1
    # P10/P90 take twice the step: their rounds were 2/3 of the training time (a P90 needs
    # ~1.5x the rounds of P50), and the conformal margins fix their coverage anyway.
    quantile_learning_rate: float = 0.2
    max_rounds: int = 1200
    early_stopping_rounds: int = 20
    min_rounds: int = 50           # floor for early stopping on a short, noisy window
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    # P50 is the mean of its members, which err differently (figures: docs/forecasting.md,
    # "Measured figures"). Trees relative to different bases, each with its own bagging seed:
    # "level" (the 7-day mean) and "nowcast" (the 7-day mean of the same time of day plus the
    # last deviation faded with the lead). "linear": ridge regressions by hour relative to the
    # level (forecast/core/linear.py). "linear_residual": a tree learning what the ridge misses (its
    # base is the ridge's prediction), so it extrapolates like the ridge and bends like a tree
    # (needs "linear"). "kernel": a Gaussian-kernel ridge regression on every feature, relative
    # to the level (forecast/core/kernel.py). The first member is "level".
    p50_members: tuple[str, ...] = ("level", "nowcast", "linear", "linear_residual", "kernel")
    feature_fraction: float = 0.8
    # Each round's histograms on half the rows; just over 1/2 because at 1/2 or less LightGBM
    # copies the bagged rows every round instead of indexing them (figures: docs/forecasting.md,
    # "Speed").
    bagging_fraction: float = 0.501
    # P10/P90 on a quarter of the rows and half the features per round: the quantile objective
    # re-sorts every leaf's residuals each round, so their rounds cost the most, and the
    # conformal margins set the band's coverage anyway.
    quantile_bagging_fraction: float = 0.25
    quantile_feature_fraction: float = 0.5
    lambda_l2: float = 1.0
    max_bin: int = 127
    # One thread: on a busy machine OpenMP threads spin-wait; targets train in parallel
    # processes instead.
    n_jobs: int = 1
    # Learn the load minus its mean over the 7 days before issue (trees cannot extrapolate a
    # trend, a season change or a growing portfolio): True, False, or "auto" = the better on the
    # calibration window (a noisy choice: on the OpenSTEF 307 set it picked the worse one).
    relative_to_level: bool | str = True
    conformal: str = "additive"    # MW margins, or "scaled" by the band's half-widths
    seed: int = 0


@dataclass
class ForecastModel:
    """A trained model: what the registry stores and :func:`predict` needs."""

    config: ModelConfig
    resolution: pd.Timedelta
    feature_names: list[str]
    boosters: dict[float, str]           # quantile -> LightGBM model text
    margins: tuple[float, float]         # conformal (lower, upper) widening of P10/P90
    baseline_errors: tuple[float, float]  # 10 % / 90 % quantiles of weekly persistence errors
    is_baseline: bool
    trained_at: pd.Timestamp
    data_start: pd.Timestamp | None
    data_end: pd.Timestamp | None
    n_rows: int = 0
    relative: bool = False               # model predicts load minus its recent level
    width_floors: tuple[float, float] = (1.0, 1.0)  # of the scaled conformal scores
    rounds: int = 0
    fit_seconds: float = 0.0
    extra_p50: tuple[str, ...] = ()      # more P50 models, averaged with boosters[.5] ...
    extra_p50_bases: tuple[str, ...] = ()  # ... each relative to this base (default "level")
    # Intraday: (first lead h, lower, upper) margins per block of MARGIN_LEAD_BLOCK_H hours.
    lead_margins: tuple[tuple[float, float, float], ...] = ()
    linear: LinearMember | None = None   # the ridge member of P50, relative to the level
    kernel: KernelMember | None = None   # the kernel member of P50, relative to the level
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def version(self) -> str:
        """Content hash of the fitted model (stable across processes)."""
        h = hashlib.sha256()
        for q in sorted(self.boosters):
            h.update(self.boosters[q].encode())
        for text in self.extra_p50:
            h.update(text.encode())
        if self.extra_p50_bases:
            h.update(repr(self.extra_p50_bases).encode())
        if self.lead_margins:
            h.update(repr(self.lead_margins).encode())
        if self.linear is not None:
            h.update(self.linear.digest())
        if self.kernel is not None:
            h.update(self.kernel.digest())
        h.update(repr((self.margins, self.baseline_errors, self.feature_names,
                       self.relative)).encode())
        return ("baseline-" if self.is_baseline else "lgbm-") + h.hexdigest()[:12]

    def booster(self, q: float):
        """The LightGBM booster of quantile ``q`` (parsed once)."""
        import lightgbm as lgb

        if q not in self._cache:
            self._cache[q] = lgb.Booster(model_str=self.boosters[q])
        return self._cache[q]

    def predict_p50(self, X: np.ndarray, bases: dict[str, np.ndarray]) -> np.ndarray:
        """P50: the mean of its member models, each plus its base (:func:`p50_bases`). The
        members built on the ridge, and the kernel member (pooled over leads as the ridge), count
        fully from ``RIDGE_FULL_LEAD_H`` of lead, less before (nothing at lead 0); the linear
        member counts only in the hours it was fitted for (elsewhere the base of
        "linear_residual" is the level)."""
        import lightgbm as lgb

        total = self.booster(0.5).predict(X) + bases["level"]
        count = np.ones(len(X))
        lin = self.linear.predict(X) if self.linear is not None else None
        ramp = (np.clip(X[:, self.feature_names.index("lead_h")] / RIDGE_FULL_LEAD_H, 0, 1)
                if "lead_h" in self.feature_names else np.ones(len(X)))
        if self.extra_p50:
            if "extra" not in self._cache:
                self._cache["extra"] = [lgb.Booster(model_str=t) for t in self.extra_p50]
            kinds = self.extra_p50_bases or ("level",) * len(self.extra_p50)
            if "linear_residual" in kinds:
                bases = {**bases, "linear_residual": _ridge_base(bases["level"], lin)}
            for b, kind in zip(self._cache["extra"], kinds, strict=True):
                w = ramp if kind == "linear_residual" else 1.0
                total, count = total + w * (b.predict(X) + bases[kind]), count + w
        if lin is not None:
            w = np.where(np.isfinite(lin), ramp, 0.0)
            total, count = total + w * np.nan_to_num(lin + bases["level"]), count + w
        if self.kernel is not None:
            total, count = total + ramp * (self.kernel.predict(X) + bases["level"]), count + ramp
        return total / count

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state


def _params(cfg: ModelConfig, q: float) -> dict:
    objective = cfg.p50_objective if q == 0.5 else "quantile"
    return {
        "objective": objective, "alpha": q,
        "learning_rate": cfg.learning_rate if q == 0.5 else cfg.quantile_learning_rate,
        "num_leaves": cfg.num_leaves, "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction if q == 0.5 else cfg.quantile_feature_fraction,
        "bagging_fraction": cfg.bagging_fraction if q == 0.5 else cfg.quantile_bagging_fraction,
        "bagging_freq": 1, "lambda_l2": cfg.lambda_l2, "max_bin": cfg.max_bin,
        "num_threads": cfg.n_jobs,
        "seed": cfg.seed, "deterministic": True, "verbose": -1,
        # Histograms row-wise for P50 (its bag is indexed, not copied: a row's bins are
        # contiguous), column-wise for P10/P90 (their bag is copied each round); the same trees
        # either way, and chosen here rather than by LightGBM's timing test at each fit.
        "force_row_wise": q == 0.5, "force_col_wise": q != 0.5,
    }


def _conformal_margin(scores: np.ndarray, coverage: float) -> float:
    """Finite-sample conformal quantile of ``scores`` at level ``coverage``."""
    s = np.sort(np.asarray(scores, dtype=float))
    n = len(s)
    k = int(np.ceil((n + 1) * coverage))  # the k-th smallest score (1-based)
    return float(s[min(k, n) - 1])


def _lead_margins(s_lo: np.ndarray, s_hi: np.ndarray, lead: np.ndarray
                  ) -> tuple[tuple[float, float, float], ...]:
    """Conformal margins per block of lead time: one pooled margin over 0-36 h left the first
    hours over-covered and the last ones under-covered (vic_elec: 96 % at lead 0, 66 % at
    33 h). Blocks with too few scores keep the pooled margins (left out here)."""
    block = np.floor(lead / MARGIN_LEAD_BLOCK_H)
    out = []
    for b in np.unique(block):
        m = block == b
        if m.sum() >= MIN_SCORES_PER_BLOCK:
            out.append((float(b * MARGIN_LEAD_BLOCK_H), _conformal_margin(s_lo[m], 0.9),
                        _conformal_margin(s_hi[m], 0.9)))
    return tuple(out)


def _row_margins(model: ForecastModel, lead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper margin of each row (per lead block when the model has them)."""
    lo = np.full(len(lead), model.margins[0])
    hi = np.full(len(lead), model.margins[1])
    for start, b_lo, b_hi in model.lead_margins:
        m = (lead >= start) & (lead < start + MARGIN_LEAD_BLOCK_H)
        lo[m], hi[m] = b_lo, b_hi
    return lo, hi


def persistence_errors(load: pd.Series) -> tuple[float, float]:
    """10 % and 90 % quantiles of (load - load one week before) on a regular series."""
    lag = round(pd.Timedelta(days=7) / (load.index[1] - load.index[0]))
    err = (load - load.shift(lag)).dropna().to_numpy()
    if len(err) < 10:
        return (0.0, 0.0)
    return float(np.quantile(err, 0.1)), float(np.quantile(err, 0.9))


def p50_bases(feats: pd.DataFrame, relative: bool) -> dict[str, np.ndarray]:
    """What each P50 member is relative to: the 7-day mean ("level") or the usual load at
    that time of day plus the faded last deviation ("nowcast", else the level); zeros for
    absolute models."""
    if not relative:
        zero = np.zeros(len(feats))
        return {"level": zero, "nowcast": zero}
    level = _level(feats)
    now = (feats["load_nowcast"].to_numpy(dtype=float) if "load_nowcast" in feats
           else np.full(len(feats), np.nan))
    return {"level": level, "nowcast": np.where(np.isfinite(now), now, level)}


def _ridge_base(level: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """Base of the "linear_residual" member: the level plus the ridge's prediction (the level
    alone in hours without a fitted ridge), the same in training and prediction."""
    return level + np.nan_to_num(ridge)


def _level(feats: pd.DataFrame) -> np.ndarray:
    """Reference level of each row: mean load of the 7 days (else 24 h) before issue."""
    return feats["load_mean_7d"].fillna(feats["load_mean_24h"]).to_numpy(dtype=float)


def _half_widths(stack: np.ndarray, floors: tuple[float, float] | None, mode: str
                 ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Scales of the conformal scores: P50-P10 and P90-P50 ("scaled"), or 1 ("additive").

    Scaled scores widen the band where the quantile models already expect more spread (windy or
    cold days) instead of everywhere; the floor (a tenth of the median width) avoids dividing by
    near-zero widths.
    """
    if mode == "additive":
        one = np.ones(stack.shape[1])
        return one, one, (1.0, 1.0)
    lo, hi = stack[1] - stack[0], stack[2] - stack[1]
    if floors is None:
        floors = (max(0.1 * float(np.median(lo)), 1e-9), max(0.1 * float(np.median(hi)), 1e-9))
    return np.maximum(lo, floors[0]), np.maximum(hi, floors[1]), floors


@dataclass
class _TrainSet:
    """The rows a non-baseline fit trains on, binned once, and its calibration window (the last
    ``n_cal`` issue days)."""

    cfg: ModelConfig
    feats: pd.DataFrame
    y: np.ndarray
    level: np.ndarray
    names: list[str]
    X: np.ndarray
    issue_day: pd.Series
    days: pd.Series
    n_cal: int
    cal: np.ndarray
    base: Any

    @classmethod
    def build(cls, feats: pd.DataFrame, y: np.ndarray, names: list[str],
              cfg: ModelConfig) -> _TrainSet:
        import lightgbm as lgb

        level = _level(feats)
        keep = np.isfinite(level) | (cfg.relative_to_level is False)
        feats, y, level = (feats.loc[keep].reset_index(drop=True), y[keep],
                           np.nan_to_num(level[keep]))
        issue_day = feats["issue_time"].dt.floor("D")
        days = issue_day.drop_duplicates().sort_values()
        X = feats[names].to_numpy(dtype=np.float32)
        n_cal = min(cfg.calibration_days, len(days) // 3)
        cal = issue_day.isin(days.iloc[-n_cal:]).to_numpy()
        # Bin the features once; every fit below trains on a subset of these rows with its own
        # labels (a subset costs a fraction of binning the whole frame again).
        base = lgb.Dataset(X, y, feature_name=names, free_raw_data=False,
                           params=_params(cfg, 0.5)).construct()
        return cls(cfg, feats, y, level, names, X, issue_day, days, n_cal, cal, base)

    def rows(self, mask: np.ndarray, label: np.ndarray):
        d = self.base.subset(np.flatnonzero(mask)).construct()
        d.set_label(label[mask])
        return d

    def fit_cal(self, q: float, target: np.ndarray) -> tuple[int, np.ndarray, Any]:
        """Rounds (early-stopped on the calibration window), predictions on that window and the
        booster."""
        import lightgbm as lgb

        cfg, cal = self.cfg, self.cal
        fit_data, cal_data = self.rows(~cal, target), self.rows(cal, target)
        b = lgb.train(_params(cfg, q), fit_data, num_boost_round=cfg.max_rounds,
                      valid_sets=[cal_data],
                      callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)])
        it = max(b.best_iteration, cfg.min_rounds)
        return it, b.predict(self.X[cal], num_iteration=it), b


def _choose_target(ts: _TrainSet
                   ) -> tuple[bool, dict[float, int], dict[float, np.ndarray], dict[float, Any]]:
    """Absolute load or load relative to its recent level: "auto" keeps the one whose median
    is better on the calibration window (trends favour relative, noisy net loads absolute).
    Sets ``ts.y`` to the chosen target; returns (relative, rounds, calibration predictions and
    early-stopped boosters per quantile)."""
    cfg, y, level, cal = ts.cfg, ts.y, ts.level, ts.cal
    modes = {"auto": (False, True), True: (True,), False: (False,)}[cfg.relative_to_level]
    p50 = {m: ts.fit_cal(0.5, y - level * m) for m in modes}
    relative = min(modes, key=lambda m: np.mean(np.abs(p50[m][1] + level[cal] * m - y[cal])))
    ts.y = y - level * relative
    rounds, pred_cal, fitted = {0.5: p50[relative][0]}, {0.5: p50[relative][1]}, {}
    for q in (0.1, 0.9):
        rounds[q], pred_cal[q], fitted[q] = ts.fit_cal(q, ts.y)
    return relative, rounds, pred_cal, fitted


def _calibrate(ts: _TrainSet, rounds: dict[float, int], pred_cal: dict[float, np.ndarray]
               ) -> tuple[tuple[float, float], tuple[float, float], tuple]:
    """Conformal (margins, width floors, margins by lead) from the calibration window and, with
    additive margins, older windows."""
    import lightgbm as lgb

    cfg, y, cal, X, issue_day, days, n_cal = (ts.cfg, ts.y, ts.cal, ts.X, ts.issue_day, ts.days,
                                              ts.n_cal)
    stack = np.sort(np.vstack([pred_cal[0.1], pred_cal[0.5], pred_cal[0.9]]), axis=0)
    w_lo, w_hi, floors = _half_widths(stack, None, cfg.conformal)
    s_lo, s_hi = [(stack[0] - y[cal]) / w_lo], [(y[cal] - stack[2]) / w_hi]
    lead = ts.feats["lead_h"].to_numpy(dtype=float)
    s_lead = [lead[cal]]
    if cfg.conformal == "additive":
        # Older windows, each predicted by models fitted only on the days before it: the margins
        # then reflect several "past -> next weeks" shifts, not just the latest one.
        for k in range(1, cfg.calibration_windows):
            win = days.iloc[-(k + 1) * n_cal:-k * n_cal]
            if len(days) - (k + 1) * n_cal < cfg.min_train_days // 2:
                break
            before = (issue_day < win.iloc[0]).to_numpy()
            inside = issue_day.isin(win).to_numpy()
            data = ts.rows(before, y)
            lo_hi = [lgb.train(_params(cfg, q), data, num_boost_round=rounds[q]).predict(
                X[inside]) for q in (0.1, 0.9)]
            s_lo.append(np.minimum(*lo_hi) - y[inside])
            s_hi.append(y[inside] - np.maximum(*lo_hi))
            s_lead.append(lead[inside])
    all_lo, all_hi, all_lead = map(np.concatenate, (s_lo, s_hi, s_lead))
    margins = (_conformal_margin(all_lo, 0.9), _conformal_margin(all_hi, 0.9))
    lead_margins = (_lead_margins(all_lo, all_hi, all_lead)
                    if cfg.features.horizon == Horizon.INTRADAY else ())
    return margins, floors, lead_margins


def _refit(ts: _TrainSet, rounds: dict[float, int], fitted: dict[float, Any]
           ) -> tuple[dict[float, str], float]:
    """The quantile boosters refitted on everything, scaling rounds with the amount of data
    (more data, more rounds); P10/P90 early-stopped on nearly every row are kept as they are
    (``KEEP_QUANTILE_FIT_MAX_CAL_SHARE``). Returns them and the scale."""
    import lightgbm as lgb

    scale = len(ts.y) / max(int((~ts.cal).sum()), 1)
    all_data = ts.rows(np.ones(len(ts.y), dtype=bool), ts.y)
    keep = ts.cal.mean() <= KEEP_QUANTILE_FIT_MAX_CAL_SHARE
    boosters = {}
    for q in QUANTILES:
        b = fitted.get(q)
        if keep and b is not None and b.current_iteration() >= rounds[q]:
            boosters[q] = b.model_to_string(num_iteration=rounds[q])
        else:
            boosters[q] = lgb.train(_params(ts.cfg, q), all_data, num_boost_round=int(
                round(rounds[q] * scale))).model_to_string()
    return boosters, scale


def _extra_members(ts: _TrainSet, relative: bool, p50_rounds: int, scale: float
                   ) -> tuple[tuple[str, ...], tuple[str, ...], LinearMember | None,
                              KernelMember | None]:
    """More P50 members: trees with another seed, each learning the load minus its base; the
    linear and kernel members learn the same target as the first. Returns (boosters, their
    bases, ridge, kernel member)."""
    import lightgbm as lgb

    cfg, y, X = ts.cfg, ts.y, ts.X
    bases = p50_bases(ts.feats, relative)
    raw = y + bases["level"]
    # Issue days as datetime64: np.unique sorts Timestamp objects slowly. The ridge weighs older
    # rows by their season (the trees did worse so: docs/forecasting.md).
    days = ts.issue_day.to_numpy(dtype="datetime64[ns]")
    season = seasonal_weights(ts.feats["valid_time"])
    linear = (fit_linear(X, y, ts.names, days, cfg.features.weather_cols, season)
              if "linear" in cfg.p50_members else None)
    kernel = (fit_kernel(X, y, ts.names, ts.cal, recency_weights(days) * season, cfg.seed)
              if "kernel" in cfg.p50_members else None)
    if linear is not None:
        bases["linear_residual"] = _ridge_base(bases["level"], linear.predict(X))
    tree_kinds = tuple(k for k in cfg.p50_members[1:] if k not in ("linear", "kernel"))
    everything = np.ones(len(y), dtype=bool)
    extra = []
    for k, kind in enumerate(tree_kinds, start=1):
        target = raw - bases[kind]
        # The ridge's residuals hold less to learn than the load minus a level: own rounds.
        n = ts.fit_cal(0.5, target)[0] if kind == "linear_residual" else p50_rounds
        extra.append(lgb.train({**_params(cfg, 0.5), "seed": cfg.seed + k},
                               ts.rows(everything, target),
                               num_boost_round=int(round(n * scale))).model_to_string())
    return tuple(extra), tree_kinds, linear, kernel


def fit_frame(feats: pd.DataFrame, target: np.ndarray, cfg: ModelConfig, resolution: pd.Timedelta,
              baseline_errors: tuple[float, float] = (0.0, 0.0)) -> ForecastModel:
    """Fit from feature rows (:func:`build_features`) and their actual values.

    Rows with an unknown target are dropped. With fewer than ``cfg.min_train_days`` target days
    the result is a baseline model. Stages: choose the target (absolute or relative to the
    level), calibrate the conformal margins, refit the quantiles on everything, add the extra
    P50 members.
    """
    check_members(cfg.p50_members)
    t0 = time.perf_counter()
    names = feature_names(feats)
    ok = np.isfinite(target)
    feats, y = feats.loc[ok].reset_index(drop=True), target[ok]
    # Windows count days of issues (UTC dates): intraday has several issues a day. Only rows
    # with a level count (input guards can mask the load the level is made of).
    usable = np.isfinite(_level(feats)) | (cfg.relative_to_level is False)
    days = feats.loc[usable, "issue_time"].dt.floor("D").drop_duplicates().sort_values()
    now = pd.Timestamp.now(tz="UTC")
    common = dict(config=cfg, resolution=resolution, feature_names=names,
                  baseline_errors=baseline_errors, trained_at=now,
                  data_start=feats["valid_time"].min() if len(feats) else None,
                  data_end=feats["valid_time"].max() if len(feats) else None, n_rows=len(feats))
    if len(days) < cfg.min_train_days:
        return ForecastModel(boosters={}, margins=(0.0, 0.0), is_baseline=True, **common)
    ts = _TrainSet.build(feats, y, names, cfg)
    relative, rounds, pred_cal, fitted = _choose_target(ts)
    margins, floors, lead_margins = _calibrate(ts, rounds, pred_cal)
    boosters, scale = _refit(ts, rounds, fitted)
    extra, tree_kinds, linear, kernel = _extra_members(ts, bool(relative), rounds[0.5], scale)
    return ForecastModel(boosters=boosters, margins=margins, is_baseline=False,
                         extra_p50=extra, extra_p50_bases=tree_kinds, linear=linear,
                         kernel=kernel,
                         lead_margins=lead_margins,
                         relative=bool(relative), width_floors=floors,
                         rounds=int(np.mean(list(rounds.values()))),
                         fit_seconds=time.perf_counter() - t0, **common)


def check_members(members: tuple[str, ...]) -> None:
    """Raise a ModelError naming a bad ``p50_members`` setting."""
    bad = [m for m in members if m not in P50_MEMBERS]
    if bad or not members or members[0] != "level":
        raise ModelError(f"p50_members {members}: the first member must be 'level', the others "
                         f"among {', '.join(P50_MEMBERS)}")
    if "linear_residual" in members and "linear" not in members:
        raise ModelError(f"p50_members {members}: 'linear_residual' learns what the 'linear' "
                         "member misses: add 'linear' too")


def training_issues(load: pd.Series, cfg: FeatureConfig, until: pd.Timestamp,
                    res: pd.Timedelta) -> pd.DatetimeIndex:
    """Issue times whose whole forecast window was observed by ``until``, from a week after the
    load starts (lags first).

    Intraday: every issue of the last ``INTRADAY_DENSE_DAYS`` days, and before that one issue a
    day (at ``issue_hour``): the early years still teach seasons and every lead time, at a
    day-ahead's cost instead of 4-24 times more rows.
    """
    first = load.index[0] + pd.Timedelta(days=7)
    if cfg.horizon == Horizon.INTRADAY:
        last = until - pd.Timedelta(hours=cfg.intraday_hours)
        issues = issue_schedule(first, last, cfg)
        daily = issue_schedule(first, last, dataclasses.replace(cfg, horizon=Horizon.DAY_AHEAD))
        dense = issues >= last - pd.Timedelta(days=INTRADAY_DENSE_DAYS)
        return issues[dense | issues.isin(daily)]
    first_day = target_day(load.index[0], cfg.tz) + pd.Timedelta(days=7)
    last_day = target_day(until, cfg.tz) - pd.Timedelta(days=2)
    days = pd.date_range(first_day, last_day, freq="D")
    return pd.DatetimeIndex([issue_time_for_day(d, cfg.tz, cfg.issue_hour) for d in days])


def train(load: pd.Series | pd.DataFrame, weather: pd.DataFrame | None, config: ModelConfig,
          until: pd.Timestamp | None = None, extras: pd.DataFrame | None = None
          ) -> ForecastModel:
    """Train on every day fully observed before ``until`` (default: the end of the load)."""
    s = prepare_load(load)
    res = s.index[1] - s.index[0]
    until = pd.Timestamp(until).tz_convert("UTC") if until is not None else s.index[-1] + res
    s = s[s.index + res <= until]
    if s.dropna().empty:
        raise ModelError(f"training: no load observed before {until}; import load history first")
    fc = config.features
    w = prepare_weather(weather, [*fc.weather_cols, *fc.known_cols], res)
    w = w[w["available_at"] <= until]
    issues = training_issues(s, fc, until, res)
    feats = build_features(s, w, issues, fc, res, extras) if len(issues) else pd.DataFrame(
        columns=["issue_time", "valid_time"])
    target = s.reindex(pd.DatetimeIndex(feats["valid_time"])).to_numpy(dtype=float)
    return fit_frame(feats, target, config, res, persistence_errors(s))


def baseline_frame(feats: pd.DataFrame, model: ForecastModel) -> pd.DataFrame:
    """Same time last week, else two weeks before; interval from past persistence errors."""
    p50 = feats["load_lag_168h"].fillna(feats["load_lag_336h"]).to_numpy(dtype=float)
    e10, e90 = model.baseline_errors
    return pd.DataFrame({"p10_mw": p50 + e10, "p50_mw": p50, "p90_mw": p50 + e90})


def predict_frame(model: ForecastModel, feats: pd.DataFrame) -> pd.DataFrame:
    """P10/P50/P90 for feature rows; rows the model cannot serve fall back to the baseline."""
    base = baseline_frame(feats, model)
    out = feats[["issue_time", "valid_time"]].reset_index(drop=True)
    if model.is_baseline:
        pred, flag = base, np.ones(len(feats), dtype=bool)
    else:
        X = feats[model.feature_names].to_numpy(dtype=np.float32)
        bases = p50_bases(feats, model.relative)
        lo_q, hi_q = np.sort([model.booster(q).predict(X) + bases["level"] for q in (0.1, 0.9)],
                             axis=0)
        p50 = model.predict_p50(X, bases)
        # The band comes from the quantile trees, the median from the members' mean, which
        # leaves the band where the ridge extrapolates: widen the band to it rather than clip
        # it (clipping cost accuracy).
        stack = np.vstack([np.minimum(lo_q, p50), p50, np.maximum(hi_q, p50)])
        lo, hi = _row_margins(model, feats["lead_h"].to_numpy(dtype=float))
        w_lo, w_hi, _ = _half_widths(stack, model.width_floors, model.config.conformal)
        pred = pd.DataFrame({"p10_mw": np.minimum(stack[0] - lo * w_lo, stack[1]),
                             "p50_mw": stack[1],
                             "p90_mw": np.maximum(stack[2] + hi * w_hi, stack[1])})
        # Weather configured but absent for this valid time: the model would extrapolate blindly.
        wcols = list(model.config.features.weather_cols)
        flag = feats[wcols].isna().all(axis=1).to_numpy() if wcols else np.zeros(len(feats), bool)
        flag = flag | ~np.isfinite(stack[1])  # no recent load level: baseline
        pred.loc[flag] = base.loc[flag].to_numpy()
    out = pd.concat([out, pred], axis=1)
    out["is_baseline"] = flag
    out["model_version"] = model.version
    return out


def predict(model: ForecastModel, load: pd.Series | pd.DataFrame, weather: pd.DataFrame | None,
            issue_time: pd.Timestamp, extras: pd.DataFrame | None = None) -> pd.DataFrame:
    """Forecast issued at ``issue_time`` for its window (the next local day, day-ahead; the
    next ``intraday_hours``, intraday).

    Returns ``issue_time, valid_time, p10_mw, p50_mw, p90_mw, is_baseline, model_version``.
    """
    return predict_rows(model, load, weather, issue_time, extras)[1]


def predict_rows(model: ForecastModel, load: pd.Series | pd.DataFrame,
                 weather: pd.DataFrame | None, issue_time: pd.Timestamp,
                 extras: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(feature rows, forecast rows) of :func:`predict`; a ModelError when nothing can be
    forecast."""
    from aggregat.forecast.core.features import features

    feats = features(load, weather, issue_time, model.config.features, model.resolution,
                     extras)
    out = predict_frame(model, feats)
    if out["p50_mw"].isna().all():
        raise ModelError(f"prediction at {issue_time}: no load in the 14 days before the issue "
                         "time, not even the baseline can forecast; import recent load")
    return feats, out


def lead_hours(frame: pd.DataFrame) -> np.ndarray:
    """Whole hours between issue and valid time."""
    d = (pd.DatetimeIndex(frame["valid_time"]).as_unit("ns").asi8
         - pd.DatetimeIndex(frame["issue_time"]).as_unit("ns").asi8)
    return (d // NS_PER_H).astype(int)
