"""SIGKILL during `energy sync` and `energy publish`, then a re-run: nothing lost, nothing doubled.

The killed process is a real CLI process (eccodes loaded); a small launcher wraps one internal
function so that the process kills itself with SIGKILL at an exact point, which makes the test
deterministic without sleeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from energy_helpers import forecast_frame, measurements, to_db

from aggregat.bank import Bank, read_load, write_forecast
from aggregat.energy.db import make_engine
from aggregat.energy.publish import publish_forecast
from aggregat.energy.schema import create_default_tables, load_table
from aggregat.energy.sync import load_state, sync_load

ISSUE = datetime(2026, 1, 10, 10, tzinfo=UTC)

LAUNCH = """
import os, signal
import eccodes
import sqlalchemy as sa
import aggregat.bank as bank_module
import aggregat.energy.publish as publish_module
import aggregat.energy.sync as sync_module

point = os.environ["KILL_AT"]
calls = {"n": 0}

def kill_on_second_call(real):
    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return wrapped

if point == "before_watermark":
    sync_module._save_state = kill_on_second_call(sync_module._save_state)
elif point == "before_bank_write":
    bank_module.write_load = kill_on_second_call(bank_module.write_load)
elif point == "mid_publish":
    publish_module._MAX_ROWS_PER_INSERT = 10
    def hook(conn, cursor, statement, *rest):
        if statement.lstrip().upper().startswith("INSERT"):
            calls["n"] += 1
            if calls["n"] == 3:  # two INSERTs of the transaction done, not committed
                os.kill(os.getpid(), signal.SIGKILL)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", hook)

from aggregat.cli.main import main
main()
"""


def run_killed(tmp_path: Path, energy_url: str, point: str, *args: str):
    (tmp_path / "aggregat.toml").write_text(f"""
default_env = "test"
[env.test]
root = "{tmp_path}/data"
energy_db = "{energy_url}"
[env.test.energy]
sync_batch_rows = 30
sync_fetch_rows = 7
sync_lookback_days = 0
retries = 0
""")
    env = {**os.environ, "AGGREGAT_CONFIG": str(tmp_path / "aggregat.toml"), "KILL_AT": point}
    env.pop("AGGREGAT_ENV", None)
    return subprocess.run([sys.executable, "-c", LAUNCH, *args], capture_output=True,
                          text=True, env=env, timeout=120)


def frame(bank):
    return read_load(bank).sort_values(["target_id", "time"]).reset_index(drop=True)


def test_sync_killed_then_rerun_equals_uninterrupted(tmp_path, energy_url, settings):
    engine = make_engine(energy_url, settings)
    create_default_tables(engine, settings)
    with engine.begin() as conn:
        conn.execute(load_table(settings).insert(), to_db(engine, measurements()))
    reference = Bank(str(tmp_path / "reference"))
    sync_load(engine, reference, settings)
    bank = Bank(str(tmp_path / "data" / "bank"))
    # No look-back: a watermark saved before its rows were written would lose them for good.
    small = settings.model_copy(update={"sync_batch_rows": 30, "sync_fetch_rows": 7,
                                        "sync_lookback_days": 0})
    for point in ("before_watermark", "before_bank_write"):
        done = run_killed(tmp_path, energy_url, point, "energy", "sync")
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert 0 < len(frame(bank)) < 96  # it really stopped half-way
        sync_load(engine, bank, small)
        pd.testing.assert_frame_equal(frame(bank), frame(reference))
        assert load_state(bank, small, engine) == load_state(reference, small, engine)
        bank.store.remove("", recursive=True)  # start the next kill point from scratch
    engine.dispose()


def test_publish_killed_mid_transaction_keeps_previous_issue(tmp_path, energy_url, settings):
    engine = make_engine(energy_url, settings)
    bank = Bank(str(tmp_path / "data" / "bank"))
    write_forecast(bank, forecast_frame())
    publish_forecast(engine, bank, settings, ISSUE)
    engine.dispose()
    write_forecast(bank, forecast_frame(offset=1.0, version="m-2"))
    done = run_killed(tmp_path, energy_url, "mid_publish", "energy", "publish",
                      "--issue-time", "2026-01-10T10:00Z")
    assert done.returncode == -signal.SIGKILL, done.stderr
    engine = make_engine(energy_url, settings)

    def versions():
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT model_version, COUNT(*) FROM load_forecasts GROUP BY model_version"))
            return dict(rows.all())

    assert versions() == {"m-1": 48}  # the killed transaction left nothing behind
    publish_forecast(engine, bank, settings, ISSUE)  # the next run publishes it
    assert versions() == {"m-2": 48}
    engine.dispose()
