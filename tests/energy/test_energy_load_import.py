"""`load import FILE.csv`: mapping, units, time zones, one-line errors naming file/line/column."""

from __future__ import annotations

import pandas as pd
import pytest
from energy_helpers import write

from aggregat.bank import read_load
from aggregat.errors import InputError
from aggregat.load_import import import_load_csv, read_load_csv


def test_import_happy_path_with_mapping_and_kw(tmp_path, bank):
    path = write(tmp_path, "Horodate;Site;Puissance\n"
                           "2026-01-05 00:00;paris;1500,5\n"
                           "2026-01-05 01:00;paris;1600\n"
                           "2026-01-05 00:00;lyon;800\n")
    report = import_load_csv(bank, path, time_col="Horodate", target_col="Site",
                             value_col="Puissance", unit="kW", sep=";", decimal=",")
    assert report.rows == 3 and report.targets == ["lyon", "paris"]
    df = read_load(bank).sort_values(["target_id", "time"]).reset_index(drop=True)
    assert df["load_mw"].tolist() == [0.8, 1.5005, 1.6]
    assert df["time"].iloc[0] == pd.Timestamp("2026-01-05T00:00Z")
    assert str(df["time"].dt.tz) == "UTC"
    # Re-import: replaced, never duplicated.
    import_load_csv(bank, path, time_col="Horodate", target_col="Site", value_col="Puissance",
                    unit="kW", sep=";", decimal=",")
    assert len(read_load(bank)) == 3


def test_local_times_and_offsets_become_utc(tmp_path):
    local = write(tmp_path, "time,load_mw\n2026-07-01 12:00,1\n2026-01-01 12:00,2\n")
    frame, _ = read_load_csv(local, target="t", tz="Europe/Paris")
    assert sorted(frame["time"]) == [pd.Timestamp("2026-01-01T11:00Z"),
                                     pd.Timestamp("2026-07-01T10:00Z")]
    offset = write(tmp_path, "time,load_mw\n2026-07-01T12:00+02:00,1\n", "o.csv")
    frame, _ = read_load_csv(offset, target="t", tz="Europe/Paris")
    assert frame["time"].tolist() == [pd.Timestamp("2026-07-01T10:00Z")]


def test_dst_fall_back_is_inferred_for_a_regular_series(tmp_path):
    rows = ["time,load_mw"] + [f"2026-10-25 {h:02d}:00,{h}" for h in (0, 1, 2)] + \
        ["2026-10-25 02:00,99"] + [f"2026-10-25 {h:02d}:00,{h}" for h in (3, 4)]
    frame, _ = read_load_csv(write(tmp_path, "\n".join(rows) + "\n"), target="t",
                             tz="Europe/Paris")
    assert frame["time"].is_unique and len(frame) == 6
    assert frame["time"].diff().dropna().eq(pd.Timedelta(hours=1)).all()


def test_empty_values_are_skipped_and_counted(tmp_path, bank):
    path = write(tmp_path, "time,load_mw\n2026-01-05T00:00Z,1\n2026-01-05T01:00Z,\n\n")
    report = import_load_csv(bank, path, target="t")
    assert (report.rows, report.skipped_empty) == (1, 1)


@pytest.mark.parametrize("text, options, expected", [
    ("time,load_mw\n2026-01-05T00:00Z,1\n", {"value_col": "mw"},
     r"load\.csv line 1 column 'mw': column not found \(columns: time, load_mw\)"),
    ("time,load_mw\n2026-01-05T00:00Z,1\n", {},
     r"load\.csv line 1 column 'target_id': column not found.*target_col or give one target"),
    ("time,load_mw\n2026-01-05 00:00,1\n05/01/2026 01:00,2\n", {"target": "t"},
     r"load\.csv line 3 column 'time': cannot read '05/01/2026 01:00' as a time"),
    ("time,load_mw\n2026-01-05T00:00Z,1\n2026-01-05T01:00Z,1.2.3\n", {"target": "t"},
     r"load\.csv line 3 column 'load_mw': cannot read '1\.2\.3' as a number"),
    ("time,load_mw\n2026-01-05T00:00Z,1\n\n2026-01-05T01:00Z,inf\n", {"target": "t"},
     r"load\.csv line 4 column 'load_mw': cannot read 'inf'"),
    ("time,load_mw\n2026-01-05T00:00Z,1\n2026-01-05T01:00,1\n", {"target": "t"},
     r"line 3 column 'time': .*mixes times with and without UTC offset"),
    ("time,load_mw\n2026-01-05 00:00,1\n2026-01-05 00:00,2\n", {"target": "t"},
     r"line 3 column 'time': time 2026-01-05T00:00Z appears twice .*first at line 2"),
    ("time,load_mw\n2026-03-29 02:30,1\n", {"target": "t", "tz": "Europe/Paris"},
     r"line 2 column 'time': 2026-03-29 02:30 does not exist in Europe/Paris \(DST gap\)"),
    ("time,load_mw\n2026-01-05T00:00Z,1\n", {"target": "t", "unit": "GWh"},
     r"unit 'GWh' is not supported"),
    ("time,load_mw\n2026-01-05T00:00Z,1\n", {"target": "t", "tz": "Paris"},
     r"time zone 'Paris' is unknown"),
])
def test_bad_input_is_one_line_naming_file_line_and_column(tmp_path, text, options, expected):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=expected) as err:
        read_load_csv(path, **options)
    assert "\n" not in str(err.value)


def test_explicit_time_format_reads_day_first(tmp_path):
    path = write(tmp_path, "time,load_mw\n05/01/2026 01:00,2\n")
    frame, _ = read_load_csv(path, target="t", time_format="%d/%m/%Y %H:%M")
    assert frame["time"].tolist() == [pd.Timestamp("2026-01-05T01:00Z")]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.csv: file not found"):
        read_load_csv(tmp_path / "nope.csv", target="t")


def test_french_local_csv_in_file_order_is_accepted_at_the_october_hour(tmp_path):
    # As utilities export it: long format, both targets at each time, the repeated hour twice.
    hours = ["01:00", "01:30", "02:00", "02:30", "02:00", "02:30", "03:00"]
    rows = ["time,target_id,load_mw"] + [f"2026-10-25 {h},{t},{i}" for i, h in enumerate(hours)
                                         for t in ("a", "b")]
    frame, _ = read_load_csv(write(tmp_path, "\n".join(rows) + "\n"), tz="Europe/Paris")
    for _, part in frame.groupby("target_id"):
        assert part["time"].tolist() == list(pd.date_range("2026-10-24T23:00Z", periods=7,
                                                           freq="30min"))
        assert part["load_mw"].tolist() == list(range(7))  # file order: summer 02:00 first


def test_march_gap_names_the_line_and_the_options(tmp_path):
    rows = ["time,load_mw"] + [f"2026-03-29 {h},1" for h in ("01:00", "01:30", "02:30", "03:00")]
    with pytest.raises(InputError, match=r"load\.csv line 4 column 'time': 2026-03-29 02:30 does "
                       r"not exist in Europe/Paris \(DST gap\).*nonexistent"):
        read_load_csv(write(tmp_path, "\n".join(rows) + "\n"), target="t", tz="Europe/Paris")
    frame, _ = read_load_csv(write(tmp_path, "\n".join(rows) + "\n"), target="t",
                             tz="Europe/Paris", nonexistent="drop")
    assert len(frame) == 3
