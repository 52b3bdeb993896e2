"""``aggregat schedule``: the daily and weekly jobs at their configured local times, and with
``forecast.intraday`` the intraday job after each intraday issue time, in the foreground (a single
VM or a container). Each job runs in its own process, so a crash or a leak in one run never takes
the scheduler down; the run lock keeps overlapping runs out. Jobs due at the same minute run one
after the other in :data:`JOB_ORDER` (in parallel, all but one would stop on the lock).

With ``jobs.daily_start`` / ``jobs.intraday_start = "when-available"`` a job is due at the
expected publication of the runs it uses (run time + the product's ``availability_delay_h``;
intraday: its usual start); the scheduler then probes them (:func:`wait_for_data`, exponential
backoff from ``data_poll_s`` to ``data_poll_max_s``) and starts the job as soon as they are
complete at a source, or at the deadline, where the job falls back to the newest complete
earlier run and flags it (:meth:`aggregat.ops.jobs._Job.choose_run`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from aggregat.config import Environment
from aggregat.errors import AggregatError, ConfigError
from aggregat.ops.jobs import when_available
from aggregat.weather.products import get_product

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Forecasts first (the daily one is the contract), training last, then the alert check that
# sees how they went.
JOB_ORDER = ("daily", "intraday", "weekly", "alerts")
# The intraday job starts this long after its issue time: the load of the hour before the issue
# has had time to reach the energy DB, and the newest weather run a margin over its typical
# publication delay (the job forecasts as of the issue time, whatever the start time).
INTRADAY_START_AFTER = timedelta(minutes=20)


def _hm(text: str, setting: str) -> tuple[int, int]:
    try:
        hour, minute = (int(x) for x in text.split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
        return hour, minute
    except ValueError:
        raise ConfigError(f"jobs.{setting} = {text!r}: write a local time like 05:30") from None


def next_runs(env: Environment, now: datetime) -> dict[str, datetime]:
    """When each job runs next after ``now`` (aware datetimes in the forecast timezone); with
    ``forecast.intraday`` also ``intraday``: :data:`INTRADAY_START_AFTER` after the next intraday
    issue time (``issue_hour_local`` + k x ``intraday_every_h``, local). A daily job started
    ``when-available`` is due at the expected publication of its runs (:func:`data_window`)."""
    tz = ZoneInfo(env.forecast.timezone)
    local = now.astimezone(tz)
    if when_available(env, "daily"):
        day = local.astimezone(UTC).date()
        while (daily := data_window(env, "daily", day)[0].astimezone(tz)) <= local:
            day += timedelta(days=1)
    else:
        h, m = _hm(env.jobs.daily_at, "daily_at")
        daily = local.replace(hour=h, minute=m, second=0, microsecond=0)
        if daily <= local:
            daily += timedelta(days=1)
    weekday = env.jobs.weekly_on.lower()[:3]
    if weekday not in _WEEKDAYS:
        raise ConfigError(f"jobs.weekly_on = {env.jobs.weekly_on!r}: use one of "
                          f"{', '.join(_WEEKDAYS)}")
    h, m = _hm(env.jobs.weekly_at, "weekly_at")
    weekly = local.replace(hour=h, minute=m, second=0, microsecond=0)
    weekly += timedelta(days=(_WEEKDAYS.index(weekday) - weekly.weekday()) % 7)
    if weekly <= local:
        weekly += timedelta(days=7)
    due = {"daily": daily, "weekly": weekly}
    if env.forecast.intraday:
        due["intraday"] = _next_intraday(env, local)
    if env.alerts.channels and env.jobs.alerts_every_min:
        due["alerts"] = _next_alert_check(env.jobs.alerts_every_min, local)
    return due


def _next_alert_check(every_min: int, local: datetime) -> datetime:
    """The next multiple of ``every_min`` minutes after local midnight (a grid, so that the
    checks do not drift after each job)."""
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    step = timedelta(minutes=every_min)
    return min(midnight + step * ((local - midnight) // step + 1), midnight + timedelta(days=1))


def _next_intraday(env: Environment, local: datetime) -> datetime:
    from aggregat.ops.jobs import intraday_issues

    tz = local.tzinfo
    starts = intraday_issues(env, local - INTRADAY_START_AFTER, local + timedelta(days=2)
                             ) + INTRADAY_START_AFTER
    return next(t.to_pydatetime().astimezone(tz) for t in starts if t > local)


def data_window(env: Environment, job: str, day: date | None = None,
                issue: datetime | None = None) -> tuple[datetime, datetime]:
    """(first probe, deadline) of a ``when-available`` job, aware. Daily, for the runs of UTC
    ``day``: from the latest expected publication (run + ``availability_delay_h``) to
    ``jobs.data_deadline`` local on that local day (never before the first probe). Intraday,
    for ``issue``: from its usual start to ``jobs.intraday_data_wait_min`` after the issue."""
    from aggregat.ops.jobs import runs_of

    tz = ZoneInfo(env.forecast.timezone)
    if job == "intraday":
        assert issue is not None
        return (issue + INTRADAY_START_AFTER,
                issue + timedelta(minutes=env.jobs.intraday_data_wait_min))
    assert day is not None
    published = [run + timedelta(hours=get_product(model).availability_delay_h)
                 for model, run in runs_of(env, day)]
    start = max(published, default=datetime(day.year, day.month, day.day, tzinfo=UTC))
    h, m = _hm(env.jobs.data_deadline, "data_deadline")
    deadline = start.astimezone(tz).replace(hour=h, minute=m, second=0, microsecond=0)
    return start.astimezone(tz), max(deadline, start.astimezone(tz))


def wait_for_data(env: Environment, job: str, *, log: Callable[[str], None] = print,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], datetime] | None = None,
                  ready: Callable[[Environment, list], bool] | None = None) -> bool:
    """Probe the weather runs ``job`` would use now until they are complete at a source (True)
    or the deadline of :func:`data_window` passes (False: the job then falls back), sleeping
    ``data_poll_s`` doubled after each probe up to ``data_poll_max_s``, never past the
    deadline. ``ready(env, runs)`` defaults to :func:`aggregat.ops.jobs.runs_complete`."""
    from aggregat.ops.jobs import intraday_issue_at, runs_complete, weather_runs

    clock = clock or _now
    ready = ready or runs_complete
    at = clock()
    if job == "intraday":
        _, deadline = data_window(env, job, issue=intraday_issue_at(env, at).to_pydatetime())
    else:
        _, deadline = data_window(env, job, day=at.astimezone(UTC).date())
    runs = weather_runs(env, job, at)
    names = ", ".join(f"{m} {r:%Y-%m-%dT%HZ}" for m, r in runs) or "no run"
    delay = env.jobs.data_poll_s
    while True:
        try:
            if ready(env, runs):
                log(f"{job}: weather runs complete ({names}): starting")
                return True
            why = "not complete yet"
        except AggregatError as exc:  # a source down: probe again, it may come back
            why = f"cannot tell ({exc})"
        left = (deadline - clock()).total_seconds()
        if left <= 0:
            log(f"{job}: weather runs {why} at the deadline {deadline:%H:%M %Z} ({names}): "
                "starting with the newest complete earlier run")
            return False
        wait = min(delay, left)
        log(f"{job}: weather runs {why} ({names}); next probe in {wait:.0f} s")
        sleep(wait)
        delay = min(delay * 2, env.jobs.data_poll_max_s)


def run_job(env: Environment, job: str) -> int:
    """Run ``aggregat run JOB --env NAME`` (``alerts``: ``aggregat alerts check``) in a child
    process; returns its exit code."""
    command = ["alerts", "check"] if job == "alerts" else ["run", job]
    cmd = [sys.executable, "-m", "aggregat.cli.main", *command, "--env", env.name]
    if env.source_file:
        cmd += ["--config", env.source_file]
    return subprocess.call(cmd)


def _now() -> datetime:
    return datetime.now().astimezone()


def run_schedule(env: Environment, *, once: bool = False, log: Callable[[str], None] = print,
                 sleep: Callable[[float], None] = time.sleep, runner=run_job,
                 clock: Callable[[], datetime] = _now,
                 ready: Callable[[Environment, list], bool] | None = None) -> None:
    """Loop forever (or, with ``once``, run the daily job and then the intraday one when
    ``forecast.intraday`` is on, and return), logging each job's exit code.

    Every job due by the time the scheduler wakes runs once, in :data:`JOB_ORDER`: those due
    at the same minute, and one whose time came while another job was running (it runs right
    after; several missed times of a job, e.g. after a suspend, run it once). A job started
    ``when-available`` first waits for its data (:func:`wait_for_data`; ``ready`` for tests)."""
    if once:
        for job in ("daily", "intraday") if env.forecast.intraday else ("daily",):
            log(f"{job}: exit code {runner(env, job)}")
        return
    since = clock()
    while True:
        due = next_runs(env, since)
        when = min(due.values())
        log(f"next: {', '.join(j for j in JOB_ORDER if due.get(j) == when)} at "
            f"{when:%Y-%m-%d %H:%M %Z}")
        wait = (when - clock()).total_seconds()
        while wait > 0:  # sleep in slices: a laptop suspend or clock change is caught up
            sleep(min(wait, 60.0))
            wait = (when - clock()).total_seconds()
        since = clock()
        for job in (j for j in JOB_ORDER if j in due and due[j] <= since):
            if when_available(env, job):
                wait_for_data(env, job, log=log, sleep=sleep, clock=clock, ready=ready)
            log(f"{job}: exit code {runner(env, job)}")
