"""Extraction on real Météo-France files (MeteoNet ARPEGE GRIB1) equals ecCodes' own decoding."""

from __future__ import annotations

from pathlib import Path

import eccodes
import numpy as np
import pytest

from aggregat.weather.extract import extract_files
from aggregat.weather.sites import Locations

DATA = Path(__file__).parent.parent / "data"
T2M = DATA / "arpege_2m_NW_20180501000000.grib"
PRECIP = DATA / "arpege_PRECIP_NW_20180501000000.grib"


def _reference(path: Path, short_name: str, lats, lons) -> dict[int, np.ndarray]:
    """Values at the nearest grid points, by end step, straight from ecCodes."""
    out = {}
    with open(path, "rb") as fh:
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            if eccodes.codes_get(h, "shortName") == short_name:
                lat0 = eccodes.codes_get_double(h, "latitudeOfFirstGridPointInDegrees")
                lon0 = eccodes.codes_get_double(h, "longitudeOfFirstGridPointInDegrees")
                d = eccodes.codes_get_double(h, "iDirectionIncrementInDegrees")
                ni = eccodes.codes_get_long(h, "Ni")
                i = np.round((np.asarray(lons) - lon0) / d).astype(int)
                j = np.round((lat0 - np.asarray(lats)) / d).astype(int)
                out[eccodes.codes_get_long(h, "endStep")] = eccodes.codes_get_values(h)[j * ni + i]
            eccodes.codes_release(h)
    return out


@pytest.fixture(scope="module")
def sites() -> Locations:
    return Locations.points(["brest", "rennes", "caen"], [48.39, 48.11, 49.18],
                            [-4.49, -1.68, -0.37])


@pytest.mark.parametrize("workers", [1, 2])
def test_temperature_equals_eccodes_nearest(sites, workers):
    frame, report = extract_files([str(T2M)], sites, workers=workers)
    assert not report.partial
    ref = _reference(T2M, "2t", sites.lats, sites.lons)
    assert sorted(frame["step_h"].unique()) == sorted(ref)
    for step, values in ref.items():
        got = frame[frame.step_h == step].set_index("location").loc[sites.ids, "t2m_c"]
        np.testing.assert_allclose(got.to_numpy(), (values - 273.15).astype(np.float32), atol=1e-4)


def test_precipitation_is_deaccumulated(sites):
    frame, _ = extract_files([str(PRECIP)], sites, workers=1)
    ref = _reference(PRECIP, "tp", sites.lats, sites.lons)
    steps = sorted(ref)
    for prev, step in zip(steps, steps[1:], strict=False):
        got = frame[frame.step_h == step].set_index("location").loc[sites.ids, "tp_mm"].to_numpy()
        expected = np.clip(ref[step] - ref[prev], 0, None)
        np.testing.assert_allclose(got, expected, atol=1e-3)
    assert (frame["tp_mm"].dropna() >= 0).all()


def test_site_outside_the_grid_is_a_clear_error(tmp_path):
    from aggregat.errors import ConfigError

    far = Locations.points(["nice"], [43.7], [7.26])  # the NW crop stops near 2°E
    with pytest.raises(ConfigError, match=r"site 'nice' .* outside"):
        extract_files([str(T2M)], far, workers=1)


def test_extract_file_cli_writes_parquet(tmp_path):
    import subprocess
    import sys

    import pandas as pd

    sites_csv = tmp_path / "sites.csv"
    sites_csv.write_text("id,name,lat,lon\nbrest,Brest,48.39,-4.49\n")
    out = tmp_path / "out.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "aggregat.cli.main", "weather", "extract-file", str(T2M),
         str(PRECIP), "--sites", str(sites_csv), "--out", str(out), "--workers", "1"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(out)
    assert {"t2m_c", "rh2m_pct", "tp_mm"} <= set(frame.columns)
    assert frame["location"].unique().tolist() == ["brest"]
    assert frame["valid_time"].dt.tz is not None


def test_corrupt_file_is_reported_by_name(tmp_path, sites):
    bad = tmp_path / "cut.grib"
    bad.write_bytes(T2M.read_bytes()[:50_000])
    frame, report = extract_files([str(bad), str(PRECIP)], sites, workers=1)
    assert report.partial
    assert report.bad_files[0][0] == str(bad) and "truncated" in report.bad_files[0][1]
    assert "tp_mm" in frame.columns  # the good file still arrived
