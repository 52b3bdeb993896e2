"""`bank bigquery-ddl`: CREATE EXTERNAL TABLE statements over a gs:// bank; one line otherwise."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

import aggregat
from aggregat.bank.datasets import DATASETS
from aggregat.cli.main import app
from aggregat.errors import ConfigError


def write_config(tmp_path, monkeypatch) -> None:
    (tmp_path / "aggregat.toml").write_text(f"""
default_env = "prod"
[env.prod]
root = "gs://aggregat-prod/eu"
energy_db = "sqlite:///{tmp_path}/energy.sqlite"
[env.local]
root = "{tmp_path}/data"
""")
    monkeypatch.setenv("AGGREGAT_CONFIG", str(tmp_path / "aggregat.toml"))
    monkeypatch.delenv("AGGREGAT_ENV", raising=False)


def ddl_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", "bank", "bigquery-ddl",
                           *args], capture_output=True, text=True, timeout=120)


def test_one_hive_partitioned_external_table_per_bank_dataset(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch)
    tables = aggregat.bigquery_ddl(aggregat.open_env("prod"))
    names = [t.bank_dataset for t in tables]
    assert names == sorted(DATASETS) and {"ledger", "rte_tempo", "load"} <= set(names)
    forecast = next(t for t in tables if t.bank_dataset == "forecast")
    sql = forecast.statement
    assert sql.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `aggregat_prod.forecast`")
    assert "WITH PARTITION COLUMNS (target STRING, issue_date DATE)" in sql
    assert "uris = ['gs://aggregat-prod/eu/bank/forecast/*']" in sql
    assert "hive_partition_uri_prefix = 'gs://aggregat-prod/eu/bank/forecast'" in sql
    assert "format = 'PARQUET'" in sql
    # BigQuery: "the hive partitioning keys and the columns in the underlying files cannot
    # overlap"; weather_forecast's files hold `model`: one table per model, under a view.
    weather = next(t for t in tables if t.bank_dataset == "weather_forecast")
    assert weather.table == "aggregat_prod.weather_forecast"
    sql = weather.statement
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `aggregat_prod.weather_forecast__arome_0025`" \
        in sql
    assert "hive_partition_uri_prefix = 'gs://aggregat-prod/eu/bank/weather_forecast/model=" \
        "arpege-01'" in sql
    assert "WITH PARTITION COLUMNS (run_date DATE)" in sql and "model STRING" not in sql
    assert sql.endswith("CREATE OR REPLACE VIEW `aggregat_prod.weather_forecast` AS\n"
                        "SELECT * FROM `aggregat_prod.weather_forecast__arome_0025`\nUNION ALL\n"
                        "SELECT * FROM `aggregat_prod.weather_forecast__arpege_01`;")
    ledger = next(t for t in tables if t.bank_dataset == "ledger").statement
    assert "PARTITION" not in ledger and "hive" not in ledger  # its files hold `step`
    load = aggregat.bigquery_ddl("prod", dataset="analytics.bank")
    assert "`analytics.bank.load`" in load[[t.bank_dataset for t in load].index("load")].statement


def test_cli_prints_the_statements_and_refuses_a_root_not_on_gs(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch)
    runner = CliRunner()
    done = runner.invoke(app, ["bank", "bigquery-ddl", "--dataset", "bank_eu"])
    assert done.exit_code == 0, done.output
    assert done.output.count("CREATE EXTERNAL TABLE") == len(DATASETS) - 1 + 2  # 2 models
    assert "`bank_eu.forecast`" in done.output
    # Errors as a user sees them: the real command, one line on stderr, exit 2.
    local = ddl_command("--env", "local")
    assert local.returncode == 2 and local.stderr.count("\n") == 1
    assert "not on Google Cloud Storage" in local.stderr and "Traceback" not in local.stderr
    bad = ddl_command("--dataset", "x; DROP")
    assert bad.returncode == 2 and "--dataset 'x; DROP'" in bad.stderr
    with pytest.raises(ConfigError, match="gs://"):
        aggregat.bigquery_ddl(aggregat.open_env("local"))
