"""``extract-file`` on GRIB of any centre and any grid (issue 14, part 4).

Real files of other geometries (EPyGrAM's Lambert, Mercator, polar stereographic and reduced
Gaussian ARPEGE files, tests/data/README.md) must give ecCodes' nearest grid point; files padded
between messages as MARS writes them must extract, a truncated message must not; GRIB1 and GRIB2
may share a file; vertical levels and ensemble members must not overwrite each other.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import eccodes
import numpy as np
import pandas as pd
import pytest

from aggregat import api
from aggregat.errors import ConfigError, CorruptFileError, InputError
from aggregat.weather.datalake import message_offsets
from child_process import child_env

DATA = Path(__file__).parent.parent / "data"
KEYS = {"model", "run_time", "available_at", "valid_time", "step_h", "location", "member"}


def _messages(path: Path) -> list[bytes]:
    out = []
    with open(path, "rb") as fh:
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            out.append(eccodes.codes_get_message(h))
            eccodes.codes_release(h)
    return out


def _grid(path: Path, index: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latitudes, longitudes, values) ecCodes gives for a message."""
    h = eccodes.codes_new_from_message(_messages(path)[index])
    try:
        return (eccodes.codes_get_array(h, "latitudes"), eccodes.codes_get_array(h, "longitudes"),
                eccodes.codes_get_values(h))
    finally:
        eccodes.codes_release(h)


def _xyz(lats, lons) -> np.ndarray:
    la, lo = np.radians(lats), np.radians(lons)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _brute_nearest(lats, lons, site_lat: float, site_lon: float) -> int:
    """Index of the grid point nearest a site, by brute force over every point."""
    return int(np.argmin(((_xyz(lats, lons) - _xyz([site_lat], [site_lon])) ** 2).sum(axis=1)))


def _sites(tmp_path: Path, lats, lons) -> Path:
    path = tmp_path / "sites.csv"
    rows = [f"s{k},s{k},{la:.6f},{lo:.6f}"
            for k, (la, lo) in enumerate(zip(lats, lons, strict=True))]
    path.write_text("id,name,lat,lon\n" + "\n".join(rows) + "\n")
    return path


def _interior_sites(lats, lons, n: int = 12, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Points between grid points, well inside the domain (not on a grid point)."""
    rng = np.random.default_rng(seed)
    inner = np.flatnonzero((np.abs(lats) < 80) & (lats > np.percentile(lats, 20))
                           & (lats < np.percentile(lats, 80)))
    picks = rng.choice(inner, n, replace=False)
    site_lats = lats[picks] + rng.uniform(-0.02, 0.02, n)
    site_lons = (lons[picks] + rng.uniform(-0.02, 0.02, n) + 180.0) % 360.0 - 180.0
    return site_lats, site_lons


def _value_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in KEYS]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", "weather", "extract-file",
                           *args, "-j", "1"], cwd=tmp_path, env=child_env(), capture_output=True,
                          text=True)


# -- grids -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["epygram_lambert_HN.grb2", "epygram_mercator_HN.grb2",
                                  "epygram_stereopol_HN.grb2", "epygram_gaussC1.grb2",
                                  "epygram_gaussC2.4.grb2"])
def test_other_grids_give_eccodes_nearest_point(tmp_path, name):
    lats, lons, values = _grid(DATA / name)
    site_lats, site_lons = _interior_sites(lats, lons)
    frame = api.extract_files([DATA / name], _sites(tmp_path, site_lats, site_lons), workers=1)
    (column,) = _value_columns(frame)
    got = frame.set_index("location")[column]
    for k, (la, lo) in enumerate(zip(site_lats, site_lons, strict=True)):
        expected = values[_brute_nearest(lats, lons, la, lo)]
        assert got[f"s{k}"] == pytest.approx(expected, rel=1e-6, abs=1e-3), (name, k)


@pytest.mark.parametrize("name", ["epygram_lambert_HN.grb2", "epygram_gaussC1.grb2"])
def test_nearest_matches_codes_grib_find_nearest(tmp_path, name):
    lats, lons, _ = _grid(DATA / name)
    site_lats, site_lons = _interior_sites(lats, lons, n=5, seed=11)
    frame = api.extract_files([DATA / name], _sites(tmp_path, site_lats, site_lons), workers=1)
    (column,) = _value_columns(frame)
    got = frame.set_index("location")[column]
    h = eccodes.codes_new_from_message(_messages(DATA / name)[0])
    try:
        for k, (la, lo) in enumerate(zip(site_lats, site_lons, strict=True)):
            (near,) = eccodes.codes_grib_find_nearest(h, float(la), float(lo))
            # Its index, not its "value": on these second-order packed files the value ecCodes
            # 2.50 returns differs from its own decoded field at that index.
            expected = eccodes.codes_get_values(h)[near["index"]]
            assert got[f"s{k}"] == pytest.approx(expected, rel=1e-6, abs=1e-3), (name, k)
    finally:
        eccodes.codes_release(h)


def test_site_outside_a_lambert_domain_is_named(tmp_path):
    sites = _sites(tmp_path, [48.85], [2.35])  # Paris: 700 km south of this northern domain
    with pytest.raises(ConfigError, match=r"'s0'.*outside.*epygram_lambert_HN.grb2"):
        api.extract_files([DATA / "epygram_lambert_HN.grb2"], sites, workers=1)


def test_bilinear_on_a_projected_grid_is_one_line_naming_file_grid_and_method(tmp_path):
    lats, lons, _ = _grid(DATA / "epygram_lambert_HN.grb2")
    sites = _sites(tmp_path, *_interior_sites(lats, lons, n=2))
    done = _cli(tmp_path, str(DATA / "epygram_lambert_HN.grb2"), "--sites", str(sites),
                "--out", str(tmp_path / "out.parquet"), "--method", "bilinear")
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "epygram_lambert_HN.grb2" in lines[0] and "lambert" in lines[0]
    assert "--method nearest" in lines[0]
    assert not (tmp_path / "out.parquet").exists()


def _rotated_file(path: Path) -> Path:
    """A rotated lat/lon field (south pole at 30S 15E, as COSMO/ICON-LAM use) over France."""
    h = eccodes.codes_grib_new_from_samples("GRIB2")
    try:
        eccodes.codes_set(h, "gridDefinitionTemplateNumber", 1)
        for key, value in (("Ni", 40), ("Nj", 30), ("iDirectionIncrementInDegrees", 0.25),
                           ("jDirectionIncrementInDegrees", 0.25), ("jScansPositively", 1),
                           ("latitudeOfFirstGridPointInDegrees", -12.0),
                           ("longitudeOfFirstGridPointInDegrees", -16.0),
                           ("latitudeOfLastGridPointInDegrees", -12.0 + 29 * 0.25),
                           ("longitudeOfLastGridPointInDegrees", -16.0 + 39 * 0.25),
                           ("latitudeOfSouthernPoleInDegrees", -30.0),
                           ("longitudeOfSouthernPoleInDegrees", 15.0),
                           ("typeOfFirstFixedSurface", 103), ("level", 2),
                           ("bitsPerValue", 24)):
            eccodes.codes_set(h, key, value)
        rng = np.random.default_rng(5)
        eccodes.codes_set_values(h, 280.0 + rng.normal(0, 3, 40 * 30))
        path.write_bytes(eccodes.codes_get_message(h))
    finally:
        eccodes.codes_release(h)
    return path


def test_rotated_grid_nearest_and_bilinear(tmp_path):
    from aggregat.weather.sampling import to_rotated

    path = _rotated_file(tmp_path / "rotated.grib2")
    lats, lons, values = _grid(path)
    # Our rotation of ecCodes' geographic coordinates gives back the regular rotated grid.
    rlat, rlon = to_rotated(lats, lons, south_pole=(-30.0, 15.0), angle=0.0)
    jj, ii = np.divmod(np.arange(lats.size), 40)
    np.testing.assert_allclose(rlat, -12.0 + 0.25 * jj, atol=1e-5)  # ecCodes rounds to 1e-6
    np.testing.assert_allclose(rlon, -16.0 + 0.25 * ii, atol=1e-5)
    site_lats, site_lons = _interior_sites(lats, lons, n=8)
    sites = _sites(tmp_path, site_lats, site_lons)
    near = api.extract_files([path], sites, workers=1).set_index("location")["t2m_c"]
    for k, (la, lo) in enumerate(zip(site_lats, site_lons, strict=True)):
        assert near[f"s{k}"] == pytest.approx(values[_brute_nearest(lats, lons, la, lo)] - 273.15,
                                              abs=1e-3)
    # Bilinear: exact at grid points, inside the four surrounding values elsewhere.
    on_grid = [85, 250, 777]  # inner points (ecCodes' coordinates are rounded to 1e-6)
    both_lats = np.concatenate([lats[on_grid], site_lats])
    both_lons = np.concatenate([lons[on_grid], site_lons])
    bil = api.extract_files([path], _sites(tmp_path, both_lats, both_lons), "bilinear",
                            workers=1).set_index("location")["t2m_c"]
    for k, g in enumerate(on_grid):
        assert bil[f"s{k}"] == pytest.approx(values[g] - 273.15, abs=1e-3)
    s_rlat, s_rlon = to_rotated(site_lats, site_lons, south_pole=(-30.0, 15.0), angle=0.0)
    grid = values.reshape(30, 40)
    for k in range(len(site_lats)):
        j, i = int((s_rlat[k] + 12.0) // 0.25), int((s_rlon[k] + 16.0) // 0.25)
        fy, fx = (s_rlat[k] + 12.0) / 0.25 - j, (s_rlon[k] + 16.0) / 0.25 - i
        expected = ((1 - fx) * (1 - fy) * grid[j, i] + fx * (1 - fy) * grid[j, i + 1]
                    + (1 - fx) * fy * grid[j + 1, i] + fx * fy * grid[j + 1, i + 1])
        assert bil[f"s{len(on_grid) + k}"] == pytest.approx(expected - 273.15, abs=1e-3)


# -- framing -----------------------------------------------------------------------------------
def _padded(messages: list[bytes], block: int = 240, fill: bytes = b"\0") -> bytes:
    """Messages as MARS writes them: each padded with ``fill`` to a multiple of ``block``."""
    out = bytearray()
    for m in messages:
        out += m + fill * (-len(m) % block or block)
    return bytes(out)


def test_mars_padded_file_extracts_like_the_unpadded_one(tmp_path):
    messages = _messages(DATA / "arpege_2m_NW_20180501000000.grib")[:9]
    plain, padded = tmp_path / "plain.grib", tmp_path / "padded.grib"
    plain.write_bytes(b"".join(messages))
    padded.write_bytes(_padded(messages))
    sites = _sites(tmp_path, [48.5, 47.2], [1.5, -1.55])
    expected = api.extract_files([plain], sites, workers=1)
    got = api.extract_files([padded], sites, workers=1)
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) and got["t2m_c"].notna().all()


def test_a_padded_file_on_object_storage_extracts_like_a_local_one(tmp_path):
    import fsspec

    messages = _messages(DATA / "arpege_2m_NW_20180501000000.grib")[:4]
    local = tmp_path / "padded.grib"
    local.write_bytes(_padded(messages))
    url = f"memory://padded-{tmp_path.name}/padded.grib"
    with fsspec.open(url, "wb") as fh:
        fh.write(local.read_bytes())
    sites = _sites(tmp_path, [48.5, 47.2], [1.5, -1.55])
    got = api.extract_files([url], sites, workers=1)
    expected = api.extract_files([local], sites, workers=1)
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) and got["t2m_c"].notna().all()


def test_padded_grib2_keeps_the_fast_path_and_any_filler(tmp_path, sim_arome):
    source = next(p for p in sim_arome["plain"] if "SP1" in str(p))
    messages = _messages(source)
    padded = tmp_path / "padded.grib2"
    padded.write_bytes(b"junk before " + _padded(messages, block=64, fill=b"x"))
    sites = _sites(tmp_path, [48.85], [2.35])
    got = api.extract_files([padded], sites, workers=1)
    expected = api.extract_files([source], sites, workers=1)
    pd.testing.assert_frame_equal(got, expected)


def test_truncated_message_in_a_padded_file_is_still_rejected(tmp_path):
    messages = _messages(DATA / "arpege_2m_NW_20180501000000.grib")[:3]
    data = _padded(messages)
    cut = tmp_path / "cut.grib"
    cut.write_bytes(data[:2 * 7200 + 3000])  # the third message loses its end
    sites = _sites(tmp_path, [48.5], [1.5])
    done = _cli(tmp_path, str(cut), "--sites", str(sites), "--out", str(tmp_path / "o.parquet"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cut.grib" in done.stderr and "truncated" in done.stderr
    assert f"byte {message_offsets(data, padded=True)[2]}" in done.stderr
    # A message whose 7777 is missing at its stated length is corrupt, padding or not.
    broken = bytearray(data)
    end = message_offsets(data, padded=True)[1] + len(messages[1])
    broken[end - 4:end] = b"0000"
    with pytest.raises(CorruptFileError, match="7777"):
        message_offsets(bytes(broken), "broken.grib", padded=True)


def test_datalake_framing_stays_strict(tmp_path):
    """Météo-France packages are unpadded: in the datalake, bytes between messages are
    corruption (fetch and extract_run), only extract-file accepts them."""
    messages = _messages(DATA / "arpege_2m_NW_20180501000000.grib")[:2]
    data = _padded(messages)
    with pytest.raises(CorruptFileError, match="trailing bytes are not GRIB"):
        message_offsets(data, "padded.grib")
    assert message_offsets(data, "padded.grib", padded=True) == [0, 7200]
    with pytest.raises(CorruptFileError, match="no GRIB message"):
        message_offsets(b"\0" * 500, "zeros.grib", padded=True)


# -- editions, levels, members -----------------------------------------------------------------
def test_grib1_and_grib2_in_one_file(tmp_path):
    messages = _messages(DATA / "arpege_2m_NW_20180501000000.grib")[:12]
    mixed = []
    for k, m in enumerate(messages):
        if k % 2:
            h = eccodes.codes_new_from_message(m)
            eccodes.codes_set(h, "edition", 2)
            m = eccodes.codes_get_message(h)
            eccodes.codes_release(h)
        mixed.append(m)
    assert {m[7] for m in mixed} == {1, 2}
    plain, both = tmp_path / "grib1.grib", tmp_path / "mixed.grib"
    plain.write_bytes(b"".join(messages))
    both.write_bytes(b"".join(mixed))
    sites = _sites(tmp_path, [48.5, 47.2], [1.5, -1.55])
    expected = api.extract_files([plain], sites, workers=1)
    got = api.extract_files([both], sites, workers=1)
    assert sorted(got.columns) == sorted(expected.columns)
    assert got["t2m_c"].notna().all()
    # ecCodes repacks the converted messages: equal within their packing precision.
    pd.testing.assert_frame_equal(got[expected.columns], expected, atol=1e-2)


def _field(short_level: tuple[str, int, int], value: float, member: int | None = None,
           step: int = 6) -> bytes:
    """A 2 x 2 regular lat/lon GRIB2 field around Paris: (typeOfLevel, level, paramNumber)."""
    level_type, level, number = short_level
    h = eccodes.codes_grib_new_from_samples("GRIB2")
    try:
        if member is not None:
            eccodes.codes_set(h, "productDefinitionTemplateNumber", 1)
            eccodes.codes_set(h, "perturbationNumber", member)
            eccodes.codes_set(h, "numberOfForecastsInEnsemble", 10)
        for key, v in (("Ni", 2), ("Nj", 2), ("latitudeOfFirstGridPointInDegrees", 49.0),
                       ("longitudeOfFirstGridPointInDegrees", 2.0),
                       ("latitudeOfLastGridPointInDegrees", 48.0),
                       ("longitudeOfLastGridPointInDegrees", 3.0),
                       ("iDirectionIncrementInDegrees", 1.0), ("jDirectionIncrementInDegrees", 1.0),
                       ("discipline", 0), ("parameterCategory", 0), ("parameterNumber", number),
                       ("typeOfLevel", level_type), ("level", level), ("forecastTime", step)):
            eccodes.codes_set(h, key, v)
        eccodes.codes_set_values(h, np.full(4, value))
        return eccodes.codes_get_message(h)
    finally:
        eccodes.codes_release(h)


def test_levels_and_members_do_not_collide(tmp_path):
    path = tmp_path / "levels.grib2"
    path.write_bytes(b"".join([
        _field(("isobaricInhPa", 700, 0), 270.0), _field(("isobaricInhPa", 500, 0), 250.0),
        _field(("heightAboveGround", 2, 0), 281.0, member=1),
        _field(("heightAboveGround", 2, 0), 283.0, member=2),
        _field(("heightAboveGround", 2, 0), 285.0, member=0),
    ]))
    frame = api.extract_files([path], _sites(tmp_path, [48.5], [2.5]), workers=1)
    assert "member" in frame.columns
    by_member = frame.set_index("member")
    assert by_member.loc[1, "t2m_c"] == pytest.approx(281.0 - 273.15, abs=1e-3)
    assert by_member.loc[2, "t2m_c"] == pytest.approx(283.0 - 273.15, abs=1e-3)
    assert by_member.loc[0, "t2m_c"] == pytest.approx(285.0 - 273.15, abs=1e-3)
    levels = [c for c in frame.columns if c.startswith("t_isobaric")]
    assert len(levels) == 2, frame.columns
    values = {c: frame[c].dropna().unique().tolist() for c in levels}
    assert sorted(v for vs in values.values() for v in vs) == [250.0, 270.0]


def test_deterministic_files_have_no_member_column(tmp_path):
    frame = api.extract_files([DATA / "arpege_2m_NW_20180501000000.grib"],
                              _sites(tmp_path, [48.5], [1.5]), workers=1)
    assert "member" not in frame.columns


def test_real_grib1_levels_are_columns_of_their_own(tmp_path):
    """Real AROME Guyane GRIB1: temperature at the surface, 2 m and 850 hPa, one column each,
    each equal to ecCodes' value at the nearest grid point."""
    path = DATA / "epygram_arome_guyane.grib1"
    frame = api.extract_files([path], _sites(tmp_path, [4.93], [-52.33]), workers=1)
    columns = _value_columns(frame)
    assert len(columns) == 3, columns
    h = eccodes.codes_new_from_message(_messages(path)[0])
    try:
        (near,) = eccodes.codes_grib_find_nearest(h, 4.93, -52.33)
    finally:
        eccodes.codes_release(h)
    expected = sorted(_grid(path, k)[2][near["index"]] for k in range(3))
    got = sorted(float(frame[c].iloc[0]) + (273.15 if c.endswith("_c") else 0.0)
                 for c in columns)
    assert got == pytest.approx(expected, abs=1e-3)


def _grib1_ecmwf(mars_type: str, number: int, value: float) -> bytes:
    """A GRIB1 2 m temperature with ECMWF's local section (MARS type and number)."""
    h = eccodes.codes_grib_new_from_samples("GRIB1")
    try:
        for key, v in (("marsType", mars_type), ("number", number), ("paramId", 167),
                       ("Ni", 2), ("Nj", 2), ("latitudeOfFirstGridPointInDegrees", 49.0),
                       ("longitudeOfFirstGridPointInDegrees", 2.0),
                       ("latitudeOfLastGridPointInDegrees", 48.0),
                       ("longitudeOfLastGridPointInDegrees", 3.0),
                       ("iDirectionIncrementInDegrees", 1.0),
                       ("jDirectionIncrementInDegrees", 1.0)):
            eccodes.codes_set(h, key, v)
        eccodes.codes_set_values(h, np.full(4, value))
        return eccodes.codes_get_message(h)
    finally:
        eccodes.codes_release(h)


def test_grib1_ensemble_members_are_keys_but_era5_number_zero_is_not(tmp_path):
    sites = _sites(tmp_path, [48.5], [2.5])
    ens = tmp_path / "ens.grib"
    ens.write_bytes(_grib1_ecmwf("cf", 0, 280.0) + _grib1_ecmwf("pf", 3, 284.0))
    frame = api.extract_files([ens], sites, workers=1).set_index("member")
    assert frame.loc[0, "t2m_c"] == pytest.approx(280.0 - 273.15, abs=1e-2)
    assert frame.loc[3, "t2m_c"] == pytest.approx(284.0 - 273.15, abs=1e-2)
    analysis = tmp_path / "era5.grib"  # deterministic MARS fields carry number 0 too
    analysis.write_bytes(_grib1_ecmwf("an", 0, 280.0))
    assert "member" not in api.extract_files([analysis], sites, workers=1).columns


def test_grid_coordinates_are_read_once_per_grid(tmp_path, monkeypatch):
    from aggregat.weather import decode_task, grib
    from aggregat.weather.sites import Locations

    steps = []
    for step in (0, 1, 2):
        h = eccodes.codes_new_from_message(_messages(DATA / "epygram_lambert_HN.grb2")[0])
        eccodes.codes_set(h, "forecastTime", step)
        steps.append(eccodes.codes_get_message(h))
        eccodes.codes_release(h)
    path = tmp_path / "three.grib2"
    path.write_bytes(b"".join(steps))
    calls = []

    def counting(handle):
        calls.append(1)
        return grib.grid_points(handle)

    monkeypatch.setattr(decode_task, "grid_points", counting)
    monkeypatch.setattr(decode_task, "_SAMPLERS", {})
    lats, lons, _ = _grid(path)
    site_lats, site_lons = _interior_sites(lats, lons, n=3)
    task = decode_task.Task(str(path), Locations.points(["a", "b", "c"], site_lats, site_lons))
    result = decode_task.run_task(task)
    assert len(result.fields) == 3 and calls == [1]


def test_area_on_a_gaussian_grid_is_the_mean_of_the_points_inside(tmp_path):
    import json

    from matplotlib.path import Path as PolygonPath

    name = "epygram_gaussC1.grb2"
    lats, lons, values = _grid(DATA / name)
    ring = [[-2.0, 46.0], [4.0, 45.0], [6.0, 49.5], [-1.0, 50.5], [-2.0, 46.0]]  # (lon, lat)
    areas = tmp_path / "areas.geojson"
    areas.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "france_nw", "properties": {},
         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    frame = api.extract_files([DATA / name], None, areas=str(areas), workers=1)
    (column,) = _value_columns(frame)
    frame_lons = (lons + 180.0) % 360.0 - 180.0
    inside = PolygonPath(np.array(ring)).contains_points(np.column_stack([frame_lons, lats]))
    assert inside.sum() >= 5
    assert float(frame[column].iloc[0]) == pytest.approx(values[inside].mean(), rel=1e-5)


def test_rotated_grid_with_an_angle_goes_through_eccodes_coordinates(tmp_path):
    path = tmp_path / "angle.grib2"
    h = eccodes.codes_new_from_message(_rotated_file(tmp_path / "rotated.grib2").read_bytes())
    try:
        eccodes.codes_set(h, "angleOfRotationInDegrees", 10.0)
        path.write_bytes(eccodes.codes_get_message(h))
    finally:
        eccodes.codes_release(h)
    lats, lons, values = _grid(path)
    site_lats, site_lons = _interior_sites(lats, lons, n=6)
    sites = _sites(tmp_path, site_lats, site_lons)
    near = api.extract_files([path], sites, workers=1).set_index("location")["t2m_c"]
    for k, (la, lo) in enumerate(zip(site_lats, site_lons, strict=True)):
        assert near[f"s{k}"] == pytest.approx(values[_brute_nearest(lats, lons, la, lo)] - 273.15,
                                              abs=1e-3)
    with pytest.raises(InputError, match="rotated_ll grid: bilinear"):
        api.extract_files([path], sites, "bilinear", workers=1)
