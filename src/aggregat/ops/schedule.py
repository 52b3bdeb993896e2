"""``aggregat schedule``: the daily and weekly jobs at their configured local times, and with
``forecast.intraday`` the intraday job after each intraday issue time, in the foreground (a single
VM or a container). Each job runs in its own process, so a crash or a leak in one run never takes
the scheduler down; the run lock keeps overlapping runs out. Jobs due at the same minute run one
after the other in :data:`JOB_ORDER` (in parallel, all but one would stop on the lock).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aggregat.config import Environment
from aggregat.errors import ConfigError

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Forecasts first (the daily one is the contract), training last.
JOB_ORDER = ("daily", "intraday", "weekly")
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
    issue time (``issue_hour_local`` + k x ``intraday_every_h``, local)."""
    tz = ZoneInfo(env.forecast.timezone)
    local = now.astimezone(tz)
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
    return due


def _next_intraday(env: Environment, local: datetime) -> datetime:
    from aggregat.ops.jobs import intraday_issues

    tz = local.tzinfo
    starts = intraday_issues(env, local - INTRADAY_START_AFTER, local + timedelta(days=2)
                             ) + INTRADAY_START_AFTER
    return next(t.to_pydatetime().astimezone(tz) for t in starts if t > local)


def run_job(env: Environment, job: str) -> int:
    """Run ``aggregat run JOB --env NAME`` in a child process; returns its exit code."""
    cmd = [sys.executable, "-m", "aggregat.cli.main", "run", job, "--env", env.name]
    if env.source_file:
        cmd += ["--config", env.source_file]
    return subprocess.call(cmd)


def _now() -> datetime:
    return datetime.now().astimezone()


def run_schedule(env: Environment, *, once: bool = False, log: Callable[[str], None] = print,
                 sleep: Callable[[float], None] = time.sleep, runner=run_job,
                 clock: Callable[[], datetime] = _now) -> None:
    """Loop forever (or, with ``once``, run the daily job and then the intraday one when
    ``forecast.intraday`` is on, and return), logging each job's exit code.

    Every job due by the time the scheduler wakes runs once, in :data:`JOB_ORDER`: those due
    at the same minute, and one whose time came while another job was running (it runs right
    after; several missed times of a job, e.g. after a suspend, run it once)."""
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
            log(f"{job}: exit code {runner(env, job)}")
