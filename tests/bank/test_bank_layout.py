"""Only bank/ knows partition paths: the questions other layers ask about them, answered here."""

from __future__ import annotations

import pandas as pd
import pytest
from bank_helpers import weather_run

from aggregat.bank import (
    forecast_issue_dates,
    forecast_issues,
    has_weather_run,
    load_months,
    read_forecast,
    read_load,
    read_weather,
    target_ids,
    weather_run_dates,
    weather_run_partition,
    weather_runs,
    write_forecast,
    write_load,
    write_weather_run,
)
from aggregat.errors import BankError

T = pd.Timestamp


def _load(target: str, times) -> pd.DataFrame:
    times = pd.DatetimeIndex(times)
    return pd.DataFrame({"target_id": target, "time": times, "load_mw": 1.0})


def _forecast(target: str, issue: str) -> pd.DataFrame:
    valid = pd.date_range(T(issue) + pd.Timedelta(hours=1), periods=3, freq="h")
    return pd.DataFrame({"target_id": target, "issue_time": T(issue), "valid_time": valid,
                         "p10_mw": 1.0, "p50_mw": 2.0, "p90_mw": 3.0,
                         "model_version": "v1", "is_baseline": False})


def test_weather_runs_present_and_listed(bank):
    for run in ("2026-11-27T18:00Z", "2026-11-28T00:00Z", "2026-11-28T12:00Z"):
        write_weather_run(bank, "arome-0025", run, weather_run(run, steps=3))
    assert has_weather_run(bank, "arome-0025", T("2026-11-28T12:00Z"))
    assert not has_weather_run(bank, "arome-0025", T("2026-11-28T06:00Z"))
    assert not has_weather_run(bank, "arpege-01", T("2026-11-28T12:00Z"))
    assert weather_run_dates(bank, "arome-0025") == ["2026-11-27", "2026-11-28"]
    assert weather_run_dates(bank, "arpege-01") == []
    runs = weather_runs(bank, "arome-0025")
    assert [r for r, _ in runs] == [T("2026-11-27T18:00Z"), T("2026-11-28T00:00Z"),
                                    T("2026-11-28T12:00Z")]
    assert bank.file_info(runs[-1][1])["rows"] > 0  # the part file, to read or measure
    # Only run days first..last (whole days) are listed.
    day = weather_runs(bank, "arome-0025", T("2026-11-28T05:00Z"), T("2026-11-28T05:00Z"))
    assert [r for r, _ in day] == [T("2026-11-28T00:00Z"), T("2026-11-28T12:00Z")]


def test_weather_run_partition_is_where_write_weather_run_writes(bank):
    run = T("2026-11-28T06:00Z")
    rel = write_weather_run(bank, "arome-0025", run, weather_run(run, steps=2))
    keys, part = weather_run_partition("arome-0025", run)
    assert bank.part_path("weather_forecast", keys, part) == rel


def test_target_ids_and_load_months(bank):
    assert target_ids(bank) == [] and target_ids(bank, "forecast") == []
    write_load(bank, _load("vic", ["2026-10-31T23:00Z", "2026-11-01T00:00Z"]))
    write_load(bank, _load("paris", ["2026-11-01T00:00Z"]))
    write_forecast(bank, _forecast("vic", "2026-11-01T06:00Z"))
    assert target_ids(bank) == ["paris", "vic"]
    assert target_ids(bank, "forecast") == ["vic"]
    assert load_months(bank, "vic") == ["2026-10", "2026-11"]
    assert load_months(bank, "nowhere") == []
    with pytest.raises(BankError, match="weather_forecast.*not partitioned by target"):
        target_ids(bank, "weather_forecast")


def test_forecast_issues_listed(bank):
    for issue in ("2026-11-01T06:00Z", "2026-11-02T06:00Z", "2026-11-02T12:30Z"):
        write_forecast(bank, _forecast("vic", issue))
    assert forecast_issue_dates(bank, "vic") == ["2026-11-01", "2026-11-02"]
    got = forecast_issues(bank, "vic", T("2026-11-02T00:00Z"), T("2026-11-02T00:00Z"))
    assert [t for t, _ in got] == [T("2026-11-02T06:00Z"), T("2026-11-02T12:30Z")]
    assert len(forecast_issues(bank, "vic")) == 3


def test_one_string_is_one_id_not_its_letters(bank):
    write_load(bank, _load("vic", ["2026-11-01T00:00Z", "2026-11-01T01:00Z"]))
    write_forecast(bank, _forecast("vic", "2026-11-01T06:00Z"))
    run = T("2026-11-01T00:00Z")
    write_weather_run(bank, "arome-0025", run, weather_run(run, steps=3))
    assert len(read_load(bank, "vic")) == len(read_load(bank, ["vic"])) == 2
    assert len(read_forecast(bank, "vic")) == len(read_forecast(bank, ["vic"])) == 3
    start, end = run, run + pd.Timedelta(hours=3)
    one = read_weather(bank, start, end, models="arome-0025")
    assert len(one) == len(read_weather(bank, start, end, models=["arome-0025"])) > 0
    location = one["location"].iloc[0]
    assert (read_weather(bank, start, end, locations=location)["location"] == location).all()
    assert len(read_weather(bank, start, end, locations=location)) > 0
