"""``aggregat bank ls`` and ``aggregat bank show`` on the embedded environment's bank."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from bank_helpers import weather_run

from aggregat.bank import Bank, write_weather_run


@pytest.fixture
def home(tmp_path):
    bank = Bank(str(tmp_path / "bank"))
    for run in ("2026-11-20T00:00Z", "2026-11-21T00:00Z"):
        write_weather_run(bank, "arome-0025", run, weather_run(pd.Timestamp(run), steps=4))
    return tmp_path


def aggregat(home, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGAT_")}
    env["AGGREGAT_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", "bank", *args], cwd=home,
                          env=env, capture_output=True, text=True, timeout=120)


def test_ls_and_show(home):
    out = aggregat(home, "ls", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"dataset": "weather_forecast", "partitions": 2, "files": 2,
                                       "rows": 24, "bytes": json.loads(out.stdout)[0]["bytes"]}]

    out = aggregat(home, "ls", "weather_forecast", "--json", "--where", "run_date=2026-11-21")
    parts = json.loads(out.stdout)
    assert [p["keys"]["run_date"] for p in parts] == ["2026-11-21"] and parts[0]["rows"] == 12

    out = aggregat(home, "show", "weather_forecast", "--where", "run_date=2026-11-21",
                   "--where", "location=lyon", "--limit", "3", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 3 and {r["location"] for r in rows} == {"lyon"}
    assert {r["run_time"][:10] for r in rows} == {"2026-11-21"}


def test_errors_are_one_line(home):
    out = aggregat(home, "show", "nope")
    assert out.returncode == 2
    assert "dataset 'nope' not found" in out.stderr and "Traceback" not in out.stderr
    out = aggregat(home, "show", "weather_forecast", "--where", "run_date=../../x")
    assert out.returncode == 2 and "not a safe path segment" in out.stderr
