"""`aggregat schedule`: when the jobs run next, and the loop that runs them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aggregat.config import load_environment
from aggregat.errors import ConfigError
from aggregat.ops.schedule import next_runs, run_schedule

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGGREGAT_CONFIG", raising=False)
    monkeypatch.delenv("AGGREGAT_ENV", raising=False)
    (tmp_path / "aggregat.toml").write_text(
        '[env.x.jobs]\ndaily_at = "05:30"\nweekly_on = "sun"\nweekly_at = "03:00"\n')
    return load_environment("x")


def test_next_runs_in_local_time(env):
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=PARIS)
    due = next_runs(env, saturday_noon)
    assert due["daily"] == datetime(2026, 11, 29, 5, 30, tzinfo=PARIS)
    assert due["weekly"] == datetime(2026, 11, 29, 3, 0, tzinfo=PARIS)
    early = next_runs(env, datetime(2026, 11, 29, 4, 0, tzinfo=PARIS))
    assert early["daily"] == datetime(2026, 11, 29, 5, 30, tzinfo=PARIS)
    assert early["weekly"] == datetime(2026, 12, 6, 3, 0, tzinfo=PARIS)


def test_daylight_saving_change_keeps_the_local_hour(env):
    due = next_runs(env, datetime(2026, 3, 28, 12, 0, tzinfo=PARIS))  # clocks go forward on 29
    assert due["daily"].utcoffset().total_seconds() == 7200
    assert (due["daily"].hour, due["daily"].minute) == (5, 30)


def test_bad_schedule_settings_are_named(env):
    bad = env.model_copy(update={"jobs": env.jobs.model_copy(update={"daily_at": "25:00"})})
    with pytest.raises(ConfigError, match="jobs.daily_at"):
        next_runs(bad, datetime(2026, 11, 28, tzinfo=PARIS))
    bad = env.model_copy(update={"jobs": env.jobs.model_copy(update={"weekly_on": "funday"})})
    with pytest.raises(ConfigError, match="jobs.weekly_on"):
        next_runs(bad, datetime(2026, 11, 28, tzinfo=PARIS))


def test_once_runs_the_daily_job_and_reports_its_exit_code(env):
    calls, lines = [], []
    run_schedule(env, once=True, log=lines.append,
                 runner=lambda e, job: calls.append(job) or 3)
    assert calls == ["daily"] and lines == ["daily: exit code 3"]


def test_once_also_runs_the_intraday_job_when_it_is_on(env):
    on = env.model_copy(update={"forecast": env.forecast.model_copy(update={"intraday": True})})
    calls, lines = [], []
    run_schedule(on, once=True, log=lines.append,
                 runner=lambda e, job: calls.append(job) or 0)
    assert calls == ["daily", "intraday"]
    assert lines == ["daily: exit code 0", "intraday: exit code 0"]


def _with_channels(env, every_min=30):
    return env.model_copy(update={
        "alerts": env.alerts.model_copy(update={"channels": ["json://127.0.0.1:9/hook"]}),
        "jobs": env.jobs.model_copy(update={"alerts_every_min": every_min})})


def test_alert_checks_are_due_on_a_grid_only_with_channels(env):
    at = datetime(2026, 11, 28, 12, 10, tzinfo=PARIS)
    assert "alerts" not in next_runs(env, at)  # no channel: nothing to tell anyone
    assert next_runs(_with_channels(env), at)["alerts"] == datetime(2026, 11, 28, 12, 30,
                                                                    tzinfo=PARIS)
    assert next_runs(_with_channels(env), datetime(2026, 11, 28, 23, 50, tzinfo=PARIS)
                     )["alerts"] == datetime(2026, 11, 29, 0, 0, tzinfo=PARIS)
    assert "alerts" not in next_runs(_with_channels(env, 0), at)


class _Stop(Exception):
    pass


def test_the_loop_checks_alerts_between_jobs(env):
    """Late data or a job killed before its own alert hook is only seen by a health check: the
    scheduler runs `alerts check` on its grid, after any job due at the same minute."""
    clock = [datetime(2026, 11, 29, 5, 0, tzinfo=PARIS)]
    ran: list[tuple[str, str]] = []

    def sleep(seconds):
        clock[0] += timedelta(seconds=seconds)

    def runner(e, job):
        ran.append((job, f"{clock[0]:%H:%M}"))
        if len(ran) == 3:
            raise _Stop
        return 0

    with pytest.raises(_Stop):
        run_schedule(_with_channels(env), log=lambda line: None, sleep=sleep, runner=runner,
                     clock=lambda: clock[0])
    assert ran == [("daily", "05:30"), ("alerts", "05:30"), ("alerts", "06:00")]
