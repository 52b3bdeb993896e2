"""Grid indices and weights: nearest, bilinear, area mean, bitmaps, outside points."""

from __future__ import annotations

import numpy as np
import pytest

from aggregat.errors import ConfigError
from aggregat.weather.grib import GridGeometry
from aggregat.weather.sampling import build_sampler
from aggregat.weather.sites import Area, Locations

# 11 x 6 grid, 1° spacing, from 50N 10W (north to south).
GEOM = GridGeometry(lat_first=50, lon_first=-10, lat_last=45, lon_last=0, dlat=1, dlon=1, ni=11,
                    nj=6, j_positive=False, i_negative=False)
LAT, LON = np.meshgrid(50 - np.arange(6.0), -10 + np.arange(11.0), indexing="ij")
FIELD = (LAT * 100 + LON).ravel()  # value encodes the point


def test_nearest_picks_the_closest_point():
    loc = Locations.points(["a", "b"], [47.2, 49.6], [-3.4, -9.9])
    got = build_sampler(GEOM, loc).sample(FIELD)
    np.testing.assert_allclose(got, [47 * 100 - 3, 50 * 100 - 10])


def test_bilinear_is_exact_on_a_linear_field():
    loc = Locations.points(["a"], [47.25], [-3.5])
    got = build_sampler(GEOM, loc, "bilinear").sample(FIELD)
    np.testing.assert_allclose(got, [47.25 * 100 - 3.5], rtol=1e-6)


def test_missing_point_gives_nan_never_a_number():
    field = FIELD.copy()
    field[3 * 11 + 7] = np.nan  # 47N, 3W
    loc = Locations.points(["a", "b"], [47.0, 47.0], [-3.0, -2.0])
    nearest = build_sampler(GEOM, loc).sample(field)
    assert np.isnan(nearest[0]) and nearest[1] == 47 * 100 - 2
    one = Locations.points(["a"], [47.5], [-3.5])
    bilinear = build_sampler(GEOM, one, "bilinear").sample(field)
    assert np.isnan(bilinear[0])


def test_area_mean_over_points_inside_polygon():
    square = Area("sq", (((-4.5, 46.5), (-1.5, 46.5), (-1.5, 48.5), (-4.5, 48.5), (-4.5, 46.5)),))
    loc = Locations(areas=(square,))
    got = build_sampler(GEOM, loc).sample(FIELD)
    inside = [lat * 100 + lon for lat in (47, 48) for lon in (-4, -3, -2)]
    np.testing.assert_allclose(got, [np.mean(inside)])


def test_point_outside_grid_names_the_site():
    loc = Locations.points(["far"], [40.0], [-3.0])
    with pytest.raises(ConfigError, match="'far'.*outside the test grid"):
        build_sampler(GEOM, loc, grid_name="the test grid")


def test_global_grid_wraps_longitudes():
    geom = GridGeometry(lat_first=90, lon_first=0, lat_last=-90, lon_last=359, dlat=1, dlon=1,
                        ni=360, nj=181, j_positive=False, i_negative=False)
    lon = np.arange(360.0)[None, :].repeat(181, 0)
    loc = Locations.points(["w"], [0.0], [-0.6])  # 359.4 -> nearest column 359
    assert build_sampler(geom, loc).sample(lon.ravel())[0] == 359
    bil = build_sampler(geom, Locations.points(["w"], [0.0], [-0.25]), "bilinear")
    assert bil.idx.max() < 360 * 181
