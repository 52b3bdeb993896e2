"""ECMWF open data (IFS 0.25°): catalogue, index-driven selection, and extraction of its encodings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

import aggregat
from aggregat.errors import CorruptFileError
from aggregat.weather import ecmwf
from aggregat.weather.humidity import dew_point, relative_humidity
from aggregat.weather.products import get_product
from aggregat.weather.simulate import ECMWF_DECOY, simulate_run

RUN = datetime(2026, 11, 28, tzinfo=UTC)
IFS = get_product("ifs-025")


def test_catalogue_knows_the_ecmwf_layout():
    assert get_product("ecmwf") is IFS
    assert IFS.steps[:3] == (0, 3, 6) and IFS.steps[-1] == 90
    url = IFS.url("https://data.ecmwf.int/forecasts", RUN, "SFC", (24, 24))
    assert url == ("https://data.ecmwf.int/forecasts/20261128/00z/ifs/0p25/oper/"
                   "20261128000000-24h-oper-fc.grib2")
    assert IFS.index_url("https://x/f", RUN, (24, 24)).endswith("20261128000000-24h-oper-fc.index")
    assert IFS.datalake_rel(RUN, "SFC", (24, 24)) == (
        "ifs-025/2026-11-28T00Z/SFC/ifs__0p25__SFC__024H__2026-11-28T00:00:00Z.grib2")


def _index(*entries):
    return "\n".join(json.dumps({"levtype": lev, "param": p, "step": "3", "_offset": o,
                                 "_length": n}) for p, lev, o, n in entries) + "\n"


def test_index_selects_only_our_surface_fields_and_merges_adjacent_ranges():
    text = _index(("skt", "sfc", 0, 10), ("2t", "sfc", 10, 5), ("2d", "sfc", 15, 5),
                  ("t", "pl", 20, 7), ("tp", "sfc", 27, 3), ("tcc", "sfc", 30, 4))
    entries = ecmwf.parse_index(text)
    wanted = ecmwf.wanted_entries(IFS, entries, ["SFC"])
    assert [e.param for e in wanted] == ["2t", "2d", "tp", "tcc"]
    assert ecmwf.byte_ranges(wanted) == [(10, 19), (27, 33)]
    assert set(ecmwf.missing_fields(IFS, entries, ["SFC"])) == {"10u", "10v", "msl", "ssrd"}


def test_a_bad_index_line_is_named():
    with pytest.raises(CorruptFileError, match=r"x\.index, line 2"):
        ecmwf.parse_index('{"param": "2t", "_offset": 0, "_length": 3}\nnot json\n', "x.index")


def test_humidity_and_dew_point_are_inverse():
    t = np.array([-10.0, 0.0, 15.0, 30.0])
    rh = np.array([30.0, 60.0, 90.0, 100.0])
    assert np.allclose(relative_humidity(t, dew_point(t, rh)), rh)


def _nearest(path, short_name: str, lat: float, lon: float) -> float:
    import eccodes

    with open(path, "rb") as fh:
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            try:
                if eccodes.codes_get(h, "shortName") == short_name:
                    return eccodes.codes_grib_find_nearest(h, lat, lon)[0]["value"]
            finally:
                eccodes.codes_release(h)
    raise AssertionError(f"no {short_name} in {path}")


def test_ecmwf_files_extract_in_bank_units(tmp_path):
    """ECMWF encodes precipitation in m, cloud cover as a fraction and gives the dew point: the
    bank gets mm, % and a relative humidity, as from Météo-France."""
    grid = IFS.grid.crop(52, 42, -5, 9)
    files = simulate_run(IFS, RUN, tmp_path, packages=["SFC"], grid=grid, steps=[0, 3, 6])
    sites = tmp_path / "sites.csv"
    sites.write_text("id,name,lat,lon\nparis,Paris,48.85,2.35\n")
    frame = aggregat.extract_files([str(f) for f in files], str(sites), workers=1)
    row = frame[frame.step_h == 6].iloc[0]
    assert 0.0 <= row.tcc_pct <= 100.0 and row.tcc_pct > 1.0  # a percentage, not a fraction
    assert 0.0 < row.rh2m_pct <= 100.0
    assert row.d2m_c <= row.t2m_c + 1e-3
    tp_m = {step: _nearest(files[i], "tp", 48.85, 2.35) for i, step in ((1, 3), (2, 6))}
    assert row.tp_mm == pytest.approx((tp_m[6] - tp_m[3]) * 1000.0, abs=1e-3)
    assert row.tcc_pct == pytest.approx(_nearest(files[2], "tcc", 48.85, 2.35) * 100.0, abs=1e-3)
    # the decoy field is in the files (the download must skip it), not in the catalogue
    assert f"{ECMWF_DECOY}_surface0_k" in frame.columns
