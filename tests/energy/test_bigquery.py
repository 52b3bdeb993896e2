"""BigQuery in and out, against a BigQuery API emulator (bqemulator) on loopback that the
official client reaches through BIGQUERY_EMULATOR_HOST, as in production it reaches BigQuery."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from energy_helpers import T0, forecast_frame, measurements

from aggregat.bank import Bank, read_load, write_forecast
from aggregat.config import EnergySettings
from aggregat.errors import EnergyDBError

pytestmark = pytest.mark.usefixtures("bigquery_emulator")

ISSUE = datetime(2026, 1, 10, 10, tzinfo=UTC)
OTHER_ISSUE = ISSUE + timedelta(days=1)
LOAD_SCHEMA = (("target_id", "STRING"), ("time_utc", "TIMESTAMP"), ("value_mw", "FLOAT64"),
               ("updated_at", "TIMESTAMP"))


def client():
    from aggregat.energy.bigquery import client as product_client

    return product_client("aggregat-test")


def settings(dataset: str, **more) -> EnergySettings:
    return EnergySettings(source="bigquery", publish_to="bigquery",
                          bigquery_load_table=f"{dataset}.load",
                          bigquery_forecast_table=f"{dataset}.forecasts", **more)


def make_load_table(table: str, rows: list[dict]) -> None:
    from google.cloud import bigquery

    bq = client()
    bq.create_table(bigquery.Table(table, schema=[bigquery.SchemaField(n, t)
                                                  for n, t in LOAD_SCHEMA]), exists_ok=True)
    insert_load(table, rows)


def insert_load(table: str, rows: list[dict]) -> None:
    errors = client().insert_rows_json(table, [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()} for r in rows])
    assert errors == []


def rows_of(query_or_table: str) -> pd.DataFrame:
    from aggregat.energy.bigquery import read_bigquery

    batches = list(read_bigquery(query_or_table, project="aggregat-test"))
    return pa.Table.from_batches(batches).to_pandas() if batches else pd.DataFrame()


# -- publish -----------------------------------------------------------------------------------
def test_publish_then_republish_changes_nothing_and_a_second_issue_adds_rows(
        bigquery_dataset, tmp_path):
    from aggregat.energy.bigquery import publish_bigquery

    bank, cfg = Bank(str(tmp_path / "bank")), settings(bigquery_dataset)
    table = cfg.bigquery_forecast_table
    write_forecast(bank, forecast_frame())
    first = publish_bigquery(bank, cfg, ISSUE)
    assert (first.rows, first.rows_changed, first.targets) == (48, 48, ["a", "b"])
    before = rows_of(table)
    assert len(before) == 48 and set(before["model_version"]) == {"m-1"}
    assert (before["issue_time"] == pd.Timestamp(ISSUE)).all()

    again = publish_bigquery(bank, cfg, ISSUE)  # republish: one MERGE that changes nothing
    assert again.rows_changed == 0
    after = rows_of(table)
    key = ["target_id", "issue_time", "valid_time"]
    pd.testing.assert_frame_equal(before.sort_values(key).reset_index(drop=True),
                                  after.sort_values(key).reset_index(drop=True))

    write_forecast(bank, forecast_frame(issue=OTHER_ISSUE))
    assert publish_bigquery(bank, cfg, OTHER_ISSUE).rows_changed == 48
    both = rows_of(table)
    assert len(both) == 96 and not both.duplicated(key).any()

    # A new model re-issues ISSUE, shorter and different: the issue is replaced, not appended.
    write_forecast(bank, forecast_frame(hours=12, offset=100.0, version="m-2"))
    publish_bigquery(bank, cfg, ISSUE)
    final = rows_of(table)
    issue = final[final["issue_time"] == pd.Timestamp(ISSUE)]
    assert len(issue) == 24 and set(issue["model_version"]) == {"m-2"}
    assert issue["p50_mw"].min() == 150.0
    assert len(final[final["issue_time"] == pd.Timestamp(OTHER_ISSUE)]) == 48
    assert not final.duplicated(key).any()


# -- sync --------------------------------------------------------------------------------------
def test_sync_is_incremental_from_a_table(bigquery_dataset, tmp_path):
    from aggregat.energy.bigquery import sync_load_bigquery

    bank = Bank(str(tmp_path / "bank"))
    # Small pages and batches: several bank writes, each followed by its watermark.
    cfg = settings(bigquery_dataset, sync_lookback_days=0.25, sync_fetch_rows=20,
                   sync_batch_rows=40)
    make_load_table(cfg.bigquery_load_table, measurements())
    full = sync_load_bigquery(bank, cfg)
    assert full.full and full.rows_read == full.rows_written == 96 and full.batches >= 2
    assert full.watermark_after == T0 + timedelta(hours=47, minutes=30)

    # New hours, and a correction of an old hour stamped now: only rows from the watermark
    # minus the look-back (6 h) are read again.
    late = measurements(start=T0 + timedelta(hours=48), hours=3)
    fix = {"target_id": "a", "time_utc": T0, "value_mw": 7.0,
           "updated_at": T0 + timedelta(hours=51)}
    insert_load(cfg.bigquery_load_table, [*late, fix])
    inc = sync_load_bigquery(bank, cfg)
    assert not inc.full and inc.watermark_before == full.watermark_after
    assert inc.rows_read == 2 * 7 + 6 + 1  # look-back (41:30 to 47:30) + new hours + the fix
    assert inc.watermark_after == T0 + timedelta(hours=51)
    load = read_load(bank)
    assert len(load) == 96 + 6 and not load.duplicated(["target_id", "time"]).any()
    assert load[(load["target_id"] == "a") & (load["time"] == pd.Timestamp(T0))][
        "load_mw"].item() == 7.0

    assert sync_load_bigquery(bank, cfg).rows_written <= inc.rows_read  # idempotent re-read
    assert len(read_load(bank)) == 102


@pytest.mark.parametrize("fail_at", ["before_bank_write", "after_bank_write"])
def test_sync_interrupted_then_rerun_equals_uninterrupted(bigquery_dataset, tmp_path,
                                                          monkeypatch, fail_at):
    import aggregat.bank as bank_module
    import aggregat.energy.sync as sync_module
    from aggregat.energy.bigquery import source_identity, sync_load_bigquery
    from aggregat.energy.sync import load_state

    # No look-back: a watermark saved before its rows were written would lose them for good.
    cfg = settings(bigquery_dataset, sync_lookback_days=0, sync_fetch_rows=7, sync_batch_rows=30)
    make_load_table(cfg.bigquery_load_table, measurements())
    reference = Bank(str(tmp_path / "reference"))
    sync_load_bigquery(reference, cfg)
    calls = {"n": 0}

    def crash_on_second(real):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("killed")
            return real(*args, **kwargs)
        return wrapped

    if fail_at == "before_bank_write":
        monkeypatch.setattr(bank_module, "write_load", crash_on_second(bank_module.write_load))
    else:
        monkeypatch.setattr(sync_module, "_save_state", crash_on_second(sync_module._save_state))
    bank = Bank(str(tmp_path / "bank"))
    with pytest.raises(RuntimeError):
        sync_load_bigquery(bank, cfg)
    assert 0 < len(read_load(bank)) < 96
    monkeypatch.undo()

    sync_load_bigquery(bank, cfg)
    key = ["target_id", "time"]
    pd.testing.assert_frame_equal(read_load(bank).sort_values(key).reset_index(drop=True),
                                  read_load(reference).sort_values(key).reset_index(drop=True),
                                  check_like=True)
    source = source_identity(cfg)
    assert load_state(bank, cfg, source) == load_state(reference, cfg, source)


def test_sync_from_a_query_maps_its_columns(bigquery_dataset, tmp_path):
    from aggregat.energy.bigquery import sync_load_bigquery

    raw = f"{bigquery_dataset}.meters"
    make_load_table(raw, measurements(targets=("a",), hours=5))
    cfg = EnergySettings(source="bigquery", load_target_col="site", load_updated_col=None,
                         bigquery_project="aggregat-test",
                         bigquery_load_query=f"SELECT target_id AS site, time_utc, value_mw "
                                             f"FROM `{raw}` WHERE value_mw > 101")
    report = sync_load_bigquery(Bank(str(tmp_path / "bank")), cfg)
    assert report.rows_written == 3 and report.table == "BigQuery query"
    assert read_load(Bank(str(tmp_path / "bank")))["load_mw"].tolist() == [102.0, 103.0, 104.0]


def test_read_bigquery_yields_record_batches_of_a_table_or_a_query(bigquery_dataset):
    from google.cloud import bigquery

    import aggregat

    table = f"{bigquery_dataset}.load"
    make_load_table(table, measurements(hours=10))
    batches = list(aggregat.read_bigquery(table, page_rows=7))
    assert all(isinstance(b, pa.RecordBatch) for b in batches) and len(batches) >= 3
    assert sum(b.num_rows for b in batches) == 20
    param = bigquery.ScalarQueryParameter("t", "STRING", "b")
    rows = pa.Table.from_batches(list(aggregat.read_bigquery(
        f"SELECT value_mw FROM `{table}` WHERE target_id = @t ORDER BY value_mw",
        params=[param], project="aggregat-test")))
    assert rows.column("value_mw").to_pylist() == [110.0 + h for h in range(10)]


def test_missing_table_is_one_line_error(bigquery_dataset, tmp_path):
    from aggregat.energy.bigquery import sync_load_bigquery

    cfg = EnergySettings(source="bigquery", bigquery_load_table=f"{bigquery_dataset}.nope")
    with pytest.raises(EnergyDBError, match="not found|Not found") as err:
        sync_load_bigquery(Bank(str(tmp_path / "bank")), cfg)
    assert "\n" not in str(err.value)


# -- the command line --------------------------------------------------------------------------
def aggregat_cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AGGREGAT_CONFIG": str(tmp_path / "aggregat.toml"),
           "AGGREGAT_BQ_PROJECT_ID": "aggregat-test",
           "AGGREGAT_MISSING_PROJECT_ID": "aggregat-test"}
    env.pop("AGGREGAT_ENV", None)
    return subprocess.run([sys.executable, "-c", "from aggregat.cli.main import main; main()",
                           *args], capture_output=True, text=True, env=env, timeout=180)


def test_cli_sync_and_publish_through_bigquery_and_the_project_secret_is_never_printed(
        bigquery_dataset, tmp_path):
    dataset = bigquery_dataset.split(".", 1)[1]
    make_load_table(f"{bigquery_dataset}.load", measurements())
    (tmp_path / "aggregat.toml").write_text(f"""
default_env = "bq"
[env.bq]
root = "{tmp_path}/data"
[env.bq.energy]
source = "bigquery"
publish_to = "bigquery"
bigquery_load_table = "${{PROJECT_ID}}.{dataset}.load"
bigquery_forecast_table = "${{PROJECT_ID}}.{dataset}.forecasts"
[env.missing]
root = "{tmp_path}/data"
[env.missing.energy]
source = "bigquery"
bigquery_load_table = "${{PROJECT_ID}}.{dataset}.nope"
""")
    write_forecast(Bank(str(tmp_path / "data" / "bank")), forecast_frame())
    synced = aggregat_cli(tmp_path, "energy", "sync")
    assert synced.returncode == 0, synced.stderr
    assert "96 rows read" in synced.stdout
    published = aggregat_cli(tmp_path, "energy", "publish", "--issue-time", "2026-01-10T10:00Z")
    assert published.returncode == 0, published.stderr
    assert "48 rows (48 changed)" in published.stdout
    assert len(rows_of(f"{bigquery_dataset}.forecasts")) == 48
    missing = aggregat_cli(tmp_path, "energy", "sync", "--env", "missing")
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
    assert "***" in missing.stderr
    for run in (synced, published, missing):
        assert "aggregat-test" not in run.stdout + run.stderr


def test_env_check_looks_at_bigquery_and_not_at_an_unused_energy_db(bigquery_dataset, tmp_path,
                                                                     monkeypatch):
    import aggregat

    make_load_table(f"{bigquery_dataset}.load", [])
    (tmp_path / "aggregat.toml").write_text(f"""
[env.bq]
root = "{tmp_path}/data"
[env.bq.energy]
source = "bigquery"
publish_to = "bigquery"
bigquery_load_table = "{bigquery_dataset}.load"
bigquery_forecast_table = "{bigquery_dataset}.forecasts"
[env.renamed]
root = "{tmp_path}/data"
[env.renamed.energy]
source = "bigquery"
load_value_col = "mw"
bigquery_load_table = "{bigquery_dataset}.load"
""")
    monkeypatch.setenv("AGGREGAT_CONFIG", str(tmp_path / "aggregat.toml"))
    checks = {c.name: c for c in aggregat.check_env("bq", offline=True)}
    assert checks["energy DB"].status == "skipped"
    assert checks["BigQuery"].status == "ok", checks["BigQuery"].message
    renamed = {c.name: c for c in aggregat.check_env("renamed", offline=True)}
    assert renamed["BigQuery"].status == "problem"
    assert "lacks column(s) ['mw']" in renamed["BigQuery"].message


def test_bigquery_down_is_a_bounded_masked_one_line_error(tmp_path, monkeypatch):
    import socket

    from aggregat.config import register_secret
    from aggregat.energy.bigquery import publish_bigquery, sync_load_bigquery

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", f"127.0.0.1:{port}")
    register_secret("down-secret-proj")
    cfg = EnergySettings(source="bigquery", publish_to="bigquery", timeout_s=1, retries=1,
                         retry_backoff_s=0.1,
                         bigquery_load_table="down-secret-proj.energy.load",
                         bigquery_forecast_table="down-secret-proj.energy.forecasts")
    bank = Bank(str(tmp_path / "bank"))
    with pytest.raises(EnergyDBError) as err:
        sync_load_bigquery(bank, cfg)
    assert "rerun later" in str(err.value) and "down-secret-proj" not in str(err.value)
    assert "\n" not in str(err.value) and read_load(bank).empty
    write_forecast(bank, forecast_frame())
    with pytest.raises(EnergyDBError, match="forecast kept in the bank") as err:
        publish_bigquery(bank, cfg, ISSUE)
    assert "down-secret-proj" not in str(err.value)


def test_weather_history_imports_from_a_bigquery_table(bigquery_dataset, tmp_path):
    """import-history reads a BigQuery table as it reads a file: same rows, same bank."""
    from google.cloud import bigquery

    from aggregat.bank import read_weather
    from aggregat.weather.history import import_history

    run = datetime(2026, 1, 5, tzinfo=UTC)
    rows = [{"model": "AROME", "run_time": run.isoformat(),
             "valid_time": (run + timedelta(hours=h)).isoformat(), "site_id": site,
             "variable": var, "value": value}
            for h in range(4) for site, base in (("paris", 275.0), ("lyon", 278.0))
            for var, value in (("2t", base + h), ("tp", 0.5 * h))]
    table = f"{bigquery_dataset}.weather_history"
    schema = [bigquery.SchemaField(n, t) for n, t in (
        ("model", "STRING"), ("run_time", "TIMESTAMP"), ("valid_time", "TIMESTAMP"),
        ("site_id", "STRING"), ("variable", "STRING"), ("value", "FLOAT64"))]
    client().create_table(bigquery.Table(table, schema=schema))
    assert client().insert_rows_json(table, rows) == []
    csv = tmp_path / "history.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)

    from_bq, from_csv = Bank(str(tmp_path / "bq")), Bank(str(tmp_path / "csv"))
    report = import_history(from_bq, [f"bigquery:{table}"])
    import_history(from_csv, [csv])
    assert report.rows == len(rows) and report.runs == 1
    got, want = (read_weather(b, run, run + timedelta(hours=4)).sort_values(
        ["valid_time", "location"]).reset_index(drop=True) for b in (from_bq, from_csv))
    pd.testing.assert_frame_equal(got, want)
    assert got["t2m_c"].notna().all() and (got["tp_mm"].dropna() == 0.5).all()
