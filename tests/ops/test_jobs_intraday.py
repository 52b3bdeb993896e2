"""The intraday horizon in the jobs: `run intraday`, weekly training, backfill, schedule, health.

Jobs run in this process on the small world of ops_world.py (simulated AROME runs over loopback
HTTP, measured load in a SQLite energy DB); forecasts are the flagged baseline except where the
weekly job trains (a few LightGBM rounds).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from ops_world import DAYS, child_env, make_env

from aggregat.bank import Bank, read_forecast, write_forecast, write_load
from aggregat.config import load_environment
from aggregat.errors import ConfigError
from aggregat.forecast.registry import Registry
from aggregat.ops import jobs
from aggregat.ops.health import check_health
from aggregat.ops.ledger import Ledger
from aggregat.ops.schedule import next_runs, run_schedule
from aggregat.weather.loopback import serve_folder

PARIS = ZoneInfo("Europe/Paris")
ISSUE = pd.Timestamp("2026-11-27T09:00Z")  # 10:00 Paris: an intraday issue, and the day-ahead one
PART = "2026-11-27T0900Z"
ON = "[env.test.forecast]\nintraday = true\n"
# A small, quick LightGBM (as in tests/forecast/test_pipeline.py).
QUICK = """min_train_days = 14
validation_days = 7
[env.test.forecast.model_params]
max_rounds = 30
learning_rate = 0.3
min_data_in_leaf = 10
num_leaves = 7
calibration_days = 7
"""


def _env(config, **forecast):
    env = load_environment("test", config)
    return env.model_copy(update={"workers": 1, "forecast": env.forecast.model_copy(
        update=forecast)})


@pytest.fixture
def world(archive, measured, tmp_path):
    """An environment with intraday on, its weather served over loopback HTTP."""
    with serve_folder(archive) as base_url:
        yield _env(make_env(tmp_path, base_url, measured, extra=ON))


@pytest.fixture
def offline(tmp_path):
    """An environment with no weather model, nothing to fetch (schedule, health, errors)."""
    config = tmp_path / "aggregat.toml"
    config.write_text(f'[env.test]\nroot = "{tmp_path / "data"}"\n[env.test.weather]\n'
                      'models = []\n[[env.test.forecast.targets]]\nid = "portfolio"\n')
    return config


def _attempts(env) -> dict:
    """Attempts per (step, partition), sync aside (it always runs)."""
    return {(e.step, e.partition): e.attempts for e in Ledger(Bank(env.bank)).entries()
            if e.step != "sync"}


def _published(env) -> dict[tuple[str, pd.Timestamp], int]:
    """Rows in the energy DB per (target id, issue time)."""
    engine = sa.create_engine(env.energy_db)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT target_id, issue_time, count(*) FROM load_forecasts "
                                    "GROUP BY target_id, issue_time")).all()
    engine.dispose()
    return {(t, pd.Timestamp(i).tz_localize(None)): n for t, i, n in rows}


# -------------------------------------------------------------------------------- the job
def test_intraday_job_forecasts_publishes_and_reruns_as_a_no_op(world):
    env = world
    result = jobs.intraday(env, at=ISSUE + pd.Timedelta(minutes=20))
    assert result.ok, result.problems
    entries = {(e.step, e.partition): e for e in Ledger(Bank(env.bank)).entries()}
    assert set(entries) == {("fetch", "arome-0025/2026-11-27T00Z"),
                            ("extract", "arome-0025/2026-11-27T00Z"), ("sync", "2026-11-27"),
                            ("predict-intraday", PART), ("publish-intraday", PART)}
    assert {(e.status, e.job) for e in entries.values()} == {("ok", "intraday")}
    forecast = read_forecast(Bank(env.bank))
    assert set(forecast["target_id"]) == {"portfolio@intraday"}
    assert (forecast["issue_time"] == ISSUE).all() and len(forecast) == 36
    assert forecast["valid_time"].min() == ISSUE
    naive = ISSUE.tz_localize(None)
    assert _published(env) == {("portfolio@intraday", naive): 36}
    items = {i.name: i for i in check_health(env, now=ISSUE + pd.Timedelta(hours=1)).items}
    assert items["last intraday publish"].status == "ok"
    assert items["last intraday publish"].data["rows"] == 36
    assert items["last publish"].status == "warning"  # no day-ahead publish yet

    # The day-ahead issue at the same time is published beside it, neither replacing the other.
    assert jobs.daily(env, DAYS[1]).ok
    assert _published(env) == {("portfolio@intraday", naive): 36, ("portfolio", naive): 24}

    before = _attempts(env)
    again = jobs.intraday(env, at=ISSUE + pd.Timedelta(hours=5, minutes=59))  # same issue
    assert again.ok and _attempts(env) == before
    assert _published(env) == {("portfolio@intraday", naive): 36, ("portfolio", naive): 24}
    forced = jobs.intraday(env, at=ISSUE, force=True, publish=False)
    assert forced.ok and _attempts(env)[("predict-intraday", PART)] == 2
    assert _attempts(env)[("publish-intraday", PART)] == 1


def test_issue_and_weather_runs_of_an_intraday_run(offline):
    env = _env(offline, intraday=True)
    issue = lambda at: jobs.intraday_issue_at(env, pd.Timestamp(at))  # noqa: E731
    assert issue("2026-11-27T09:00Z") == ISSUE  # at the issue time: that issue
    assert issue("2026-11-27T08:59Z") == pd.Timestamp("2026-11-27T03:00Z")  # 04:00 Paris
    assert issue("2026-11-27T02:00Z") == pd.Timestamp("2026-11-26T21:00Z")  # 22:00 the day before
    assert issue("2026-07-01T08:30Z") == pd.Timestamp("2026-07-01T08:00Z")  # 10:00 in summer
    every_3h = _env(offline, intraday=True, intraday_every_h=3.0)
    assert jobs.intraday_issue_at(every_3h, "2026-11-27T08:59Z") == pd.Timestamp(
        "2026-11-27T06:00Z")
    both = env.model_copy(update={"weather": env.weather.model_copy(update={
        "models": ["arome-0025", "arpege-01"], "runs": [0, 12]})})
    # AROME is published 2 h after its run time, ARPEGE 4 h: the newest of each by the issue.
    runs = dict(jobs.intraday_runs(both, pd.Timestamp("2026-11-27T15:00Z")))
    assert runs == {"arome-0025": datetime.fromisoformat("2026-11-27T12:00+00:00"),
                    "arpege-01": datetime.fromisoformat("2026-11-27T00:00+00:00")}
    runs = dict(jobs.intraday_runs(both, pd.Timestamp("2026-11-27T03:00Z")))
    assert runs == {"arome-0025": datetime.fromisoformat("2026-11-27T00:00+00:00"),
                    "arpege-01": datetime.fromisoformat("2026-11-26T12:00+00:00")}


def test_disabled_or_bad_at_is_a_one_line_error(offline):
    env = _env(offline)
    with pytest.raises(ConfigError, match=r"set `forecast.intraday = true` in \[env.test"):
        jobs.intraday(env)
    cmd = [sys.executable, "-m", "aggregat.cli.main", "run", "intraday", "--env", "test",
           "--config", str(offline)]
    off = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=child_env())
    assert off.returncode == 2, off.stderr
    assert "forecast.intraday = true" in off.stderr and "Traceback" not in off.stderr
    assert len(off.stderr.strip().splitlines()) == 1
    offline.write_text(offline.read_text() + "[env.test.forecast]\nintraday = true\n")
    bad = subprocess.run([*cmd, "--at", "tomorrow"], capture_output=True, text=True, timeout=120,
                         env=child_env())
    assert bad.returncode == 2, bad.stderr
    assert "--at 'tomorrow' is not a time" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------- weekly, backfill
def test_weekly_trains_both_horizons_when_enabled(offline, measured):
    offline.write_text(offline.read_text() + ON + QUICK)
    env = _env(offline)
    write_load(Bank(env.bank), measured.assign(updated_at=pd.Timestamp("2026-11-28", tz="UTC")))
    now = pd.Timestamp("2026-11-29T03:00Z")
    result = jobs.weekly(env.model_copy(update={"forecast": env.forecast.model_copy(
        update={"intraday": False})}), now=now)
    assert result.ok, result.problems
    assert set(_attempts(env)) == {("train", "2026-W48")}
    result = jobs.weekly(env, now=now)
    assert result.ok, result.problems
    assert _attempts(env) == {("train", "2026-W48"): 1, ("train-intraday", "2026-W48"): 1}
    registry = Registry(env.registry)
    assert set(registry.targets()) == {"portfolio", "portfolio@intraday"}
    meta = registry.meta("portfolio@intraday", registry.current("portfolio@intraday"))
    assert meta["horizon"] == "intraday"
    # The job's time is the training's: models are dated by it, not by the wall clock.
    assert pd.Timestamp(meta["trained_at"]) == now
    day_ahead = registry.meta("portfolio", registry.current("portfolio"))
    assert pd.Timestamp(day_ahead["trained_at"]) == now
    assert jobs.weekly(env, now=now + pd.Timedelta(hours=12)).ok  # same ISO week: a no-op
    assert _attempts(env) == {("train", "2026-W48"): 1, ("train-intraday", "2026-W48"): 1}


def test_backfill_plans_and_runs_the_missing_intraday_issues(world):
    env = world
    now = pd.Timestamp("2026-11-27T12:00Z")  # the issues of 16:00 and 22:00 Paris are ahead
    dry = jobs.backfill(env, DAYS[0], DAYS[1], dry_run=True, now=now).planned
    intraday = ["2026-11-26T0300Z", "2026-11-26T0900Z", "2026-11-26T1500Z", "2026-11-26T2100Z",
                "2026-11-27T0300Z", PART]
    assert [p for s, p in dry if s == "predict-intraday"] == intraday
    assert [p for s, p in dry if s == "publish-intraday"] == intraday
    assert len(dry) == 8 + 2 * len(intraday)  # fetch, extract, predict, publish of 2 days too
    assert not Path(env.datalake).exists() and not Bank(env.bank).partitions("forecast")
    off = env.model_copy(update={"forecast": env.forecast.model_copy(update={"intraday": False})})
    assert not [s for s, _ in jobs.backfill(off, DAYS[0], DAYS[1], dry_run=True,
                                            now=now).planned if "intraday" in s]

    assert jobs.intraday(env, at=ISSUE).ok  # one issue done already: backfill leaves it
    result = jobs.backfill(env, DAYS[0], DAYS[1], now=now)
    assert result.ok, result.problems
    attempts = _attempts(env)
    assert {p for (s, p) in attempts if s == "predict-intraday"} == set(intraday)
    assert {p for (s, p) in attempts if s == "publish-intraday"} == set(intraday)
    assert attempts[("predict-intraday", PART)] == 1
    published = _published(env)
    assert {i for t, i in published if t == "portfolio@intraday"} == {
        pd.Timestamp(datetime.strptime(p, "%Y-%m-%dT%H%MZ")) for p in intraday}
    assert all(n == 36 for (t, _), n in published.items() if t.endswith("@intraday"))
    assert jobs.backfill(env, DAYS[0], DAYS[1], dry_run=True, now=now).planned == []


# ---------------------------------------------------------------------- schedule, health
def test_schedule_runs_intraday_after_each_issue_across_a_dst_change(offline):
    env = _env(offline)
    assert "intraday" not in next_runs(env, datetime(2026, 3, 28, 12, tzinfo=PARIS))
    env = _env(offline, intraday=True)
    # Clocks go forward on 29 March: the local times stay 04:20, 10:20, 16:20, 22:20.
    due = next_runs(env, datetime(2026, 3, 28, 23, 0, tzinfo=PARIS))
    assert due["intraday"] == datetime(2026, 3, 29, 4, 20, tzinfo=PARIS)
    assert due["intraday"].utcoffset().total_seconds() == 7200
    due = next_runs(env, datetime(2026, 3, 29, 4, 20, tzinfo=PARIS))
    assert due["intraday"] == datetime(2026, 3, 29, 10, 20, tzinfo=PARIS)
    # ... and back on 25 October.
    due = next_runs(env, datetime(2026, 10, 24, 22, 30, tzinfo=PARIS))
    assert due["intraday"] == datetime(2026, 10, 25, 4, 20, tzinfo=PARIS)
    assert due["intraday"].utcoffset().total_seconds() == 3600
    # Between an issue and its start time, that issue's run is next.
    due = next_runs(env, datetime(2026, 11, 28, 16, 5, tzinfo=PARIS))
    assert due["intraday"] == datetime(2026, 11, 28, 16, 20, tzinfo=PARIS)


def test_schedule_runs_jobs_due_together_in_order_and_catches_up_a_missed_one(offline):
    env = _env(offline, intraday=True)
    env = env.model_copy(update={"jobs": env.jobs.model_copy(update={"daily_at": "10:20"})})
    clock = [datetime(2026, 11, 28, 23, 0, tzinfo=PARIS)]  # a Saturday; weekly Sun 03:00
    calls = []

    class Stop(Exception):
        pass

    def sleep(seconds):
        clock[0] += timedelta(seconds=seconds)

    def runner(_env, job):
        calls.append((job, f"{clock[0]:%a %H:%M}"))
        clock[0] += timedelta(hours=2 if job == "weekly" else 0.25)  # weekly overruns 04:20
        if len(calls) == 5:
            raise Stop
        return 0

    with pytest.raises(Stop):
        run_schedule(env, log=lambda _: None, sleep=sleep, runner=runner, clock=lambda: clock[0])
    assert calls == [("weekly", "Sun 03:00"), ("intraday", "Sun 05:00"),
                     ("daily", "Sun 10:20"), ("intraday", "Sun 10:35"), ("intraday", "Sun 16:20")]


def test_health_grades_intraday_forecasts_by_the_issue_interval(offline, tmp_path):
    env = _env(offline, intraday=True)
    now = pd.Timestamp("2026-11-28T12:00Z")

    def status(env, age_h: float) -> str:
        """Health of the intraday forecast in a bank whose newest issue is ``age_h`` old."""
        env = env.model_copy(update={"bank": str(tmp_path / f"bank-{env.forecast.intraday}-"
                                                             f"{age_h}")})
        issue = (now - pd.Timedelta(hours=age_h)).floor("min")
        write_forecast(Bank(env.bank), pd.DataFrame({
            "target_id": "portfolio@intraday", "issue_time": issue,
            "valid_time": pd.date_range(issue, periods=36, freq="h"), "p10_mw": 9.0,
            "p50_mw": 10.0, "p90_mw": 11.0, "model_version": "v1", "is_baseline": False}))
        items = {i.name: i for i in check_health(env, now=now.to_pydatetime()).items}
        return items["forecast portfolio@intraday"].status

    items = {i.name: i for i in check_health(env, now=now.to_pydatetime()).items}
    assert items["forecast portfolio@intraday"].status == "failed"  # enabled, never forecast
    # 6-hourly issues: warning after 2 x 6 + 1 = 13 h, failed after 4 x 6 + 1 = 25 h.
    assert [status(env, h) for h in (12.5, 13.5, 24.5, 25.5)] == [
        "ok", "warning", "warning", "failed"]
    off = env.model_copy(update={"forecast": env.forecast.model_copy(update={"intraday": False})})
    assert status(off, 25.5) == "ok"  # off: the day-ahead [jobs] thresholds (30 h / 54 h)
    assert status(off, 31) == "warning"


def test_env_check_reports_the_intraday_schedule(offline):
    from aggregat.ops.envcheck import _check_schedule

    assert _check_schedule(_env(offline, intraday=True))[1].endswith(
        "intraday every 6 h (Europe/Paris)")
    bad = _env(offline, intraday=True, intraday_every_h=0.0)
    status, detail = _check_schedule(bad)
    assert status == "problem" and "every_h" in detail


def test_backfill_covers_the_issues_of_local_days_also_when_clocks_change(offline):
    env = _env(offline, intraday=True)
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        got = jobs.backfill_issues(env, [day], pd.Timestamp("2026-12-01T00:00Z"))
        assert [(f"{i.tz_convert('Europe/Paris'):%d %H:%M}", h) for i, h in got] == [
            (f"{day:%d} 10:00", "day-ahead"), (f"{day:%d} 04:00", "intraday"),
            (f"{day:%d} 10:00", "intraday"), (f"{day:%d} 16:00", "intraday"),
            (f"{day:%d} 22:00", "intraday")]


def test_cli_reads_a_naive_time_alike_in_run_intraday_and_model_predict(archive, measured,
                                                                         tmp_path):
    """`run intraday --at T` and `model predict --issue-time T`: a T without offset is the
    environment's forecast.timezone (Europe/Paris) in both, and both print the instant."""
    from typer.testing import CliRunner

    from aggregat.cli.main import app

    with serve_folder(archive) as base_url:
        config = make_env(tmp_path, base_url, measured, extra=ON)
        common = ["--env", "test", "--config", str(config)]
        run = CliRunner().invoke(app, ["run", "intraday", "--at", "2026-11-27T10:00",
                                       "--no-publish", *common])
        assert run.exit_code == 0, run.output
        earlier = CliRunner().invoke(app, ["run", "intraday", "--at", "2026-11-27T09:30",
                                           "--no-publish", *common])
        assert earlier.exit_code == 0, earlier.output
    predict = CliRunner().invoke(app, ["model", "predict", "--issue-time", "2026-11-27T10:00",
                                       "--horizon", "intraday", *common])
    assert predict.exit_code == 0, predict.output
    shown = "2026-11-27 10:00+01:00 (09:00 UTC)"  # ISSUE
    assert f"--at {shown}" in run.output and f"intraday issue {shown}" in run.output
    assert f"issue time {shown}" in predict.output
    # 09:30 Paris is 08:30 UTC: the newest intraday issue by then is 04:00 Paris (03:00 UTC).
    assert "--at 2026-11-27 09:30+01:00 (08:30 UTC)" in earlier.output
    assert "intraday issue 2026-11-27 04:00+01:00 (03:00 UTC)" in earlier.output
    env = _env(config)
    parts = {e.partition for e in Ledger(Bank(env.bank)).entries() if e.step == "predict-intraday"}
    assert parts == {PART, "2026-11-27T0300Z"}
    assert set(read_forecast(Bank(env.bank))["issue_time"]) == {
        ISSUE, pd.Timestamp("2026-11-27T03:00Z")}
