"""Weather history import: the bank gets what an extraction of the same GRIB gives, reruns
change nothing, and a bad row is named by file, line and column with nothing changed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import eccodes
import numpy as np
import pandas as pd
import pytest

from aggregat.bank import Bank, read_weather
from aggregat.errors import ConfigError, InputError
from aggregat.weather.datalake import Datalake
from aggregat.weather.extract import extract_run
from aggregat.weather.grib import read_header
from aggregat.weather.history import Mapping, import_history
from aggregat.weather.products import get_product
from aggregat.weather.simulate import crop_for_points, simulate_run
from aggregat.weather.sites import Locations

PRODUCT = get_product("arome-0025")
RUNS = [datetime(2026, 11, 28, 0, tzinfo=UTC), datetime(2026, 11, 28, 6, tzinfo=UTC)]
STEPS = list(range(0, 13))
IDS = ["paris", "versailles", "meaux"]
LATS = np.array([48.85, 48.80, 48.96])
LONS = np.array([2.35, 2.13, 2.88])
SHORT = {"t2m": "2t", "rh2m": "2r", "u10": "10u", "v10": "10v", "ws10": "10si",
         "gust10": "10fg", "msl": "prmsl", "ssrd": "ssrd", "tp": "tp", "tcc": "tcc",
         "lcc": "lcc", "mcc": "mcc", "hcc": "hcc"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two simulated runs in a datalake, their extraction in a bank, and the same values as a
    GRIB parser would write them in the long format (nearest grid point, GRIB units)."""
    root = tmp_path_factory.mktemp("history")
    grid = crop_for_points(PRODUCT, LATS, LONS, margin_deg=0.3)
    lake = Datalake(str(root / "datalake"))
    locations = Locations.points(IDS, list(LATS), list(LONS))
    extracted = Bank(str(root / "extracted"))
    i = np.round((LONS - grid.lon_first) / grid.dlon).astype(int)
    j = np.round((grid.lat_first - LATS) / grid.dlat).astype(int)
    rows = []
    for run in RUNS:
        files = simulate_run(PRODUCT, run, root / "archive", grid=grid, steps=STEPS, seed=5)
        for path in files:
            pkg, group = path.parent.name, PRODUCT.group_of(path.name.split("__")[3])
            rel = lake.local_path(PRODUCT.datalake_rel(run, pkg, group))
            rel.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, rel)
            with open(path, "rb") as fh:
                while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
                    try:
                        header = read_header(h, str(path), 0)
                        values = eccodes.codes_get_values(h)[j * grid.ni + i]
                    finally:
                        eccodes.codes_release(h)
                    valid = run + timedelta(hours=header.end_step)
                    for site, value in zip(IDS, values, strict=True):
                        rows.append(("AROME", f"{run:%Y-%m-%dT%H:%M:%SZ}",
                                     f"{valid:%Y-%m-%dT%H:%M:%SZ}", site, SHORT[header.param],
                                     float(value)))
        extract_run(PRODUCT, run, datalake=lake, bank=extracted, locations=locations, workers=1)
    long = pd.DataFrame(rows, columns=["model", "run_time", "valid_time", "site_id", "variable",
                                       "value"])
    csv = root / "history.csv"
    long.to_csv(csv, index=False)
    return {"root": root, "csv": csv, "long": long, "extracted": extracted}


def _weather(bank: Bank) -> pd.DataFrame:
    frame = read_weather(bank, RUNS[0], RUNS[-1] + timedelta(hours=13), models=[PRODUCT.id],
                         locations=IDS)
    return frame.sort_values(["run_time", "valid_time", "location"]).reset_index(drop=True)


def test_import_gives_the_values_an_extraction_gives(world, tmp_path):
    bank = Bank(str(tmp_path / "bank"))
    report = import_history(bank, [world["csv"]], known_sites=IDS)
    assert report.runs == 2 and report.rows == len(world["long"])
    assert report.models == [PRODUCT.id] and report.sites_matched == sorted(IDS)
    assert not report.sites_unknown and not report.variables_unmapped and not report.gaps
    got, want = _weather(bank), _weather(world["extracted"])
    assert len(got) == len(want) and len(got) == 2 * 13 * len(IDS)
    columns = [c for c in want.columns if c.endswith(("_c", "_pct", "_ms", "_hpa", "_wm2",
                                                      "_mm", "_deg"))]
    assert {"t2m_c", "ssrd_wm2", "tp_mm", "wind_dir_10m_deg", "rh2m_pct"} <= set(columns)
    for col in columns:
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float),
                                   rtol=1e-5, atol=1e-4, err_msg=col)
    pd.testing.assert_series_equal(got["available_at"], want["available_at"])


def test_reimport_changes_nothing(world, tmp_path):
    bank = Bank(str(tmp_path / "bank"))
    import_history(bank, [world["csv"]])
    first = _weather(bank)
    parts = sorted(p.name for p in (tmp_path / "bank").rglob("*.parquet"))
    import_history(bank, [world["csv"]])
    assert sorted(p.name for p in (tmp_path / "bank").rglob("*.parquet")) == parts
    pd.testing.assert_frame_equal(_weather(bank), first)


def test_parquet_wide_and_other_units_give_the_same(world, tmp_path):
    long = world["long"]
    wide = long.pivot_table(index=["model", "run_time", "valid_time", "site_id"],
                            columns="variable", values="value").reset_index()
    wide["2t"] = wide["2t"] - 273.15  # in °C, said so by the mapping
    wide = wide.rename(columns={"site_id": "site", "2t": "temp"})
    path = tmp_path / "wide.parquet"
    wide.to_parquet(path, index=False)
    mapping = tmp_path / "map.toml"
    mapping.write_text('[columns]\nsite_id = "site"\n[variables]\ntemp = "2t"\n'
                       '[units]\n"2t" = "degC"\n')
    bank = Bank(str(tmp_path / "bank"))
    import_history(bank, [path], fmt="wide", mapping=Mapping.load(mapping))
    got, want = _weather(bank), _weather(world["extracted"])
    np.testing.assert_allclose(got["t2m_c"], want["t2m_c"], atol=1e-4)
    np.testing.assert_allclose(got["ssrd_wm2"], want["ssrd_wm2"], atol=1e-3)


def test_a_bad_row_is_named_and_nothing_changes(world, tmp_path):
    bank = Bank(str(tmp_path / "bank"))
    import_history(bank, [world["csv"]])
    before = _weather(bank)
    bad = world["long"].copy()
    bad["value"] = bad["value"].astype(object)
    bad.loc[1, "value"] = float(bad.loc[1, "value"]) + 5.0  # a change that must not land
    bad.loc[5, "value"] = "12,5"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"bad\.csv, line 7, column 'value': '12,5' is not a "
                                         r"number"):
        import_history(bank, [path])
    pd.testing.assert_frame_equal(_weather(bank), before)
    report = import_history(bank, [path], skip_bad_rows=True)
    assert report.skipped_bad_rows == 1 and "line 7" in report.bad_examples[0]


@pytest.mark.parametrize(("column", "value", "match"), [
    ("model", "COSMO", r"line 3, column 'model': unknown model 'COSMO'"),
    ("run_time", "yesterday", r"line 3, column 'run_time': 'yesterday' is not a run time"),
    ("valid_time", "2026-11-27T00:00:00Z", r"line 3, column 'valid_time'"),
])
def test_bad_keys_are_named(world, tmp_path, column, value, match):
    bad = world["long"].copy()
    bad[column] = bad[column].astype(object)
    bad.loc[1, column] = value
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match=match):
        import_history(Bank(str(tmp_path / "bank")), [path])


def test_duplicates_unknown_variables_units_and_gaps(world, tmp_path):
    long = world["long"]
    dup = pd.concat([long, long.iloc[[4]]], ignore_index=True)
    path = tmp_path / "dup.csv"
    dup.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"line 6: .* more than once \(again at line "
                                         rf"{len(dup) + 1}"):
        import_history(Bank(str(tmp_path / "b1")), [path])
    extra = long.copy()
    extra.loc[extra.index[:10], "variable"] = "cape"
    extra = extra[~((extra.variable == "2t") & (extra.valid_time.str.contains("T03:00")))]
    extra["unit"] = ""
    path = tmp_path / "extra.csv"
    extra.to_csv(path, index=False)
    report = import_history(Bank(str(tmp_path / "b2")), [path])
    assert report.variables_unmapped == {"cape": 10}
    assert report.gaps == []  # other variables still have step 3
    wrong = long.assign(unit="furlongs")
    path = tmp_path / "unit.csv"
    wrong.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"line 2, column 'unit': unit 'furlongs'"):
        import_history(Bank(str(tmp_path / "b3")), [path])


def test_mapping_errors_name_the_setting(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("[colums]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'colums'"):
        Mapping.load(path)


def test_cli_imports_and_names_a_bad_row_in_one_line(world, tmp_path):
    import subprocess
    import sys

    from child_process import child_env

    (tmp_path / "aggregat.toml").write_text('default_env = "t"\n[env.t]\nroot = "home"\n')
    env = child_env(AGGREGAT_HOME=str(tmp_path / "home"), COLUMNS="200")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "aggregat.cli.main", "weather",
                               "import-history", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    done = run(str(world["csv"]))
    assert done.returncode == 0, done.stderr
    assert "2 run(s) of arome-0025" in done.stdout
    bad = world["long"].assign(model="COSMO")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    proc = run(str(tmp_path / "bad.csv"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.csv, line 2, column 'model'" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
