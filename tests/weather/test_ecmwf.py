"""ECMWF open data (IFS 0.25°): catalogue, index-driven download, extraction of its encodings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
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


# -- fetch: the index, then only our fields by byte range -------------------------------------
@pytest.fixture(scope="module")
def ecmwf_archive(tmp_path_factory):
    """A whole simulated IFS run (31 steps, a small grid) with its .index files."""
    root = tmp_path_factory.mktemp("ecmwf")
    grid = IFS.grid.crop(50, 47, 1, 4)
    files = simulate_run(IFS, RUN, root, packages=["SFC"], grid=grid)
    return root, files


def test_fetch_downloads_only_our_fields_by_byte_range(ecmwf_archive, tmp_path):
    import eccodes
    from archive_server import ArchiveServer

    from aggregat.bank import Bank, read_weather
    from aggregat.weather.datalake import Datalake
    from aggregat.weather.extract import extract_run
    from aggregat.weather.fetch import fetch_run
    from aggregat.weather.sites import Locations

    root, files = ecmwf_archive
    lake = Datalake(str(tmp_path / "lake"))
    with ArchiveServer(root, "/forecasts") as server:
        report = fetch_run(IFS, RUN, lake, base_url=server.base_url, progress=False, workers=4)
        requests = list(server.requests)
    assert report.complete and report.downloaded == len(IFS.steps) == 31
    gets = [r for r in requests if r.method == "GET"]
    assert sum(r.path.endswith(".index") for r in gets) == 31
    grib_gets = [r for r in gets if r.path.endswith(".grib2")]
    assert grib_gets and all(r.range for r in grib_gets)  # never a whole step file
    names = []
    with open(lake.local_path(IFS.datalake_rel(RUN, "SFC", (24, 24))), "rb") as fh:
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            names.append(eccodes.codes_get(h, "shortName"))
            eccodes.codes_release(h)
    assert ECMWF_DECOY not in names and {"2t", "2d", "tp", "tcc"} <= set(names)
    assert sum(f.stat().st_size for f in lake.local_path().rglob("*.grib2")) < \
        sum(f.stat().st_size for f in files)

    bank = Bank(str(tmp_path / "bank"))
    locations = Locations.points(["paris"], [48.85], [2.35])
    extract_run(IFS, RUN, datalake=lake, bank=bank, locations=locations, workers=1)
    frame = read_weather(bank, RUN, RUN + timedelta(hours=90), models=[IFS.id])
    row = frame[frame.valid_time == pd.Timestamp(RUN + timedelta(hours=24))].iloc[0]
    step24 = next(f for f in files if "-24h-" in f.name)
    assert row.t2m_c == pytest.approx(_nearest(step24, "2t", 48.85, 2.35) - 273.15, abs=1e-3)
    assert 0 < row.rh2m_pct <= 100 and 0 <= row.tcc_pct <= 100


def test_a_missing_step_and_a_server_ignoring_range(ecmwf_archive, tmp_path):
    from archive_server import ArchiveServer, Failure

    from aggregat.weather.datalake import Datalake
    from aggregat.weather.fetch import fetch_run

    root, _ = ecmwf_archive
    rel = IFS.archive_rel(RUN, "SFC", (6, 6))
    with ArchiveServer(root, "/forecasts") as server:
        server.fail(rel.removesuffix(".grib2") + ".index", Failure(status=404))
        server.fail(IFS.archive_rel(RUN, "SFC", (9, 9)), Failure(ignore_range=True))
        report = fetch_run(IFS, RUN, Datalake(str(tmp_path / "lake")), base_url=server.base_url,
                           progress=False, workers=4, retries=1, backoff_s=0.01)
    by_group = {f.group: f for f in report.files}
    assert by_group["006H"].status == "missing"
    assert by_group["009H"].status == "failed" and "byte-range" in by_group["009H"].error
    assert report.downloaded == 29


def test_sources_of_an_ecmwf_product(tmp_path):
    from aggregat.config import load_environment
    from aggregat.weather.sources import EcmwfSource, configured_sources

    cfg = tmp_path / "aggregat.toml"
    cfg.write_text('[env.t]\nroot = "x"\n[env.t.weather]\nsources = ["open-data", "aws"]\n'
                   '[env.t.weather.source.open-data]\nkind = "open-data"\n'
                   'base_url = "https://example.org/pnt"\n'
                   '[env.t.weather.source.aws]\nkind = "ecmwf-open-data"\n'
                   'base_url = "https://ecmwf-forecasts.s3.eu-central-1.amazonaws.com"\n')
    env = load_environment("t", cfg)
    mf = configured_sources(env, None, get_product("arome-0025"))
    ifs = configured_sources(env, None, IFS)
    assert [s.name for s in mf] == ["open-data"]
    assert [s.name for s in ifs] == ["aws"] and isinstance(ifs[0], EcmwfSource)
    bare = load_environment("t", _write(tmp_path, '[env.t]\nroot = "x"\n'))
    assert configured_sources(bare, None, IFS)[0].base_url == "https://data.ecmwf.int/forecasts"


def _write(tmp_path, text: str):
    path = tmp_path / "bare.toml"
    path.write_text(text)
    return path


def test_ifs_follows_arome_and_arpege_in_a_target_preference():
    from aggregat.forecast.targets import combine_models

    valid = pd.Timestamp("2026-11-29T12:00Z")
    rows = pd.DataFrame({
        "model": ["arpege-01", "ifs-025", "ifs-025"],
        "run_time": pd.to_datetime(["2026-11-28T00Z", "2026-11-28T00Z", "2026-11-28T00Z"]),
        "available_at": pd.to_datetime(["2026-11-28T04Z", "2026-11-28T08Z", "2026-11-28T08Z"]),
        "valid_time": [valid, valid, valid + pd.Timedelta(hours=1)],
        "t2m_c": [5.0, 6.0, 7.0]})
    out = combine_models(rows, ["arome-0025", "arpege-01", "ifs-025"])
    assert list(out.sort_values("valid_time")["model"]) == ["arpege-01", "ifs-025"]
