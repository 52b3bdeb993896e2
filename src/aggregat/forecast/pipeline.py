"""Bank-driven train / predict / promote of the configured targets (the storage-aware steps).

- :func:`train_target` reads the whole load history of a target and the weather runs its
  day-ahead issues use from the bank (the only step that reads history), fits a candidate on
  all but the last ``validation_days``, refits on everything and saves the new version to the
  registry. Promotion: the first model always; later ones only if the candidate beats the
  current model by ``promotion_margin`` (relative MAE) on the validation days the current model
  was not fitted on (comparing on days a model was trained on would always keep it; see
  :mod:`aggregat.forecast.core.validation`). Re-training after a deployment is just this step: no
  dataset rebuild.
- :func:`predict_target` reads only the last ``history_days_for_predict`` days (weather runs
  available at the issue time, recent load), loads the current model, and writes dataset
  ``forecast``; with no model or an unusable one it writes the flagged weekly baseline.
- :func:`train_targets` / :func:`predict_targets` run targets in parallel with
  :func:`aggregat.parallel.run_tasks` (local processes, or the Dask cluster of the env).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from aggregat.bank import Bank, read_forecast, read_load, write_forecast, write_forecast_explain
from aggregat.config import Environment
from aggregat.errors import AggregatError, ConfigError, InputError, ModelError
from aggregat.forecast.core.blend import blend_with_day_ahead
from aggregat.forecast.core.calendar import calendar_code, school_zones
from aggregat.forecast.core.explain import add_group
from aggregat.forecast.core.features import (
    FeatureConfig,
    issue_time_for_day,
    prepare_load,
)
from aggregat.forecast.core.guards import (
    GuardConfig,
    GuardReport,
    check_load,
    check_recent_load,
    check_weather,
    weather_reference,
    window_rows,
)
from aggregat.forecast.core.models import (
    ForecastModel,
    ModelConfig,
    check_members,
    persistence_errors,
    training_issues,
)
from aggregat.forecast.core.validation import (
    fit_and_validate,
    forecast_issues,
    promotion_rule,
    unseen_issues,
    validation_scores,
)
from aggregat.forecast.registry import Registry
from aggregat.forecast.targets import (
    Target,
    forecast_span,
    issue_weather,
    portfolio_issue_weather,
    resolve_targets,
    target_extras,
)
from aggregat.parallel import default_workers, run_tasks
from aggregat.plausibility import Bounds, Plausibility
from aggregat.results import PredictResult, TrainResult, predict_result, train_result
from aggregat.timeutil import Horizon, as_utc
from aggregat.version import code_version

BASELINE_VERSION = "baseline"
T = TypeVar("T")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([wdhm])\s*$", re.I)
_UNITS = {"w": "W", "d": "D", "h": "h", "m": "min"}


def parse_age(text: str | None) -> pd.Timedelta | None:
    """``7d``, ``36h``, ``2w``, ``90m`` -> Timedelta; None stays None."""
    if text is None or text == "":
        return None
    m = _AGE.match(str(text))
    if not m:
        raise ConfigError(f"if_older {text!r}: use a number and a unit, e.g. 7d, 36h, 2w",
                          param="if_older")
    return pd.Timedelta(float(m.group(1)), unit=_UNITS[m.group(2).lower()])


def default_issue_time(env: Environment, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """Today (in ``forecast.timezone``) at ``forecast.issue_hour_local``, in UTC."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    tz = env.forecast.timezone
    tomorrow = now.tz_convert(tz).tz_localize(None).normalize() + pd.Timedelta(days=1)
    return issue_time_for_day(tomorrow, tz, env.forecast.issue_hour_local)


def check_horizon(horizon: str) -> Horizon:
    """``horizon`` as a :class:`Horizon`, else a one-line ConfigError naming the parameter."""
    return Horizon.parse(horizon, param="horizon", error=ConfigError)


def _span(env: Environment, horizon: str) -> pd.Timedelta:
    """How far past an issue the weather of ``horizon`` is read (:func:`forecast_span`)."""
    return forecast_span(horizon, float(env.forecast.intraday_hours))


def model_key(target_id: str, horizon: str = Horizon.DAY_AHEAD) -> str:
    """Registry and ``forecast`` dataset id of a target's model for ``horizon``: the target id
    for day-ahead, ``<id>@intraday`` for intraday (both live side by side)."""
    check_horizon(horizon)
    return target_id if horizon == Horizon.DAY_AHEAD else f"{target_id}@{horizon}"


def model_config(env: Environment, weather_cols: Sequence[str], n_jobs: int = 1,
                 known_cols: Sequence[str] = (), issue_hour: float | None = None,
                 horizon: str = Horizon.DAY_AHEAD, target: Target | None = None
                 ) -> ModelConfig:
    """The core's settings for a target of ``env`` with the weather columns found in the bank.

    ``known_cols``: bank columns known in advance (a holiday flag), used as they are;
    ``issue_hour``: a local issue hour (may be fractional) instead of ``issue_hour_local``;
    ``horizon``: "day-ahead" or "intraday" (``intraday_every_h``, ``intraday_hours``);
    ``target``: its ``extra_features`` (known and lagged extras).
    """
    fs = env.forecast
    holidays, school = calendar_code(fs.holidays), calendar_code(fs.school_holidays)
    if school:
        try:
            school_zones(school)
        except ConfigError as exc:
            raise ConfigError(f"[env.{env.name}.forecast] school_holidays: {exc}") from None
    hour = float(fs.issue_hour_local if issue_hour is None else issue_hour)
    check_horizon(horizon)
    try:
        fc = FeatureConfig(tz=fs.timezone, issue_hour=hour, holidays=holidays,
                           school_holidays=school,
                           weather_cols=tuple(weather_cols), known_cols=tuple(known_cols),
                           horizon=horizon, intraday_every_h=float(fs.intraday_every_h),
                           intraday_hours=float(fs.intraday_hours),
                           extra_known=target.extra_known if target else (),
                           extra_lagged=target.extra_lagged if target else ())
    except InputError as exc:
        raise ConfigError(f"[env.{env.name}.forecast] {exc}") from None
    cfg = ModelConfig(features=fc, min_train_days=fs.min_train_days, n_jobs=n_jobs)
    known = {f.name for f in dataclasses.fields(ModelConfig)} - {"features", "min_train_days"}
    bad = sorted(set(fs.model_params) - known)
    if bad:
        raise ConfigError(f"[env.{env.name}.forecast] model_params: unknown key(s) "
                          f"{', '.join(bad)}; known: {', '.join(sorted(known))}")
    params = dict(fs.model_params)
    if "p50_members" in params:  # e.g. ["level", "nowcast"]: P50 without the ridge
        members = params["p50_members"]
        params["p50_members"] = tuple(members) if isinstance(members, list) else (members,)
        try:
            check_members(params["p50_members"])
        except ModelError as exc:
            raise ConfigError(f"[env.{env.name}.forecast] model_params: {exc}") from None
    return dataclasses.replace(cfg, **params)


def guard_config(env: Environment) -> GuardConfig:
    """The core's guard settings from ``[env.X.forecast.guards]``."""
    return GuardConfig.from_dict(env.forecast.guards.model_dump())


def _load_series(df: pd.DataFrame, what: str, bounds: Bounds | None = None) -> pd.Series:
    """The bank's load as a series; with ``bounds``, implausible values (stored before the check
    or under looser bounds) are missing, never learnt from (aggregat.plausibility)."""
    if df.empty:
        raise ModelError(f"no load for {what} in the bank; import it with `aggregat load "
                         "import` or `aggregat energy sync`")
    load = pd.Series(df["load_mw"].to_numpy(dtype=float),
                     index=pd.DatetimeIndex(df["time"]).tz_convert("UTC"), name="load_mw")
    if bounds is not None:
        load = load.where((load >= bounds.min_mw) & (load <= bounds.max_mw))
    if load.notna().sum() < 3:
        raise ModelError(f"no load for {what} in the bank; import it with `aggregat load "
                         "import` or `aggregat energy sync`")
    return load


def target_load(bank: Bank, target: Target, start: pd.Timestamp | None = None,
                end: pd.Timestamp | None = None) -> pd.DataFrame:
    """The bank's load of ``target`` (``time``, ``load_mw``); a parent of the portfolio
    hierarchy without load of its own gets the sum of its leaves' (missing where any is)."""
    df = read_load(bank, [target.id], start, end)
    if not df.empty or not target.leaves:
        return df
    parts = read_load(bank, list(target.leaves), start, end)
    if parts.empty:
        return df
    wide = parts.pivot_table(index="time", columns="target_id", values="load_mw",
                             aggfunc="last", dropna=False)
    total = wide.reindex(columns=list(target.leaves)).sum(axis=1, min_count=len(target.leaves))
    return pd.DataFrame({"target_id": target.id, "time": total.index,
                         "load_mw": total.to_numpy(dtype=float)})


def _weather_for_model(weather: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """``weather`` with every column the model expects (missing ones as NaN: the core then
    flags those rows as baseline instead of failing)."""
    out = weather.copy()
    for c in cols:
        if c not in out:
            out[c] = np.nan
    return out


# ----------------------------------------------------------------------------------- train
def train_target(env: Environment, target: Target, *, force: bool = False,
                 if_older: pd.Timedelta | None = None, now: pd.Timestamp | None = None,
                 until: pd.Timestamp | None = None, n_jobs: int = 1,
                 horizon: str = Horizon.DAY_AHEAD,
                 inputs: TrainInputs | None = None) -> dict[str, Any]:
    """Train, validate, save and maybe promote a model of ``target``; returns a summary dict
    (status ``trained`` or ``skipped``, version, promoted, reason, metrics, seconds).

    ``until``: use only load before this time (replays, tests); default: all of it.
    ``horizon``: the intraday model is kept under :func:`model_key` beside the day-ahead one.
    ``inputs``: its load and weather, already read (:func:`train_targets` reads a portfolio's
    weather in one pass); default: read here."""
    t0 = time.perf_counter()
    fs = env.forecast
    reg = Registry(env.registry)
    key = model_key(target.id, horizon)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    age = _too_recent(reg, key, now, force, if_older)
    if age is not None:
        return {"target": key, "status": "skipped", "version": reg.current(key),
                "reason": f"newest model is {_fmt_age(age)} old (< {_fmt_age(if_older)})"}
    bank = Bank(env.bank)
    inputs = inputs or _training_inputs(env, bank, [target], until, horizon)[target.id]
    load, guarded, weather = inputs.load, inputs.guarded, inputs.weather
    start, end = inputs.start, inputs.end
    cols = [c for c in target.weather_cols if c in weather.columns]
    cfg = model_config(env, cols, n_jobs=n_jobs, horizon=horizon, target=target)
    extras = target_extras(bank, target, start, end + pd.Timedelta(days=3))
    current = reg.current(key)
    old, old_error = None, None
    if current is not None:
        try:
            old = reg.load(key, current).model
        except ModelError as exc:  # corrupt or from an incompatible code version: replace it
            old_error = str(exc)
    fit = fit_and_validate(load, weather, cfg, validation_days=fs.validation_days,
                           extras=extras)
    fair = unseen_issues(fit.val_pred, old)
    new_scores = validation_scores(fit.val_pred[fit.val_pred["issue_time"].isin(fair)]
                                   if len(fit.val_pred) else None, load)
    old_scores: dict[str, float] = {}
    if old is not None and len(fair):
        old_pred = forecast_issues(old, load, _weather_for_model(weather, _cols_of(old)), fair,
                                   extras)
        old_scores = validation_scores(old_pred, load)
    new_mae = new_scores.get("mae", float("nan"))
    promoted, reason = promotion_rule(current, old_error, len(fair), new_mae,
                                      old_scores.get("mae", float("nan")), fs.promotion_margin)
    model = fit.model
    meta = {
        "trained_at": now.isoformat(),
        "code_version": code_version(),
        "model_hash": model.version,
        "kind": "baseline" if model.is_baseline else "lightgbm-quantile",
        "data_start": start.isoformat(), "data_end": end.isoformat(),
        "weather_models": list(target.weather_models), "weather_cols": cols,
        "weather_rows": int(len(weather)),
        "extra_features": [f.model_dump() for f in target.extra_features],
        "features": list(model.feature_names),
        "n_rows": int(model.n_rows), "rounds": int(model.rounds),
        "resolution": str(model.resolution),
        "metrics": {"validation": validation_scores(fit.val_pred, load), "compared_days": len(fair),
                    "new_on_compared": new_scores, "current_on_compared": old_scores,
                    "validation_days": fs.validation_days,
                    "validation_start": (fit.validation_issues[0].isoformat()
                                         if len(fit.validation_issues) else None)},
        "promotion": {"promoted": promoted, "reason": reason, "previous": current,
                      "margin": fs.promotion_margin},
        "horizon": horizon,
        "target_def": {"sites": list(target.sites), "weights": target.weights,
                       "configured": target.configured},
        "config": dataclasses.asdict(cfg),
        "guards": {"found": guarded.found, "masked_intervals": int(guarded.mask.sum()),
                   "weather_reference": weather_reference(weather, cols)},
        "fit_seconds": round(time.perf_counter() - t0, 2),
    }
    version = reg.save(key, model, meta, trained_at=now)
    if promoted:
        reg.promote(key, version)
    return {"target": key, "status": "trained", "version": version, "promoted": promoted,
            "reason": reason, "mae_new": new_mae, "mae_current": old_scores.get("mae"),
            "baseline": model.is_baseline, "guards": guarded.summary(),
            "masked_intervals": int(guarded.mask.sum()),
            "validation": _validation_frame(fit.val_pred, load),
            "seconds": round(time.perf_counter() - t0, 2)}


@dataclasses.dataclass(frozen=True)
class TrainInputs:
    """What one training reads from the bank: the guarded load and the issues' weather."""

    load: pd.Series  # prepared, guarded periods masked
    guarded: GuardReport
    weather: pd.DataFrame
    start: pd.Timestamp  # the measured load's first and last time
    end: pd.Timestamp


def _training_inputs(env: Environment, bank: Bank, targets: Sequence[Target],
                     until: pd.Timestamp | None, horizon: str, *, skip_failed: bool = False
                     ) -> dict[str, TrainInputs]:
    """Each target's training inputs; the weather of all of them in one pass over the runs.
    ``skip_failed``: a target whose load cannot be used is left out (its own training then
    reports why) instead of stopping the others."""
    loads: dict[str, TrainInputs] = {}  # the weather is filled in below, for all at once
    no_weather = pd.DataFrame()
    for target in targets:
        try:
            load = _load_series(target_load(bank, target, end=until), f"target {target.id!r}",
                                Plausibility.from_env(env).bounds(target.id))
        except AggregatError:
            if skip_failed:
                continue
            raise
        prepared = prepare_load(load)
        # Stuck meters, spikes, incomplete days and level-shift transitions are never learnt from.
        guarded = check_load(prepared, guard_config(env))
        loads[target.id] = TrainInputs(prepared.mask(guarded.mask), guarded, no_weather,
                                       load.index.min(), load.index.max())
    weather = portfolio_issue_weather(
        bank, {t.id: (t, _daily_issues(env, loads[t.id].load, horizon=horizon))
               for t in targets if t.id in loads},
        max_lead_h=env.forecast.max_lead_h, span=_span(env, horizon))
    return {tid: dataclasses.replace(got, weather=weather[tid]) for tid, got in loads.items()}


def _too_recent(reg: Registry, key: str, now: pd.Timestamp, force: bool,
                if_older: pd.Timedelta | None) -> pd.Timedelta | None:
    """The age of ``key``'s newest model when it is too recent to retrain, else None."""
    if force or if_older is None:
        return None
    age = reg.age(key, now)
    return age if age is not None and age < if_older else None


def _validation_frame(val_pred: pd.DataFrame, load: pd.Series) -> pd.DataFrame:
    """Out-of-sample validation forecasts with the actual load (what the portfolio
    reconciliation is fitted on)."""
    if val_pred is None or val_pred.empty:
        return pd.DataFrame(columns=["issue_time", "valid_time", "p50_mw", "actual_mw"])
    out = val_pred[["issue_time", "valid_time", "p50_mw"]].copy()
    out["actual_mw"] = load.reindex(pd.DatetimeIndex(out["valid_time"])).to_numpy(dtype=float)
    return out


def _daily_issues(env: Environment, load: pd.Series, issue_hour: float | None = None,
                  horizon: str = Horizon.DAY_AHEAD) -> pd.DatetimeIndex:
    """The issue times training uses (the core's), to select the weather runs."""
    fc = model_config(env, (), issue_hour=issue_hour, horizon=horizon).features
    s = prepare_load(load)
    res = s.index[1] - s.index[0]
    return training_issues(s, fc, s.dropna().index[-1] + res, res)


def _cols_of(model: Any) -> tuple[str, ...]:
    fc = model.config.features
    return (*fc.weather_cols, *fc.known_cols)


def _fmt_age(td: pd.Timedelta) -> str:
    hours = td / pd.Timedelta(hours=1)
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h"


# --------------------------------------------------------------------------------- predict
def predict_target(env: Environment, target: Target, issue_time: pd.Timestamp | str,
                   registry: Registry | None = None, horizon: str = Horizon.DAY_AHEAD,
                   weather_fallback: str | None = None) -> dict[str, Any]:
    """Forecast ``target`` for the day after ``issue_time`` (intraday: the next
    ``intraday_hours``) and write dataset ``forecast`` (target id :func:`model_key`).

    Reads only recent partitions: load of the last ``history_days_for_predict`` (+1) days and
    the weather runs available at the issue time that reach back that far. Rerunning for the
    same issue time replaces the same partition. ``weather_fallback``: the job used an earlier
    weather run than planned (the runs were late); every row carries this note.
    """
    t0 = time.perf_counter()
    fs = env.forecast
    issue = as_utc(issue_time, param="issue_time", error=ConfigError)
    reg = registry or Registry(env.registry)
    bank = Bank(env.bank)
    hist = pd.Timedelta(days=fs.history_days_for_predict)
    load_df = target_load(bank, target, issue - hist - pd.Timedelta(days=1), issue)
    load = _load_series(load_df, f"target {target.id!r} in the {hist.days + 1} days before "
                        f"{issue:%Y-%m-%dT%H:%MZ}", Plausibility.from_env(env).bounds(target.id))
    key = model_key(target.id, horizon)
    model, version, note = _current_model(reg, key, env, load, horizon)
    load = prepare_load(load)
    # The runs this issue uses, and those of the days before it that cover the weather history
    # of the features (warm-up), selected as in training.
    days = min(fs.history_days_for_predict, model.config.features.warmup_days + 2)
    issues = pd.DatetimeIndex([issue - pd.Timedelta(days=k) for k in range(days, -1, -1)])
    weather = issue_weather(bank, target, issues, max_lead_h=fs.max_lead_h,
                            span=_span(env, horizon))
    weather = weather[weather["available_at"] <= issue] if len(weather) else weather
    extras = target_extras(bank, target, issue - hist, issue + pd.Timedelta(days=3))
    flags = _guard(env, reg, key, version, model, load, weather, issue, horizon)
    if flags:
        # Bad inputs: the weekly baseline on the load without the flagged intervals.
        note = (f"input guards tripped ({flags.summary()}); weekly baseline used")
        load = load.mask(flags.mask)
        model, version = _baseline_model(env, load, horizon), BASELINE_VERSION
    try:
        out, explained = _predict(model, load, _weather_for_model(weather, _cols_of(model)),
                                  issue, extras)
    except (InputError, ModelError) as exc:
        if model.is_baseline:
            raise ModelError(f"target {target.id!r} at {issue:%Y-%m-%dT%H:%MZ}: {exc}") from None
        note = f"model {version} could not forecast ({exc}); weekly baseline used"
        model, version = _baseline_model(env, load, horizon), BASELINE_VERSION
        out, explained = _predict(model, load, weather, issue)
    blended = 0
    if horizon == Horizon.INTRADAY and fs.intraday_blend:
        unblended = out
        out, blended = blend_with_day_ahead(out, _day_ahead_before(bank, target, issue, out))
        if blended:
            explained = add_group(explained, "day_ahead_blend", unblended, out)
    write_forecast_explain(bank, explained.assign(target_id=key))
    out.insert(0, "target_id", key)
    out["model_version"] = version
    out["weather_run_fallback"] = pd.Series(weather_fallback, index=out.index, dtype="string")
    guard_flags = ",".join(flags.flags) if flags else None
    out["guard_flags"] = pd.Series(guard_flags, index=out.index, dtype="string")
    rows = write_forecast(bank, out[["target_id", "issue_time", "valid_time", "p10_mw",
                                     "p50_mw", "p90_mw", "model_version", "is_baseline",
                                     "weather_run_fallback", "guard_flags"]])
    return {"target": key, "status": "predicted", "issue_time": issue.isoformat(),
            "version": version, "rows": rows, "baseline_rows": int(out["is_baseline"].sum()),
            "blended_rows": blended, "note": note, "guard_flags": guard_flags,
            "seconds": round(time.perf_counter() - t0, 3)}


def _guard(env: Environment, reg: Registry, key: str, version: str, model: ForecastModel,
           load: pd.Series, weather: pd.DataFrame, issue: pd.Timestamp, horizon: str):
    """The input guards of one prediction (load of the last ``lookback_days``, the weather of
    the forecast window against the model's training window): a GuardReport whose ``found``
    is empty when the inputs look fine."""
    cfg = guard_config(env)
    report = check_recent_load(load, issue, cfg)
    if model.is_baseline:
        return report if report.found else None
    reference: dict = {}
    try:
        reference = reg.meta(key, version).get("guards", {}).get("weather_reference", {})
    except ModelError:  # an unreadable meta.json: the drift guard has nothing to compare with
        pass
    window = window_rows(weather, issue, issue + _span(env, horizon))
    report.found.update(check_weather(window, model.config.features.weather_cols, reference,
                                      cfg))
    return report if report.found else None


def _day_ahead_before(bank: Bank, target: Target, issue: pd.Timestamp, out: pd.DataFrame
                      ) -> pd.DataFrame:
    """The bank's day-ahead forecasts of ``target`` issued at or before ``issue`` for the valid
    times of ``out`` (an intraday forecast): a few daily partitions, not the history."""
    if out.empty:
        return out
    end = pd.Timestamp(out["valid_time"].max()) + pd.Timedelta(microseconds=1)
    da = read_forecast(bank, [target.id], start=out["valid_time"].min(), end=end,
                       max_horizon_h=72)
    return da[pd.DatetimeIndex(da["issue_time"]) <= issue] if len(da) else da


def _predict(model: ForecastModel, load: pd.Series, weather: pd.DataFrame,
             issue: pd.Timestamp, extras: pd.DataFrame | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The forecast rows and what each feature group contributes to their P50."""
    from aggregat.forecast.core.explain import predict_explained

    return predict_explained(model, load, weather, issue, extras)


def _current_model(reg: Registry, key: str, env: Environment, load: pd.Series, horizon: str
                   ) -> tuple[ForecastModel, str, str | None]:
    """The production model ``key``, or the baseline (with the reason) when unusable."""
    try:
        current = reg.current(key)
        if current is None:
            return (_baseline_model(env, load, horizon), BASELINE_VERSION,
                    "no model in the registry")
        return reg.load(key, current).model, current, None
    except ModelError as exc:
        return (_baseline_model(env, load, horizon), BASELINE_VERSION,
                f"{exc}; weekly baseline used")


def _baseline_model(env: Environment, load: pd.Series, horizon: str = Horizon.DAY_AHEAD
                    ) -> ForecastModel:
    """Same time last week (else two weeks), with an interval from its recent errors."""
    s = prepare_load(load)
    return ForecastModel(config=model_config(env, (), horizon=horizon),
                         resolution=s.index[1] - s.index[0],
                         feature_names=[], boosters={}, margins=(0.0, 0.0),
                         baseline_errors=persistence_errors(s), is_baseline=True,
                         trained_at=pd.Timestamp.now(tz="UTC"), data_start=None, data_end=None)


# ------------------------------------------------------------------------- many targets
def _train_task(task: tuple) -> dict[str, Any]:
    env, target, force, if_older, n_jobs, horizon, now, inputs = task
    return train_target(env, target, force=force, if_older=if_older, n_jobs=n_jobs,
                        horizon=horizon, now=now, inputs=inputs)


def _predict_task(task: tuple) -> dict[str, Any]:
    env, target, issue, horizon, fallback = task
    return predict_target(env, target, issue, horizon=horizon, weather_fallback=fallback)


def _run(fn, tasks: list[tuple], env: Environment, workers: int | None, typed: Callable[[dict], T],
         on_result: Callable[[T], None] | None) -> list[T]:
    """Run the tasks (in parallel); one typed result per target, failures included."""
    out = []
    for task, result, exc in run_tasks(fn, tasks, workers=workers, scheduler=env.scheduler,
                                       stall_s=env.scheduler_stall_s):
        target = task[1].id
        if exc is not None:
            error = str(exc) if isinstance(exc, AggregatError) else f"{type(exc).__name__}: {exc}"
            result = {"target": target, "status": "failed", "error": error}
        out.append(typed(result))
        if on_result is not None:
            on_result(out[-1])
    return out


def _workers(env: Environment, n: int, workers: int | None) -> int:
    return max(1, min(workers or env.workers or default_workers(), n))


def train_targets(env: Environment, only: Sequence[str] | None = None, *, force: bool = False,
                  if_older: pd.Timedelta | None = None, workers: int | None = None,
                  horizon: str = Horizon.DAY_AHEAD,
                  on_result: Callable[[TrainResult], None] | None = None,
                  now: pd.Timestamp | None = None) -> list[TrainResult]:
    """Train every target (or ``only`` these) in parallel; one result per target (``on_result``
    sees each as it ends). ``now``: the time models are trained at and their age is judged
    from (default: the current time, taken once for every target)."""
    targets = resolve_targets(env, Bank(env.bank), only)
    if not targets:
        raise ModelError(f"no target to train: configure [env.{env.name}.forecast] targets or "
                         "import load into the bank")
    n = _workers(env, len(targets), workers)
    # One LightGBM thread per process (OpenMP threads spin-wait on a busy machine: figures in
    # docs/forecasting.md); targets run in parallel processes instead.
    n_jobs = 1
    check_horizon(horizon)
    now = as_utc(now, param="now") if now is not None else pd.Timestamp.now(tz="UTC")
    reg = Registry(env.registry)
    due = [t for t in targets
           if _too_recent(reg, model_key(t.id, horizon), now, force, if_older) is None]
    inputs: dict[str, TrainInputs] = {}
    if len(due) > 1:  # read the portfolio's weather once, not once per target
        try:
            inputs = _training_inputs(env, Bank(env.bank), due, None, horizon, skip_failed=True)
        except AggregatError:
            inputs = {}  # each training reads its own and reports what failed
    tasks = [(env, t, force, if_older, n_jobs, horizon, now, inputs.get(t.id))
             for t in targets]
    validations: dict[str, pd.DataFrame] = {}

    def typed(summary: dict) -> TrainResult:
        frame = summary.pop("validation", None)
        if frame is not None:
            validations[summary["target"]] = frame
        return train_result(summary)

    results = _run(_train_task, tasks, env, n, typed, on_result)
    if validations:  # a portfolio hierarchy: choose its reconciliation on these forecasts
        from aggregat.forecast.portfolio import fit_reconciliation

        fit_reconciliation(env, validations, horizon)
    return results


def predict_targets(env: Environment, issue_time: pd.Timestamp, only: Sequence[str] | None = None,
                    *, workers: int | None = None, horizon: str = Horizon.DAY_AHEAD,
                    on_result: Callable[[PredictResult], None] | None = None,
                    weather_fallback: str | None = None) -> list[PredictResult]:
    """Predict every target (or ``only`` these) for ``issue_time`` in parallel; one result per
    target (``weather_fallback``: see :func:`predict_target`)."""
    targets = resolve_targets(env, Bank(env.bank), only)
    if not targets:
        raise ModelError(f"no target to predict: configure [env.{env.name}.forecast] targets or "
                         "import load into the bank")
    check_horizon(horizon)
    tasks = [(env, t, issue_time, horizon, weather_fallback) for t in targets]
    results = _run(_predict_task, tasks, env, _workers(env, len(tasks), workers),
                   predict_result, on_result)
    if any(t.parent for t in targets) and not any(r.failed for r in results):
        from aggregat.forecast.portfolio import reconcile_issue

        reconcile_issue(env, as_utc(issue_time, param="issue_time", error=ConfigError),
                        horizon)
    return results


def promote(env: Environment, target: str, version: str) -> None:
    """Make ``version`` the production model of ``target`` in ``env``'s registry."""
    Registry(env.registry).promote(target, version)


def backtest_target(env: Environment, target: Target, test_weeks: int = 8,
                    progress=None, *, known_cols: Sequence[str] = (),
                    issue_hour: float | None = None, horizon: str = Horizon.DAY_AHEAD,
                    extra_features: bool = True):
    """The production pipeline over the last ``test_weeks`` weeks of ``target``'s load in the
    bank: issue every day with the weather runs available then, retrain weekly on all earlier
    data. Returns the core's :class:`~aggregat.forecast.core.backtest.BacktestResult`.

    ``known_cols``: those of ``target.weather_cols`` known in advance (features as they are, no
    daily aggregates); ``issue_hour``: see :func:`model_config` (the CSV backtest uses both).
    Intraday with ``forecast.intraday_blend``: the day-ahead backtest runs first, and its
    forecasts are blended in as :func:`predict_target` does (report key ``day_ahead``).
    ``extra_features``: False leaves the target's extra features out (to measure their effect).
    """
    from aggregat.forecast.core.backtest import run_backtest

    bank = Bank(env.bank)
    if not extra_features:
        target = dataclasses.replace(target, extra_features=())
    load = _load_series(target_load(bank, target), f"target {target.id!r}")
    day_ahead = None
    if horizon == Horizon.INTRADAY and env.forecast.intraday_blend:
        if progress:
            progress("day-ahead backtest first: intraday forecasts are blended with it")
        day_ahead = backtest_target(env, target, test_weeks, progress=progress,
                                    known_cols=known_cols, issue_hour=issue_hour)
        if progress:
            progress(f"day-ahead MAE {day_ahead.report['metrics']['mae']:.4g}; now intraday")
    weather = issue_weather(bank, target, _daily_issues(env, load, issue_hour, horizon),
                            max_lead_h=env.forecast.max_lead_h, span=_span(env, horizon))
    cols = [c for c in target.weather_cols if c in weather.columns]
    cfg = model_config(env, [c for c in cols if c not in known_cols], issue_hour=issue_hour,
                       known_cols=[c for c in cols if c in known_cols], horizon=horizon,
                       target=target)
    extras = target_extras(bank, target, load.index.min(),
                           load.index.max() + pd.Timedelta(days=3))
    result = run_backtest(load, _weather_for_model(weather, cols), cfg, test_weeks=test_weeks,
                          progress=progress,
                          day_ahead=day_ahead.forecasts if day_ahead is not None else None,
                          extras=extras)
    if day_ahead is not None:
        result.report["day_ahead"] = {"metrics": day_ahead.report["metrics"],
                                      "timing_s": day_ahead.report["timing_s"]}
    return result
