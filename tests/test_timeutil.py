"""aggregat.timeutil: the one rule for times (API, command line, CSV) and horizons."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from aggregat.errors import ConfigError, InputError
from aggregat.timeutil import Horizon, as_utc, fmt_time, parse_cli_time, parse_times

PARIS = "Europe/Paris"


def test_horizon_is_its_string_and_parse_names_the_parameter():
    assert Horizon.DAY_AHEAD == "day-ahead" and Horizon.INTRADAY == "intraday"
    assert Horizon.parse("intraday") is Horizon.INTRADAY
    with pytest.raises(ConfigError, match=r"--horizon 'hourly': use one of day-ahead, intraday"):
        Horizon.parse("hourly", param="--horizon")


def test_as_utc_accepts_aware_values_and_refuses_naive_ones():
    paris = datetime(2026, 11, 28, 10, tzinfo=ZoneInfo(PARIS))
    assert as_utc(paris, param="issue_time") == pd.Timestamp("2026-11-28T09:00Z")
    assert as_utc("2026-11-28T10:00+01:00", param="x") == pd.Timestamp("2026-11-28T09:00Z")
    assert str(as_utc(pd.Timestamp("2026-11-28T09:00Z"), param="x").tz) == "UTC"
    with pytest.raises(InputError, match=r"issue_time 2026-11-28 10:00 has no time zone: pass "
                       r"an aware datetime .*ZoneInfo\('Europe/Paris'\)"):
        as_utc(datetime(2026, 11, 28, 10), param="issue_time")
    with pytest.raises(InputError, match="has no time zone"):
        as_utc("2026-11-28T10:00", param="issue_time")
    with pytest.raises(InputError, match=r"start 'soon' is not a time"):
        as_utc("soon", param="start")


def test_cli_time_without_offset_is_local_to_the_environment():
    assert parse_cli_time("2026-11-28T10:00", PARIS, param="--at") == \
        pd.Timestamp("2026-11-28T09:00Z")
    assert parse_cli_time("2026-07-01 10:00", PARIS, param="--at") == \
        pd.Timestamp("2026-07-01T08:00Z")
    assert parse_cli_time("2026-11-28T10:00Z", PARIS, param="--at") == \
        pd.Timestamp("2026-11-28T10:00Z")
    assert parse_cli_time("2026-11-28T10:00", "UTC", param="--at") == \
        pd.Timestamp("2026-11-28T10:00Z")


def test_cli_time_in_a_dst_gap_or_repeated_hour_is_an_error_unless_an_offset_says():
    with pytest.raises(ConfigError, match=r"--at 2026-03-29 02:30 does not exist in "
                       r"Europe/Paris \(DST gap\)"):
        parse_cli_time("2026-03-29T02:30", PARIS, param="--at")
    with pytest.raises(ConfigError, match=r"--issue-time 2026-10-25 02:30 happens twice in "
                       r"Europe/Paris .*\+02:00 for the first or \+01:00 for the second"):
        parse_cli_time("2026-10-25T02:30", PARIS, param="--issue-time")
    assert parse_cli_time("2026-10-25T02:30+01:00", PARIS, param="--at") == \
        pd.Timestamp("2026-10-25T01:30Z")
    with pytest.raises(ConfigError, match=r"--at 'tomorrow' is not a time"):
        parse_cli_time("tomorrow", PARIS, param="--at")
    with pytest.raises(ConfigError, match=r"forecast.timezone 'Mars/Olympus' is unknown"):
        parse_cli_time("2026-01-01T00:00", "Mars/Olympus", param="--at")


def test_fmt_time_shows_the_offset():
    t = pd.Timestamp("2026-11-28T09:00Z")
    assert fmt_time(t, PARIS) == "2026-11-28 10:00+01:00 (09:00 UTC)"
    assert fmt_time(t) == "2026-11-28 09:00Z"
    assert fmt_time(pd.Timestamp("2026-11-28T23:30Z"), PARIS) == \
        "2026-11-29 00:30+01:00 (23:30 on 2026-11-28 UTC)"


def october(order):
    return [f"2026-10-25 {h}" for h in order]


def test_csv_times_in_file_order_infer_the_repeated_october_hour():
    rows = october(["01:00", "01:30", "02:00", "02:30", "02:00", "02:30", "03:00"])
    t = parse_times(rows, tz=PARIS, source="load.csv")
    assert t.is_unique and t.is_monotonic_increasing
    assert (t[1:] - t[:-1]).unique().tolist() == [pd.Timedelta(minutes=30)]
    assert t[2] == pd.Timestamp("2026-10-25T00:00Z") and t[4] == pd.Timestamp("2026-10-25T01:00Z")


def test_csv_times_repeated_hour_per_group_in_file_order():
    # Long format, each time once per target: the order within each target decides.
    rows = october(["02:00", "02:00", "02:00", "02:00"])
    t = parse_times(rows, tz=PARIS, by=["a", "b", "a", "b"])
    assert list(t) == [pd.Timestamp("2026-10-25T00:00Z")] * 2 + \
        [pd.Timestamp("2026-10-25T01:00Z")] * 2


def test_csv_times_dst_gap_is_an_error_with_its_line_unless_an_option_says():
    rows = ["2026-03-29 01:30", "2026-03-29 02:30", "2026-03-29 03:30"]
    with pytest.raises(InputError, match=r"^load.csv line 3 column 'time': 2026-03-29 02:30 does "
                       r"not exist in Europe/Paris \(DST gap\).*nonexistent shift_forward\|drop"):
        parse_times(rows, tz=PARIS, source="load.csv", column="time")
    shifted = parse_times(rows, tz=PARIS, nonexistent="shift_forward")
    assert shifted[1] == pd.Timestamp("2026-03-29T01:00Z")
    dropped = parse_times(rows, tz=PARIS, nonexistent="drop")
    assert dropped.isna().tolist() == [False, True, False]


def test_csv_times_repeated_hour_that_cannot_be_inferred():
    with pytest.raises(InputError, match=r"line 3: 2026-10-25 02:30 happens twice .*occurs once "
                       r".*ambiguous first\|second\|drop"):
        parse_times(october(["01:30", "02:30", "03:30"]), tz=PARIS, source="f.csv")
    with pytest.raises(InputError, match=r"f.csv line 4: 2026-10-25 02:30 appears a third time"):
        parse_times(october(["02:30", "02:30", "02:30"]), tz=PARIS, source="f.csv")
    first = parse_times(october(["02:30"]), tz=PARIS, ambiguous="first")
    second = parse_times(october(["02:30"]), tz=PARIS, ambiguous="second")
    assert first[0] == pd.Timestamp("2026-10-25T00:30Z")
    assert second[0] == pd.Timestamp("2026-10-25T01:30Z")
    assert parse_times(october(["02:30"]), tz=PARIS, ambiguous="drop").isna().all()


def test_csv_times_one_format_per_file_and_no_guessing():
    with pytest.raises(InputError, match=r"f.csv line 3: cannot read '05/01/2026 01:00' as a "
                       r"time; expected ISO 8601"):
        parse_times(["2026-01-05 00:00", "05/01/2026 01:00"], tz="UTC", source="f.csv")
    with pytest.raises(InputError, match=r"line 2: cannot read '01/02/2026 00:00'"):
        parse_times(["01/02/2026 00:00"], tz="UTC")  # January or February: not guessed
    with pytest.raises(InputError, match=r"line 3: cannot read '2026-01-05 01:00'.*"
                       r"expected format '%d/%m/%Y %H:%M'"):
        parse_times(["05/01/2026 00:00", "2026-01-05 01:00"], tz="UTC",
                    time_format="%d/%m/%Y %H:%M")
    t = parse_times(["05/01/2026 00:00"], tz="UTC", time_format="%d/%m/%Y %H:%M")
    assert t[0] == pd.Timestamp("2026-01-05T00:00Z")


def test_csv_times_offsets_are_exact_and_not_mixed_with_naive_ones():
    t = parse_times(["2026-10-25 02:30+02:00", "2026-10-25 02:30+01:00"], tz=PARIS)
    assert list(t) == [pd.Timestamp("2026-10-25T00:30Z"), pd.Timestamp("2026-10-25T01:30Z")]
    with pytest.raises(InputError, match=r"line 3: '2026-01-05 01:00' mixes times with and "
                       "without UTC offset"):
        parse_times(["2026-01-05T00:00Z", "2026-01-05 01:00"], tz="UTC")
    with pytest.raises(InputError, match=r"line 7: cannot read '2026-01-32T00:00Z'"):
        parse_times(["2026-01-05T00:00Z", "2026-01-32T00:00Z"], lines=[2, 7])
    with pytest.raises(InputError, match=r"line 2: '2026-01-05 00:00' has no UTC offset and no "
                       "time zone"):
        parse_times(["2026-01-05 00:00"])
