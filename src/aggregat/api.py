"""The front door: everything a user, the CLI, the scheduler, the demo and the dashboard do with an
environment, as plain functions with typed results.

Rules that hold for every function here:

- Times are aware: a naive ``datetime`` or ``Timestamp`` is refused with an error naming the
  parameter (the command line applies its own rule, :func:`aggregat.timeutil.parse_cli_time`,
  before calling in). Dates (``day``, ``since``) are calendar days.
- Results are eager and typed (lists of dataclasses, DataFrames): nothing happens lazily.
- Errors are :class:`~aggregat.errors.AggregatError` subclasses whose messages name the
  parameter (``issue_time``, ``horizon``); the CLI maps them to its flags.
- Data readers read only the bank partitions their window needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from aggregat.config import Environment, load_environment
from aggregat.errors import AggregatError, ConfigError, InputError, ModelError
from aggregat.results import (
    AlertReport,
    AvailabilityReport,
    BacktestReport,
    Calendar,
    Explanation,
    JobRun,
    LedgerEntry,
    ModelVersion,
    PredictResult,
    RunReport,
    TrainResult,
    ledger_entry,
    model_version,
)
from aggregat.timeutil import Horizon, as_utc

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import pyarrow as pa

    from aggregat.bank import Bank
    from aggregat.bank.copy import CopyReport
    from aggregat.bank.external import ExternalTable
    from aggregat.demo.run import DemoReport
    from aggregat.energy.publish import PublishReport
    from aggregat.energy.sync import SyncReport
    from aggregat.energy.tables import TableSyncReport
    from aggregat.load_import import ImportReport
    from aggregat.ops.access import AccessReport
    from aggregat.ops.envcheck import Check
    from aggregat.ops.health import HealthReport
    from aggregat.rte.sync import RteSyncReport
    from aggregat.weather.extract import ExtractReport
    from aggregat.weather.fetch import FetchReport
    from aggregat.weather.history import HistoryReport

TimeLike = datetime | pd.Timestamp | str


def run_label(run: datetime) -> str:
    """A weather run as Météo-France names it (``2026-11-28T00:00:00Z``)."""
    from aggregat.weather.products import run_label as label

    return label(run)


# -- environments ------------------------------------------------------------------------------
def open_env(name: str | None = None, config: str | os.PathLike[str] | None = None
             ) -> Environment:
    """The environment ``name`` of ``config`` (default: ``$AGGREGAT_CONFIG`` or
    ``./aggregat.toml``; name: ``$AGGREGAT_ENV``, the file's ``default_env``, else the embedded
    ``local`` under ``./aggregat-data``), as ``--env`` and ``--config`` resolve it."""
    return load_environment(name, config)


def _env(env: Environment | str | None) -> Environment:
    if isinstance(env, Environment):
        return env
    if env is None or isinstance(env, str):
        return open_env(env)
    raise ConfigError(f"env: expected an Environment (aggregat.open_env(...)) or its name, got "
                      f"{type(env).__name__}")


def _bank(env: Environment) -> Bank:
    from aggregat.bank import Bank

    return Bank(env.bank)


def _ids(value: str | Collection[str] | None, param: str) -> list[str] | None:
    """One id or a collection of ids as a list (a single string is one id, never its letters)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    ids = list(value)
    bad = [v for v in ids if not isinstance(v, str) or not v]
    if bad:
        raise InputError(f"{param}: ids must be non-empty strings, got {bad[0]!r}", param=param)
    return ids


def _day(value: date | datetime | str | None, param: str) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        raise InputError(f"{param}: give a calendar day (datetime.date), not a time: {value}",
                         param=param)
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{param} {value!r} is not a day: write it like 2026-11-28",
                         param=param) from None


# -- jobs --------------------------------------------------------------------------------------
def daily(env: Environment, day: date | str | None = None, force: bool = False, *,
          publish: bool = True) -> RunReport:
    """fetch -> extract -> sync -> predict -> publish for ``day`` (default: today, UTC)."""
    from aggregat.ops import jobs

    return jobs.daily(_env(env), _day(day, "day"), force=force, publish=publish)


def intraday(env: Environment, at: TimeLike | None = None, *, force: bool = False,
             publish: bool = True) -> RunReport:
    """The intraday job for the newest intraday issue at or before ``at`` (aware; default now).
    Needs ``forecast.intraday = true``."""
    from aggregat.ops import jobs

    return jobs.intraday(_env(env), None if at is None else as_utc(at, param="at"),
                         force=force, publish=publish)


def intraday_issue_at(env: Environment, at: TimeLike | None = None) -> pd.Timestamp:
    """The intraday issue :func:`intraday` forecasts at ``at`` (aware; default now): the newest
    at or before it. Needs ``forecast.intraday = true``."""
    from aggregat.ops import jobs

    e = _env(env)
    jobs.require_intraday(e)
    when = pd.Timestamp.now(tz="UTC") if at is None else as_utc(at, param="at")
    return jobs.intraday_issue_at(e, when)


def weekly(env: Environment, force: bool = False) -> RunReport:
    """Retrain the models due (``forecast.retrain_after_days``), validate, promote if better."""
    from aggregat.ops import jobs

    return jobs.weekly(_env(env), force=force)


def backfill(env: Environment, since: date | str, dry_run: bool = False, *,
             until: date | str | None = None, force: bool = False,
             publish: bool = True) -> RunReport:
    """Run the steps whose partitions are missing or failed from ``since`` to ``until`` (default
    today); ``dry_run`` only lists them in ``RunReport.planned``."""
    from aggregat.ops import jobs

    return jobs.backfill(_env(env), _day(since, "since"), _day(until, "until"), dry_run=dry_run,
                         force=force, publish=publish)


# -- data --------------------------------------------------------------------------------------
def weather(env: Environment, start: TimeLike, end: TimeLike, models: Collection[str] | None = None,
            *, sites: Collection[str] | None = None, issued_before: TimeLike | None = None,
            latest: bool = False) -> pd.DataFrame:
    """Weather forecast rows with ``start <= valid_time < end`` (every run reaching the window;
    ``latest``: the newest run per model, site and time; ``issued_before``: only runs available
    then)."""
    from aggregat.bank import read_weather

    e = _env(env)
    return read_weather(_bank(e), as_utc(start, param="start"), as_utc(end, param="end"),
                        models=_ids(models, "models"), locations=_ids(sites, "sites"),
                        max_lead_h=e.forecast.max_lead_h, latest=latest,
                        issued_before=(None if issued_before is None
                                       else as_utc(issued_before, param="issued_before")))


def load(env: Environment, targets: str | Collection[str] | None = None,
         start: TimeLike | None = None, end: TimeLike | None = None) -> pd.DataFrame:
    """Measured load rows (``target_id, time, load_mw, ...``) with ``start <= time < end``."""
    from aggregat.bank import read_load

    return read_load(_bank(_env(env)), _ids(targets, "targets"),
                     None if start is None else as_utc(start, param="start"),
                     None if end is None else as_utc(end, param="end"))


def forecasts(env: Environment, targets: str | Collection[str] | None = None,
              start: TimeLike | None = None, end: TimeLike | None = None,
              horizon: Horizon | str = Horizon.DAY_AHEAD, *,
              issue_time: TimeLike | None = None) -> pd.DataFrame:
    """Forecast rows of ``horizon`` (``target_id`` without the ``@intraday`` suffix) with
    ``start <= valid_time < end``, or of one ``issue_time``."""
    from aggregat.bank import read_forecast, target_ids
    from aggregat.forecast.pipeline import model_key

    h = Horizon.parse(horizon)
    bank = _bank(_env(env))
    ids = _ids(targets, "targets")
    if ids is None:
        ids = [t for t in target_ids(bank, "forecast")
               if ("@" in t) == (h is Horizon.INTRADAY)]
    keys = [model_key(t.split("@", 1)[0], h) for t in ids]
    frame = read_forecast(bank, keys,
                          None if issue_time is None else as_utc(issue_time, param="issue_time"),
                          None if start is None else as_utc(start, param="start"),
                          None if end is None else as_utc(end, param="end"))
    if len(frame):
        frame["target_id"] = frame["target_id"].str.split("@", n=1).str[0]
    return frame


# -- models ------------------------------------------------------------------------------------
def train(env: Environment, targets: str | Collection[str] | None = None,
          horizon: Horizon | str = Horizon.DAY_AHEAD, force: bool = False, *,
          if_older: pd.Timedelta | str | None = None, workers: int | None = None,
          on_result: Callable[[TrainResult], None] | None = None) -> list[TrainResult]:
    """Train each target (or ``targets``) on its bank history, save to the registry and promote
    when better; ``if_older`` (``"7d"``, a Timedelta) skips younger models. One result per
    target, failures included (``status == "failed"``); ``on_result`` sees each as it ends."""
    from aggregat.forecast.pipeline import parse_age, train_targets

    age = if_older if isinstance(if_older, pd.Timedelta) else parse_age(if_older)
    return train_targets(_env(env), _ids(targets, "targets"), force=force, if_older=age,
                         workers=workers, horizon=Horizon.parse(horizon), on_result=on_result)


def default_issue_time(env: Environment, now: TimeLike | None = None) -> pd.Timestamp:
    """Today's issue time (``forecast.issue_hour_local`` in ``forecast.timezone``), in UTC."""
    from aggregat.forecast.pipeline import default_issue_time as issue_of

    return issue_of(_env(env), None if now is None else as_utc(now, param="now"))


def predict(env: Environment, issue_time: TimeLike | None = None,
            targets: str | Collection[str] | None = None,
            horizon: Horizon | str = Horizon.DAY_AHEAD, *, workers: int | None = None,
            on_result: Callable[[PredictResult], None] | None = None) -> list[PredictResult]:
    """Forecast each target from ``issue_time`` (aware; default: today's issue time) with its
    current model, into the bank's ``forecast`` dataset."""
    from aggregat.forecast.pipeline import predict_targets

    e = _env(env)
    issue = default_issue_time(e) if issue_time is None else as_utc(issue_time,
                                                                    param="issue_time")
    return predict_targets(e, issue, _ids(targets, "targets"), workers=workers,
                           horizon=Horizon.parse(horizon), on_result=on_result)


def explain(env: Environment, target: str, issue_time: TimeLike,
            horizon: Horizon | str = Horizon.DAY_AHEAD) -> Explanation:
    """What each feature group contributed to the P50 of ``target``'s forecast issued at
    ``issue_time`` (stored with it by :func:`predict`); a ModelError when there is none."""
    from aggregat.bank import read_forecast_explain
    from aggregat.forecast.pipeline import model_key

    e = _env(env)
    h = Horizon.parse(horizon)
    issue = as_utc(issue_time, param="issue_time")
    frame = read_forecast_explain(_bank(e), model_key(target, h), issue)
    if frame.empty:
        raise ModelError(f"no explained forecast of target {target!r} issued at "
                         f"{issue:%Y-%m-%dT%H:%MZ} ({h}); predict it with `aggregat model "
                         "predict` (forecasts made before explanations were stored have none)",
                         param="issue_time")
    return Explanation(target, issue, str(h), frame[["valid_time", "group", "contribution_mw"]],
                       e.forecast.timezone)


def models(env: Environment, target: str | None = None) -> list[ModelVersion]:
    """Registry versions (all targets, or one), with their metrics; ``current`` marks the live
    one."""
    from aggregat.forecast.registry import Registry

    return [model_version(r) for r in Registry(_env(env).registry).list(target)]


def promote(env: Environment, target: str, version: str) -> None:
    """Make ``version`` the live model of ``target`` (e.g. to roll back)."""
    from aggregat.forecast.pipeline import promote as do_promote

    do_promote(_env(env), target, version)


def backtest(frame: pd.DataFrame, *, load_col: str, weather_cols: Sequence[str] = (),
             known_cols: Sequence[str] = (), name: str = "backtest",
             horizon: Horizon | str = Horizon.DAY_AHEAD, holidays: str | None = "FR",
             school_holidays: str | None = None, tz: str = "Europe/Paris",
             issue_hour: float = 10.0, test_weeks: int = 8, every_h: float = 6.0,
             hours: float = 36.0, blend: bool = True,
             progress: Callable[[str], None] | None = None) -> BacktestReport:
    """The production pipeline on a plain DataFrame indexed by aware times: weekly retrains on
    everything before each test week, an issue every day at ``issue_hour`` (local ``tz``) of D-1
    for D (intraday: every ``every_h`` hours for ``hours``). ``weather_cols`` count as forecasts
    available at every issue; ``known_cols`` are known in advance (a holiday flag)."""
    from aggregat.forecast.core.backtest import check_backtest_options
    from aggregat.forecast.csv_import import backtest_csv, check_columns

    h = Horizon.parse(horizon)
    wcols, kcols = list(weather_cols), list(known_cols)
    cal, school = check_backtest_options(tz=tz, issue_hour=issue_hour, holidays=holidays,
                                         school_holidays=school_holidays, every_h=every_h,
                                         hours=hours, test_weeks=test_weeks)
    overlap = set(wcols) & set(kcols)
    if overlap:
        raise InputError(f"weather_cols and known_cols both list {', '.join(sorted(overlap))}",
                         param=("weather_cols", "known_cols"))
    check_columns([*wcols, *kcols])
    missing = [c for c in (load_col, *wcols, *kcols) if c not in frame.columns]
    if missing:
        raise InputError(f"frame: no column {missing[0]!r} (columns: "
                         f"{', '.join(map(str, frame.columns[:12]))})")
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise InputError("frame: index it by aware times (a DatetimeIndex with a time zone, "
                         "e.g. frame.tz_localize('Europe/Paris'))")
    data = frame.set_axis(frame.index.tz_convert("UTC"))
    data = data[~data.index.duplicated(keep="last")].sort_index()
    load_series = pd.Series(pd.to_numeric(data[load_col], errors="coerce").to_numpy(),
                            index=data.index, name="load_mw")
    weather = data[[*wcols, *kcols]].reset_index(drop=True).assign(valid_time=data.index)
    result = backtest_csv(load_series, weather, wcols, kcols, tz=tz, issue_hour=issue_hour,
                          holidays=cal, test_weeks=test_weeks, horizon=h,
                          intraday_every_h=every_h, intraday_hours=hours,
                          school_holidays=school, intraday_blend=blend, progress=progress)
    return BacktestReport(name, result.report, result.forecasts, tz)


def read_backtest_csv(paths: Sequence[str | os.PathLike[str]], *, load_col: str,
                      time_col: str = "time", weather_cols: Sequence[str] = (),
                      known_cols: Sequence[str] = (), tz: str = "UTC",
                      time_format: str | None = None, ambiguous: str | None = None,
                      nonexistent: str | None = None) -> pd.DataFrame:
    """CSV file(s) (globs allowed; later files win on duplicate times) as the frame
    :func:`backtest` takes: indexed by UTC time, with the load and the named columns (the files
    read are in ``frame.attrs["paths"]``). Times without an offset are in ``tz``, read in file
    order (see :func:`aggregat.timeutil.parse_times` for ``ambiguous`` and ``nonexistent``)."""
    from aggregat.forecast.core.backtest import expand_paths, read_csv_inputs

    files = [str(p) for p in expand_paths([str(p) for p in paths])]
    load_series, weather = read_csv_inputs(files, time_col, load_col, list(weather_cols),
                                           list(known_cols), naive_tz=tz,
                                           time_format=time_format, ambiguous=ambiguous,
                                           nonexistent=nonexistent)
    frame = weather.set_index("valid_time")
    frame.index.name = "time"
    frame.insert(0, load_col, load_series.to_numpy())
    frame.attrs["paths"] = files
    return frame


def backtest_env(env: Environment, targets: str | Collection[str] | None = None, *,
                 test_weeks: int = 8, horizon: Horizon | str = Horizon.DAY_AHEAD,
                 blend: bool | None = None, extra_features: bool = True,
                 progress: Callable[[str], None] | None = None) -> list[BacktestReport]:
    """The production pipeline replayed on the environment's bank, one report per target;
    ``extra_features=False`` leaves the targets' extra features out (to measure them)."""
    from aggregat.forecast.pipeline import backtest_target
    from aggregat.forecast.portfolio import reconcile_backtests
    from aggregat.forecast.targets import hierarchy, resolve_targets

    e = _env(env)
    if blend is not None:
        e = e.model_copy(update={"forecast": e.forecast.model_copy(
            update={"intraday_blend": blend})})
    chosen = resolve_targets(e, _bank(e), _ids(targets, "targets"))
    if not chosen:
        raise ConfigError(f"no target in env {e.name}: configure [env.{e.name}.forecast] "
                          "targets or import load into the bank")
    out = []
    for t in chosen:
        result = backtest_target(e, t, test_weeks, horizon=Horizon.parse(horizon),
                                 progress=progress, extra_features=extra_features)
        result.report["inputs"]["bank"] = e.bank
        out.append(BacktestReport(t.id, result.report, result.forecasts, e.forecast.timezone))
    hy = hierarchy(resolve_targets(e, _bank(e))) if e.forecast.targets else None
    if hy is not None and set(hy.nodes) <= {t.id for t in chosen}:
        # The portfolio reconciled week by week, each week's method chosen on earlier weeks.
        recon, frames = reconcile_backtests(hy, {r.name: r.forecasts for r in out})
        for r in out:
            r.report["reconciliation"] = recon
            r.forecasts = frames[r.name]
    return out


# -- weather -----------------------------------------------------------------------------------
def fetch(env: Environment, model: str, run: TimeLike | None = None,
          packages: Sequence[str] | None = None, *, base_url: str | None = None,
          sources: Sequence[str] | None = None, workers: int | None = None,
          retries: int | None = None, progress: bool = False) -> FetchReport:
    """Download one run of ``model`` (aware ``run``; None: the newest complete run at the
    sources) into the datalake: parallel, retried, resumed, verified, each file from the first
    configured source that serves it (``FileResult.source``). ``base_url``: one open-data source
    at that URL instead; ``sources``: only these configured sources, in this order."""
    from aggregat.errors import FetchError
    from aggregat.weather.availability import LOOKBACK_H, latest_complete_run
    from aggregat.weather.datalake import Datalake
    from aggregat.weather.fetch import fetch_run
    from aggregat.weather.products import get_product, parse_run
    from aggregat.weather.sources import configured_sources, source_at

    e = _env(env)
    w = e.weather
    product = get_product(model)
    pkgs = list(packages or w.packages.get(product.id) or product.default_packages)
    if base_url and sources:
        raise ConfigError("give either base_url or sources, not both", param=("base_url",
                                                                              "sources"))
    chain = ([source_at(base_url, product)] if base_url
             else configured_sources(e, list(sources or []), product))
    n_workers = workers or w.download_workers
    if run is None:
        found = latest_complete_run(product, chain, pkgs, min_run_age_h=w.min_run_age_h,
                                    workers=n_workers)
        if found is None:
            where = ", ".join(s.address for s in chain)
            raise FetchError(f"no complete {product.id} run ({','.join(pkgs)}) in the last "
                             f"{LOOKBACK_H:g} h at {where}; `aggregat weather availability "
                             f"--model {product.id}` shows what is there, or fetch an older run")
        run_time = found.run
    else:
        run_time = parse_run(run) if isinstance(run, str) else as_utc(run, param="run")
    return fetch_run(product, run_time, Datalake(e.datalake, quarantine=e.quarantine),
                     sources=chain, packages=pkgs,
                     workers=n_workers, retries=w.retries if retries is None else retries,
                     timeout_s=w.timeout_s, backoff_s=w.retry_backoff_s,
                     backoff_max_s=w.retry_backoff_max_s, progress=progress)


def availability(env: Environment, model: str, since: date | str | None = None,
                 packages: Sequence[str] | None = None, *, now: TimeLike | None = None,
                 base_url: str | None = None) -> AvailabilityReport:
    """Which runs of ``model`` from ``since`` (a UTC day; default: the last 48 h) to ``now``
    (aware; default now) are at each source: every package x time group file probed (two tiny
    ranged GETs, no download), ``present`` / ``missing`` / ``incomplete``; each run's
    ``complete`` and the report's ``newest_complete``."""
    from datetime import UTC, timedelta

    from aggregat.weather.availability import LOOKBACK_H, MAX_SINCE_DAYS
    from aggregat.weather.availability import availability as probe
    from aggregat.weather.products import get_product
    from aggregat.weather.sources import configured_sources, source_at

    e = _env(env)
    product = get_product(model)
    when = (pd.Timestamp.now(tz="UTC") if now is None else as_utc(now, param="now")
            ).to_pydatetime()
    day = _day(since, "since")
    if day is None:
        start = when - timedelta(hours=LOOKBACK_H)
    else:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if start > when:
            raise InputError(f"since {day} is in the future: give a day up to today (UTC)",
                             param="since")
        if when - start > timedelta(days=MAX_SINCE_DAYS):
            raise InputError(f"since {day} is more than {MAX_SINCE_DAYS} days ago: the open "
                             "data keeps a few days of runs; give a later day", param="since")
    pkgs = list(packages or e.weather.packages.get(product.id) or product.default_packages)
    chain = [source_at(base_url, product)] if base_url else configured_sources(e, None, product)
    return probe(product, chain, pkgs, start, when, workers=e.weather.download_workers)


def extract(env: Environment, model: str, run: TimeLike | None = None,
            packages: Sequence[str] | None = None, *, sites: str | None = None,
            areas: str | None = None, method: str | None = None, workers: int | None = None,
            scheduler: str | None = None, progress=None) -> ExtractReport:
    """Extract one run (None: the newest in the datalake) at the environment's sites and areas
    into the bank's ``weather_forecast`` dataset."""
    from aggregat.weather.datalake import Datalake
    from aggregat.weather.extract import extract_run
    from aggregat.weather.products import get_product, parse_run
    from aggregat.weather.sites import load_locations

    e = _env(env)
    product = get_product(model)
    datalake = Datalake(e.datalake, quarantine=e.quarantine)
    if run is None:
        runs = datalake.runs(product)
        if not runs:
            raise InputError(f"no {product.id} run in the datalake {e.datalake}: fetch one first")
        run_time = runs[-1]
    else:
        run_time = parse_run(run) if isinstance(run, str) else as_utc(run, param="run")
    locations = load_locations(sites or e.sites, areas or e.areas)
    return extract_run(product, run_time, datalake=datalake, bank=_bank(e), locations=locations,
                       packages=packages, method=method or e.weather.method,
                       workers=workers or e.workers, scheduler=scheduler or e.scheduler,
                       progress=progress, stall_s=e.scheduler_stall_s)


def extract_files(paths: Sequence[str | os.PathLike[str]], sites: str | os.PathLike[str] | None,
                  method: str = "nearest", *, areas: str | None = None,
                  variables: Sequence[str] | None = None, workers: int | None = None,
                  scheduler: str | None = None, progress=None) -> pd.DataFrame:
    """Any GRIB1/GRIB2 files of any centre and any grid ecCodes gives coordinates for, at the
    sites (a CSV ``id,name,lat,lon``), as one frame (a ``member`` column for ensemble members);
    the :class:`ExtractReport` is in ``frame.attrs["report"]``. ``method="bilinear"`` needs a
    regular or rotated lat/lon grid."""
    from aggregat.weather.extract import extract_files as extract
    from aggregat.weather.sites import load_locations

    locations = load_locations(sites, areas)
    frame, report = extract([str(p) for p in paths], locations, variables=variables,
                            method=method, workers=workers, scheduler=scheduler,
                            progress=progress)
    frame.attrs["report"] = report
    return frame


# -- energy DB ---------------------------------------------------------------------------------
def sync(env: Environment, full: bool = False) -> SyncReport:
    """Copy new and corrected measured load from the energy DB (or BigQuery, ``[energy] source``)
    into the bank (incremental)."""
    from aggregat.energy.route import sync_measured_load
    from aggregat.plausibility import Plausibility

    e = _env(env)
    return sync_measured_load(e, _bank(e), full=full, plausibility=Plausibility.from_env(e))


def sync_tables(env: Environment, tables: str | Collection[str] | None = None,
                full: bool = False) -> list[TableSyncReport]:
    """Copy the energy DB's other tables (``[energy.tables.NAME]``, or only ``tables``) into
    bank datasets of their names: incremental, idempotent, kill-safe (as :func:`sync`)."""
    from aggregat.energy.db import make_engine
    from aggregat.energy.tables import sync_tables as copy

    e = _env(env)
    if not e.energy.tables:
        return []
    engine = make_engine(e.energy_url("sync"), e.energy, must_exist=True)
    try:
        return copy(engine, _bank(e), e.energy, tz=e.forecast.timezone, full=full,
                    only=_ids(tables, "tables"))
    finally:
        engine.dispose()


def rte_sync(env: Environment, since: date | str | None = None, *,
             tempo: bool = True) -> RteSyncReport:
    """France's consumption (realised, RTE's D-1 and D forecasts) and Tempo day colours from
    the ODRE open-data portal into the bank (``rte_consumption``, ``rte_tempo``), each row with
    the time it became known: incremental from the last sync (or ``since``), idempotent."""
    from aggregat.rte.sync import sync_rte

    e = _env(env)
    return sync_rte(_bank(e), e.rte, tz=e.forecast.timezone, since=_day(since, "since"),
                    tempo=tempo)


def publish(env: Environment, issue_time: TimeLike,
            targets: str | Collection[str] | None = None) -> PublishReport:
    """Write the bank's forecasts of ``issue_time`` into the energy DB in one transaction, or
    merge them into BigQuery in one job (``[energy] publish_to``); default: every day-ahead
    target; ``<id>@intraday`` names an intraday forecast."""
    from aggregat.energy.route import publish_issue

    e = _env(env)
    when = as_utc(issue_time, param="issue_time").to_pydatetime()
    return publish_issue(e, _bank(e), when, target_ids=_ids(targets, "targets"))


def read_bigquery(query_or_table: str, *, project: str | None = None,
                  location: str | None = None, params: Sequence[Any] = (),
                  page_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """A BigQuery table (``project.dataset.table``) or query as an iterator of Arrow record
    batches (``params``: ``google.cloud.bigquery`` query parameters for ``@name``). Credentials
    from the environment; ``$BIGQUERY_EMULATOR_HOST`` for an emulator."""
    from aggregat.energy.bigquery import read_bigquery as read

    return read(query_or_table, project=project, location=location, params=params,
                page_rows=page_rows)


def import_load(env: Environment, path: str | os.PathLike[str], **options: Any) -> ImportReport:
    """Measured load from a CSV file into the bank (see :func:`aggregat.load_import.read_load_csv`
    for ``options``: column names, time zone of times without offset, ...); values outside the
    targets' plausible bounds are rejected and counted."""
    from aggregat.load_import import import_load_csv
    from aggregat.plausibility import Plausibility

    e = _env(env)
    return import_load_csv(_bank(e), path, plausibility=Plausibility.from_env(e), **options)


def import_weather_history(env: Environment | str | None,
                           paths: Sequence[str | os.PathLike[str]], *, format: str = "long",
                           mapping: str | os.PathLike[str] | None = None,
                           skip_bad_rows: bool = False) -> HistoryReport:
    """Weather forecasts as they were issued (CSV or Parquet, long or wide; see
    :mod:`aggregat.weather.history`) into the bank's ``weather_forecast``, converted exactly as
    extraction converts; re-importing replaces, never duplicates; on a bad row nothing changes."""
    from aggregat.weather.history import Mapping, import_history
    from aggregat.weather.sites import load_locations

    e = _env(env)
    try:
        known = load_locations(e.sites, e.areas).ids if (e.sites or e.areas) else None
    except AggregatError:  # no sites file yet: every site is imported, none called unknown
        known = None
    return import_history(_bank(e), list(paths), fmt=format, mapping=Mapping.load(mapping),
                          skip_bad_rows=skip_bad_rows, known_sites=known)


def init_energy_db(env: Environment) -> tuple[list[str], str]:
    """Create the default load and forecast tables in the energy DB (existing ones are kept);
    returns the tables created and the DB's address, password masked."""
    from aggregat.energy.db import make_engine, safe_url, with_retries
    from aggregat.energy.schema import create_default_tables

    e = _env(env)
    engine = make_engine(e.energy_db, e.energy)
    try:
        created = with_retries(lambda: create_default_tables(engine, e.energy), e.energy,
                               "energy init-db", engine)
    finally:
        engine.dispose()
    return created, safe_url(engine.url)


# -- the bank ----------------------------------------------------------------------------------
def open_bank(env: Environment) -> Bank:
    """The environment's data bank (datasets, partitions, ``read``, ``partition_stats``)."""
    return _bank(_env(env))


def dataset_keys(bank: Bank, dataset: str) -> list[str]:
    """The partition keys of ``dataset`` (declared, else as found in the bank)."""
    from aggregat.bank.datasets import get_dataset

    spec = get_dataset(dataset)
    if spec is not None:
        return list(spec.keys)
    parts = bank.partitions(dataset)
    return list(parts[0]) if parts else []


def copy_bank(source: Environment, target: Environment, datasets: Sequence[str] | None = None,
              since: date | str | None = None, *, dry_run: bool = False,
              on_partition: Callable[[Any], None] | None = None) -> CopyReport:
    """Copy bank partitions from ``source`` to ``target``: resumable, idempotent, verified by
    row count and checksum; holds the target's run lock (not for a dry run)."""
    from aggregat.bank.copy import copy_bank as copy
    from aggregat.ops.lock import RunLock

    src, dst = _env(source), _env(target)
    if src.bank == dst.bank:
        raise ConfigError(f"source and target share the bank {src.bank}: pick two environments")
    day = _day(since, "since")
    if dry_run:
        return copy(_bank(src), _bank(dst), datasets, day, dry_run=True,
                    on_partition=on_partition)
    with RunLock.for_environment(dst, command=f"bank copy from {src.name}"):
        return copy(_bank(src), _bank(dst), datasets, day, on_partition=on_partition)


def bigquery_ddl(env: Environment, dataset: str | None = None,
                 datasets: Sequence[str] | None = None) -> list[ExternalTable]:
    """``CREATE EXTERNAL TABLE`` statements that let BigQuery query the bank in place (hive
    partitioned Parquet on the environment's ``gs://`` bank), one per bank dataset, in BigQuery
    dataset ``dataset`` (default ``aggregat_<env>``); ``weather_forecast`` is a view over one
    table per model of ``[weather] models``. ConfigError if the bank is not on gs://."""
    import dataclasses
    import re

    import aggregat.ops.ledger  # noqa: F401  (each registers its datasets on import)
    import aggregat.rte.sync  # noqa: F401
    from aggregat.bank.external import bigquery_ddl as ddl
    from aggregat.config import mask
    from aggregat.energy.tables import register_tables

    e = _env(env)
    register_tables(e.energy)  # the [energy.tables.NAME] datasets of this environment
    name = dataset or "aggregat_" + re.sub(r"[^A-Za-z0-9_]", "_", e.name)
    tables = ddl(e.bank, name, list(datasets) if datasets else None, list(e.weather.models))
    return [dataclasses.replace(t, uri=mask(t.uri), statement=mask(t.statement)) for t in tables]


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> str:
    """Write ``frame`` as Parquet or CSV (by the file name's suffix), atomically; returns the
    path."""
    import io
    from pathlib import Path

    from aggregat.storage import Store

    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"output {out}: use a .parquet or .csv file name")
    buffer = io.BytesIO()
    if suffix == ".csv":
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    Store(str(out.resolve().parent)).write_bytes(out.name, buffer.getvalue())
    return str(out)


# -- operations --------------------------------------------------------------------------------
def check_env(env: Environment, *, offline: bool = False, timeout_s: float = 5.0) -> list[Check]:
    """Every connection reachable and writable, settings complete: one :class:`Check` each
    (``status``: ok, warning, problem, skipped)."""
    from aggregat.ops.envcheck import check_environment

    return check_environment(_env(env), offline=offline, timeout_s=timeout_s)


def check_access(env: Environment | str | None = None, *,
                 config: str | os.PathLike[str] | None = None) -> AccessReport:
    """Least privilege of ``env`` (None: every environment of ``config``): energy-DB users of
    sync and publish, other environments' credentials against its storage and database, shared
    secrets, the dashboard token. ``AccessReport.findings`` holds one line each with its fix;
    ``exit_code`` is 1 on a violation."""
    from aggregat.ops.access import check_access as review

    if env is None:
        return review(None, config=config)
    return review(env if isinstance(env, Environment) else open_env(env, config), config=config)


def schedule(env: Environment, *, once: bool = False,
             log: Callable[[str], None] = print) -> None:
    """Run the daily, weekly (and intraday) jobs at their configured times, in the foreground
    (``once``: the daily job, then the intraday one when enabled, and return)."""
    from aggregat.ops.schedule import run_schedule

    run_schedule(_env(env), once=once, log=log)


def next_runs(env: Environment, now: TimeLike | None = None) -> dict[str, datetime]:
    """When each scheduled job runs next (aware times in ``forecast.timezone``)."""
    from aggregat.ops.schedule import next_runs as upcoming

    when = pd.Timestamp.now(tz="UTC") if now is None else as_utc(now, param="now")
    return upcoming(_env(env), when.to_pydatetime())


def run_demo(env: Environment | None = None, *, days: int = 3, history_days: int = 365,
             force: bool = False, log: Callable[[str], None] = print) -> DemoReport:
    """The whole chain offline on ``env`` (default: the embedded ``local``): a simulated world,
    energy DB and Météo-France archive served on 127.0.0.1, then backfill, weekly and daily;
    rerunning redoes nothing that is done. Any environment works (object storage, PostgreSQL, a
    Dask scheduler); one holding data the demo did not write is refused (InputError) unless
    ``force``."""
    from aggregat.demo.run import run_demo as run

    if not 1 <= days <= 30:
        raise InputError(f"days {days}: use 1 to 30", param="days")
    if not 30 <= history_days <= 1500:
        raise InputError(f"history_days {history_days}: use 30 to 1500", param="history_days")
    return run(_env(env), days=days, history_days=history_days, force=force, log=log)


def health(env: Environment, now: TimeLike | None = None, *, alert: bool = False
           ) -> HealthReport:
    """Freshness of every dataset, last runs and steps, model ages, run lock, alert channels:
    one :class:`HealthReport` whose ``exit_code`` is 0 (ok), 1 (warning) or 2 (failed).
    ``alert``: then send what is due to the alert channels (``report.alerts``), as
    :func:`check_alerts` does."""
    from aggregat.ops.alerts import after_health
    from aggregat.ops.health import check_health

    e = _env(env)
    report = check_health(e, None if now is None else as_utc(now, param="now").to_pydatetime())
    if alert:
        report.alerts = after_health(e, report)
    return report


def check_alerts(env: Environment, now: TimeLike | None = None) -> AlertReport:
    """Evaluate the health of ``env`` and alert its channels (``[alerts] channels``): each new
    problem once, each cleared one once ("resolved"); a failing channel is counted, never
    raised. Without channels, nothing is sent."""
    from aggregat.ops.alerts import check

    return check(_env(env), None if now is None else as_utc(now, param="now").to_pydatetime())


def alert(env: Environment, text: str | None = None) -> AlertReport:
    """Send one message (default: a test message) to every alert channel of ``env``; the
    problems' state is left alone. ``failed_channels`` names those that did not take it."""
    from aggregat.ops.alerts import send_test

    return send_test(_env(env), text)


LEDGER_STATUSES = ("running", "ok", "partial", "failed", "skipped")


def ledger(env: Environment, *, job: str | None = None, step: str | None = None,
           status: str | None = None, since: TimeLike | None = None,
           until: TimeLike | None = None, partition: str | None = None) -> list[LedgerEntry]:
    """Ledger records (the latest attempt of each step on each partition), oldest first, of one
    ``job``, ``step``, ``status`` or ``partition``, started in ``[since, until)`` (aware); texts
    masked."""
    from aggregat.bank import Bank
    from aggregat.ops.ledger import Ledger

    if status is not None and status not in LEDGER_STATUSES:
        raise InputError(f"status {status!r}: use one of {', '.join(LEDGER_STATUSES)}",
                         param="status")
    e = _env(env)
    book = Ledger(Bank(e.bank))
    if step is not None and step not in book.steps():
        return []
    start = None if since is None else as_utc(since, param="since")
    end = None if until is None else as_utc(until, param="until")
    out = []
    for entry in book.entries(step=step, since=start, job=job):
        if status is not None and entry.status != status:
            continue
        if end is not None and entry.started_at >= end:
            continue
        if partition is not None and entry.partition != partition:
            continue
        out.append(ledger_entry(entry))
    return out


def runs(env: Environment, *, job: str | None = None, step: str | None = None,
         status: str | None = None, since: TimeLike | None = None,
         until: TimeLike | None = None, partition: str | None = None,
         limit: int | None = None) -> list[JobRun]:
    """Job runs (ledger records grouped by run id), newest first, each with its steps; the
    filters are those of :func:`ledger` (a run is listed with its matching steps only)."""
    entries = ledger(env, job=job, step=step, status=status, since=since, until=until,
                     partition=partition)
    grouped: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.run_id, []).append(entry)
    out = [JobRun(steps[0].job or "?", run_id, steps) for run_id, steps in grouped.items()]
    out.sort(key=lambda r: r.started_at, reverse=True)
    return out if limit is None else out[:limit]


def ledger_steps(env: Environment) -> list[str]:
    """Step names present in the ledger (fetch, extract, sync, predict, publish, train, ...)."""
    from aggregat.bank import Bank
    from aggregat.ops.ledger import Ledger

    return Ledger(Bank(_env(env).bank)).steps()


def targets(env: Environment) -> list[str]:
    """Target ids of the environment: configured, with load or forecasts in the bank, or with a
    model in the registry (``@intraday`` keys named by their target)."""
    from aggregat.bank import target_ids
    from aggregat.forecast.registry import Registry

    e = _env(env)
    bank = _bank(e)
    found = [t.id for t in e.forecast.targets]
    for key in [*target_ids(bank, "load"), *target_ids(bank, "forecast"),
                *Registry(e.registry).targets()]:
        name = key.split("@", 1)[0]
        if name not in found:
            found.append(name)
    return found


def calendar(env: Environment, days: int = 30, last: date | str | None = None) -> Calendar:
    """Days × datasets (weather per model and run, load per target, forecasts per target and
    horizon, publishes) for the ``days`` days ending on ``last`` (default today, UTC), each
    cell present, partial, failed or missing."""
    from aggregat.ops.calendar import build_calendar

    if not 1 <= days <= 400:
        raise InputError(f"days {days}: use 1 to 400", param="days")
    return build_calendar(_env(env), days, _day(last, "last"))


def run_lock(env: Environment, command: str) -> AbstractContextManager[Any]:
    """The environment's run lock as a context manager (``with aggregat.run_lock(env, "…"):``):
    one run per environment, as the jobs take it; :class:`LockedError` when another holds it."""
    from aggregat.ops.lock import RunLock

    return RunLock.for_environment(_env(env), command=command)


def dashboard_app(env: Environment) -> Any:
    """The web dashboard of ``env`` as an ASGI application (FastAPI), for uvicorn or a test."""
    from aggregat.dashboard.app import create_app

    return create_app(_env(env))


def serve(env: Environment, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve the dashboard of ``env`` on ``host:port`` with uvicorn, in the foreground."""
    import uvicorn

    if not 0 < port < 65536:
        raise InputError(f"port {port}: use 1 to 65535", param="port")
    uvicorn.run(dashboard_app(env), host=host, port=port, log_level="warning")
