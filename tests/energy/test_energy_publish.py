"""`energy publish`: one transaction, replace on re-publish, stored procedure, DB down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from energy_helpers import forecast_frame

import aggregat.energy.publish as publish_module
from aggregat.bank import write_forecast
from aggregat.energy.db import make_engine
from aggregat.energy.publish import publish_forecast
from aggregat.errors import BankError, ConfigError, EnergyDBError, InputError

ISSUE = datetime(2026, 1, 10, 10, tzinfo=UTC)
OTHER_ISSUE = ISSUE + timedelta(days=1)


def published(engine, table="load_forecasts") -> pd.DataFrame:
    with engine.connect() as conn:
        df = pd.read_sql(sa.text(f"SELECT * FROM {table}"), conn)
    for col in ("issue_time", "valid_time", "published_at"):
        df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
    return df.sort_values(["target_id", "issue_time", "valid_time"]).reset_index(drop=True)


def test_publish_creates_table_and_writes_all_rows(engine, bank, settings):
    write_forecast(bank, forecast_frame())
    report = publish_forecast(engine, bank, settings, ISSUE)
    assert report.rows == 48 and report.targets == ["a", "b"]
    df = published(engine)
    assert len(df) == 48
    assert set(df["model_version"]) == {"m-1"}
    assert (df["issue_time"] == pd.Timestamp(ISSUE)).all()
    assert (df["published_at"] == pd.Timestamp(report.published_at)).all()
    first = df.iloc[0]
    assert first["valid_time"] == pd.Timestamp(ISSUE + timedelta(hours=14))
    assert (first["p10_mw"], first["p50_mw"], first["p90_mw"]) == (45.0, 50.0, 55.0)


def test_republish_replaces_the_issue_and_keeps_others(engine, bank, settings):
    write_forecast(bank, forecast_frame())
    write_forecast(bank, forecast_frame(issue=OTHER_ISSUE))
    publish_forecast(engine, bank, settings, ISSUE)
    publish_forecast(engine, bank, settings, OTHER_ISSUE)
    # A new model re-issues ISSUE with a shorter horizon and other values.
    write_forecast(bank, forecast_frame(hours=12, offset=100.0, version="m-2"))
    publish_forecast(engine, bank, settings, ISSUE)
    df = published(engine)
    issue = df[df["issue_time"] == pd.Timestamp(ISSUE)]
    assert len(issue) == 24 and set(issue["model_version"]) == {"m-2"}
    assert issue["p50_mw"].min() == 150.0
    assert not df.duplicated(["target_id", "issue_time", "valid_time"]).any()
    assert len(df[df["issue_time"] == pd.Timestamp(OTHER_ISSUE)]) == 48
    publish_forecast(engine, bank, settings, ISSUE)  # idempotent
    assert len(published(engine)) == 24 + 48


def _fail_inserts(engine, from_n: int, until_n: int):
    """Make INSERT statements number from_n..until_n fail like a dropped connection."""
    inserts = {"n": 0}

    def hook(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT"):
            inserts["n"] += 1
            if from_n <= inserts["n"] <= until_n:
                raise sa.exc.OperationalError(statement, params, RuntimeError("server gone"))

    sa.event.listen(engine, "before_cursor_execute", hook)
    return inserts


@pytest.mark.parametrize("transient", [True, False])
def test_failure_mid_publish_is_all_or_nothing(engine, bank, settings, monkeypatch, transient):
    write_forecast(bank, forecast_frame())
    publish_forecast(engine, bank, settings, ISSUE)
    before = published(engine)
    write_forecast(bank, forecast_frame(offset=1.0, version="m-2"))
    monkeypatch.setattr(publish_module, "_MAX_ROWS_PER_INSERT", 10)
    # The third INSERT of the transaction fails: once (retried) or on every attempt.
    inserts = _fail_inserts(engine, 3, 3 if transient else 10**6)
    if transient:
        publish_forecast(engine, bank, settings, ISSUE)
        after = published(engine)
        assert len(after) == 48 and set(after["model_version"]) == {"m-2"}
    else:
        with pytest.raises(EnergyDBError, match="kept in the bank"):
            publish_forecast(engine, bank, settings, ISSUE)
        pd.testing.assert_frame_equal(published(engine), before)
    assert inserts["n"] >= 3


def test_db_down_keeps_the_forecast_and_the_next_run_publishes_it(energy_url, bank, settings,
                                                                   tmp_path):
    secret = "pw-Sup3rSecret"
    if energy_url.startswith("sqlite"):
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        down = f"sqlite:///{blocker}/energy.sqlite"
    else:
        down = f"postgresql+pg8000://aggregat:{secret}@127.0.0.1:1/energy"
    write_forecast(bank, forecast_frame())
    with pytest.raises(EnergyDBError) as err:
        publish_forecast(make_engine(down, settings), bank, settings, ISSUE)
    message = str(err.value)
    assert "forecast kept in the bank; will be published by the next run" in message
    assert secret not in message and "\n" not in message
    engine = make_engine(energy_url, settings)  # the DB is back
    assert publish_forecast(engine, bank, settings, ISSUE).rows == 48
    assert len(published(engine)) == 48
    engine.dispose()


def test_nothing_to_publish_is_a_clear_error(engine, bank, settings):
    with pytest.raises(BankError, match="no forecast for issue time 2026-01-10T10:00Z"):
        publish_forecast(engine, bank, settings, ISSUE)


def test_a_naive_issue_time_is_refused_not_taken_as_utc(engine, bank, settings):
    write_forecast(bank, forecast_frame())
    with pytest.raises(InputError, match=r"issue_time 2026-01-10 10:00 has no time zone"):
        publish_forecast(engine, bank, settings, ISSUE.replace(tzinfo=None))


def test_injection_in_forecast_table_is_rejected(engine, bank, settings):
    write_forecast(bank, forecast_frame())
    bad = settings.model_copy(update={"forecast_table": "x; DROP TABLE y"})
    with pytest.raises(ConfigError, match="forecast_table"):
        publish_forecast(engine, bank, bad, ISSUE)


PROCEDURE = """
CREATE TABLE prevision_elec (
    target_id text, issue_time timestamptz, valid_time timestamptz, p10_mw float8,
    p50_mw float8, p90_mw float8, model_version text, published_at timestamptz,
    PRIMARY KEY (target_id, issue_time, valid_time));
CREATE TABLE calls (n_rows int);
CREATE PROCEDURE "insertPrevisionElec"(rows json) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO calls VALUES (json_array_length(rows));
    INSERT INTO prevision_elec
    SELECT * FROM json_populate_recordset(NULL::prevision_elec, rows)
    ON CONFLICT (target_id, issue_time, valid_time) DO UPDATE SET
        p10_mw = EXCLUDED.p10_mw, p50_mw = EXCLUDED.p50_mw, p90_mw = EXCLUDED.p90_mw,
        model_version = EXCLUDED.model_version, published_at = EXCLUDED.published_at;
END $$;
"""


def test_stored_procedure_is_called_per_batch(pg_database, bank, settings):
    settings = settings.model_copy(update={"publish_procedure": "insertPrevisionElec",
                                           "publish_batch_rows": 20})
    engine = make_engine(pg_database, settings)
    with engine.begin() as conn:
        conn.exec_driver_sql(PROCEDURE)
    write_forecast(bank, forecast_frame())
    report = publish_forecast(engine, bank, settings, ISSUE)
    assert report.destination == "procedure insertPrevisionElec"
    with engine.connect() as conn:
        calls = [r[0] for r in conn.execute(sa.text("SELECT n_rows FROM calls"))]
    assert calls == [20, 20, 8]
    df = published(engine, "prevision_elec")
    assert len(df) == 48 and set(df["model_version"]) == {"m-1"}
    assert df["issue_time"].eq(pd.Timestamp(ISSUE)).all()
    assert df["valid_time"].min() == pd.Timestamp(ISSUE + timedelta(hours=14))
    # Re-publish with new values: the procedure upserts, no duplicates.
    write_forecast(bank, forecast_frame(offset=1.0, version="m-2"))
    publish_forecast(engine, bank, settings, ISSUE)
    df = published(engine, "prevision_elec")
    assert len(df) == 48 and set(df["model_version"]) == {"m-2"}
    engine.dispose()


def test_procedure_failure_is_masked_and_atomic(pg_database, bank, settings):
    settings = settings.model_copy(update={"publish_procedure": "insertPrevisionElec",
                                           "publish_batch_rows": 20})
    engine = make_engine(pg_database, settings)
    with engine.begin() as conn:
        conn.exec_driver_sql(PROCEDURE)
        conn.exec_driver_sql("ALTER TABLE prevision_elec ADD CHECK (p50_mw < 70)")
    # p50 = 50 + hour: the first batch (hours 0-19 of "a") passes, the second violates the check.
    write_forecast(bank, forecast_frame())
    with pytest.raises(EnergyDBError, match="check constraint.*kept in the bank") as err:
        publish_forecast(engine, bank, settings, ISSUE)
    assert "\n" not in str(err.value)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM prevision_elec")).scalar() == 0
    engine.dispose()


def test_procedure_on_sqlite_is_a_config_error(tmp_path, bank, settings):
    settings = settings.model_copy(update={"publish_procedure": "insertPrevisionElec"})
    engine = make_engine(f"sqlite:///{tmp_path}/e.sqlite", settings)
    write_forecast(bank, forecast_frame())
    with pytest.raises(ConfigError, match="SQLite has no stored procedures"):
        publish_forecast(engine, bank, settings, ISSUE)
