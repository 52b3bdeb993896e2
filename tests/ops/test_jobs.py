"""The jobs end to end in real processes: kills, a corrupt archive, a DB outage, concurrency.

A small world (ops_world.py): three sites near Lyon, 30 days of measured load in an energy DB, and
two days of simulated AROME runs served over loopback HTTP. No model is trained (predictions are
the flagged baseline), so every run is deterministic and runs can be compared row for row.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from ops_world import DAYS, child_env, make_env

from aggregat.bank import Bank, read_forecast, read_load, read_weather
from aggregat.weather.loopback import serve_folder

SECRET = "pw-never-printed-9431"

LAUNCH = """
import os, signal, sys
import sqlalchemy as sa
point = os.environ.get("KILL_AT", "")
state = {"n": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "extract":  # the partition's temp file is written, the rename never happens
    import os as _os
    real_replace = _os.replace
    def replace(src, dst, *a, **k):
        if "weather_forecast" in str(dst):
            state["n"] += 1
            if state["n"] == 2:
                die()
        return real_replace(src, dst, *a, **k)
    _os.replace = replace
elif point == "sync":  # measured load half copied into the bank
    import aggregat.bank.store as store
    real_upsert = store.Bank.upsert
    def upsert(self, dataset, *a, **k):
        if dataset == "load":
            state["n"] += 1
            if state["n"] == 2:
                die()
        return real_upsert(self, dataset, *a, **k)
    store.Bank.upsert = upsert
elif point == "publish":  # inside the energy DB transaction, before COMMIT
    import aggregat.energy.publish as publish
    publish._MAX_ROWS_PER_INSERT = 5
    def hook(conn, cursor, statement, *rest):
        if statement.lstrip().upper().startswith("INSERT"):
            state["n"] += 1
            if state["n"] == 3:
                die()
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", hook)
elif point == "hold":  # a slow run: holds the lock while another process tries
    import time
    import aggregat.ops.jobs as jobs
    real_sync = jobs._Job.sync
    def slow_sync(self, day):
        time.sleep(6)
        return real_sync(self, day)
    jobs._Job.sync = slow_sync
from aggregat.cli.main import main
main()
"""


def aggregat(config: Path, *args: str, kill_at: str = "", extra_env: dict | None = None,
             wait: bool = True):
    env = child_env(AGGREGAT_CONFIG=str(config), KILL_AT=kill_at, **(extra_env or {}))
    env.pop("AGGREGAT_ENV", None)
    cmd = [sys.executable, "-c", LAUNCH, *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, cwd=config.parent, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    return subprocess.run(cmd, env=env, cwd=config.parent, capture_output=True, text=True,
                          timeout=300)


BACKFILL = ("run", "backfill", "--since", str(DAYS[0]), "--until", str(DAYS[1]))


def snapshot(root: Path, energy_db: str) -> dict:
    """Everything a run leaves: bank datasets and the energy DB's forecasts (minus timestamps)."""
    bank = Bank(str(root / "data" / "bank"))
    far = ("2020-01-01T00:00Z", "2030-01-01T00:00Z")
    weather = read_weather(bank, *far).drop(columns=["available_at"])
    engine = sa.create_engine(energy_db)
    with engine.connect() as conn:
        published = pd.read_sql("SELECT target_id, issue_time, valid_time, p10_mw, p50_mw, "
                                "p90_mw, model_version FROM load_forecasts "
                                "ORDER BY target_id, issue_time, valid_time", conn)
    engine.dispose()
    return {
        "weather": weather.sort_values(["model", "run_time", "valid_time", "location"])
                          .reset_index(drop=True),
        "load": read_load(bank).drop(columns=["updated_at"]).reset_index(drop=True),
        "forecast": read_forecast(bank).reset_index(drop=True),
        "published": published,
    }


def assert_same(a: dict, b: dict) -> None:
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key], obj=key)


@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_killed_runs_rerun_to_the_uninterrupted_result(archive, measured, tmp_path, backend,
                                                       request):
    def energy_db(folder: Path) -> str:
        if backend == "sqlite":
            return f"sqlite:///{folder}/energy.sqlite"
        return request.getfixturevalue("pg_database_factory")()

    with serve_folder(archive) as base_url:
        ref = tmp_path / "reference"
        ref.mkdir()
        ref_db = energy_db(ref)
        config = make_env(ref, base_url, measured, energy_db=ref_db)
        done = aggregat(config, *BACKFILL)
        assert done.returncode == 0, done.stderr
        reference = snapshot(ref, ref_db)
        assert len(reference["weather"]) == 2 * 52 * 3 and len(reference["published"]) == 48
        for point in ("extract", "sync", "publish"):
            case = tmp_path / point
            case.mkdir()
            case_db = energy_db(case)
            config = make_env(case, base_url, measured, energy_db=case_db)
            killed = aggregat(config, *BACKFILL, kill_at=point)
            assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
            rerun = aggregat(config, *BACKFILL)
            assert rerun.returncode == 0, (point, rerun.stderr)
            assert_same(snapshot(case, case_db), reference)
            leftovers = [p for p in (case / "data" / "bank").rglob("*") if ".tmp-" in p.name]
            assert leftovers == [] or point == "extract"  # a torn temp file is ignored...
            before = attempts(case)
            again = aggregat(config, *BACKFILL)  # ...and a third run redoes nothing
            assert again.returncode == 0, again.stderr
            assert attempts(case) == before
            assert_same(snapshot(case, case_db), reference)


def attempts(root: Path) -> dict:
    """Attempts per (step, partition) in the ledger, sync aside (it always runs)."""
    from aggregat.ops.ledger import Ledger

    ledger = Ledger(Bank(str(root / "data" / "bank")))
    return {(e.step, e.partition): e.attempts for e in ledger.entries() if e.step != "sync"}


def _break_framing(path: Path) -> bytes:
    """Corrupt a GRIB file in place, same size; returns the good bytes."""
    good = path.read_bytes()
    data = bytearray(good)
    second = data.index(b"GRIB", 4)
    data[second:second + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    return good


def test_corrupt_files_are_rejected_or_quarantined_then_backfill_heals(archive, measured,
                                                                       tmp_path):
    served = tmp_path / "served"
    shutil.copytree(archive, served)
    name = "arome__0025__SP1__07H12H__2026-11-27T00:00:00Z.grib2"
    upstream = next(served.rglob(name))
    good = _break_framing(upstream)  # published corrupt: every download is rejected
    bank = Bank(str(tmp_path / "data" / "bank"))
    far = ("2020-01-01T00:00Z", "2030-01-01T00:00Z")
    with serve_folder(served) as base_url:
        config = make_env(tmp_path, base_url, measured)
        first = aggregat(config, *BACKFILL)
        assert first.returncode == 3, first.stderr  # partial, the file named, no traceback
        assert "07H12H" in first.stderr and "Traceback" not in first.stderr
        day2 = read_weather(bank, *far).query("run_time.dt.day == 27")
        assert sorted(set(range(52)) - set(day2.step_h)) == list(range(7, 13))
        upstream.write_bytes(good)  # Météo-France republishes it
        assert aggregat(config, *BACKFILL).returncode == 0
        assert len(read_weather(bank, *far)) == 2 * 52 * 3

        # Now the datalake copy rots after a good download, and the run's partition is lost.
        local = next((tmp_path / "data" / "datalake").rglob(name))
        _break_framing(local)
        bank.delete_partition("weather_forecast", {"model": "arome-0025",
                                                   "run_date": "2026-11-27"})
        third = aggregat(config, *BACKFILL)
        assert third.returncode == 3, third.stderr
        quarantined = list((tmp_path / "data" / "quarantine").rglob(name))  # the env's setting
        assert quarantined and not local.exists()
        assert len(read_weather(bank, *far)) == 2 * 52 * 3 - 6 * 3  # the day completed partially
        fourth = aggregat(config, *BACKFILL)  # the archive lacks one file: fetched again
        assert fourth.returncode == 0, fourth.stderr
        assert len(read_weather(bank, *far)) == 2 * 52 * 3


def test_second_concurrent_run_refuses(archive, measured, tmp_path):
    with serve_folder(archive) as base_url:
        config = make_env(tmp_path, base_url, measured)
        from aggregat.ops.lock import RunLock

        first = aggregat(config, *BACKFILL, kill_at="hold", wait=False)
        lock = tmp_path / "data" / ".aggregat-run.lock"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None:  # until the first holds it
            holder = RunLock(str(tmp_path / "data")).holder()
            if holder and holder.get("pid") == first.pid:
                break
            time.sleep(0.02)
        second = aggregat(config, "run", "daily", "--date", str(DAYS[1]))
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        assert second.returncode == 75, second.stderr
        assert "another run of env test is in progress" in second.stderr
        assert lock.exists()


@pytest.mark.postgres
def test_energy_db_down_keeps_forecast_and_next_run_publishes(archive, measured, tmp_path,
                                                              pg_database):
    """On a real PostgreSQL: the DB is unreachable at publish time; the next run publishes."""
    url = sa.make_url(pg_database)
    with serve_folder(archive) as base_url:
        config = make_env(tmp_path, base_url, measured, energy_db=pg_database)
        assert aggregat(config, "energy", "sync").returncode == 0  # load is in the bank
        down = pg_database.replace(url.query["unix_sock"], "/nonexistent/.s.PGSQL.5432")
        text = config.read_text()
        config.write_text(text.replace(pg_database, down))
        first = aggregat(config, *BACKFILL)
        assert first.returncode == 3 and "kept in the bank" in first.stderr, first.stderr
        bank = Bank(str(tmp_path / "data" / "bank"))
        assert len(read_forecast(bank)) == 48  # nothing lost
        config.write_text(text)  # the DB is back
        second = aggregat(config, *BACKFILL)
        assert second.returncode == 0, second.stderr
        engine = sa.create_engine(pg_database)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM load_forecasts")).scalar()
        engine.dispose()
        assert rows == 48


def test_secrets_never_printed_or_stored(archive, measured, tmp_path):
    energy_db = "postgresql+pg8000://aggregat:${ENERGY_DB_PASSWORD}@127.0.0.1:9/energy"
    with serve_folder(archive) as base_url:
        config = make_env(tmp_path, base_url, measured, energy_db=energy_db)
        extra = {"AGGREGAT_TEST_ENERGY_DB_PASSWORD": SECRET}
        runs = [aggregat(config, *BACKFILL, extra_env=extra),
                aggregat(config, "env", "show", extra_env=extra),
                aggregat(config, "health", "--json", extra_env=extra)]
    assert runs[0].returncode == 3  # sync and publish failed: DB unreachable
    for run in runs:
        assert SECRET not in run.stdout + run.stderr
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert SECRET.encode() not in stored
    assert "aggregat:***@" in runs[1].stdout


def test_backfill_dry_run_lists_and_changes_nothing(archive, measured, tmp_path):
    with serve_folder(archive) as base_url:
        config = make_env(tmp_path, base_url, measured)
        dry = aggregat(config, *BACKFILL, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would run fetch    arome-0025/2026-11-26T00Z" in dry.stdout
        assert "8 step(s) to run" in dry.stdout
        assert not (tmp_path / "data" / "datalake").exists()


def test_daily_publishes_a_forecast_missed_the_day_before(archive, measured, tmp_path):
    with serve_folder(archive) as base_url:
        config = make_env(tmp_path, base_url, measured)
        assert aggregat(config, "energy", "sync").returncode == 0
        text = config.read_text()
        # The energy DB is unreachable for a day (a file path below a file cannot be opened).
        config.write_text(text.replace(f"sqlite:///{tmp_path}/energy.sqlite",
                                       f"sqlite:///{tmp_path}/sites.csv/energy.sqlite"))
        first = aggregat(config, "run", "daily", "--date", str(DAYS[0]))
        assert first.returncode == 3 and "publish" in first.stderr, first.stderr
        config.write_text(text)
        second = aggregat(config, "run", "daily", "--date", str(DAYS[1]))
        assert second.returncode == 0, second.stderr
    engine = sa.create_engine(f"sqlite:///{tmp_path}/energy.sqlite")
    with engine.connect() as conn:
        issues = conn.execute(sa.text("SELECT DISTINCT issue_time FROM load_forecasts")).all()
    engine.dispose()
    assert len(issues) == 2  # the missed day's, caught up, and today's
