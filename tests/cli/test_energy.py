"""Whole CLI processes with eccodes loaded: exit code 0 (no exit segfault), masked one-line errors.

ARCHITECTURE, known traps: eccodes + psycopg segfaults at interpreter exit (code 139) after all
work succeeded, so these tests run real processes and check their exit codes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from energy_helpers import forecast_frame, measurements, to_db

from aggregat.bank import Bank, read_load, write_forecast
from aggregat.config import EnergySettings
from aggregat.energy.schema import load_table

SECRET = "Cli-S3cret-pw"
# eccodes is imported first, as the daily job does (extract, then sync/publish).
LAUNCH = "import eccodes, sys; from aggregat.cli.main import main; main()"


def aggregat(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AGGREGAT_CONFIG": str(tmp_path / "aggregat.toml"),
           "AGGREGAT_TEST_ENERGY_DB_PASSWORD": SECRET, "AGGREGAT_DOWN_ENERGY_DB_PASSWORD": SECRET}
    env.pop("AGGREGAT_ENV", None)
    return subprocess.run([sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.postgres
def test_cli_chain_on_postgres_exits_cleanly_with_eccodes(tmp_path, pg_database):
    pytest.importorskip("eccodes")
    url = sa.make_url(pg_database)
    db_name, socket = url.database, url.query["unix_sock"]
    # trust auth ignores the password, but it flows through ${...} resolution and masking
    (tmp_path / "aggregat.toml").write_text(f"""
default_env = "test"
[env.test]
root = "{tmp_path}/data"
energy_db = "postgresql+pg8000://postgres:${{ENERGY_DB_PASSWORD}}@/{db_name}?unix_sock={socket}"
[env.test.energy]
retries = 0
[env.down]
root = "{tmp_path}/data"
energy_db = "postgresql+pg8000://postgres:${{ENERGY_DB_PASSWORD}}@127.0.0.1:1/energy"
[env.down.energy]
retries = 0
""")
    done = aggregat(tmp_path, "energy", "init-db")
    assert done.returncode == 0, done.stderr
    assert "load_measurements" in done.stdout and SECRET not in done.stdout

    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(load_table(EnergySettings()).insert(), to_db(engine, measurements()))
    engine.dispose()
    done = aggregat(tmp_path, "energy", "sync")
    assert done.returncode == 0, done.stderr
    assert "96 rows read" in done.stdout

    csv = tmp_path / "site.csv"
    csv.write_text("time,kw\n2026-01-05 01:00,2500\n2026-01-05 02:00,2600\n")
    done = aggregat(tmp_path, "load", "import", str(csv), "--target", "site-x",
                    "--value-col", "kw", "--unit", "kW", "--tz", "Europe/Paris")
    assert done.returncode == 0, done.stderr
    bank = Bank(str(tmp_path / "data" / "bank"))
    site = read_load(bank, ["site-x"])
    assert sorted(site["load_mw"]) == [2.5, 2.6]
    assert len(read_load(bank)) == 98

    write_forecast(bank, forecast_frame())
    done = aggregat(tmp_path, "energy", "publish", "--issue-time", "2026-01-10T10:00Z")
    assert done.returncode == 0, done.stderr
    assert "48 rows" in done.stdout

    # Without offset: forecast.timezone (Europe/Paris), as every command reads a time.
    done = aggregat(tmp_path, "energy", "publish", "--issue-time", "2026-01-10T11:00")
    assert done.returncode == 0, done.stderr
    assert "issue time 2026-01-10 11:00+01:00 (10:00 UTC)" in done.stdout
    assert "48 rows" in done.stdout
    done = aggregat(tmp_path, "energy", "publish", "--issue-time", "2026-03-29T02:30")
    assert done.returncode == 2 and "--issue-time 2026-03-29 02:30 does not exist in " \
        "Europe/Paris (DST gap)" in done.stderr.replace("\n", "")

    done = aggregat(tmp_path, "energy", "publish", "--env", "down",
                    "--issue-time", "2026-01-10T10:00Z")
    assert done.returncode == 2, done.stderr
    assert "kept in the bank; will be published by the next run" in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("time,load_mw\n2026-01-05T00:00Z,oops\n")
    done = aggregat(tmp_path, "load", "import", str(bad), "--target", "x")
    assert done.returncode == 2
    assert f"{bad} line 2 column 'load_mw'" in done.stderr.replace("\n", "")


def _sqlite_env(tmp_path, db) -> None:
    (tmp_path / "aggregat.toml").write_text(f"""
default_env = "test"
[env.test]
root = "{tmp_path}/data"
energy_db = "sqlite:///{db}"
""")


@pytest.mark.parametrize("command", [["energy", "sync"],
                                     ["energy", "publish", "--issue-time", "2026-11-28T10:00Z"]])
def test_missing_sqlite_energy_db_is_one_line_error_and_no_file_is_created(tmp_path, command):
    db = tmp_path / "nowhere" / "energy.sqlite"
    _sqlite_env(tmp_path, db)
    done = aggregat(tmp_path, *command)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"SQLite file {db} does not exist" in " ".join(done.stdout.split() + done.stderr.split())
    assert "Traceback" not in done.stderr
    assert not db.exists() and not db.parent.exists()


def test_init_db_still_creates_a_new_sqlite_energy_db(tmp_path):
    db = tmp_path / "new" / "energy.sqlite"
    _sqlite_env(tmp_path, db)
    done = aggregat(tmp_path, "energy", "init-db")
    assert done.returncode == 0, done.stderr
    assert db.is_file()
