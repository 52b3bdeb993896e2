"""``aggregat schedule``: the daily and weekly jobs at their configured local times, in the
foreground (a single VM or a container). Each job runs in its own process, so a crash or a leak
in one run never takes the scheduler down; the run lock keeps overlapping runs out.
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


def _hm(text: str, setting: str) -> tuple[int, int]:
    try:
        hour, minute = (int(x) for x in text.split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
        return hour, minute
    except ValueError:
        raise ConfigError(f"jobs.{setting} = {text!r}: write a local time like 05:30") from None


def next_runs(env: Environment, now: datetime) -> dict[str, datetime]:
    """When each job runs next after ``now`` (aware datetimes in the forecast timezone)."""
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
    return {"daily": daily, "weekly": weekly}


def run_job(env: Environment, job: str) -> int:
    """Run ``aggregat run JOB --env NAME`` in a child process; returns its exit code."""
    cmd = [sys.executable, "-m", "aggregat.cli.main", "run", job, "--env", env.name]
    if env.source_file:
        cmd += ["--config", env.source_file]
    return subprocess.call(cmd)


def run_schedule(env: Environment, *, once: bool = False, log: Callable[[str], None] = print,
                 sleep: Callable[[float], None] = time.sleep, runner=run_job) -> None:
    """Loop forever (or run the daily job once with ``once``), logging each job's exit code."""
    if once:
        log(f"daily: exit code {runner(env, 'daily')}")
        return
    while True:
        due = next_runs(env, datetime.now().astimezone())
        job, when = min(due.items(), key=lambda item: item[1])
        log(f"next: {job} at {when:%Y-%m-%d %H:%M %Z}")
        wait = (when - datetime.now().astimezone()).total_seconds()
        while wait > 0:  # sleep in slices: a laptop suspend or clock change is caught up
            sleep(min(wait, 60.0))
            wait = (when - datetime.now().astimezone()).total_seconds()
        log(f"{job}: exit code {runner(env, job)}")
