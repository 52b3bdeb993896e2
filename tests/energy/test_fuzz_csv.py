"""Fuzz the CSV readers (Hypothesis): `load import`, the backtest CSV reader and the sites file.

Any file gives a result or one AggregatError line (no newline), never another exception or a
hang, and a failed `load import` leaves the bank as it was. Files keep a valid header and get
random cells near the valid formats (times, numbers in both decimal marks, offsets, quotes,
separators inside cells), plus fully random bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aggregat.errors import AggregatError
from aggregat.forecast.core.backtest import read_csv_inputs
from aggregat.load_import import import_load_csv
from aggregat.weather.sites import load_sites

FUZZ = settings(max_examples=80, deadline=5000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

times = st.one_of(
    st.datetimes().map(lambda t: t.strftime("%Y-%m-%d %H:%M")),
    st.datetimes().map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S") + "Z"),
    st.datetimes().map(lambda t: t.isoformat() + "+01:00"),
    st.datetimes().map(lambda t: t.strftime("%d/%m/%Y %H:%M")),
    st.sampled_from(["", "2026-03-29 02:30", "2026-10-25 02:00", "0000-01-01", "9999-12-31 23:59",
                     "2026-02-30 00:00", "now", "24:00", "NaT", "2026-01-05T00:00+99:99"]),
    st.text(max_size=12),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.floats(-1e6, 1e6).map(lambda x: f"{x:.3f}".replace(".", ",")),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "-0", "1_000", "0x10", "1,5", "1.5.5",
                     " 7 ", "NULL", "None", "True"]),
    st.text(max_size=8),
)
targets = st.one_of(st.sampled_from(["a", "b", "", " a ", "é", "a,b", '"q"']), st.text(max_size=6))


def cell(strategy):
    """A cell, sometimes quoted (CSV quoting, or a broken quote)."""
    return st.one_of(strategy, strategy.map(lambda c: f'"{c}"'), strategy.map(lambda c: f'"{c}'))


@st.composite
def csv_text(draw, header: list[str], columns: list) -> str:
    sep = draw(st.sampled_from([",", ";"]))
    rows = [sep.join(header)]
    for _ in range(draw(st.integers(0, 6))):
        rows.append(sep.join(draw(cell(c)) for c in columns))
        if draw(st.integers(0, 9)) == 0:
            rows.append("")  # blank line
    return draw(st.sampled_from(["\n", "\r\n"])).join(rows) + draw(st.sampled_from(["", "\n"]))


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _one_line(exc: AggregatError) -> None:
    assert "\n" not in str(exc) and "\r" not in str(exc), str(exc)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A bank holding some load already, and a folder for the fuzzed files."""
    from aggregat.bank import Bank

    root = tmp_path_factory.mktemp("fuzz-csv")
    bank = Bank(str(root / "bank"))
    seed = root / "seed.csv"
    seed.write_text("time,load_mw\n2026-01-05T00:00Z,1\n2026-01-05T01:00Z,2\n")
    import_load_csv(bank, seed, target="a")
    return root, bank


load_csv = st.one_of(
    csv_text(["time", "target_id", "load_mw"], [times, targets, numbers]),
    csv_text(["time", "load_mw"], [times, numbers]),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)
options = st.fixed_dictionaries({}, optional={
    "unit": st.sampled_from(["MW", "kW", "W", "GW", ""]),
    "tz": st.sampled_from(["UTC", "Europe/Paris", "Nowhere/Land", "", "../../etc"]),
    "time_format": st.sampled_from(["%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M", "%Q", "%", ""]),
    "decimal": st.sampled_from([",", "."]),
    "target": st.sampled_from(["a", "b"]),
})


@FUZZ
@given(text=load_csv, opts=options, raw=st.booleans())
@example(text="time,load_mw\n2026-01-05T00:00Z,1e12\n", opts={}, raw=False)
@example(text="time,target_id,load_mw", opts={}, raw=False)  # found: TypeError on no rows
@example(text="time,target_id,load_mw\n0000-01-01,a,0.0\n", opts={}, raw=False)  # found:
# pandas AssertionError (a year outside its nanosecond range)
@example(text="time,load_mw\n0001-01-01T00:00Z,1\n", opts={"target": "a"}, raw=False)
def test_load_import_is_a_result_or_one_error_and_the_bank_unchanged(world, text, opts, raw):
    root, bank = world
    path = root / "load.csv"
    if raw:  # bytes as they come, not necessarily UTF-8
        path.write_bytes(text.encode("latin-1", "replace"))
    else:
        path.write_text(text, encoding="utf-8", newline="")
    if ";" in text.split("\n", 1)[0]:
        opts = {**opts, "sep": ";"}
    before = _snapshot(root / "bank")
    try:
        report = import_load_csv(bank, path, **opts)
    except AggregatError as exc:
        _one_line(exc)
        assert _snapshot(root / "bank") == before, "a failed import changed the bank"
        return
    assert "\n" not in report.summary()


backtest_csv_text = st.one_of(
    csv_text(["time", "load", "t2m"], [times, numbers, numbers]),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@FUZZ
@given(text=backtest_csv_text, tz=st.sampled_from(["UTC", "Europe/Paris"]))
@example(text="time,load,t2m\n2026-01-05 00:00,1,\n2026-01-05 01:00,2,3,4\n", tz="UTC")
@example(text='time,load,t2m\n2000-01-01 00:00,0.0,"0\n\n"2000-01-01 00:00",0.0,0.0\n',
         tz="UTC")  # found: pandas' multi-line messages (bad row, bad time) made 2-line errors
def test_backtest_csv_reader_is_a_result_or_one_error(tmp_path, text, tz):
    path = tmp_path / "b.csv"
    path.write_text(text, encoding="utf-8", newline="")
    try:
        load, weather = read_csv_inputs([str(path)], "time", "load", ["t2m"], naive_tz=tz)
    except AggregatError as exc:
        _one_line(exc)
        return
    assert len(load) == len(weather)


sites_csv = st.one_of(
    csv_text(["id", "name", "lat", "lon", "weight", "group"],
             [targets, targets, numbers, numbers, numbers, targets]),
    csv_text(["id", "name", "lat", "lon"], [targets, targets, numbers, numbers]),
)


@FUZZ
@given(text=sites_csv, raw=st.binary(max_size=120), use_raw=st.booleans())
@example(text="", raw=b"id,name,lat,lon\n\xff,x,1,2\n", use_raw=True)
def test_sites_reader_is_a_result_or_one_error(tmp_path, text, raw, use_raw):
    path = tmp_path / "sites.csv"
    if use_raw:
        path.write_bytes(raw)
    else:
        path.write_text(text.replace(";", ","), encoding="utf-8", newline="")
    try:
        locations, attrs = load_sites(path)
    except AggregatError as exc:
        _one_line(exc)
        return
    assert len(locations) == len(attrs) > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3), max_leaves=10)
coords = st.lists(st.lists(st.floats(-200, 200) | json_values, min_size=0, max_size=3),
                  max_size=5)
feature = st.fixed_dictionaries({}, optional={
    "id": json_values, "bbox": st.lists(st.floats() | json_values, max_size=5) | json_values,
    "properties": st.fixed_dictionaries({}, optional={"id": json_values}) | json_values,
    "geometry": st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["Polygon", "MultiPolygon", "Point"]) | json_values,
        "coordinates": st.lists(coords, max_size=2) | st.lists(st.lists(coords, max_size=2),
                                                               max_size=2) | json_values,
        "bbox": json_values}) | json_values,
}) | json_values
geojson = st.fixed_dictionaries({"type": st.just("FeatureCollection"),
                                 "features": st.lists(feature, max_size=3)}) | json_values


@FUZZ
@given(doc=geojson)
@example(doc={"features": [5]})
@example(doc={"features": [{"id": "a", "geometry": 5}]})
@example(doc={"features": [{"id": "a", "bbox": [0, 0, "x", 1]}]})  # found: these 3 raised
@example(doc={"features": [{"id": "a", "geometry": {"type": "Polygon", "coordinates": [[]]}}]})
@example(doc={"features": [{"id": "a", "geometry": {"type": "Polygon",
                                                    "coordinates": [["12", "34", "56"]]}}]})
def test_areas_reader_is_a_result_or_one_error(tmp_path, doc):
    import json

    from aggregat.weather.sites import load_areas

    path = tmp_path / "areas.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    try:
        areas = load_areas(path)
    except AggregatError as exc:
        _one_line(exc)
        return
    assert all(a.rings and all(a.rings) for a in areas)
