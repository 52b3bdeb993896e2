"""Health of an environment: data freshness, last runs, models, last publish.

:func:`check_health` returns a :class:`HealthReport` whose items each carry a status ``ok``,
``warning`` or ``failed`` (``info`` items never change the result); the report's exit code is
0 / 1 / 2 for ok / warning / failed so a monitor can run ``aggregat health`` and alert on it.
Thresholds come from ``[jobs]`` in the environment (:class:`~aggregat.config.JobSettings`);
with ``forecast.intraday`` on, those of intraday forecasts from ``intraday_every_h`` (see
:data:`INTRADAY_WARN_ISSUES`).

It reads only what is cheap: partition listings, Parquet footers, the newest partition of each
series, the ledger and the registry's metadata. It never writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from aggregat.bank import (
    forecast_issue_dates,
    forecast_issues,
    load_months,
    read_load,
    target_ids,
    weather_run_dates,
    weather_runs,
)
from aggregat.config import Environment, mask_tree
from aggregat.timeutil import Horizon

OK, WARNING, FAILED, INFO = "ok", "warning", "failed", "info"
_RANK = {INFO: 0, OK: 0, WARNING: 1, FAILED: 2}
# Intraday forecasts (``<id>@intraday``, with ``forecast.intraday`` on) are issued every
# ``intraday_every_h`` hours: stale once 2 issues in a row are missing (warning) or 4 (failed),
# plus an hour for the job's own run time, instead of the day-ahead [jobs] thresholds.
INTRADAY_SUFFIX = f"@{Horizon.INTRADAY}"  # forecast.pipeline.model_key(id, Horizon.INTRADAY)
INTRADAY_WARN_ISSUES, INTRADAY_FAIL_ISSUES, INTRADAY_GRACE_H = 2, 4, 1.0


@dataclass
class Item:
    """One line of the health report."""

    section: str  # data | runs | steps | model | publish | lock
    name: str
    status: str
    value: str = ""
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The item as shown (table or JSON): every text masked, its data included."""
        return mask_tree({"section": self.section, "name": self.name, "status": self.status,
                          "value": self.value, "detail": self.detail, "data": self.data})


@dataclass
class HealthReport:
    """All items of one environment's health, and the overall status."""

    env: str
    checked_at: datetime
    items: list[Item] = field(default_factory=list)
    alerts: Any = None  # the AlertReport of the health hook (api.health(..., alert=True))

    @property
    def status(self) -> str:
        worst = max((_RANK[i.status] for i in self.items), default=0)
        return {0: OK, 1: WARNING, 2: FAILED}[worst]

    @property
    def exit_code(self) -> int:
        return _RANK[self.status]

    def add(self, *args: Any, **kwargs: Any) -> Item:
        item = Item(*args, **kwargs)
        self.items.append(item)
        return item

    def as_dict(self) -> dict[str, Any]:
        return {"env": self.env, "status": self.status, "exit_code": self.exit_code,
                "checked_at": self.checked_at.isoformat(),
                "items": [i.as_dict() for i in self.items],
                **({"alerts": self.alerts.as_dict()} if self.alerts is not None else {})}


def _age_h(then: datetime | pd.Timestamp, now: datetime) -> float:
    return (pd.Timestamp(now) - pd.Timestamp(then)).total_seconds() / 3600


def _fmt_age(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def _grade(value: float, warn: float, fail: float) -> str:
    return FAILED if value > fail else WARNING if value > warn else OK


# -- data freshness ------------------------------------------------------------------------
def _part_freshness(bank, rel: str, stamp: datetime, now: datetime,
                    thresholds: tuple[float, float]) -> tuple[float, int, str]:
    """(age in hours, rows, status) of a dataset's newest part: stale by the (warn, fail)
    thresholds in hours, and at least a warning when it is empty."""
    age = _age_h(stamp, now)
    rows = bank.file_info(rel)["rows"]
    status = _grade(age, *thresholds)
    if rows == 0:
        status = max(status, WARNING, key=_RANK.get)
    return age, rows, status


def _weather(report: HealthReport, env: Environment, bank, now: datetime) -> None:
    jobs = env.jobs
    for model in env.weather.models:
        dates = weather_run_dates(bank, model)
        if not dates:
            report.add("data", f"weather {model}", FAILED, "no runs",
                       "no weather_forecast partition: run `aggregat run daily` or a backfill")
            continue
        day = pd.Timestamp(dates[-1], tz="UTC")
        newest = weather_runs(bank, model, day, day)
        if not newest:
            report.add("data", f"weather {model}", WARNING, dates[-1],
                       "newest partition has no run=HH part")
            continue
        run, rel = newest[-1][0].to_pydatetime(), newest[-1][1]
        age, rows, status = _part_freshness(bank, rel, run, now,
                                            (jobs.stale_warn_h, jobs.stale_fail_h))
        report.add("data", f"weather {model}", status, f"run {run:%Y-%m-%dT%HZ}",
                   f"{_fmt_age(age)} old, {rows:,} rows, {len(dates)} run days",
                   {"newest_run": run.isoformat(), "age_h": round(age, 2), "rows": rows,
                    "run_days": len(dates)})


def _targets(env: Environment, bank, dataset: str) -> list[str]:
    configured = [t.id for t in env.forecast.targets]
    present = target_ids(bank, dataset)
    return configured + [t for t in present if t not in configured]


def _load(report: HealthReport, env: Environment, bank, now: datetime) -> None:
    jobs = env.jobs
    targets = _targets(env, bank, "load")
    if not targets:
        report.add("data", "load", FAILED, "no load",
                   "no measured load in the bank: run `aggregat energy sync` or `load import`")
    for target in targets:
        months = load_months(bank, target)
        if not months:
            report.add("data", f"load {target}", FAILED, "no load",
                       "configured target without measured load in the bank")
            continue
        month = pd.Timestamp(f"{months[-1]}-01T00:00Z")
        frame = read_load(bank, target, month, month + pd.offsets.MonthBegin())
        if frame.empty:
            report.add("data", f"load {target}", WARNING, months[-1], "newest month is empty")
            continue
        newest = pd.Timestamp(frame["time"].max())
        age = _age_h(newest, now)
        report.add("data", f"load {target}", _grade(age, jobs.load_warn_h, jobs.load_fail_h),
                   f"{newest:%Y-%m-%d %H:%M}Z",
                   f"{_fmt_age(age)} old, {len(frame):,} rows in {months[-1]}",
                   {"newest_time": newest.isoformat(), "age_h": round(age, 2),
                    "rows_newest_month": int(len(frame)), "months": len(months)})


def _intraday_thresholds(env: Environment) -> tuple[float, float]:
    """(warn, fail) age in hours of the newest intraday issue or publish."""
    every = env.forecast.intraday_every_h
    return (INTRADAY_WARN_ISSUES * every + INTRADAY_GRACE_H,
            INTRADAY_FAIL_ISSUES * every + INTRADAY_GRACE_H)


def _forecast_thresholds(env: Environment, target: str) -> tuple[float, float]:
    """(warn, fail) age in hours of a target's newest forecast issue."""
    if env.forecast.intraday and target.endswith(INTRADAY_SUFFIX):
        return _intraday_thresholds(env)
    return env.jobs.stale_warn_h, env.jobs.stale_fail_h


def _forecast(report: HealthReport, env: Environment, bank, now: datetime) -> None:
    targets = _targets(env, bank, "forecast")
    if env.forecast.intraday:  # configured targets must then have intraday forecasts too
        targets += [k for k in (t.id + INTRADAY_SUFFIX for t in env.forecast.targets)
                    if k not in targets]
    if not targets:
        report.add("data", "forecast", FAILED, "no forecast",
                   "no forecast in the bank: run `aggregat run daily`")
    for target in targets:
        dates = forecast_issue_dates(bank, target)
        day = dates and pd.Timestamp(dates[-1], tz="UTC")
        newest = dates and forecast_issues(bank, target, day, day)
        if not newest:
            job = "intraday" if target.endswith(INTRADAY_SUFFIX) else "daily"
            report.add("data", f"forecast {target}", FAILED, "no forecast",
                       f"no forecast issued for this target: run `aggregat run {job}`")
            continue
        issue, rel = newest[-1][0].to_pydatetime(), newest[-1][1]
        age, rows, status = _part_freshness(bank, rel, issue, now,
                                            _forecast_thresholds(env, target))
        report.add("data", f"forecast {target}", status, f"issue {issue:%Y-%m-%dT%H:%MZ}",
                   f"{_fmt_age(age)} old, {rows:,} rows",
                   {"newest_issue": issue.isoformat(), "age_h": round(age, 2), "rows": rows})


# -- runs (ledger) -------------------------------------------------------------------------
def _entry_status(entry, jobs) -> str:
    if entry.status == "failed":
        return FAILED
    if entry.status == "partial":
        return WARNING
    if entry.duration_s is not None:
        return _grade(entry.duration_s, jobs.step_warn_s, jobs.step_fail_s)
    return OK


def _runs(report: HealthReport, env: Environment, ledger, now: datetime) -> None:
    jobs = env.jobs
    entries = ledger.entries()
    if not entries:
        report.add("runs", "ledger", WARNING, "no runs", "no step recorded in the ledger yet")
        return
    for job in sorted({e.job for e in entries if e.job}):
        run = [e for e in entries if e.job == job]
        run_id = run[-1].run_id
        run = [e for e in run if e.run_id == run_id]
        worst = max((_entry_status(e, jobs) for e in run), key=_RANK.get)
        start = min(e.started_at for e in run)
        ends = [e.ended_at for e in run if e.ended_at is not None]
        seconds = (max(ends) - start).total_seconds() if ends else None
        counts: dict[str, int] = {}
        for e in run:
            counts[e.status] = counts.get(e.status, 0) + 1
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        if seconds is not None:
            detail += f"; {seconds:.1f} s"
        report.add("runs", f"last {job} run", worst, f"{start:%Y-%m-%d %H:%M}Z "
                   f"({_fmt_age(_age_h(start, now))} ago)", detail,
                   {"run_id": run_id, "started_at": start.isoformat(), "seconds": seconds,
                    "statuses": counts})
        _fallback(report, job, run)
    latest: dict[str, Any] = {}
    for e in entries:
        latest[e.step] = e
    for step, e in sorted(latest.items(), key=lambda kv: kv[1].started_at):
        status = _entry_status(e, jobs)
        duration = "" if e.duration_s is None else f"{e.duration_s:.1f} s"
        detail = e.partition + (f", {e.rows:,} rows" if e.rows is not None else "")
        if e.status in ("failed", "partial") and e.error:
            detail += f": {e.error}"
        if e.status == "running":
            detail += " (running now)"
        report.add("steps", step, status, f"{e.status} {duration}".strip(), detail,
                   {"partition": e.partition, "status": e.status, "duration_s": e.duration_s,
                    "rows": e.rows, "attempts": e.attempts, "stale": e.stale,
                    "started_at": e.started_at.isoformat(), "error": e.error})
    for step in ("predict", "predict-intraday"):
        if step in latest:
            _guarded(report, latest[step])
    _publish(report, entries, "publish", "last publish",
             (jobs.stale_warn_h, jobs.stale_fail_h), now)
    if env.forecast.intraday:
        _publish(report, entries, "publish-intraday", "last intraday publish",
                 _intraday_thresholds(env), now)


def _fallback(report: HealthReport, job: str, run: list) -> None:
    """A warning when the last ``job`` run used an earlier weather run than planned (the runs
    were not complete at the sources by its deadline: ledger step ``choose-run``)."""
    used = [e for e in run if e.step == "choose-run" and (e.details or {}).get("fallback")]
    if used:
        notes = "; ".join(str(e.details.get("reason") or e.partition) for e in used)
        report.add("runs", f"{job} weather run", WARNING, "fallback run used",
                   f"{notes}; forecasts flagged in column weather_run_fallback",
                   {"fallbacks": [e.details for e in used]})


def _guarded(report: HealthReport, entry) -> None:
    """A warning when the input guards flagged the inputs of targets in the latest ``predict``
    step: those targets were forecast by the weekly baseline (forecast column guard_flags)."""
    guarded = (entry.details or {}).get("guarded_targets") or {}
    if guarded:
        listed = ", ".join(f"{t} ({f})" for t, f in sorted(guarded.items()))
        report.add("runs", f"{entry.step} input guards", WARNING,
                   f"{len(guarded)} target(s) on the baseline",
                   f"{entry.partition}: {listed}; check their load and weather, see "
                   "docs/forecasting.md (Input guards)",
                   {"partition": entry.partition, "guarded_targets": guarded})


def _publish(report: HealthReport, entries, step: str, name: str,
             thresholds: tuple[float, float], now: datetime) -> None:
    """The newest successful ledger ``step`` (a publish): its age against ``thresholds``
    (warn, fail hours), failed when the latest attempt failed or none ever succeeded."""
    attempts = [e for e in entries if e.step == step]
    if not attempts:
        report.add("publish", name, WARNING, "never", f"no {step} recorded in the ledger")
        return
    latest = attempts[-1]
    ok = [e for e in attempts if e.status == "ok"]
    if not ok:
        report.add("publish", name, FAILED, latest.status,
                   f"no successful {step}; last attempt {latest.partition}")
        return
    last_ok = ok[-1]
    when = last_ok.ended_at or last_ok.started_at
    age = _age_h(when, now)
    status = FAILED if latest.status == "failed" else _grade(age, *thresholds)
    report.add("publish", name, status, f"{when:%Y-%m-%d %H:%M}Z",
               f"{last_ok.partition}, {last_ok.rows or 0:,} rows, {_fmt_age(age)} ago"
               + (f"; latest attempt failed: {latest.error}" if latest.status == "failed"
                  else ""),
               {"partition": last_ok.partition, "rows": last_ok.rows,
                "age_h": round(age, 2), "latest_status": latest.status})


# -- models --------------------------------------------------------------------------------
def _models(report: HealthReport, env: Environment, now: datetime) -> None:
    try:
        from aggregat.forecast.registry import Registry
    except ImportError:
        report.add("model", "registry", INFO, "none", "no model registry yet")
        return
    jobs = env.jobs
    try:
        registry = Registry(env.registry)
        targets = [t.id for t in env.forecast.targets]
        targets += [t for t in registry.targets() if t not in targets]
    except Exception as exc:
        report.add("model", "registry", FAILED, "unreadable", f"{env.registry}: {exc}")
        return
    if not targets:
        report.add("model", "registry", WARNING, "no model",
                   "no target configured and no model trained: run `aggregat model train`")
    for target in targets:
        try:
            versions = registry.versions(target)
            current = registry.current(target) if versions else None
            if not versions:
                report.add("model", target, WARNING, "no model",
                           "forecasts use the baseline: run `aggregat model train`")
                continue
            age_d = registry.age(target, pd.Timestamp(now)).total_seconds() / 86400
            meta = registry.meta(target, current) if current else registry.meta(
                target, versions[-1])
        except Exception as exc:
            report.add("model", target, FAILED, "unreadable", str(exc))
            continue
        status = _grade(age_d, jobs.model_age_warn_days, jobs.model_age_fail_days)
        if current is None:
            status = max(status, WARNING, key=_RANK.get)
        validation = (meta.get("metrics") or {}).get("validation") or {}
        scores = ", ".join(f"{k} {v:.3g}" for k, v in validation.items()
                           if isinstance(v, int | float))
        report.add("model", target, status, current or "none promoted",
                   f"newest trained {age_d:.1f} d ago; {scores or 'no metrics'}",
                   {"current": current, "newest": versions[-1], "age_days": round(age_d, 2),
                    "trained_at": meta.get("trained_at"), "metrics": validation})


# -- alert channels ------------------------------------------------------------------------
def _alert_channels(report: HealthReport, env: Environment) -> None:
    """Each configured alert channel: warning when its latest send failed (ops.alerts)."""
    if not env.alerts.channels:
        return
    from aggregat.ops.alerts import channel_label, read_state

    counts = read_state(env).get("channels", {})
    for i, url in enumerate(env.alerts.channels):
        label = channel_label(i, url)
        c = counts.get(label, {})
        sent, failed = c.get("sent", 0), c.get("failed", 0)
        last_ok, last_failed = c.get("last_ok_at") or "", c.get("last_failed_at") or ""
        bad = bool(last_failed) and (not last_ok or datetime.fromisoformat(last_failed)
                                     > datetime.fromisoformat(last_ok))
        detail = f"{sent} sent, {failed} failed"
        if bad:
            detail += f"; last failure {last_failed[:16]}Z: {c.get('last_error', '')}"
        report.add("alerts", f"alert channel {label}", WARNING if bad else OK,
                   "failing" if bad else ("ok" if sent else "never used"), detail,
                   {"sent": sent, "failed": failed, "last_ok_at": last_ok or None,
                    "last_failed_at": last_failed or None})


# -- all -----------------------------------------------------------------------------------
def check_health(env: Environment, now: datetime | None = None) -> HealthReport:
    """The health of ``env`` at ``now`` (default: the current time)."""
    from aggregat.bank import Bank
    from aggregat.ops.ledger import Ledger
    from aggregat.ops.lock import RunLock

    now = now or datetime.now(UTC)
    report = HealthReport(env.name, now)
    holder = None
    try:
        holder = RunLock.for_environment(env).holder()
    except Exception as exc:  # e.g. an unreachable root: the data checks will say more
        report.add("lock", "run lock", WARNING, "unknown", str(exc))
    if holder is not None:
        report.add("lock", "run in progress", INFO, f"since {holder.get('since', '?')}",
                   f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
                   f"({holder.get('command', '')})", {"holder": holder})
    bank = Bank(env.bank)
    for section, fn in (("weather", lambda: _weather(report, env, bank, now)),
                        ("load", lambda: _load(report, env, bank, now)),
                        ("forecast", lambda: _forecast(report, env, bank, now)),
                        ("ledger", lambda: _runs(report, env, Ledger(
                            bank, run_id=(holder or {}).get("run_id")), now)),
                        ("model", lambda: _models(report, env, now)),
                        ("alerts", lambda: _alert_channels(report, env))):
        try:
            fn()
        except Exception as exc:  # one unreadable part must not hide the rest of the report
            report.add(section, section, FAILED, "error", f"{type(exc).__name__}: {exc}")
    return report
