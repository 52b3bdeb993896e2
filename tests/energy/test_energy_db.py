"""Engine creation (pg8000 only), masking, connection checks, demo helpers."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from energy_helpers import T0

from aggregat.bank import read_load
from aggregat.energy.db import check_energy_db, safe_url
from aggregat.energy.schema import create_default_tables, insert_measurements
from aggregat.energy.sync import sync_load

URLS = ["postgresql://u:pw@db/energy", "postgresql+psycopg://u:pw@db/energy",
        "postgresql+psycopg2://u:pw@db/energy", "postgres://u:pw@db/energy"]


def test_postgres_urls_always_use_pg8000_and_never_load_psycopg():
    code = ("import sys; from aggregat.energy.db import make_engine; "
            f"print(*[make_engine(u).dialect.driver for u in {URLS!r}]); "
            "print(any(m.startswith('psycopg') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["pg8000"] * 4 + ["False"]


def test_safe_url_hides_the_password():
    assert safe_url("postgresql+pg8000://u:s3cr3t@db/energy") == \
        "postgresql+pg8000://u:***@db/energy"


def test_check_reports_nothing_on_a_ready_db(engine, energy_url, settings):
    create_default_tables(engine, settings)
    assert check_energy_db(energy_url, settings) == []


def test_check_names_missing_table_and_columns(engine, energy_url, settings):
    problems = check_energy_db(energy_url, settings)
    assert len(problems) == 1 and "load_table" in problems[0] and "init-db" in problems[0]
    create_default_tables(engine, settings)
    wrong = settings.model_copy(update={"load_value_col": "mw", "load_time_col": "ts"})
    problems = check_energy_db(energy_url, wrong)
    assert len(problems) == 2
    assert "'ts' ([energy] load_time_col)" in problems[0]
    assert "'mw' ([energy] load_value_col)" in problems[1]


def test_check_unreachable_is_masked(settings):
    problems = check_energy_db("postgresql+pg8000://u:Top-Secret9@127.0.0.1:1/x", settings)
    assert len(problems) == 1 and "Top-Secret9" not in problems[0]
    assert "unreachable" in problems[0]


def test_insert_measurements_then_sync_round_trip(engine, bank, settings):
    create_default_tables(engine, settings)
    times = pd.date_range(T0, periods=5, freq="h")
    frame = pd.DataFrame({"target_id": "site", "time": times, "load_mw": [1.0, 2, 3, 4, 5.5]})
    assert insert_measurements(engine, settings, frame) == 5
    sync_load(engine, bank, settings)
    back = read_load(bank).sort_values("time")
    assert back["time"].tolist() == list(times)
    assert back["load_mw"].tolist() == [1.0, 2, 3, 4, 5.5]
