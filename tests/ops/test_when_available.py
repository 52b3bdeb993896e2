"""Jobs that start when their weather runs are complete at the source (`daily_start =
"when-available"`), and the fallback to an earlier run past the deadline.

The scheduler runs in this process with a fake clock and sleep; the weather is the simulated
archive of ops_world.py served over loopback HTTP; the jobs run for real (baseline forecasts).
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from ops_world import DAYS, make_env

from aggregat.bank import Bank, read_forecast
from aggregat.config import load_environment
from aggregat.errors import ConfigError
from aggregat.ops import jobs
from aggregat.ops.health import check_health
from aggregat.ops.ledger import Ledger
from aggregat.ops.schedule import data_window, next_runs, run_schedule
from aggregat.weather.loopback import serve_folder
from aggregat.weather.products import get_product

PARIS = ZoneInfo("Europe/Paris")
PRODUCT = get_product("arome-0025")
WHEN_AVAILABLE = ('[env.test.jobs]\ndaily_start = "when-available"\ndata_deadline = "07:30"\n'
                  'weekly_on = "wed"\n')


class Stop(Exception):
    pass


def _env(config):
    return load_environment("test", config).model_copy(update={"workers": 1})


def _last_file(archive, day: date):
    """The archive path of the last SP1 time group of ``day``'s 00Z run (published last)."""
    run = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return archive / PRODUCT.archive_rel(run, "SP1", PRODUCT.groups[-1])


def _schedule(env, start: datetime, on_sleep=lambda now: None):
    """Run the scheduler from ``start`` until its first job ends; (job, start time, exit code),
    the sleeps taken after the data window opened, and the log."""
    clock, sleeps, lines, ran = [start], [], [], []

    def sleep(seconds):
        clock[0] += timedelta(seconds=seconds)
        sleeps.append((clock[0], seconds))
        on_sleep(clock[0])

    def runner(e, job):
        ran.append((job, clock[0], jobs.daily(e, clock[0].date()).exit_code))
        raise Stop

    with pytest.raises(Stop):
        run_schedule(env, log=lines.append, sleep=sleep, runner=runner, clock=lambda: clock[0])
    return ran, sleeps, lines


def _published(env) -> dict[str, int]:
    engine = sa.create_engine(env.energy_db)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT target_id, count(*) FROM load_forecasts "
                                    "GROUP BY target_id")).all()
    engine.dispose()
    return dict(rows)


def test_daily_starts_right_after_its_run_appears_mid_poll(archive, measured, tmp_path):
    served = shutil.copytree(archive, tmp_path / "served")
    last = _last_file(served, DAYS[1])
    held = last.read_bytes()
    last.unlink()  # 27 Nov 00Z is being published: its last group is not there yet
    with serve_folder(served) as base_url:
        env = _env(make_env(tmp_path, base_url, measured, extra=WHEN_AVAILABLE))
        window = data_window(env, "daily", DAYS[1])
        # Polling starts at the run's expected publication: 00Z + 2 h = 03:00 Paris.
        assert window == (datetime(2026, 11, 27, 3, 0, tzinfo=PARIS),
                          datetime(2026, 11, 27, 7, 30, tzinfo=PARIS))
        opened = window[0]

        def publish_later(now):
            if now >= opened + timedelta(minutes=2) and not last.exists():
                last.write_bytes(held)

        ran, sleeps, lines = _schedule(env, datetime(2026, 11, 27, 2, 0, tzinfo=PARIS),
                                       publish_later)
    polls = [s for when, s in sleeps if when > opened]
    assert polls == [60, 120]  # backoff: 1 min, 2 min; then the run was complete
    assert ran == [("daily", opened + timedelta(minutes=3), 0)]
    assert any("weather runs complete (arome-0025 2026-11-27T00Z): starting" in x for x in lines)
    entries = {(e.step, e.partition): e for e in Ledger(Bank(env.bank)).entries()}
    choice = entries[("choose-run", "arome-0025/2026-11-27T00Z")]
    assert choice.status == "ok" and choice.details["fallback"] is False
    assert entries[("fetch", "arome-0025/2026-11-27T00Z")].status == "ok"
    forecast = read_forecast(Bank(env.bank))
    assert len(forecast) == 24 and forecast["weather_run_fallback"].isna().all()


def test_past_the_deadline_the_job_uses_the_newest_complete_run_and_says_so(
        archive, measured, tmp_path):
    with serve_folder(archive) as base_url:  # 28 Nov 00Z never appears
        env = _env(make_env(tmp_path, base_url, measured, extra=WHEN_AVAILABLE))
        ran, sleeps, lines = _schedule(env, datetime(2026, 11, 28, 2, 0, tzinfo=PARIS))
    deadline = datetime(2026, 11, 28, 7, 30, tzinfo=PARIS)
    polls = [s for when, s in sleeps if when > datetime(2026, 11, 28, 3, 0, tzinfo=PARIS)]
    assert polls[:5] == [60, 120, 240, 480, 600] and max(polls) == 600  # capped
    assert sleeps[-1][0] == deadline  # the last sleep ends at the deadline, not after it
    assert ran == [("daily", deadline, 0)]
    assert "starting with the newest complete earlier run" in lines[-1]

    note = "arome-0025 2026-11-27T00Z instead of 2026-11-28T00Z (not complete at open-data)"
    entries = {(e.step, e.partition): e for e in Ledger(Bank(env.bank)).entries()}
    choice = entries[("choose-run", "arome-0025/2026-11-28T00Z")]
    assert choice.details["fallback"] is True and choice.details["used"] == "2026-11-27T00Z"
    assert choice.details["reason"] == note
    assert entries[("extract", "arome-0025/2026-11-27T00Z")].status == "ok"
    assert ("fetch", "arome-0025/2026-11-28T00Z") not in entries
    predict = entries[("predict", "2026-11-28T0900Z")]
    assert predict.details["weather_run_fallback"] == note
    forecast = read_forecast(Bank(env.bank))
    assert len(forecast) == 24 and (forecast["weather_run_fallback"] == note).all()
    assert _published(env) == {"portfolio": 24}  # the column does not reach the energy DB
    items = {i.name: i for i in check_health(env, now=deadline + timedelta(hours=1)).items}
    flagged = items["daily weather run"]
    assert flagged.status == "warning" and note in flagged.detail


def test_next_daily_is_at_the_expected_publication_and_bad_deadline_is_named(tmp_path):
    config = tmp_path / "aggregat.toml"
    config.write_text('[env.test.weather]\nmodels = ["arome-0025", "arpege-01"]\n'
                      + WHEN_AVAILABLE.replace("07:30", "04:30"))
    env = _env(config)
    # ARPEGE 00Z is expected 4 h after its run (05:00 Paris), after AROME's (03:00).
    due = next_runs(env, datetime(2026, 11, 28, 12, 0, tzinfo=PARIS))
    assert due["daily"] == datetime(2026, 11, 29, 5, 0, tzinfo=PARIS)
    # A deadline before the first probe is the first probe: one look, then the job.
    assert data_window(env, "daily", date(2026, 11, 29)) == (due["daily"], due["daily"])
    assert data_window(env, "intraday", issue=pd.Timestamp("2026-11-28T09:00Z")) == (
        pd.Timestamp("2026-11-28T09:20Z"), pd.Timestamp("2026-11-28T10:00Z"))
    config.write_text(WHEN_AVAILABLE.replace("07:30", "7h30"))
    with pytest.raises(ConfigError, match=r"jobs\] data_deadline = '7h30'"):
        load_environment("test", config)
    config.write_text(WHEN_AVAILABLE.replace("when-available", "when-ready"))
    with pytest.raises(ConfigError, match="daily_start = 'when-ready'"):
        load_environment("test", config)
