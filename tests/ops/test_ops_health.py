"""``aggregat health``: exit codes on a fresh, a stale, a failed and an empty environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from aggregat.bank import Bank, write_forecast, write_load, write_weather_run
from aggregat.config import load_environment
from aggregat.ops.health import check_health
from aggregat.ops.ledger import Ledger

# The ledger stamps its steps with the real clock, so "now" must be the real time too: a fixed
# date made the stale-publish check pass only on the day the test was written.
NOW = pd.Timestamp.now(tz="UTC").floor("h")


def _env(tmp_path):
    config = tmp_path / "aggregat.toml"
    config.write_text(f'[env.dev]\nroot = "{tmp_path / "dev"}"\n'
                      '[env.dev.weather]\nmodels = ["arome-0025"]\n'
                      '[[env.dev.forecast.targets]]\nid = "portfolio"\n')
    return load_environment("dev", str(config)), str(config)


def _populate(env, now: pd.Timestamp, weather_age_h: float = 6, publish: str = "ok") -> None:
    bank = Bank(env.bank)
    run = (now - pd.Timedelta(hours=weather_age_h)).floor("3h")
    valid = pd.date_range(run, periods=6, freq="h")
    write_weather_run(bank, "arome-0025", run, pd.DataFrame({
        "valid_time": np.repeat(valid, 2), "location": ["paris", "lyon"] * 6,
        "t2m_c": np.linspace(2, 8, 12)}))
    times = pd.date_range(now - pd.Timedelta(days=3), now - pd.Timedelta(hours=2), freq="h")
    write_load(bank, pd.DataFrame({"target_id": "portfolio", "time": times,
                                   "load_mw": 100.0, "updated_at": now}))
    issue = now.floor("h") - pd.Timedelta(hours=1)
    horizon = pd.date_range(issue + pd.Timedelta(hours=14), periods=24, freq="h")
    write_forecast(bank, pd.DataFrame({
        "target_id": "portfolio", "issue_time": issue, "valid_time": horizon, "p10_mw": 90.0,
        "p50_mw": 100.0, "p90_mw": 110.0, "model_version": "v1", "is_baseline": False}))
    ledger = Ledger(bank, job="daily")
    for step in ("fetch", "extract", "sync", "predict"):
        with ledger.step(step, f"{now:%Y-%m-%d}") as st:
            st.rows = 10
    with pytest.raises(RuntimeError) if publish == "failed" else _nothing():
        with ledger.step("publish", f"{now:%Y-%m-%d}") as st:
            st.rows = 24
            if publish == "failed":
                raise RuntimeError("energy DB down")
    from aggregat.forecast.registry import Registry

    reg = Registry(env.registry)
    version = reg.save("portfolio", {"kind": "test"},
                       {"metrics": {"validation": {"mae": 3.2, "skill": 0.4}}},
                       trained_at=now - pd.Timedelta(days=2))
    reg.promote("portfolio", version)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fresh_environment_is_ok(tmp_path):
    env, _ = _env(tmp_path)
    _populate(env, NOW)
    report = check_health(env, now=NOW.to_pydatetime())
    assert report.status == "ok" and report.exit_code == 0, [
        i.as_dict() for i in report.items if i.status != "ok"]
    names = {i.name: i for i in report.items}
    assert names["weather arome-0025"].data["rows"] == 12
    assert names["portfolio"].data["metrics"]["mae"] == 3.2
    assert names["last daily run"].data["statuses"] == {"ok": 5}
    assert names["last publish"].data["rows"] == 24


def test_stale_weather_warns_then_fails(tmp_path):
    env, _ = _env(tmp_path)
    _populate(env, NOW, weather_age_h=40)
    report = check_health(env, now=NOW.to_pydatetime())
    assert report.exit_code == 1
    assert [i.name for i in report.items if i.status == "warning"] == ["weather arome-0025"]
    later = (NOW + pd.Timedelta(days=3)).to_pydatetime()
    report = check_health(env, now=later)
    assert report.exit_code == 2
    failed = {i.name for i in report.items if i.status == "failed"}
    assert {"weather arome-0025", "forecast portfolio", "last publish"} <= failed


def test_failed_publish_and_slow_step(tmp_path):
    env, _ = _env(tmp_path)
    _populate(env, NOW, publish="failed")
    report = check_health(env, now=NOW.to_pydatetime())
    assert report.exit_code == 2
    steps = {i.name: i for i in report.items if i.section == "steps"}
    assert steps["publish"].status == "failed" and "energy DB down" in steps["publish"].detail
    # A stale "running" record (a killed run) also counts as failed.
    Ledger(Bank(env.bank), job="daily", run_id="killed").start("sync", "2026-11-29")
    report = check_health(env, now=NOW.to_pydatetime())
    steps = {i.name: i for i in report.items if i.section == "steps"}
    assert steps["sync"].status == "failed" and steps["sync"].data["stale"]


def test_empty_environment_fails_and_cli_exit_codes(tmp_path):
    env, config = _env(tmp_path)
    report = check_health(env)
    assert report.exit_code == 2
    cmd = [sys.executable, "-m", "aggregat.cli.main", "health", "--env", "dev", "--config",
           config]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    payload = json.loads(out.stdout)
    assert payload["status"] == "failed" and payload["exit_code"] == 2
    _populate(env, pd.Timestamp.now(tz="UTC"))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "env dev: ok (exit 0)" in out.stdout


# Runs before aggregat is imported, so its atexit hook runs after aggregat's: it sees the
# process as the interpreter is about to tear down.
_EXIT_PROBE = """
import atexit, json, sys
def probe():
    import aggregat.bank.store as store
    sys.stderr.write("PROBE " + json.dumps({"duckdb_open": bool(store._DUCK),
                                            "eccodes": "eccodes" in sys.modules}) + "\\n")
atexit.register(probe)
from aggregat.cli.main import main
main()
"""


def test_health_json_exits_cleanly_with_duckdb_closed_and_no_eccodes(tmp_path):
    env, config = _env(tmp_path)
    _populate(env, pd.Timestamp.now(tz="UTC"))
    for _ in range(5):  # benches/bench_health_exit.py runs it 200 times
        out = subprocess.run([sys.executable, "-c", _EXIT_PROBE, "health", "--json", "--env",
                              "dev", "--config", config], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(out.stdout)["status"] == "ok"
        probe = json.loads(out.stderr.split("PROBE ", 1)[1])
        # An open DuckDB keeps its threads running into exit(): the suspected SIGABRT.
        assert probe == {"duckdb_open": False, "eccodes": False}


def test_forecast_on_guarded_inputs_is_a_warning(tmp_path):
    env, _ = _env(tmp_path)
    _populate(env, NOW)
    with Ledger(Bank(env.bank), job="daily").step("predict", f"{NOW:%Y-%m-%d}", force=True) as st:
        st.rows = 24
        st.details["guarded_targets"] = {"portfolio": "flatline,weather_drift"}
    report = check_health(env, now=NOW.to_pydatetime())
    assert report.exit_code == 1
    warned = [i for i in report.items if i.status == "warning"]
    assert [i.name for i in warned] == ["predict input guards"]
    assert "portfolio (flatline,weather_drift)" in warned[0].detail
