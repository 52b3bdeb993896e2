"""The simulator writes files a Météo-France client cannot tell from real ones (names, headers,
grids, packing, bitmaps, accumulations) and reproduces driven weather at the nearest points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from aggregat.errors import ConfigError, InputError
from aggregat.weather.products import get_product, run_label
from aggregat.weather.simulate import (
    PointDriver,
    crop_for_points,
    domain_mask,
    grid_axes,
    nearest_index,
    simulate_archive,
    simulate_run,
)

RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)


def _by_step(messages, name_key):
    """{(param key): {end step: message}} for the messages of several files."""
    out: dict = {}
    for m in messages:
        out.setdefault(name_key(m), {})[m["endStep"]] = m
    return out


def _key(m):
    return (m["discipline"], m["parameterCategory"], m["parameterNumber"],
            m["typeOfFirstFixedSurface"], m["level"])


def _all_messages(paths, reader):
    return [m for p in sorted(paths) for m in reader(p)]


def test_files_follow_the_catalogue_layout(sim_arome):
    product, out = sim_arome["product"], sim_arome["plain_dir"]
    groups = [(0, 6), (7, 12), (13, 18)]  # those holding STEPS
    expected = {out / run_label(RUN) / "arome" / "0025" / pkg / product.filename(RUN, pkg, g)
                for pkg in ("SP1", "SP2") for g in groups}
    assert set(sim_arome["plain"]) == expected
    assert all(p.exists() for p in expected)
    assert product.url("https://x", RUN, "SP1", (7, 12)).endswith(
        product.archive_rel(RUN, "SP1", (7, 12)))
    assert not list(out.rglob(".tmp-*"))


def test_messages_in_catalogue_order_with_correct_headers(sim_arome, grib_reader):
    product, steps = sim_arome["product"], set(sim_arome["steps"])
    for path in sim_arome["plain"]:
        pkg = path.parent.name
        group = product.group_of(path.name.split("__")[3])
        expected = [(s, p) for s in product.group_steps(group) if s in steps
                    for p in product.parameters(pkg) if s in product.expected_steps(p, group)]
        messages = grib_reader(path)
        assert [(m["endStep"], _key(m)) for m in messages] == [
            (s, p.key[:5]) for s, p in expected]
        for m, (step, p) in zip(messages, expected, strict=True):
            assert (m["centre"], m["dataDate"], m["dataTime"]) == (85, 20261128, 0)
            assert (m["packingType"], m["stepUnits"]) == ("grid_ccsds", 1)
            constant = np.nanmin(m["values"]) == np.nanmax(m["values"])  # ssrd at night
            assert m["bitsPerValue"] == (0 if constant else 16)
            if p.statistic is None:
                assert m["productDefinitionTemplateNumber"] == 0
                assert m["startStep"] == step
            else:
                assert m["productDefinitionTemplateNumber"] == 8
                assert m["typeOfStatisticalProcessing"] == p.statistic
                assert m["startStep"] == (0 if p.accumulated_from_start else step - 1)
    # Accumulations and gusts have no step-0 message.
    first = grib_reader(sim_arome["plain"][0], values=False)
    assert {m["parameterNumber"] for m in first if m["endStep"] == 0}.isdisjoint({7, 8, 22})


def test_grid_geometry_decodes_to_the_catalogue_grid(tmp_path, grib_reader):
    import eccodes

    product = get_product("arome-0025")
    grid = product.grid.crop(38.5, 37.5, -12.0, -10.5)  # south-west corner, negative longitudes
    path = simulate_run(product, RUN, tmp_path, grid=grid, steps=[0], packages=["SP2"])[0]
    m = grib_reader(path, values=False)[0]
    assert (m["Ni"], m["Nj"]) == (grid.ni, grid.nj)
    assert m["latitudeOfFirstGridPointInDegrees"] == pytest.approx(grid.lat_first)
    assert m["latitudeOfLastGridPointInDegrees"] == pytest.approx(grid.lat_last)
    assert m["longitudeOfFirstGridPointInDegrees"] == pytest.approx(348.0)  # -12 in GRIB2
    assert m["longitudeOfLastGridPointInDegrees"] == pytest.approx(349.5)
    with open(path, "rb") as f:
        h = eccodes.codes_grib_new_from_file(f)
        lats = eccodes.codes_get_array(h, "latitudes")
        lons = eccodes.codes_get_array(h, "longitudes")
        eccodes.codes_release(h)
    lat, lon = grid_axes(grid)
    np.testing.assert_allclose(lats, np.repeat(lat, grid.ni), atol=1e-6)
    np.testing.assert_allclose(np.where(lons > 180, lons - 360, lons), np.tile(lon, grid.nj),
                               atol=1e-6)


def test_arpege_grid_across_greenwich(tmp_path, grib_reader):
    product = get_product("arpege-01")
    grid = crop_for_points(product, [47.0, 48.0], [-1.0, 1.0], margin_deg=0.3)
    assert grid.lon_first == pytest.approx(-1.3) and grid.lon_last == pytest.approx(1.3)
    paths = simulate_run(product, RUN, tmp_path, grid=grid, steps=[0, 1])
    assert [p.name for p in paths] == [
        f"arpege__01__{pkg}__000H012H__2026-11-28T00:00:00Z.grib2" for pkg in ("SP1", "SP2")]
    m = grib_reader(paths[0])[0]
    assert m["longitudeOfFirstGridPointInDegrees"] == pytest.approx(358.7)
    assert m["longitudeOfLastGridPointInDegrees"] == pytest.approx(1.3)
    assert m["bitmapPresent"] == 0 and not np.isnan(m["values"]).any()  # ARPEGE: no bitmap


def test_three_hourly_steps_of_arpege_025(tmp_path, grib_reader):
    grid = crop_for_points("arpege-025", [46.0], [2.0], margin_deg=1.0)
    paths = simulate_run("arpege-025", RUN, tmp_path, grid=grid, steps=[48, 51], packages=["SP1"])
    assert [p.name.split("__")[3] for p in paths] == ["025H048H", "049H072H"]
    starts = {(m["parameterNumber"], m["endStep"]): m["startStep"]
              for m in _all_messages(paths, grib_reader)
              if m["productDefinitionTemplateNumber"] == 8}
    assert starts[(22, 51)] == 48  # gust: maximum since the previous (3-hourly) step
    assert starts[(7, 51)] == 0 and starts[(8, 48)] == 0  # ssrd, tp: from the run start


def test_points_outside_the_arome_domain_are_missing(tmp_path, grib_reader):
    product = get_product("arome-0025")
    grid = product.grid.crop(40.0, 37.5, -12.0, -8.0)  # holds the cut south-west corner
    mask = domain_mask(product, grid)
    assert mask is not None and 0 < mask.sum() < mask.size
    assert mask[-1, 0] and not mask[0, -1]  # (37.5N, 12W) out, (40N, 8W) in
    paths = simulate_run(product, RUN, tmp_path, grid=grid, steps=[0, 1])
    for m in _all_messages(paths, grib_reader):
        assert m["bitmapPresent"] == 1 and m["numberOfMissing"] == mask.sum()
        np.testing.assert_array_equal(np.isnan(m["values"]), mask.ravel())
    inland = product.grid.crop(49.0, 48.0, 2.0, 3.0)
    assert domain_mask(product, inland) is None
    assert domain_mask(get_product("arpege-01"), get_product("arpege-01").grid) is None
    full = domain_mask(get_product("arome-001"), get_product("arome-001").grid)
    assert 0.15 < full.mean() < 0.19  # as in real AROME 0.01° files


def test_values_are_realistic(sim_arome, grib_reader):
    msgs = _by_step(_all_messages(sim_arome["plain"], grib_reader), _key)

    def field(name_key, step):
        return msgs[name_key][step]["values"]

    t2m, rh, msl = (0, 0, 0, 103, 2), (0, 1, 1, 103, 2), (0, 3, 1, 101, 0)
    ws, gust = (0, 2, 1, 103, 10), (0, 2, 22, 103, 10)
    ssrd, tp = (0, 4, 7, 1, 0), (0, 1, 8, 1, 0)
    clouds = [(0, 6, n, 1, 0) for n in (1, 3, 4, 5)]
    for s in (1, 13):
        assert 250 < field(t2m, s).min() and field(t2m, s).max() < 300  # K, November
        assert 0 <= field(rh, s).min() and field(rh, s).max() <= 100.01
        assert 96_000 < field(msl, s).min() and field(msl, s).max() < 106_000
        assert (field(gust, s) >= field(ws, s) - msgs[ws][s]["precision"]).all()
        tcc, *layers = (field(c, s) for c in clouds)
        assert 0 <= tcc.min() and tcc.max() <= 100.01
        assert (tcc >= np.max(layers, axis=0) - 0.01).all()  # random overlap
    assert np.allclose(field(ssrd, 3), 0.0)  # night
    day = (field(ssrd, 14) - field(ssrd, 12)) / 7200
    assert 20 < day.mean() < 500  # W/m², a November afternoon
    for key in (ssrd, tp):
        steps = sorted(msgs[key])
        for a, b in zip(steps, steps[1:], strict=False):
            tol = 2 * msgs[key][b]["precision"]
            assert (field(key, b) >= field(key, a) - tol).all()  # non-decreasing
    assert field(tp, 14).max() < 14 * 20  # kg/m², no absurd rain
    # Smooth: neighbouring points differ little.
    assert np.abs(np.diff(field(t2m, 7).reshape(sim_arome["grid"].nj, -1), axis=1)).max() < 1.0


def test_upper_air_package(tmp_path, grib_reader):
    grid = get_product("arome-0025").grid.crop(46.5, 45.5, 4.0, 5.0)
    path = simulate_run("arome-0025", RUN, tmp_path, grid=grid, steps=[0], packages=["IP1"])[0]
    t850, z500 = grib_reader(path)
    assert (t850["typeOfFirstFixedSurface"], t850["level"]) == (100, 850)
    assert (z500["typeOfFirstFixedSurface"], z500["level"]) == (100, 500)
    assert 240 < t850["values"].min() and t850["values"].max() < 300  # K
    assert 49_000 < z500["values"].min() and z500["values"].max() < 59_000  # m²/s²


def test_afternoons_are_warmer_than_nights_on_average():
    from aggregat.weather.simfields import SyntheticWeather

    lat, lon = grid_axes(get_product("arome-0025").grid.crop(49.0, 48.0, 2.0, 3.0))
    diffs = []
    for seed in range(8):  # averaging over seeds removes the passing weather systems
        w = SyntheticWeather(lat, lon, RUN, seed)
        diffs.append((w.instant(14)["t2m"] - w.instant(4)["t2m"]).mean())
    assert 1.5 < np.mean(diffs) < 8.0


def test_driver_values_are_reproduced_at_nearest_points(sim_arome, grib_reader):
    grid, driver, run = sim_arome["grid"], sim_arome["driver"], sim_arome["run"]
    idx = nearest_index(grid, driver.lats, driver.lons)
    driven = _by_step(_all_messages(sim_arome["driven"], grib_reader), _key)
    plain = _by_step(_all_messages(sim_arome["plain"], grib_reader), _key)
    series = driver.series
    instants = {"t2m": ((0, 0, 0, 103, 2), 273.15), "rh2m": ((0, 1, 1, 103, 2), 0.0),
                "u10": ((0, 2, 2, 103, 10), 0.0), "v10": ((0, 2, 3, 103, 10), 0.0),
                "lcc": ((0, 6, 3, 1, 0), 0.0)}
    for name, (key, offset) in instants.items():
        for step, m in driven[key].items():
            want = series[name].loc[run + timedelta(hours=step)].to_numpy() + offset
            got = m["values"][idx]
            gap = np.isnan(want)
            np.testing.assert_allclose(got[~gap], want[~gap], atol=m["precision"])
            np.testing.assert_allclose(got[gap], plain[key][step]["values"][idx][gap],
                                       atol=m["precision"])  # missing -> background
    assert np.isnan(series["t2m"].to_numpy()).sum() == 1
    # Derived wind speed follows the driven components.
    ws = driven[(0, 2, 1, 103, 10)][7]
    u = series["u10"].loc[run + timedelta(hours=7)].to_numpy()
    v = series["v10"].loc[run + timedelta(hours=7)].to_numpy()
    np.testing.assert_allclose(ws["values"][idx], np.hypot(u, v), atol=2 * ws["precision"])
    # De-accumulated radiation and precipitation give back the hourly driver values.
    for name, key, per_s in (("ssrd", (0, 4, 7, 1, 0), 3600.0), ("tp", (0, 1, 8, 1, 0), 1.0)):
        steps = [0] + sorted(driven[key])
        for a, b in zip(steps, steps[1:], strict=False):
            acc_b = driven[key][b]["values"][idx]
            acc_a = driven[key][a]["values"][idx] if a else 0.0
            got = (acc_b - acc_a) / per_s / (b - a)
            hours = [run + timedelta(hours=h) for h in range(a + 1, b + 1)]
            want = series[name].loc[hours].mean().to_numpy()
            tol = 2 * driven[key][b]["precision"] / per_s
            np.testing.assert_allclose(got, want, atol=tol)
    # Elsewhere the fields are the background.
    t_key = instants["t2m"][0]
    other = np.setdiff1d(np.arange(grid.size), idx)
    np.testing.assert_allclose(driven[t_key][7]["values"][other],
                               plain[t_key][7]["values"][other], atol=0.01)


def test_same_seed_same_bytes_other_seed_other_values(sim_arome, tmp_path, grib_reader):
    again = simulate_run(sim_arome["product"], RUN, tmp_path / "a", grid=sim_arome["grid"],
                         steps=sim_arome["steps"], seed=7)
    for a, b in zip(sim_arome["plain"], again, strict=True):
        assert a.read_bytes() == b.read_bytes()
    other = simulate_run(sim_arome["product"], RUN, tmp_path / "b", grid=sim_arome["grid"],
                         steps=[0], seed=8, packages=["SP1"])
    v7 = grib_reader(sim_arome["plain"][0])[0]["values"]
    v8 = grib_reader(other[0])[0]["values"]
    assert np.abs(v7 - v8).max() > 0.5


def test_a_crop_carries_the_values_of_the_larger_grid(sim_arome, tmp_path, grib_reader):
    grid = sim_arome["grid"]
    inner = grid.crop(grid.lat_first - 0.1, grid.lat_last + 0.2, grid.lon_first + 0.15,
                      grid.lon_last - 0.1)
    path = simulate_run(sim_arome["product"], RUN, tmp_path, grid=inner, steps=[0], seed=7,
                        packages=["SP1"])[0]
    big = grib_reader(sim_arome["plain"][0])[0]
    small = grib_reader(path)[0]
    lat, lon = grid_axes(inner)
    idx = nearest_index(grid, np.repeat(lat, inner.ni), np.tile(lon, inner.nj))
    tol = big["precision"] + small["precision"]
    np.testing.assert_allclose(small["values"], big["values"][idx], atol=tol)


def test_options_workers_simple_packing_and_archive(sim_arome, tmp_path, grib_reader):
    kw = dict(grid=sim_arome["grid"], steps=[0, 1, 7], seed=7, packages=["SP1"])
    serial = simulate_run("arome-0025", RUN, tmp_path / "s", **kw)
    pooled = simulate_run("arome-0025", RUN, tmp_path / "p", workers=2, **kw)
    assert [p.read_bytes() for p in serial] == [p.read_bytes() for p in pooled]
    simple = simulate_run("arome", RUN, tmp_path / "g", packing="grid_simple", **kw)
    assert {m["packingType"] for m in grib_reader(simple[0], values=False)} == {"grid_simple"}
    runs = [RUN, RUN + timedelta(hours=3)]
    files = simulate_archive("arome-0025", runs, tmp_path / "arch", **kw)
    assert {p.parents[3].name for p in files} == {run_label(r) for r in runs}


def test_crop_for_points_on_the_global_grid():
    grid = crop_for_points("arpege-025", [43.3, 51.0], [-4.5, 7.7], margin_deg=0.5)
    assert grid.lon_first == pytest.approx(-5.0) and grid.lon_last == pytest.approx(8.25)
    assert grid.lat_first >= 51.5 and grid.lat_last <= 42.8
    idx = nearest_index(grid, [43.3, 51.0], [-4.5, 7.7])
    assert idx.min() >= 0 and idx.max() < grid.size


def test_nearest_index_takes_the_nearest_point_within_half_a_cell():
    grid = get_product("arome-0025").grid
    idx = nearest_index(grid, [55.4, 55.39, 37.5, 46.0], [-12.01, -11.985, 16.01, 2.013])
    assert list(idx) == [0, 1, grid.size - 1, int(round((55.4 - 46.0) / 0.025)) * grid.ni + 561]
    with pytest.raises(ConfigError, match="outside the grid"):
        nearest_index(grid, [46.0], [-12.02])


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="packing"):
        simulate_run("arome-0025", RUN, tmp_path, packing="grid_jpeg")
    with pytest.raises(ConfigError, match="no step 60"):
        simulate_run("arome-0025", RUN, tmp_path, steps=[60])
    with pytest.raises(ConfigError, match="no run"):
        simulate_run("arome-0025", RUN + timedelta(hours=1), tmp_path)
    with pytest.raises(ConfigError, match="outside the grid"):
        crop_for_points("arome-0025", [60.0], [2.0])
    times = pd.date_range(RUN, periods=2, freq="h")
    with pytest.raises(InputError, match="unknown variable"):
        PointDriver([48.0], [2.0], ["a"], {"snow": pd.DataFrame({"a": [1, 2]}, index=times)})
    with pytest.raises(InputError, match="duplicate"):
        PointDriver([48.0], [2.0], ["a"], {"t2m": pd.DataFrame({"a": [1, 2]}, index=times[[0, 0]])})
    driver = PointDriver([48.0], [2.0], ["a"], {"tp_mm": pd.DataFrame({"a": [1, -2]}, index=times)})
    grid = get_product("arome-0025").grid.crop(48.5, 47.5, 1.5, 2.5)
    with pytest.raises(InputError, match="negative tp"):
        simulate_run("arome-0025", RUN, tmp_path, grid=grid, steps=[0, 1, 2], driver=driver)
    with pytest.raises(ConfigError, match="outside the grid"):
        simulate_run("arome-0025", RUN, tmp_path, grid=grid, steps=[0],
                     driver=PointDriver([40.0], [2.0], ["x"], {}))
