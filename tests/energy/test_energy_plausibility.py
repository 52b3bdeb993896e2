"""Plausibility of measured load (audit 6d): `load import` and `energy sync` reject values
outside a target's bounds (default 0 .. [energy] max_load_mw; negatives only for net_load
targets), name them in the summary and the ledger, and never store them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pandas as pd
import pytest
from energy_helpers import T0, measurements, to_db, write

from aggregat.bank import read_load
from aggregat.config import EnergySettings, TargetSettings
from aggregat.energy.schema import create_default_tables, load_table
from aggregat.energy.sync import sync_load
from aggregat.errors import ConfigError, InputError
from aggregat.load_import import import_load_csv
from aggregat.plausibility import Plausibility


def test_a_huge_value_is_rejected_and_named_with_its_line(tmp_path, bank):
    path = write(tmp_path, "time,load_mw\n2026-01-05T00:00Z,12\n2026-01-05T01:00Z,1e12\n"
                           "2026-01-05T02:00Z,13\n")
    report = import_load_csv(bank, path, target="t")
    assert (report.rows, report.rejected) == (2, 1)
    assert "1 implausible value(s) rejected" in report.summary()
    assert "line 3" in report.summary() and "1e+12 MW above max 100000 MW" in report.summary()
    assert "\n" not in report.summary()
    assert sorted(read_load(bank)["load_mw"]) == [12.0, 13.0]


def test_negative_load_only_for_net_load_targets(tmp_path, bank):
    path = write(tmp_path, "time,target_id,load_mw\n2026-01-05T00:00Z,site,-3\n"
                           "2026-01-05T00:00Z,net,-3\n2026-01-05T01:00Z,site,4\n"
                           "2026-01-05T01:00Z,net,4\n")
    bounds = Plausibility.from_settings(1e5, [TargetSettings(id="net", net_load=True)])
    report = import_load_csv(bank, path, plausibility=bounds)
    assert report.rejected == 1 and "target 'site'" in report.summary()
    assert "negative" in report.summary()
    df = read_load(bank)
    assert sorted(zip(df["target_id"], df["load_mw"], strict=True)) == [
        ("net", -3.0), ("net", 4.0), ("site", 4.0)]


def test_per_target_bounds(tmp_path, bank):
    path = write(tmp_path, "time,load_mw\n2026-01-05T00:00Z,12\n2026-01-05T01:00Z,60\n")
    bounds = Plausibility.from_settings(1e5, [TargetSettings(id="t", min_mw=10, max_mw=50)])
    report = import_load_csv(bank, path, target="t", plausibility=bounds)
    assert report.rejected == 1 and "60 MW above max 50 MW" in report.summary()


def test_bad_bounds_are_config_errors():
    with pytest.raises(ConfigError, match="net_load = true"):
        Plausibility.from_settings(1e5, [TargetSettings(id="t", min_mw=-5)])
    with pytest.raises(ConfigError, match="must be below"):
        Plausibility.from_settings(1e5, [TargetSettings(id="t", min_mw=5, max_mw=5)])
    with pytest.raises(ConfigError, match="max_load_mw"):
        Plausibility.from_settings(0.0)


def test_a_file_in_the_wrong_unit_is_one_error_and_nothing_stored(tmp_path, bank):
    # kW given as MW: every value is 1000x too large
    path = write(tmp_path, "time,load_mw\n2026-01-05T00:00Z,1500000\n2026-01-05T01:00Z,1600000\n")
    with pytest.raises(InputError) as err:
        import_load_csv(bank, path, target="t")
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "--unit kW" in msg
    assert "all 2 values" in msg and "nothing imported" in msg
    assert read_load(bank).empty
    # in W: the hint says W, and --unit W reads it
    path = write(tmp_path, "time,load_mw\n2026-01-05T00:00Z,1.5e9\n", "w.csv")
    with pytest.raises(InputError, match="--unit W"):
        import_load_csv(bank, path, target="t")
    assert import_load_csv(bank, path, target="t", unit="W").rows == 1
    assert read_load(bank)["load_mw"].tolist() == [1500.0]


def test_cli_load_import_wrong_unit_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, "time,load_mw\n2026-01-05T00:00Z,1500000\n")
    (tmp_path / "aggregat.toml").write_text(f'[env.local]\nroot = "{tmp_path}/data"\n')
    env = {**os.environ, "AGGREGAT_CONFIG": str(tmp_path / "aggregat.toml")}
    env.pop("AGGREGAT_ENV", None)
    run = subprocess.run([sys.executable, "-m", "aggregat.cli.main", "load", "import", str(path),
                          "--target", "t"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    out = (run.stdout + run.stderr).strip()
    assert "Traceback" not in out and len(out.splitlines()) == 1 and "--unit kW" in out


def test_cli_load_import_uses_target_bounds_from_config(tmp_path):
    path = write(tmp_path, "time,load_mw\n2026-01-05T00:00Z,12\n2026-01-05T01:00Z,60\n")
    (tmp_path / "aggregat.toml").write_text(
        f'[env.local]\nroot = "{tmp_path}/data"\n'
        '[[env.local.forecast.targets]]\nid = "t"\nmax_mw = 50\n')
    env = {**os.environ, "AGGREGAT_CONFIG": str(tmp_path / "aggregat.toml")}
    env.pop("AGGREGAT_ENV", None)
    run = subprocess.run([sys.executable, "-m", "aggregat.cli.main", "load", "import", str(path),
                          "--target", "t"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "1 implausible value(s) rejected" in run.stdout and "line 3" in run.stdout


@pytest.fixture
def source(engine, settings):
    create_default_tables(engine, settings)
    rows = measurements(hours=4)
    rows[1]["value_mw"] = 1e12  # a: 01:00
    rows[5]["value_mw"] = -7.0  # b: 01:00
    with engine.begin() as conn:
        conn.execute(load_table(settings).insert(), to_db(engine, rows))
    return engine


def test_sync_rejects_implausible_rows_and_names_them(source, bank, settings):
    report = sync_load(source, bank, settings)
    assert report.rows_read == 8 and report.rows_written == 6 and report.rows_rejected == 2
    summary = report.summary()
    assert "2 implausible row(s) rejected" in summary and "\n" not in summary
    assert "target 'a' 2026-01-05T01:00Z: 1e+12 MW above max 100000 MW" in summary
    assert [r["target"] for r in report.rejected_examples] == ["a", "b"]
    df = read_load(bank)
    assert len(df) == 6 and df["load_mw"].between(0, 1e5).all()
    # the watermark moved past them: a corrected value is picked up by the next sync
    assert report.watermark_after == T0 + timedelta(hours=3, minutes=30)


def test_sync_uses_target_bounds_and_net_load(source, bank, settings):
    bounds = Plausibility.from_settings(settings.max_load_mw, [
        TargetSettings(id="b", net_load=True), TargetSettings(id="a", max_mw=101.5)])
    report = sync_load(source, bank, settings, plausibility=bounds)
    # a: 100 ok, 1e12 and 102, 103 above 101.5; b: -7 is fine for a net load
    assert report.rows_rejected == 3
    df = read_load(bank)
    assert sorted(df[df["target_id"] == "b"]["load_mw"]) == [-7.0, 110.0, 112.0, 113.0]


def test_settings_default_bound():
    assert EnergySettings().max_load_mw == 1e5
    assert not TargetSettings(id="x").net_load


def test_training_reads_implausible_stored_load_as_missing():
    from aggregat.forecast.pipeline import _load_series

    df = pd.DataFrame({"time": pd.date_range("2026-01-05", periods=5, freq="h", tz="UTC"),
                       "load_mw": [1.0, 1e12, -2.0, 3.0, 4.0]})
    s = _load_series(df, "target 't'", Plausibility().bounds("t"))
    assert s.isna().tolist() == [False, True, True, False, False]


def test_the_daily_sync_step_names_rejected_rows_in_the_ledger(tmp_path):
    from datetime import date

    from aggregat.bank import Bank
    from aggregat.config import load_environment
    from aggregat.energy.db import make_engine
    from aggregat.ops import jobs
    from aggregat.ops.ledger import Ledger

    (tmp_path / "aggregat.toml").write_text(
        f'[env.local]\nroot = "{tmp_path}/data"\n'
        '[[env.local.forecast.targets]]\nid = "a"\nmax_mw = 120\n')
    env = load_environment("local", tmp_path / "aggregat.toml")
    engine = make_engine(env.energy_db, env.energy)
    create_default_tables(engine, env.energy)
    rows = measurements(hours=2)
    rows[0]["value_mw"] = 500.0  # a 00:00: above the target's max_mw
    with engine.begin() as conn:
        conn.execute(load_table(env.energy).insert(), to_db(engine, rows))
    engine.dispose()
    ledger = Ledger(Bank(env.bank), job="daily")
    jobs._Job(env, ledger, force=False).sync(date(2026, 1, 5))
    entry = Ledger(Bank(env.bank)).last("sync", "2026-01-05")
    assert entry.status == "ok" and entry.rows == 3
    assert entry.details["rejected_implausible"] == 1
    assert entry.details["rejected_examples"][0]["why"] == "500 MW above max 120 MW"
