"""`energy sync`: incremental, late corrections, idempotent, interruption-safe, injection-proof."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from energy_helpers import T0, measurements, to_db

from aggregat.bank import Bank, read_load
from aggregat.config import EnergySettings
from aggregat.energy.db import make_engine
from aggregat.energy.schema import create_default_tables, load_table
from aggregat.energy.sync import load_state, sync_load
from aggregat.errors import ConfigError, EnergyDBError


def insert(engine, settings, rows):
    table = load_table(settings)
    with engine.begin() as conn:
        conn.execute(table.insert(), to_db(engine, rows))


def update(engine, settings, target, time, value, updated_at):
    table = load_table(settings)
    with engine.begin() as conn:
        conn.execute(table.update().where(
            table.c.target_id == target, table.c.time_utc == to_db(engine, [{"t": time}])[0]["t"]
        ).values(value_mw=value, updated_at=to_db(engine, [{"u": updated_at}])[0]["u"]))


def bank_load(bank) -> pd.DataFrame:
    df = read_load(bank)
    return df.sort_values(["target_id", "time"]).reset_index(drop=True)


@pytest.fixture
def source(engine, settings):
    """The default load table holding 48 h of two targets."""
    create_default_tables(engine, settings)
    insert(engine, settings, measurements())
    return engine


def test_incremental_second_run_reads_only_new_and_updated(source, bank, settings):
    settings = settings.model_copy(update={"sync_lookback_days": 1 / 24})
    first = sync_load(source, bank, settings)
    assert first.full and first.rows_read == 96 and first.rows_written == 96
    assert first.watermark_after == T0 + timedelta(hours=47, minutes=30)

    insert(source, settings, measurements(start=T0 + timedelta(hours=48), hours=24))
    update(source, settings, "a", T0 + timedelta(hours=10), 999.0, T0 + timedelta(hours=80))
    second = sync_load(source, bank, settings)
    # look-back of 1 h re-reads the last old hour per target (2 rows updated at >= 46:30),
    # plus 48 new rows and the correction.
    assert not second.full
    assert second.rows_read == 2 * 2 + 48 + 1
    df = bank_load(bank)
    assert len(df) == 144 and not df.duplicated(["target_id", "time"]).any()
    corrected = df[(df.target_id == "a") & (df.time == pd.Timestamp(T0 + timedelta(hours=10)))]
    assert corrected["load_mw"].tolist() == [999.0]
    assert second.watermark_after == T0 + timedelta(hours=80)


def test_late_commit_within_lookback_is_picked_up_older_is_not(source, bank, settings):
    settings = settings.model_copy(update={"sync_lookback_days": 0.5})
    sync_load(source, bank, settings)  # watermark 47:30
    late = measurements(targets=("late",), start=T0 + timedelta(hours=40), hours=1)  # upd 40:30
    too_old = measurements(targets=("old",), start=T0, hours=1)  # updated 00:30, beyond 12 h
    insert(source, settings, late + too_old)
    sync_load(source, bank, settings)
    targets = set(bank_load(bank)["target_id"])
    assert "late" in targets
    assert "old" not in targets  # documented: older than the look-back needs --full
    sync_load(source, bank, settings, full=True)
    assert "old" in set(bank_load(bank)["target_id"])


def test_without_updated_column_recent_corrections_are_picked_up(engine, bank, settings):
    settings = settings.model_copy(update={"load_updated_col": None, "sync_lookback_days": 0.25})
    create_default_tables(engine, settings)
    rows = [{k: v for k, v in r.items() if k != "updated_at"} for r in measurements()]
    insert(engine, settings, rows)
    sync_load(engine, bank, settings)
    table = load_table(settings)
    with engine.begin() as conn:  # correct the last hour of "b" (within the 6 h look-back)
        conn.execute(table.update().where(table.c.target_id == "b",
                                          table.c.time_utc == to_db(engine, [
                                              {"t": T0 + timedelta(hours=47)}])[0]["t"])
                     .values(value_mw=999.0))
    report = sync_load(engine, bank, settings)
    assert report.rows_read == 2 * 7  # hours 41..47 of each target
    df = bank_load(bank)
    assert len(df) == 96
    assert df[df.target_id == "b"]["load_mw"].iloc[-1] == 999.0


def test_rerun_without_changes_is_idempotent(source, bank, settings):
    sync_load(source, bank, settings)
    before = bank_load(bank)
    files_before = {f: bank.store.read_bytes(f) for f in bank.files("load")}
    sync_load(source, bank, settings)
    sync_load(source, bank, settings, full=True)
    pd.testing.assert_frame_equal(bank_load(bank), before)
    assert {f: bank.store.read_bytes(f) for f in bank.files("load")} == files_before


@pytest.mark.parametrize("fail_at", ["before_bank_write", "after_bank_write"])
def test_interrupted_run_then_rerun_equals_uninterrupted(source, settings, tmp_path,
                                                          monkeypatch, fail_at):
    # No look-back: a watermark saved before its rows were written would lose them for good.
    settings = settings.model_copy(update={"sync_batch_rows": 30, "sync_fetch_rows": 7,
                                           "sync_lookback_days": 0})
    reference = Bank(str(tmp_path / "reference"))
    sync_load(source, reference, settings)

    import aggregat.bank as bank_module
    import aggregat.energy.sync as sync_module

    calls = {"n": 0}
    real_write, real_save = bank_module.write_load, sync_module._save_state

    def crash_on_second(real):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("killed")
            return real(*args, **kwargs)
        return wrapped

    if fail_at == "before_bank_write":
        monkeypatch.setattr(bank_module, "write_load", crash_on_second(real_write))
    else:
        monkeypatch.setattr(sync_module, "_save_state", crash_on_second(real_save))
    bank = Bank(str(tmp_path / "bank"))
    with pytest.raises(RuntimeError):
        sync_load(source, bank, settings)
    partial = bank_load(bank)
    assert 0 < len(partial) < 96
    monkeypatch.undo()

    sync_load(source, bank, settings)
    pd.testing.assert_frame_equal(bank_load(bank), bank_load(reference))
    assert load_state(bank, settings, source) == load_state(reference, settings, source)


def test_db_unreachable_raises_masked_error_and_keeps_bank(bank, settings, monkeypatch, tmp_path,
                                                            energy_url):
    secret = "pw-Sup3rSecret"
    if energy_url.startswith("sqlite"):
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        url = f"sqlite:///{blocker}/energy.sqlite"
    else:
        url = f"postgresql+pg8000://aggregat:{secret}@127.0.0.1:1/energy"
    bank.write_partition("load", {"target": "a", "month": "2026-01"}, pd.DataFrame({
        "target_id": ["a"], "time": [pd.Timestamp(T0)], "load_mw": [1.0],
        "updated_at": [pd.Timestamp(T0)]}))
    before = bank_load(bank)
    with pytest.raises(EnergyDBError) as err:
        eng = make_engine(url, settings)
        sync_load(eng, bank, settings)
    message = str(err.value)
    assert secret not in message and "\n" not in message
    assert "energy" in message
    pd.testing.assert_frame_equal(bank_load(bank), before)


def test_missing_table_is_a_clear_error(engine, bank, settings):
    with pytest.raises(EnergyDBError, match="load_measurements.*init-db"):
        sync_load(engine, bank, settings)


@pytest.mark.parametrize("name", ["load; DROP TABLE load_measurements --",
                                  'load_measurements" OR 1=1', "a.b.c", "x y"])
def test_injection_in_configured_names_is_rejected(source, bank, settings, name):
    for field in ("load_table", "load_value_col"):
        bad = settings.model_copy(update={field: name})
        with pytest.raises(ConfigError, match=field):
            sync_load(source, bank, bad)
    with source.connect() as conn:  # the table is still there, untouched
        assert conn.execute(sa.text("SELECT COUNT(*) FROM load_measurements")).scalar() == 96


def test_repointed_database_starts_a_full_copy(source, bank, settings, tmp_path):
    sync_load(source, bank, settings)
    other = make_engine(f"sqlite:///{tmp_path}/other.sqlite", settings)
    create_default_tables(other, settings)
    assert load_state(bank, settings, other) is None
    other.dispose()


def test_schema_qualified_names_are_accepted(bank, pg_database):
    settings = EnergySettings(load_table="metering.load_measurements", retries=0)
    engine = make_engine(pg_database, settings)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA metering"))
    create_default_tables(engine, settings, which=("load",))
    insert(engine, settings, measurements(hours=3))
    assert sync_load(engine, bank, settings).rows_written == 6
    engine.dispose()


def test_legacy_table_with_naive_timestamps_and_own_names(energy_url, bank, settings):
    """A legacy table: its own names, `timestamp without time zone` holding UTC."""
    settings = settings.model_copy(update={
        "load_table": "conso_elec", "load_target_col": "site", "load_time_col": "horodate",
        "load_value_col": "puissance_mw", "load_updated_col": "maj",
        "sync_lookback_days": 0})
    engine = make_engine(energy_url, settings)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE conso_elec (site VARCHAR(20), horodate TIMESTAMP, "
                             "puissance_mw FLOAT, maj TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO conso_elec VALUES (:s, :t, :v, :u)"), [
            {"s": "p1", "t": "2026-01-05 00:00:00", "v": 1.5, "u": "2026-01-05 00:30:00"},
            {"s": "p1", "t": "2026-01-05 01:00:00", "v": None, "u": "2026-01-05 01:30:00"},
            {"s": "p1", "t": "2026-01-05 02:00:00", "v": 2.5, "u": "2026-01-05 02:30:00"},
        ])
    report = sync_load(engine, bank, settings)
    assert (report.rows_read, report.rows_written, report.rows_skipped_null) == (3, 2, 1)
    assert report.watermark_after == T0 + timedelta(hours=2, minutes=30)
    df = bank_load(bank)
    assert df["time"].tolist() == [pd.Timestamp("2026-01-05T00:00Z"),
                                   pd.Timestamp("2026-01-05T02:00Z")]
    assert sync_load(engine, bank, settings).rows_read == 1  # only the row at the watermark
    engine.dispose()
