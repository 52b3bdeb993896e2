import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aggregat.cli.main import app
from aggregat.forecast.synthetic import synthetic_load_weather

LAST_LINE = re.compile(r"^MAE=[\d.]+ RMSE=[\d.]+ nMAE=[\d.]+ skill=-?[\d.]+ coverage=[\d.]+$")


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory):
    """Two CSV files (an overlapping split, like train/test files) with naive UTC times."""
    d = tmp_path_factory.mktemp("csv")
    df = synthetic_load_weather(start="2026-01-01", days=63, freq="1h", seed=3)
    df["time"] = df["time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    df = df.rename(columns={"time": "Time", "load_mw": "Demand", "t2m_c": "Temperature",
                            "holiday": "Holiday"})
    df["Holiday"] = df["Holiday"].astype(bool)
    df.iloc[:1000].to_csv(d / "site-a.csv", index=False)
    df.iloc[990:].to_csv(d / "site-b.csv", index=False)
    return d


def test_backtest_writes_report_plot_and_final_line(csv_files, tmp_path):
    out = tmp_path / "bt"
    res = CliRunner().invoke(app, [
        "model", "backtest", "--csv", str(csv_files / "site-*.csv"), "--time-col", "Time",
        "--load-col", "Demand", "--weather-cols", "Temperature,ssrd_wm2", "--known-cols",
        "Holiday", "--holidays", "FR", "--school-holidays", "FR", "--tz", "Europe/Paris",
        "--test-weeks", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert LAST_LINE.match(lines[-1]), lines[-1]
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    assert m["n"] == 7 * 24
    assert report["protocol"]["test_end"] == "2026-03-04"
    assert report["inputs"]["school_holidays"] == "FR"  # through the temporary bank's config
    assert m["mae"] == pytest.approx(float(lines[-1].split()[0].split("=")[1]), abs=1e-3)
    assert m["mae"] < m["mae_persistence"]
    assert {r["lead_h"] for r in report["by_lead_h"]} == set(range(14, 38))
    assert (out / "backtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "forecasts.csv").read_text().splitlines()) == 7 * 24 + 1


def test_bad_column_is_a_one_line_error(csv_files, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "aggregat.cli.main", "model", "backtest", "--csv",
         str(csv_files / "site-a.csv"), "--time-col", "Time", "--load-col", "Load",
         "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "no column(s) 'Load'" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_school_holidays_is_a_one_line_error(csv_files, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "aggregat.cli.main", "model", "backtest", "--csv",
         str(csv_files / "site-a.csv"), "--time-col", "Time", "--load-col", "Demand",
         "--school-holidays", "FR-Zone Q", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "--school-holidays" in err[0] and "Zone Q" in err[0], proc.stderr
