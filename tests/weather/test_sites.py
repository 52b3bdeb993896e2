"""Sites CSV and areas GeoJSON: happy paths and one-line errors naming file and line."""

from __future__ import annotations

import json

import pytest

from aggregat.errors import InputError
from aggregat.weather.sites import load_areas, load_locations, load_sites


def test_sites_with_optional_columns(tmp_path):
    path = tmp_path / "sites.csv"
    path.write_text("id,name,lat,lon,weight,group\nA,Usine A,48.8,2.3,2.5,north\nB,B,45.7,4.8,,\n")
    locations, attrs = load_sites(path)
    assert locations.ids == ["A", "B"]
    assert attrs["A"] == {"name": "Usine A", "weight": 2.5, "group": "north"}
    assert attrs["B"]["weight"] == 1.0


@pytest.mark.parametrize("body, message", [
    ("id,name,lat\nA,A,48\n", "missing column"),
    ("id,name,lat,lon\nA,A,48,x\n", "line 2: column lon is 'x'"),
    ("id,name,lat,lon\nA,A,48,2\nA,B,47,2\n", "line 3: duplicate site id 'A'"),
    ("id,name,lat,lon\nA,A,98,2\n", "outside the globe"),
    ("id,name,lat,lon\n", "no sites"),
])
def test_bad_sites_are_named(tmp_path, body, message):
    path = tmp_path / "sites.csv"
    path.write_text(body)
    with pytest.raises(InputError, match=message) as info:
        load_sites(path)
    assert str(path) in str(info.value)


def test_areas_polygons_and_bbox(tmp_path):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "idf", "geometry": {"type": "Polygon", "coordinates": [
            [[1.5, 48.1], [3.5, 48.1], [3.5, 49.2], [1.5, 49.2], [1.5, 48.1]]]}},
        {"type": "Feature", "properties": {"id": "lyon"}, "geometry": None,
         "bbox": [4.6, 45.5, 5.1, 45.9]},
    ]}
    path = tmp_path / "areas.geojson"
    path.write_text(json.dumps(doc))
    areas = load_areas(path)
    assert [a.id for a in areas] == ["idf", "lyon"]
    assert areas[1].bbox == (4.6, 45.5, 5.1, 45.9)
    sites = tmp_path / "s.csv"
    sites.write_text("id,name,lat,lon\nidf,x,48,2\n")
    with pytest.raises(InputError, match="also a site id"):
        load_locations(sites, path)
