"""Forecast targets (a load series + the weather that drives it) and their weather from the bank.

A target comes from ``[env.X.forecast] targets`` in aggregat.toml; with none configured, every
load series in the bank is a target whose weather is the equally weighted mean over all sites.

:func:`target_weather` turns site weather of several models and runs into the core's input: one
row per (``available_at``, ``valid_time``) with the weighted site mean of each variable, where
the core picks, for each valid time, the newest row available at the issue time. Models are
combined by preference (e.g. AROME, then ARPEGE) so that this pick follows the preference:

    a row of model m for valid time v, available at a, is kept only if no run of a preferred
    model covering v was available at or before a.

Then at any issue time t the newest kept row with ``available_at <= t`` is the newest run of the
most preferred model that covers v among those available at t — AROME within its 51 h, ARPEGE
beyond them or when AROME is missing — exactly the as-of selection per issue time, without
materialising one frame per issue time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from aggregat.bank import Bank, nominal_available_at, read_weather, target_ids, weather_runs
from aggregat.config import Environment, ExtraFeature, TargetSettings
from aggregat.errors import ConfigError, ModelError
from aggregat.forecast.core.features import is_direction
from aggregat.timeutil import Horizon

WEATHER_DATASET = "weather_forecast"
DAY_AHEAD_SPAN = pd.Timedelta(hours=48)  # a day-ahead issue never looks further than this


def forecast_span(horizon: str = Horizon.DAY_AHEAD, intraday_hours: float = 36.0) -> pd.Timedelta:
    """How far past its issue time a forecast of ``horizon`` reaches: the end of day D for a
    day-ahead issue (:data:`DAY_AHEAD_SPAN`), ``intraday_hours`` for an intraday one."""
    return DAY_AHEAD_SPAN if horizon == Horizon.DAY_AHEAD else pd.Timedelta(hours=intraday_hours)


@dataclass(frozen=True)
class Target:
    """One forecast target; ``sites`` empty means every location present in the bank."""

    id: str
    sites: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=dict, hash=False)
    weather_models: tuple[str, ...] = ("arome-0025", "arpege-01")
    weather_cols: tuple[str, ...] = ("t2m_c", "rh2m_pct", "wind_speed_10m_ms", "ssrd_wm2",
                                     "tcc_pct")
    configured: bool = True
    extra_features: tuple[ExtraFeature, ...] = ()
    parent: str | None = None
    # Leaf targets under this one (a parent of the portfolio hierarchy): its load is their sum
    # when it has none of its own in the bank.
    leaves: tuple[str, ...] = ()

    @property
    def extra_known(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.extra_features if f.kind == "known")

    @property
    def extra_lagged(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.extra_features if f.kind == "lagged")

    @classmethod
    def from_settings(cls, s: TargetSettings) -> Target:
        unknown = set(s.weights) - set(s.sites) if s.sites else set()
        if unknown:
            raise ConfigError(f"forecast target {s.id!r}: weights for sites not in its site list: "
                              f"{', '.join(sorted(unknown))}")
        bad = [k for k, w in s.weights.items() if not np.isfinite(w) or w < 0]
        if bad:
            raise ConfigError(f"forecast target {s.id!r}: weights must be >= 0 (see {bad[0]!r})")
        return cls(id=s.id, sites=tuple(s.sites), weights=dict(s.weights),
                   weather_models=tuple(s.weather_models), weather_cols=tuple(s.weather_cols),
                   extra_features=tuple(s.extra_features), parent=s.parent)


def resolve_targets(env: Environment, bank: Bank, only: Sequence[str] | None = None
                    ) -> list[Target]:
    """The configured targets (or one default target per load series in the bank).

    ``only``: keep these ids; an unknown id is a :class:`ConfigError` naming the known ones.
    """
    configured = env.forecast.targets
    if configured:
        ids = [t.id for t in configured]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ConfigError(f"[env.{env.name}.forecast] target id(s) defined twice: "
                              f"{', '.join(sorted(dup))}")
        targets = [Target.from_settings(t) for t in configured]
        targets = _with_leaves(targets)
    else:
        targets = [Target(id=t, configured=False) for t in target_ids(bank)]
    if only:
        known = {t.id: t for t in targets}
        missing = [t for t in only if t not in known]
        if missing:
            where = ("configured in [forecast] targets" if configured
                     else f"with load in the bank {bank.url}")
            raise ConfigError(f"unknown target(s) {', '.join(missing)}; targets {where}: "
                              f"{', '.join(known) or 'none'}")
        targets = [known[t] for t in only]
    return targets


def hierarchy(targets: Sequence[Target]):
    """The portfolio hierarchy of ``targets`` (:class:`~aggregat.forecast.core.hierarchy.
    Hierarchy`), or None when no target names a parent."""
    from aggregat.forecast.core.hierarchy import Hierarchy

    if not any(t.parent for t in targets):
        return None
    return Hierarchy.from_parents({t.id: t.parent for t in targets})


def _with_leaves(targets: list[Target]) -> list[Target]:
    """``targets`` with the leaf targets under each parent (checks the hierarchy)."""
    hy = hierarchy(targets)
    if hy is None:
        return targets
    out = []
    for t in targets:
        row = hy.S[hy.nodes.index(t.id)]
        leaves = tuple(leaf for leaf, on in zip(hy.leaves, row, strict=True) if on)
        out.append(replace(t, leaves=leaves if t.id not in hy.leaves else ()))
    return out


def site_mean(df: pd.DataFrame, cols: Sequence[str], weights: dict[str, float]) -> pd.DataFrame:
    """Weighted mean over locations per (model, run_time, available_at, valid_time).

    Missing values are skipped and the weights of the present locations renormalised; a
    variable missing at every location stays missing (never 0). Directions in degrees are
    averaged as unit vectors (350 and 10 degrees give 0, not 180).
    """
    keys = ["model", "run_time", "available_at", "valid_time"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, *cols])
    codes, names = pd.factorize(df["location"])  # arrow strings map slowly one by one
    w = np.array([weights.get(n, 1.0) for n in names], dtype=float)[codes]
    parts = {}
    for c in cols:
        v = df[c].to_numpy(dtype=float)
        ok = np.isfinite(v) & (w > 0)
        if is_direction(c):
            rad = np.deg2rad(np.where(ok, v, 0.0))
            parts[f"{c}__num"] = np.where(ok, np.cos(rad) * w, 0.0)
            parts[f"{c}__sin"] = np.where(ok, np.sin(rad) * w, 0.0)
        else:
            parts[f"{c}__num"] = np.where(ok, v * w, 0.0)
        parts[f"{c}__den"] = np.where(ok, w, 0.0)
    tmp = pd.concat([df[keys].reset_index(drop=True), pd.DataFrame(parts)], axis=1)
    agg = tmp.groupby(keys, sort=True, observed=True).sum().reset_index()
    out = agg[keys].copy()
    for c in cols:
        den, num = agg[f"{c}__den"].to_numpy(), agg[f"{c}__num"].to_numpy()
        if is_direction(c):
            value = np.rad2deg(np.arctan2(agg[f"{c}__sin"].to_numpy(), num)) % 360
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                value = num / den
        out[c] = np.where(den > 0, value, np.nan)
    return out


def combine_models(frame: pd.DataFrame, preference: Sequence[str]) -> pd.DataFrame:
    """Rows kept so that the newest available row follows the model preference (module doc).

    ``frame``: one row per (model, run, valid_time). Returns ``available_at, valid_time`` and the
    variables, plus ``model`` and ``run_time`` for traceability; one row per
    (available_at, valid_time).
    """
    if frame.empty:
        return frame.reset_index(drop=True)
    rank = {m: i for i, m in enumerate(preference)}
    f = frame.assign(_rank=frame["model"].map(rank).astype(int))
    # Earliest availability of each rank for each valid time.
    first = (f.groupby(["valid_time", "_rank"], observed=True)["available_at"].min()
             .rename("first_at").reset_index())
    keep = np.ones(len(f), dtype=bool)
    for r in sorted(f["_rank"].unique()):
        better = first[first["_rank"] < r].groupby("valid_time")["first_at"].min()
        if better.empty:
            continue
        seen = f["valid_time"].map(better)
        mask = (f["_rank"] == r).to_numpy() & (f["available_at"] >= seen).fillna(False).to_numpy()
        keep &= ~mask
    out = f.loc[keep]
    # Same availability for one valid time: the preferred model, then the newest run.
    out = (out.sort_values(["valid_time", "available_at", "_rank", "run_time"],
                           ascending=[True, True, False, True], kind="stable")
              .drop_duplicates(["available_at", "valid_time"], keep="last"))
    return out.drop(columns="_rank").sort_values(["available_at", "valid_time"]).reset_index(
        drop=True)


def target_weather(bank: Bank, target: Target, start: pd.Timestamp, end: pd.Timestamp,
                   issued_before: pd.Timestamp | None = None, max_lead_h: float = 102.0,
                   ) -> pd.DataFrame:
    """The core's weather frame for ``target``: ``valid_time``, ``available_at`` and the
    target's weather columns, for valid times in ``[start, end)`` (see the module doc).

    Reads only the runs that can reach the window (and, with ``issued_before``, that were
    available then). Columns absent from the bank are left out; an empty frame when there is
    no weather at all (the core then forecasts from calendar and load only).
    """
    locations = list(target.sites) if target.sites else None
    df = read_weather(bank, start, end, models=list(target.weather_models), locations=locations,
                      max_lead_h=max_lead_h, issued_before=issued_before)
    cols = [c for c in target.weather_cols if c in df.columns and df[c].notna().any()]
    if df.empty or not cols:
        return pd.DataFrame({"valid_time": pd.DatetimeIndex([], tz="UTC"),
                             "available_at": pd.DatetimeIndex([], tz="UTC")})
    weights = {s: float(target.weights.get(s, 1.0)) for s in df["location"].unique()}
    if sum(weights.values()) <= 0:
        raise ModelError(f"target {target.id!r}: all site weights are 0")
    mean = site_mean(df, cols, weights)
    out = combine_models(mean, list(target.weather_models))
    return out[["valid_time", "available_at", *cols, "model", "run_time"]]


def select_runs(bank: Bank, model: str, issues: pd.DatetimeIndex, max_lead_h: float,
                runs_per_issue: int = 2, span: pd.Timedelta = DAY_AHEAD_SPAN
                ) -> tuple[list[str], float]:
    """Files of the ``runs_per_issue`` newest runs of ``model`` nominally available at each issue
    time, and the longest lead (h) any issue needs from them to reach ``span`` past the issue
    (:func:`forecast_span`). Two runs, not one: a run published later than its nominal time is
    filtered out by ``available_at`` and the one before serves."""
    if not len(issues):
        return [], 0.0
    found = weather_runs(bank, model, issues.min() - pd.Timedelta(hours=float(max_lead_h)),
                         issues.max())
    picked, lead = _picked_runs(found, model, issues, max_lead_h, runs_per_issue, span)
    return [f for _, f in picked], lead


def _picked_runs(found: list[tuple[pd.Timestamp, str]], model: str, issues: pd.DatetimeIndex,
                 max_lead_h: float, runs_per_issue: int, span: pd.Timedelta
                 ) -> tuple[list[tuple[pd.Timestamp, str]], float]:
    """(run time, file) of the runs :func:`select_runs` picks among ``found`` (the model's runs,
    sorted by run time, at least those made in the issues' reach), and its lead."""
    if not len(issues) or not found:
        return [], 0.0
    days = pd.DatetimeIndex([r for r, _ in found]).as_unit("ns").floor("D")
    first = (issues.min() - pd.Timedelta(hours=float(max_lead_h))).floor("D")
    inside = (days >= first) & (days <= issues.max().floor("D"))
    found = [run for run, keep in zip(found, inside, strict=True) if keep]
    if not found:
        return [], 0.0
    runs = pd.DatetimeIndex([r for r, _ in found]).as_unit("ns")
    avail = pd.DatetimeIndex([nominal_available_at(model, r) for r in runs]).as_unit("ns").asi8
    newest = np.searchsorted(avail, pd.DatetimeIndex(issues).as_unit("ns").asi8, side="right")
    picked: dict[int, pd.Timestamp] = {}
    for k, n in enumerate(newest):
        for i in range(max(n - runs_per_issue, 0), n):
            picked[i] = max(picked.get(i, issues[k]), issues[k])
    lead = max(((last + span - runs[i]) / pd.Timedelta(hours=1)
                for i, last in picked.items()), default=0.0)
    return [found[i] for i in sorted(picked)], min(float(max_lead_h), lead)


def issue_weather(bank: Bank, target: Target, issues: pd.DatetimeIndex,
                  max_lead_h: float = 102.0, runs_per_issue: int = 2,
                  chunk_files: int = 240, span: pd.Timedelta = DAY_AHEAD_SPAN) -> pd.DataFrame:
    """Like :func:`target_weather`, but from only the runs that issues at ``issues`` reaching
    ``span`` ahead use (:func:`select_runs`), read in chunks and reduced to the site mean chunk
    by chunk: training on years of history reads ~4 runs a day instead of every run, in bounded
    memory.

    Training (its daily issue times) and prediction (the issue time and the days before it)
    select runs the same way, so a model sees the same kind of weather in both.
    """
    return portfolio_issue_weather(bank, {target.id: (target, issues)}, max_lead_h,
                                   runs_per_issue, chunk_files, span)[target.id]


def portfolio_issue_weather(bank: Bank, wanted: dict[str, tuple[Target, pd.DatetimeIndex]],
                            max_lead_h: float = 102.0, runs_per_issue: int = 2,
                            chunk_files: int = 240, span: pd.Timedelta = DAY_AHEAD_SPAN
                            ) -> dict[str, pd.DataFrame]:
    """:func:`issue_weather` of several targets (id: (target, issues)) in one pass: each run
    file is read once for all of them, not once per target (a weekly training of 50 targets
    over years of history read the same thousands of files 50 times). Each target's frame is
    the one :func:`issue_weather` gives it alone."""
    parts: dict[str, list[pd.DataFrame]] = {tid: [] for tid in wanted}
    models = list(dict.fromkeys(m for t, _ in wanted.values() for m in t.weather_models))
    issues_of = {tid: pd.DatetimeIndex(issues).tz_convert("UTC").sort_values()
                 for tid, (_, issues) in wanted.items()}
    reach = [i for i in issues_of.values() if len(i)]
    for model in models:
        found = weather_runs(bank, model, min(i.min() for i in reach)
                             - pd.Timedelta(hours=float(max_lead_h)),
                             max(i.max() for i in reach)) if reach else []
        users = {tid: (t, *_picked_runs(found, model, issues_of[tid], max_lead_h, runs_per_issue,
                                        span))
                 for tid, (t, _) in wanted.items() if model in t.weather_models}
        runs_of = {tid: {r for r, _ in picked} for tid, (_, picked, _) in users.items()}
        files = sorted({f for _, picked, _ in users.values() for _, f in picked})
        sites = [s for t, _, _ in users.values() for s in t.sites]
        conds, params = ["step_h <= ?"], [max((lead for *_, lead in users.values()), default=0)]
        if sites and all(t.sites for t, _, _ in users.values()):
            conds.append(f'location IN ({", ".join("?" for _ in dict.fromkeys(sites))})')
            params.extend(dict.fromkeys(sites))
        for k in range(0, len(files), chunk_files):
            df = bank.read_files(WEATHER_DATASET, files[k:k + chunk_files],
                                 filter_sql=" AND ".join(conds), params=params)
            for tid, (target, _, lead) in users.items():
                mine = _rows_of(df, target, runs_of[tid], lead)
                cols = [c for c in target.weather_cols
                        if c in mine.columns and mine[c].notna().any()]
                if mine.empty or not cols:
                    continue
                weights = {s: float(target.weights.get(s, 1.0)) for s in mine["location"].unique()}
                parts[tid].append(site_mean(mine, cols, weights))
    return {tid: _combined(parts[tid], target) for tid, (target, _) in wanted.items()}


def _rows_of(df: pd.DataFrame, target: Target, runs: set[pd.Timestamp], lead: float
             ) -> pd.DataFrame:
    """The rows of ``df`` (several targets' read) that the target's own read would hold."""
    if df.empty:
        return df
    keep = (df["step_h"] <= lead).to_numpy() & df["run_time"].isin(list(runs)).to_numpy()
    if target.sites:
        keep &= df["location"].isin(target.sites).to_numpy()
    return df.loc[keep] if not keep.all() else df


def _combined(parts: list[pd.DataFrame], target: Target) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({"valid_time": pd.DatetimeIndex([], tz="UTC"),
                             "available_at": pd.DatetimeIndex([], tz="UTC")})
    mean = pd.concat(parts, ignore_index=True)
    cols = [c for c in target.weather_cols if c in mean.columns]
    out = combine_models(mean, list(target.weather_models))
    return out[["valid_time", "available_at", *cols, "model", "run_time"]]


EXTRA_MARGIN = pd.Timedelta(days=8)  # lagged extras look back a week before the first issue


def target_extras(bank: Bank, target: Target, start: pd.Timestamp, end: pd.Timestamp
                  ) -> pd.DataFrame | None:
    """The core's ``extras`` of ``target`` (``feature, time, available_at, value``) with times
    in ``[start - 8 days, end)``, read from the bank datasets its ``extra_features`` name (only
    the months of the window). A column ``X`` is known at ``available_at__X`` when the dataset
    has one (RTE's forecasts), else at ``available_at``. Rows left by ``where`` that share a
    time are summed, known when the last of them is. None when the target has no extras."""
    if not target.extra_features:
        return None
    import aggregat.rte.sync  # noqa: F401  (registers the RTE datasets' schemas)

    t0, t1 = pd.Timestamp(start) - EXTRA_MARGIN, pd.Timestamp(end)
    months = [f"{m:%Y-%m}" for m in pd.period_range(t0.tz_convert("UTC").tz_localize(None),
                                                    t1.tz_convert("UTC").tz_localize(None),
                                                    freq="M")]
    parts = []
    for spec in target.extra_features:
        files = bank.files(spec.dataset, {"month": months}) if months else []
        if not files:
            parts.append(pd.DataFrame({"feature": [], "time": pd.DatetimeIndex([], tz="UTC"),
                                       "available_at": pd.DatetimeIndex([], tz="UTC"),
                                       "value": []}))
            continue
        probe = bank.read_files(spec.dataset, files[:1], limit=0)
        avail = (f"available_at__{spec.column}" if f"available_at__{spec.column}" in probe
                 else "available_at")
        missing = [c for c in (spec.column, avail, *spec.where) if c not in probe]
        if missing:
            raise ConfigError(f"target {target.id!r} extra feature {spec.feature!r}: dataset "
                              f"{spec.dataset!r} has no column {missing[0]!r} (columns: "
                              f"{', '.join(probe.columns[:16])}); fix extra_features")
        conds, params = ["time >= ?", "time < ?"], [t0, t1]
        for key, value in spec.where.items():
            conds.append(f'CAST("{key}" AS VARCHAR) = ?')
            params.append(value)
        rows = bank.read_files(spec.dataset, files, columns=["time", avail, spec.column],
                               filter_sql=" AND ".join(conds), params=params)
        rows = rows.assign(value=pd.to_numeric(rows[spec.column], errors="coerce"))
        by_time = rows.groupby("time", sort=True)
        grouped = pd.DataFrame({"available_at": by_time[avail].max(),
                                "value": by_time["value"].sum(min_count=1)}).reset_index()
        parts.append(grouped.assign(feature=spec.feature))
    out = pd.concat(parts, ignore_index=True)
    return out[["feature", "time", "available_at", "value"]]
