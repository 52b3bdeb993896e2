"""`energy sync` of any table or query ([energy.tables.NAME]): incremental with look-back,
idempotent upserts on key and time, availability rules, and kill-safe (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from aggregat.bank import Bank
from aggregat.config import EnergySettings, TableSettings, load_environment
from aggregat.energy.tables import load_table_state, register_tables, sync_table
from aggregat.errors import ConfigError

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def contracts_table(engine, rows):
    meta = sa.MetaData()
    table = sa.Table("contracts", meta,
                     sa.Column("site_id", sa.String(20), primary_key=True),
                     sa.Column("valid_from", sa.DateTime(timezone=True), primary_key=True),
                     sa.Column("power_mw", sa.Float),
                     sa.Column("note", sa.String(40)),
                     sa.Column("updated_at", sa.DateTime(timezone=True)))
    meta.create_all(engine)
    insert(engine, table, rows)
    return table


def insert(engine, table, rows):
    from energy_helpers import to_db

    with engine.begin() as conn:
        conn.execute(table.insert(), to_db(engine, rows))


def contract_rows(sites=("s1", "s2"), hours=48, start=T0, power=10.0):
    return [{"site_id": s, "valid_from": start + timedelta(hours=h), "power_mw": power + h,
             "note": f"n{h}", "updated_at": start + timedelta(hours=h) - timedelta(days=2)}
            for s in sites for h in range(hours)]


def settings_with(**table) -> EnergySettings:
    spec = {"table": "contracts", "time_col": "valid_from", "keys": ["site_id"],
            "watermark_col": "updated_at", **table}
    return EnergySettings(retries=0, timeout_s=5, sync_lookback_days=0.5,
                          tables={"contracted_power": TableSettings(**spec)})


def read(bank):
    frame = bank.read("contracted_power")
    return frame.sort_values(["site_id", "time"]).reset_index(drop=True)


def test_incremental_copy_with_lookback_and_no_duplicates(engine, tmp_path):
    table = contracts_table(engine, contract_rows())
    settings = settings_with()
    bank = Bank(str(tmp_path / "bank"))
    first = sync_table(engine, bank, settings, "contracted_power")
    assert first.full and first.rows_read == 96 and first.rows_written == 96
    again = sync_table(engine, bank, settings, "contracted_power")
    # the look-back (12 h of update stamps) re-reads, the upsert absorbs: nothing doubled
    assert not again.full and 0 < again.rows_read < 96
    df = read(bank)
    assert len(df) == 96 and not df.duplicated(["site_id", "time"]).any()
    assert df["power_mw"].dtype == "float64" and df["note"].iloc[0] == "n0"
    # a correction (newer stamp) replaces the row; new rows arrive
    with engine.begin() as conn:
        from energy_helpers import to_db

        upd = to_db(engine, [{"u": T0 + timedelta(days=5), "t": T0 + timedelta(hours=3)}])[0]
        conn.execute(table.update().where((table.c.site_id == "s1")
                                          & (table.c.valid_from == upd["t"]))
                     .values(power_mw=999.0, updated_at=upd["u"]))
    insert(engine, table, contract_rows(sites=("s3",), hours=5, start=T0 + timedelta(days=3)))
    third = sync_table(engine, bank, settings, "contracted_power")
    df = read(bank)
    assert len(df) == 101 and not df.duplicated(["site_id", "time"]).any()
    fixed = df[(df.site_id == "s1") & (df.time == pd.Timestamp(T0 + timedelta(hours=3)))]
    assert fixed["power_mw"].tolist() == [999.0]
    assert third.watermark_after == T0 + timedelta(days=5)
    # availability defaults to the update stamp: a row is never known before it was written
    assert (df["available_at"] == df["updated_at"]).all()


def test_query_source_and_availability_rule(engine, tmp_path):
    contracts_table(engine, contract_rows(sites=("s1", "s2"), hours=24))
    settings = settings_with(table=None, keys=[], available="D-1 19:00", query=(
        "SELECT valid_from, SUM(power_mw) AS total_mw, MAX(updated_at) AS updated_at "
        "FROM contracts GROUP BY valid_from"))
    bank = Bank(str(tmp_path / "bank"))
    report = sync_table(engine, bank, settings, "contracted_power", tz="Europe/Paris")
    assert report.rows_written == 24
    df = bank.read("contracted_power").sort_values("time").reset_index(drop=True)
    assert list(df["total_mw"][:2]) == [20.0, 22.0]
    # 2026-01-05T00:00Z is 01:00 local on the 5th: known at 19:00 local on the 4th (18:00Z)
    assert df["available_at"].iloc[0] == pd.Timestamp("2026-01-04T18:00Z")


def test_bad_settings_are_one_line_config_errors(engine, tmp_path):
    contracts_table(engine, contract_rows(hours=2))
    bank = Bank(str(tmp_path / "bank"))
    with pytest.raises(ConfigError, match=r"column 'nope' not in the table"):
        sync_table(engine, bank, settings_with(keys=["nope"]), "contracted_power")
    with pytest.raises(ConfigError, match="query fails"):
        sync_table(engine, bank, settings_with(table=None, query="SELECT * FROM missing"),
                   "contracted_power")
    toml = tmp_path / "aggregat.toml"
    toml.write_text('[env.t.energy.tables.load]\ntable = "x"\ntime_col = "t"\n')
    with pytest.raises(ConfigError, match=r"\[env.t.energy\] tables: .*dataset of aggregat"):
        load_environment("t", toml)
    toml.write_text('[env.t.energy.tables.x]\ntime_col = "t"\n')
    with pytest.raises(ConfigError, match="exactly one of table"):
        load_environment("t", toml)


LAUNCH = """
import os, signal, sys
import aggregat.energy.tables as tables
calls = {"n": 0}
real = tables._save_state if os.environ["KILL_AT"] == "before_watermark" else tables.write_rows
def wrapped(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(tables, real.__name__, wrapped)
from aggregat.cli.main import main
main()
"""


def test_kill_mid_sync_then_rerun_equals_uninterrupted(engine, energy_url, tmp_path):
    contracts_table(engine, contract_rows(hours=24 * 40))  # 40 days: several months
    settings = settings_with().model_copy(update={"sync_batch_rows": 300, "sync_fetch_rows": 70,
                                           "sync_lookback_days": 0})
    reference = Bank(str(tmp_path / "reference"))
    sync_table(engine, reference, settings, "contracted_power")
    (tmp_path / "aggregat.toml").write_text(f"""
[env.test]
root = "{tmp_path}/data"
energy_db = "{energy_url}"
[env.test.energy]
sync_batch_rows = 300
sync_fetch_rows = 70
sync_lookback_days = 0
retries = 0
[env.test.energy.tables.contracted_power]
table = "contracts"
time_col = "valid_from"
keys = ["site_id"]
watermark_col = "updated_at"
""")
    # the command syncs the measured load first: give it its (tiny) table
    load = sa.Table("load_measurements", sa.MetaData(), sa.Column("target_id", sa.String),
                    sa.Column("time_utc", sa.DateTime(timezone=True)),
                    sa.Column("value_mw", sa.Float), sa.Column("updated_at",
                                                              sa.DateTime(timezone=True)))
    load.metadata.create_all(engine)
    insert(engine, load, [{"target_id": "a", "time_utc": T0, "value_mw": 1.0,
                           "updated_at": T0}])
    bank = Bank(str(tmp_path / "data" / "bank"))
    env = {**os.environ, "AGGREGAT_CONFIG": str(tmp_path / "aggregat.toml"),
           "AGGREGAT_ENV": "test"}
    for point in ("before_watermark", "before_bank_write"):
        done = subprocess.run([sys.executable, "-c", LAUNCH, "energy", "sync"], text=True,
                              capture_output=True, env={**env, "KILL_AT": point}, timeout=120)
        assert done.returncode == -signal.SIGKILL, done.stderr
        register_tables(settings)
        partial = read(bank)
        assert 0 < len(partial) < 1920  # it really stopped half-way
        assert not list((tmp_path / "data" / "bank").rglob("*.tmp"))  # whole partitions only
        sync_table(engine, bank, settings, "contracted_power")
        pd.testing.assert_frame_equal(read(bank), read(reference))
        assert (load_table_state(bank, "contracted_power", settings.tables["contracted_power"],
                                 engine)
                == load_table_state(reference, "contracted_power",
                                    settings.tables["contracted_power"], engine))
        bank.store.remove("", recursive=True)
