"""``aggregat bank ls`` and ``aggregat bank show`` on the embedded environment's bank."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from bank_helpers import weather_run
from typer.testing import CliRunner

from aggregat.bank import Bank, write_weather_run
from aggregat.cli.main import app


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The embedded environment rooted at tmp_path, with two weather runs in its bank."""
    for name in [k for k in os.environ if k.startswith("AGGREGAT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AGGREGAT_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    bank = Bank(str(tmp_path / "bank"))
    for run in ("2026-11-20T00:00Z", "2026-11-21T00:00Z"):
        write_weather_run(bank, "arome-0025", run, weather_run(pd.Timestamp(run), steps=4))
    return tmp_path


def invoke(*args):
    result = CliRunner().invoke(app, ["bank", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_ls_and_show(home):
    datasets = json.loads(invoke("ls", "--json"))
    assert [(d["dataset"], d["partitions"], d["files"], d["rows"]) for d in datasets] == [
        ("weather_forecast", 2, 2, 24)]
    assert datasets[0]["bytes"] > 0

    parts = json.loads(invoke("ls", "weather_forecast", "--json", "--where",
                              "run_date=2026-11-21"))
    assert [p["keys"]["run_date"] for p in parts] == ["2026-11-21"] and parts[0]["rows"] == 12

    out = invoke("show", "weather_forecast", "--where", "run_date=2026-11-21",
                 "--where", "location=lyon", "--limit", "3", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3 and {r["location"] for r in rows} == {"lyon"}
    assert {r["run_time"][:10] for r in rows} == {"2026-11-21"}
    assert "weather_forecast" in invoke("ls") and "lyon" in invoke("show", "weather_forecast")


def test_errors_are_one_line_with_exit_code_2(home):
    proc = subprocess.run(
        [sys.executable, "-m", "aggregat.cli.main", "bank", "show", "weather_forecast",
         "--where", "run_date=../../x"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "not a safe path segment" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["bank", "show", "nope"])
    assert "dataset 'nope' not found" in str(result.exception)
