"""The scheduled jobs: daily (fetch -> extract -> sync -> predict -> publish), intraday (the same
for the newest intraday issue, when ``forecast.intraday`` is on), weekly (train, evaluate, promote)
and backfill (whatever the ledger and the bank say is missing or failed).

Every step runs inside the ledger (:class:`~aggregat.ops.ledger.Ledger`): a finished step is not
redone unless ``force``; a failed step is recorded with its error and the independent steps after
it still run (AROME failing does not stop ARPEGE; publish failing keeps the forecast in the bank
and the next run publishes it). The whole job holds the environment's run lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from aggregat.bank import has_weather_run
from aggregat.config import Environment
from aggregat.errors import AggregatError, ConfigError, PartialRunError
from aggregat.ops.ledger import Ledger, one_line_error
from aggregat.ops.lock import RunLock
from aggregat.results import RunReport, StepReport
from aggregat.timeutil import Horizon, as_utc
from aggregat.weather.products import get_product

log = logging.getLogger(__name__)

# How far back a daily run looks for forecasts that were predicted but not yet published.
PUBLISH_CATCH_UP_DAYS = 7


class _Job:
    """Shared plumbing of one job run: environment, ledger, parts, and problem bookkeeping."""

    def __init__(self, env: Environment, ledger: Ledger, force: bool) -> None:
        from aggregat.bank import Bank
        from aggregat.weather.datalake import Datalake

        self.env, self.ledger, self.force = env, ledger, force
        self.bank = Bank(env.bank)
        self.datalake = Datalake(env.datalake, quarantine=env.quarantine)
        self.bank.clean_tmp()  # temp files of writers killed in an earlier run
        self.result = RunReport(ledger.job or "job", ledger.run_id)
        self._errors: dict[tuple[str, str], str] = {}  # (step, partition) -> error
        self._locations = None

    def step(self, step: str, partition: str, fn: Callable, force: bool | None = None) -> bool:
        """Run ``fn(run)`` as a ledger step; returns True when it ended ok (or was done before)."""
        try:
            with self.ledger.step(step, partition, force=self.force if force is None else force
                                  ) as run:
                if not run.skip:
                    fn(run)
            return run.status in ("ok", "skipped") or run.skip
        except AggregatError as exc:
            self._errors[(step, partition)] = one_line_error(exc)
            log.warning("%s %s: %s", step, partition, exc)
        except Exception as exc:  # a bug or an unexpected library error: recorded, job goes on
            self._errors[(step, partition)] = one_line_error(f"{type(exc).__name__}: {exc}")
            log.exception("%s %s failed", step, partition)
        return False

    def alerted_report(self) -> RunReport:
        """:meth:`report` with its outcome alerted (``job:<job>``; never fails the job)."""
        from aggregat.ops.alerts import after_run

        report = self.report()
        report.alerts = after_run(self.env, report)
        return report

    def report(self) -> RunReport:
        """The run's steps in the order they ended (``done``: finished by an earlier run)."""
        steps, seen = [], set()
        for row in self.ledger.timing.rows:
            key = (row.step, row.partition)
            seen.add(key)
            steps.append(StepReport(row.step, row.partition, row.status, round(row.seconds, 3),
                                    row.rows, self._errors.get(key)))
        # A step that failed before the ledger recorded it (a bad partition name, say).
        steps += [StepReport(s, p, "failed", 0.0, None, e) for (s, p), e in self._errors.items()
                  if (s, p) not in seen]
        self.result.steps = steps
        return self.result

    @property
    def locations(self):
        if self._locations is None:
            from aggregat.weather.sites import load_locations

            self._locations = load_locations(self.env.sites, self.env.areas)
        return self._locations

    # -- steps --------------------------------------------------------------------------------
    def weather(self, run: datetime, model: str) -> None:
        """Fetch then extract one run (extract runs even after a partial fetch)."""
        from aggregat.weather.extract import extract_run
        from aggregat.weather.fetch import fetch_run
        from aggregat.weather.sources import configured_sources

        product = get_product(model)
        part = f"{product.id}/{run:%Y-%m-%dT%HZ}"
        w = self.env.weather
        packages = run_packages(self.env, product)
        fetched = {"report": None}

        def fetch(step) -> None:
            report = fetch_run(product, run, self.datalake,
                               sources=configured_sources(self.env, None, product),
                               packages=packages, workers=w.download_workers, retries=w.retries,
                               timeout_s=w.timeout_s, progress=False, backoff_s=w.retry_backoff_s,
                               backoff_max_s=w.retry_backoff_max_s)
            fetched["report"] = report
            step.rows = sum(1 for f in report.files if f.status in ("downloaded", "skipped"))
            step.details["bytes"] = sum(f.bytes for f in report.files)
            report.raise_for_partial()

        # A run the archive holds only in part (a file quarantined, a group missing) is fetched
        # again even when the ledger says done: fetch only downloads what the datalake lacks.
        expected = self.datalake.expected_files(product, run, packages)
        complete = len(self.datalake.run_files(product, run, packages)) == len(expected)
        fetch_ok = self.step("fetch", part, fetch, force=self.force or not complete)
        # A partition the ledger calls done but the bank lacks (deleted, lost) is redone.
        extract_force = self.force or fetched["report"] is not None or not has_weather_run(
            self.bank, product.id, run)
        if not fetch_ok and not self.datalake.run_files(product, run, packages):
            return  # nothing to extract; the fetch problem is already recorded

        def extract(step) -> None:
            report = extract_run(product, run, datalake=self.datalake, bank=self.bank,
                                 locations=self.locations, packages=packages,
                                 method=w.method, workers=self.env.workers,
                                 scheduler=self.env.scheduler,
                                 stall_s=self.env.scheduler_stall_s)
            step.rows = report.rows
            step.details.update(decoded=report.decoded, issues=report.issues[:10],
                                quarantined=report.quarantined, restored=report.restored)
            if report.partial:
                raise PartialRunError(report.summary())

        self.step("extract", part, extract, force=extract_force)

    def choose_run(self, model: str, wanted: datetime) -> tuple[datetime, str | None]:
        """The run to use for ``wanted`` (``jobs.*_start = "when-available"``): ``wanted`` when
        it is complete in the datalake or at a source, else the newest complete earlier run
        (within ``LOOKBACK_H``) and a note saying so, recorded as ledger step ``choose-run``.
        With no complete run at all, ``wanted`` (fetch then names what is missing)."""
        from aggregat.weather.availability import LOOKBACK_H, newest_complete_run
        from aggregat.weather.sources import configured_sources

        product = get_product(model)
        packages = run_packages(self.env, product)
        chosen: dict[str, object] = {"run": wanted, "note": None}

        def have(run: datetime) -> bool:
            files = self.datalake.expected_files(product, run, packages)
            return len(self.datalake.run_files(product, run, packages)) == len(files)

        def choose(step) -> None:
            sources = configured_sources(self.env, None, product)
            found = newest_complete_run(product, sources, packages, wanted,
                                        wanted - timedelta(hours=LOOKBACK_H), have=have,
                                        workers=self.env.weather.download_workers)
            step.details.update(wanted=_run_part(wanted), sources=[s.name for s in sources])
            if found is None:
                step.details.update(used=_run_part(wanted), fallback=False,
                                    reason="no complete run at the sources; fetching it anyway")
                return
            chosen["run"] = found.run
            step.details.update(used=_run_part(found.run), fallback=found.run != wanted,
                                in_datalake=found.in_datalake)
            if found.run != wanted:
                note = (f"{product.id} {_run_part(found.run)} instead of {_run_part(wanted)} "
                        f"(not complete at {', '.join(s.name for s in sources)})")
                chosen["note"] = note
                step.details["reason"] = note
                log.warning("weather run fallback: %s", note)

        # Always rerun (force): the choice depends on what the sources hold now.
        self.step("choose-run", f"{product.id}/{_run_part(wanted)}", choose, force=True)
        return chosen["run"], chosen["note"]  # type: ignore[return-value]

    def sync(self, day: date) -> None:
        from aggregat.energy.route import sync_measured_load
        from aggregat.plausibility import Plausibility

        def run(step) -> None:
            report = sync_measured_load(self.env, self.bank,
                                        plausibility=Plausibility.from_env(self.env))
            step.rows = report.rows_written
            step.details["targets"] = sorted(report.targets)
            if report.rows_rejected:  # implausible load, not stored: named for the operator
                step.details["rejected_implausible"] = report.rows_rejected
                step.details["rejected_examples"] = report.rejected_examples
            if self.env.energy.tables:  # [energy.tables.NAME]: copied with the load
                from aggregat.energy.db import make_engine
                from aggregat.energy.tables import sync_tables

                engine = make_engine(self.env.energy_url("sync"), self.env.energy,
                                     must_exist=True)
                try:
                    tables = sync_tables(engine, self.bank, self.env.energy,
                                         tz=self.env.forecast.timezone)
                finally:
                    engine.dispose()
                step.details["tables"] = {t.name: t.rows_written for t in tables}

        # Sync is incremental by watermark: it always runs (force) so late data is picked up.
        self.step("sync", f"{day:%Y-%m-%d}", run, force=True)

    def predict(self, issue_time: pd.Timestamp, horizon: str = Horizon.DAY_AHEAD,
                fallback: str | None = None) -> bool:
        """Predict every target at ``issue_time``; True when the step ended ok (or was done).
        ``fallback``: the weather run fallback note the forecast rows carry."""
        from aggregat.forecast.pipeline import predict_targets

        def run(step) -> None:
            rows, baseline, guarded = 0, [], {}
            if fallback:
                step.details["weather_run_fallback"] = fallback
            for summary in predict_targets(self.env, issue_time, horizon=horizon,
                                           weather_fallback=fallback):
                if summary.failed:
                    raise PartialRunError(f"target {summary.target}: {summary.error}")
                rows += summary.rows
                if summary.baseline_rows:
                    baseline.append(summary.target)
                if summary.guard_flags:
                    guarded[summary.target] = summary.guard_flags
            step.rows = rows
            step.details["baseline_targets"] = baseline
            if guarded:  # inputs the guards flagged: those targets got the weekly baseline
                step.details["guarded_targets"] = guarded

        return self.step(step_name("predict", horizon), _issue_part(issue_time), run)

    def publish(self, issue_time: pd.Timestamp, horizon: str = Horizon.DAY_AHEAD) -> None:
        """Publish the forecasts of ``issue_time`` and ``horizon`` into the energy DB."""
        from aggregat.energy.route import publish_issue

        def run(step) -> None:
            # Day-ahead: publish_forecast's default (intraday ids left out); intraday: named.
            ids = None if horizon == Horizon.DAY_AHEAD else self.forecast_ids(horizon)
            report = publish_issue(self.env, self.bank, issue_time.to_pydatetime(),
                                   target_ids=ids)
            step.rows = report.rows

        self.step(step_name("publish", horizon), _issue_part(issue_time), run)

    def forecast_ids(self, horizon: str) -> list[str]:
        """``forecast`` dataset ids of the targets for ``horizon`` (``<id>@intraday``)."""
        from aggregat.forecast.pipeline import model_key
        from aggregat.forecast.targets import resolve_targets

        return [model_key(t.id, horizon) for t in resolve_targets(self.env, self.bank)]

    def forecast(self, issue_time: pd.Timestamp, horizon: str, publish: bool,
                 fallback: str | None = None) -> None:
        """Predict then (``publish``) publish one issue, each only if the ledger lacks it."""
        part = _issue_part(issue_time)
        if self.force or not self.ledger.done(step_name("predict", horizon), part):
            if self.predict(issue_time, horizon, fallback) and publish:
                self.publish(issue_time, horizon)
        elif publish and not self.ledger.done(step_name("publish", horizon), part):
            self.publish(issue_time, horizon)

    def catch_up_publishes(self, before: pd.Timestamp) -> None:
        """Publish forecasts predicted earlier but never published (energy DB was down)."""
        for days in range(PUBLISH_CATCH_UP_DAYS, 0, -1):
            issue = issue_time_of(self.env, (before - pd.Timedelta(days=days)).date())
            part = _issue_part(issue)
            if self.ledger.done("predict", part) and not self.ledger.done("publish", part):
                self.publish(issue)


def _run_part(run: datetime) -> str:
    return f"{run:%Y-%m-%dT%HZ}"


def run_packages(env: Environment, product) -> list[str]:
    """The packages the jobs fetch of ``product``: ``weather.packages``, else its defaults."""
    return list(env.weather.packages.get(product.id) or product.default_packages)


def when_available(env: Environment, job: str) -> bool:
    """True when ``job`` (daily, intraday) starts when its weather runs are complete."""
    start = {"daily": env.jobs.daily_start, "intraday": env.jobs.intraday_start}.get(job)
    return start == "when-available"


def weather_runs(env: Environment, job: str, at: datetime) -> list[tuple[str, datetime]]:
    """(model, run) the ``job`` started at ``at`` uses: daily, the runs of ``at``'s UTC day;
    intraday, those of the newest intraday issue at or before ``at``."""
    if job == "intraday":
        return intraday_runs(env, intraday_issue_at(env, at))
    return list(runs_of(env, as_utc(at, param="at").date()))


def runs_complete(env: Environment, runs: list[tuple[str, datetime]]) -> bool:
    """True when every run of ``runs`` is complete in the datalake or at a source."""
    from aggregat.weather.availability import probe_runs
    from aggregat.weather.datalake import Datalake
    from aggregat.weather.sources import configured_sources

    datalake = Datalake(env.datalake, quarantine=env.quarantine)
    for model, run in runs:
        product = get_product(model)
        sources = configured_sources(env, None, product)
        packages = run_packages(env, product)
        expected = datalake.expected_files(product, run, packages)
        if len(datalake.run_files(product, run, packages)) == len(expected):
            continue
        found = probe_runs(product, [run], packages, sources,
                           workers=env.weather.download_workers)[0]
        if not found.complete:
            return False
    return True


def _issue_part(issue_time: pd.Timestamp) -> str:
    return f"{issue_time:%Y-%m-%dT%H%MZ}"


def step_name(step: str, horizon: str) -> str:
    """Ledger step of ``horizon``: ``predict`` for day-ahead, ``predict-intraday`` for intraday."""
    return step if horizon == Horizon.DAY_AHEAD else f"{step}-{horizon}"


def issue_time_of(env: Environment, day: date) -> pd.Timestamp:
    """The forecast issue time of ``day``: ``forecast.issue_hour_local`` on the wall clock of the
    env's timezone (as in training, also on DST days), in UTC."""
    from aggregat.forecast.core.features import issue_time_for_day

    # The core names a day-ahead issue by the day it forecasts (the day after it is issued).
    return issue_time_for_day(pd.Timestamp(day) + pd.Timedelta(days=1), env.forecast.timezone,
                              env.forecast.issue_hour_local)


def runs_of(env: Environment, day: date) -> Iterator[tuple[str, datetime]]:
    """(model, run time) the daily job handles for ``day``."""
    for model in env.weather.models:
        product = get_product(model)
        for hour in env.weather.runs:
            if hour in product.run_hours:
                yield product.id, datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def require_intraday(env: Environment) -> None:
    """A one-line ConfigError unless ``forecast.intraday`` is on."""
    if not env.forecast.intraday:
        raise ConfigError(f"intraday jobs are off in env {env.name}: set `forecast.intraday = "
                          f"true` in [env.{env.name}.forecast] (models train weekly from then)")


def intraday_issues(env: Environment, first: datetime | pd.Timestamp,
                    last: datetime | pd.Timestamp) -> pd.DatetimeIndex:
    """Intraday issue times (UTC) within ``[first, last]``: every ``forecast.intraday_every_h``
    hours aligned on ``issue_hour_local`` (the core's schedule, as training uses)."""
    from aggregat.forecast.core.features import issue_schedule
    from aggregat.forecast.pipeline import model_config

    return issue_schedule(as_utc(first, param="first"), as_utc(last, param="last"),
                          model_config(env, (), horizon=Horizon.INTRADAY).features)


def intraday_issue_at(env: Environment, at: datetime | pd.Timestamp) -> pd.Timestamp:
    """The newest intraday issue time at or before ``at`` (UTC)."""
    at = as_utc(at, param="at")
    return intraday_issues(env, at - pd.Timedelta(days=1), at)[-1]


def intraday_runs(env: Environment, issue: pd.Timestamp) -> list[tuple[str, datetime]]:
    """(model, run) the intraday job fetches: per model, the newest of ``weather.runs`` (of the
    issue's UTC day or the day before) published by ``issue``, i.e. run time + the product's
    ``availability_delay_h`` <= issue; runs published later are not used by that forecast."""
    issue_dt = as_utc(issue, param="issue").to_pydatetime()
    newest: dict[str, datetime] = {}
    for day in (issue_dt.date() - timedelta(days=1), issue_dt.date()):
        for model, run in runs_of(env, day):
            if run + timedelta(hours=get_product(model).availability_delay_h) <= issue_dt:
                newest[model] = max(run, newest.get(model, run))
    return sorted(newest.items())


def _locked(env: Environment, job: str):
    lock = RunLock.for_environment(env, command=f"aggregat run {job}")
    lock.acquire()
    return lock


def daily(env: Environment, day: date | None = None, *, force: bool = False,
          publish: bool = True) -> RunReport:
    """fetch -> extract -> sync -> predict -> publish for ``day`` (default: today, UTC)."""
    day = day or datetime.now(UTC).date()
    lock = _locked(env, "daily")
    try:
        job = _Job(env, Ledger(job_bank(env), job="daily", run_id=lock.run_id), force)
        notes = []
        for model, run in runs_of(env, day):
            if when_available(env, "daily"):
                run, note = job.choose_run(model, run)
                notes += [note] if note else []
            job.weather(run, model)
        job.sync(day)
        issue = issue_time_of(env, day)
        predicted = job.predict(issue, fallback="; ".join(notes) or None)
        if publish:
            job.catch_up_publishes(issue)
            if predicted:
                job.publish(issue)
        return job.alerted_report()
    finally:
        lock.release()


def intraday(env: Environment, at: datetime | pd.Timestamp | None = None, *,
             force: bool = False, publish: bool = True) -> RunReport:
    """fetch -> extract -> sync -> predict -> publish of the intraday horizon, for the newest
    intraday issue time at or before ``at`` (default: now). Needs ``forecast.intraday``."""
    require_intraday(env)
    issue = intraday_issue_at(env, at if at is not None else datetime.now(UTC))
    lock = _locked(env, "intraday")
    try:
        job = _Job(env, Ledger(job_bank(env), job="intraday", run_id=lock.run_id), force)
        notes = []
        for model, run in intraday_runs(env, issue):
            if when_available(env, "intraday"):
                run, note = job.choose_run(model, run)
                notes += [note] if note else []
            job.weather(run, model)
        job.sync(issue.date())
        job.forecast(issue, Horizon.INTRADAY, publish, fallback="; ".join(notes) or None)
        return job.alerted_report()
    finally:
        lock.release()


def _train(env: Environment, force: bool, horizon: str, now: pd.Timestamp) -> Callable:
    """The ledger body training every target's ``horizon`` model that is due."""
    from aggregat.forecast.pipeline import train_targets

    def train(step) -> None:
        trained = promoted = 0
        for summary in train_targets(env, force=force, horizon=horizon,
                                     if_older=pd.Timedelta(days=env.forecast.retrain_after_days),
                                     now=now):
            if summary.failed:
                raise PartialRunError(f"target {summary.target}: {summary.error}")
            trained += summary.status == "trained"
            promoted += summary.promoted
            step.details.setdefault("targets", []).append(
                {k: getattr(summary, k) for k in ("target", "status", "version", "promoted",
                                                  "reason", "guards", "masked_intervals")})
        step.rows = trained
        step.details["promoted"] = promoted

    return train


def weekly(env: Environment, *, force: bool = False, now: pd.Timestamp | None = None
           ) -> RunReport:
    """Train each target whose production model is older than ``forecast.retrain_after_days``
    (or every target with ``force``), validate, and apply the promotion rule; then the intraday
    models (step ``train-intraday``) when ``forecast.intraday`` is on."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    lock = _locked(env, "weekly")
    try:
        job = _Job(env, Ledger(job_bank(env), job="weekly", run_id=lock.run_id), force)
        # One ledger partition per ISO week: a second weekly run in the same week is a no-op.
        iso = now.isocalendar()
        week = f"{iso.year}-W{iso.week:02d}"
        job.step("train", week, _train(env, force, Horizon.DAY_AHEAD, now))
        if env.forecast.intraday:
            job.step(step_name("train", Horizon.INTRADAY), week,
                     _train(env, force, Horizon.INTRADAY, now))
        return job.alerted_report()
    finally:
        lock.release()


def backfill(env: Environment, since: date, until: date | None = None, *, dry_run: bool = False,
             force: bool = False, publish: bool = True, now: pd.Timestamp | None = None
             ) -> RunReport:
    """Run the steps whose partitions are missing or failed between ``since`` and ``until``:
    weather runs, the day-ahead issue of each day and, with ``forecast.intraday``, every intraday
    issue of those (local) days that is not after ``now`` (default: the current time).

    The datalake is read first: fetch only downloads files the archive lacks.
    """
    until = until or datetime.now(UTC).date()
    if since > until:
        raise AggregatError(f"backfill since {since} is after {until}: nothing to do",
                            param="since")
    now = as_utc(now, param="now") if now is not None else pd.Timestamp.now(tz="UTC")
    lock = _locked(env, "backfill")
    try:
        job = _Job(env, Ledger(job_bank(env), job="backfill", run_id=lock.run_id), force)
        days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
        if dry_run:
            job.result.planned = plan_backfill(job, days, now=now, publish=publish)
            return job.report()
        for day in days:
            for model, run in runs_of(env, day):
                part = f"{model}/{run:%Y-%m-%dT%HZ}"
                if force or not (job.ledger.done("extract", part)
                                 and has_weather_run(job.bank, model, run)):
                    job.weather(run, model)
        job.sync(until)
        for issue, horizon in backfill_issues(env, days, now):
            job.forecast(issue, horizon, publish)
        return job.alerted_report()
    finally:
        lock.release()


def backfill_issues(env: Environment, days: list[date], now: pd.Timestamp
                    ) -> list[tuple[pd.Timestamp, str]]:
    """(issue time, horizon) a backfill over ``days`` covers: the day-ahead issue of each day up
    to a day after ``now``, then the intraday issues of those local days up to ``now``."""
    out = [(issue, Horizon.DAY_AHEAD) for issue in (issue_time_of(env, day) for day in days)
           if issue <= now + pd.Timedelta(days=1)]
    if env.forecast.intraday and days:
        tz = env.forecast.timezone
        first, end = (pd.Timestamp(d).tz_localize(tz, ambiguous=True,
                                                  nonexistent="shift_forward")
                      for d in (days[0], days[-1] + timedelta(days=1)))
        issues = intraday_issues(env, first, min(end, now))
        out += [(issue, Horizon.INTRADAY) for issue in issues if issue < end]
    return out


def plan_backfill(job: _Job, days: list[date], now: pd.Timestamp | None = None,
                  publish: bool = True) -> list[tuple[str, str]]:
    """(step, partition) that a backfill over ``days`` would run."""
    now = as_utc(now, param="now") if now is not None else pd.Timestamp.now(tz="UTC")
    plan = []
    for day in days:
        for model, run in runs_of(job.env, day):
            part = f"{model}/{run:%Y-%m-%dT%HZ}"
            if not job.ledger.done("fetch", part):
                plan.append(("fetch", part))
            if not (job.ledger.done("extract", part) and has_weather_run(job.bank, model, run)):
                plan.append(("extract", part))
    for issue, horizon in backfill_issues(job.env, days, now):
        part = _issue_part(issue)
        for step in ("predict", "publish") if publish else ("predict",):
            if not job.ledger.done(step_name(step, horizon), part):
                plan.append((step_name(step, horizon), part))
    return plan


def job_bank(env: Environment):
    from aggregat.bank import Bank

    return Bank(env.bank)
