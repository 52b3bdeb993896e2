"""Window reads touch only the partitions that can hold the window (issue 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bank_helpers import weather_run

from aggregat.bank import (
    read_forecast,
    read_load,
    read_weather,
    write_forecast,
    write_load,
    write_weather_run,
)
from aggregat.errors import BankError
from aggregat.storage import Store

WF = "weather_forecast"
DAYS = pd.date_range("2026-11-01T00:00Z", periods=20, freq="D")
START, END = pd.Timestamp("2026-11-15T00:00Z"), pd.Timestamp("2026-11-18T00:00Z")


@pytest.fixture
def history(bank):
    """20 days of daily 00Z runs (steps 0-48) for two models; returns all rows written."""
    frames = []
    for i, run in enumerate(DAYS):
        for j, model in enumerate(("arome-0025", "arpege-01")):
            df = weather_run(run, seed=10 * i + j)
            write_weather_run(bank, model, run, df)
            frames.append(df.assign(model=model, run_time=run))
    return pd.concat(frames, ignore_index=True)


def _key(df):
    return sorted(zip(df["model"], df["run_time"], df["valid_time"], df["location"], strict=True))


def _expected(all_rows, **cond):
    m = (all_rows["valid_time"] >= START) & (all_rows["valid_time"] < END)
    for col, values in cond.items():
        m &= all_rows[col].isin(values)
    return all_rows[m]


def _corrupt_outside(bank, keep_dates):
    """Overwrite every part outside ``keep_dates`` with garbage; returns how many."""
    n = 0
    for rel in bank.files(WF):
        if not any(f"run_date={d}/" in rel for d in keep_dates):
            bank.store.local_path(rel).write_bytes(b"not parquet")
            n += 1
    return n


def test_window_equals_filtering_all_rows(bank, history):
    got = read_weather(bank, START, END, max_lead_h=48)
    want = _expected(history)
    assert len(got) == len(want) > 0
    assert _key(got) == _key(want)
    on = ["model", "run_time", "valid_time", "location"]
    merged = got.merge(want, on=on, suffixes=("", "_w"))
    np.testing.assert_array_equal(merged["t2m_c"], merged["t2m_c_w"].astype(np.float32))
    assert str(got["valid_time"].dt.tz) == "UTC"

    some = read_weather(bank, START, END, models=["arpege-01"], locations=["lyon"])
    assert _key(some) == _key(_expected(history, model=["arpege-01"], location=["lyon"]))


def test_window_reads_only_its_partitions(bank, history, monkeypatch):
    # Runs that can reach [START, END) with 48 h leads: 11-13 .. 11-17.
    keep = [f"2026-11-{d}" for d in range(13, 18)]
    assert _corrupt_outside(bank, keep) == 2 * (20 - len(keep))
    listed: list[str] = []
    original = Store.listdir

    def spy(self, rel=""):
        listed.append(rel)
        return original(self, rel)

    monkeypatch.setattr(Store, "listdir", spy)
    got = read_weather(bank, START, END, models=["arome-0025", "arpege-01"], max_lead_h=48)
    assert _key(got) == _key(_expected(history))
    # Only the partition folders of the window were listed, never a model folder (no scan).
    assert all("/run_date=" in rel for rel in listed)
    assert len(listed) == 2 * len(keep)


def test_corrupt_partition_inside_the_window_is_named(bank, history):
    rel = bank.files(WF, {"model": "arpege-01", "run_date": "2026-11-16"})[0]
    bank.store.local_path(rel).write_bytes(b"PAR1garbagePAR1")
    with pytest.raises(BankError, match=r"model=arpege-01/run_date=2026-11-16/run=00\.parquet"):
        read_weather(bank, START, END)


def test_issued_before_only_sees_what_was_available(bank, history):
    cutoff = pd.Timestamp("2026-11-16T03:30Z")  # 11-16 00Z run: AROME at 03Z yes, ARPEGE at 04Z no
    _corrupt_outside(bank, [f"2026-11-{d}" for d in range(10, 17)])  # later runs never read
    got = read_weather(bank, START, END, issued_before=cutoff)
    assert (got["available_at"] <= cutoff).all()
    runs = got.groupby("model")["run_time"].max()
    assert runs["arome-0025"] == pd.Timestamp("2026-11-16T00:00Z")
    assert runs["arpege-01"] == pd.Timestamp("2026-11-15T00:00Z")
    assert got["valid_time"].max() < pd.Timestamp("2026-11-18T00:00Z")


def test_latest_keeps_the_newest_run_per_valid_time(bank, history):
    got = read_weather(bank, START, END, latest=True)
    assert not got.duplicated(["model", "location", "valid_time"]).any()
    assert len(got) == 2 * 3 * 72
    # A valid time on 11-16 12Z is covered by the 11-15 and 11-16 runs: the 11-16 one is kept.
    row = got[(got["valid_time"] == pd.Timestamp("2026-11-16T12:00Z"))]
    assert (row["run_time"] == pd.Timestamp("2026-11-16T00:00Z")).all()
    slim = read_weather(bank, START, END, latest=True, columns=["valid_time", "t2m_c"])
    pd.testing.assert_series_equal(slim["t2m_c"], got["t2m_c"])


def test_window_arguments_must_be_utc(bank, history):
    with pytest.raises(BankError, match="time zone"):
        read_weather(bank, "2026-11-15", "2026-11-18T00:00Z")
    assert read_weather(bank, END, START).empty
    empty = read_weather(bank, "2027-01-01T00:00Z", "2027-01-02T00:00Z")
    assert empty.empty and "valid_time" in empty.columns


def test_load_upserts_by_month_and_reads_windows(bank):
    times = pd.date_range("2026-10-31T22:00Z", periods=5, freq="h")  # spans two months
    t0 = pd.Timestamp("2026-11-01T00:00Z")
    df = pd.DataFrame({"target_id": "north", "time": times, "load_mw": np.arange(5.0),
                       "updated_at": t0})
    assert write_load(bank, df) == 5
    assert bank.partitions("load") == [{"target": "north", "month": "2026-10"},
                                       {"target": "north", "month": "2026-11"}]
    later = df.iloc[[1, 3]].assign(load_mw=[10.0, 30.0], updated_at=t0 + pd.Timedelta(days=1))
    stale = df.iloc[[4]].assign(load_mw=[-1.0], updated_at=t0 - pd.Timedelta(days=1))
    write_load(bank, pd.concat([later, stale]))
    got = read_load(bank, ["north"], times[0], times[-1] + pd.Timedelta(hours=1))
    assert got["load_mw"].tolist() == [0.0, 10.0, 2.0, 30.0, 4.0]
    assert str(got["time"].dt.tz) == "UTC"

    # Reading November only never opens October.
    oct_file = bank.files("load", {"target": "north", "month": "2026-10"})[0]
    bank.store.local_path(oct_file).write_bytes(b"junk")
    nov = read_load(bank, None, "2026-11-01T00:00Z", "2026-12-01T00:00Z")
    assert nov["load_mw"].tolist() == [2.0, 30.0, 4.0]
    assert read_load(bank, ["north"], start="2026-11-01T01:00Z")["load_mw"].tolist() == [30.0, 4.0]


def test_forecast_reissue_replaces_and_reads_by_issue_or_window(bank):
    issue = pd.Timestamp("2026-11-20T09:00Z")
    valid = pd.date_range("2026-11-21T00:00Z", periods=24, freq="h")

    def fc(version, p50):
        return pd.DataFrame({"target_id": "north", "issue_time": issue, "valid_time": valid,
                             "p10_mw": p50 - 1, "p50_mw": p50, "p90_mw": p50 + 1,
                             "model_version": version, "is_baseline": False})

    write_forecast(bank, fc("v1", np.full(24, 5.0)))
    assert write_forecast(bank, fc("v2", np.full(24, 7.0))) == 24
    other = fc("v2", np.full(24, 9.0)).assign(issue_time=issue + pd.Timedelta(days=1),
                                               valid_time=valid + pd.Timedelta(days=1))
    write_forecast(bank, other)
    got = read_forecast(bank, ["north"], issue_time=issue)
    assert len(got) == 24 and set(got["model_version"]) == {"v2"}
    assert (got["p50_mw"] == 7.0).all() and got["is_baseline"].dtype == bool
    window = read_forecast(bank, start=valid[0], end=valid[-1] + pd.Timedelta(hours=1))
    assert len(window) == 24 and (window["p50_mw"] == 7.0).all()
    assert len(read_forecast(bank)) == 48

    # A bad target id fails the whole write before any partition is written.
    bad = pd.concat([fc("v3", np.full(24, 1.0)).assign(target_id="south"),
                     fc("v3", np.full(24, 1.0)).assign(target_id="a/b")])
    with pytest.raises(BankError, match="a/b"):
        write_forecast(bank, bad)
    assert [p["target"] for p in bank.partitions("forecast")] == ["north", "north"]
