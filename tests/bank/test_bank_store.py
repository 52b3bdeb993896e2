"""Bank: atomic, idempotent partition writes; schema checks; upsert; memory:// stores; checksums."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
from bank_helpers import weather_run

from aggregat.bank import Bank, write_weather_run
from aggregat.errors import BankError

RUN = pd.Timestamp("2026-11-20T06:00Z")
KEYS = {"model": "arome-0025", "run_date": "2026-11-20"}
WF = "weather_forecast"


def test_roundtrip_keeps_utc_timestamps_and_stores_float32(bank):
    df = weather_run(RUN)
    rel = write_weather_run(bank, "arome-0025", RUN, df)
    assert rel == "weather_forecast/model=arome-0025/run_date=2026-11-20/run=06.parquet"

    back = bank.read_partition(WF, KEYS, part="run=06")
    assert str(back["valid_time"].dt.tz) == "UTC"
    assert str(back["run_time"].dt.tz) == "UTC"
    assert back["t2m_c"].dtype == np.float32 and back["ssrd_wm2"].dtype == np.float32
    assert back["step_h"].dtype == np.int16
    assert (back["run_time"] == RUN).all() and (back["model"] == "arome-0025").all()
    assert back["available_at"].iloc[0] == RUN + pd.Timedelta(hours=3)  # AROME nominal delay
    assert ((back["valid_time"] - back["run_time"]) / pd.Timedelta(hours=1)
            == back["step_h"]).all()
    merged = df.merge(back, on=["valid_time", "location"], suffixes=("_in", ""))
    assert len(merged) == len(df) == len(back)
    np.testing.assert_array_equal(merged["t2m_c"], merged["t2m_c_in"].astype(np.float32))

    # A timestamp given in another zone is the same instant, stored in UTC.
    paris = weather_run(RUN)
    paris["valid_time"] = paris["valid_time"].dt.tz_convert("Europe/Paris")
    write_weather_run(bank, "arome-0025", RUN, paris)
    again = bank.read_partition(WF, KEYS, part="run=06")
    pd.testing.assert_series_equal(again["valid_time"], back["valid_time"])


def test_rewrite_replaces_the_part_and_same_data_gives_same_bytes(bank):
    write_weather_run(bank, "arome-0025", RUN, weather_run(RUN, seed=1))
    rel = write_weather_run(bank, "arome-0025", RUN, weather_run(RUN, seed=2, steps=10))
    assert bank.files(WF) == [rel]
    back = bank.read(WF)
    assert len(back) == 10 * 3
    assert not back.duplicated(["location", "valid_time"]).any()

    first = bank.store.read_bytes(rel)
    shuffled = weather_run(RUN, seed=2, steps=10).sample(frac=1, random_state=3)
    write_weather_run(bank, "arome-0025", RUN, shuffled)
    assert bank.store.read_bytes(rel) == first  # idempotent: same rows, same bytes

    # Another run of the same day is another part of the same partition.
    write_weather_run(bank, "arome-0025", RUN + pd.Timedelta(hours=6), weather_run(RUN))
    assert [p for p in bank.partitions(WF)] == [KEYS]
    assert len(bank.files(WF)) == 2


def test_upsert_keeps_the_newest_version_per_key(bank):
    t = pd.date_range("2026-11-01", periods=4, freq="h", tz="UTC")
    old = pd.Timestamp("2026-11-02T00:00Z")
    new = pd.Timestamp("2026-11-03T00:00Z")
    keys = {"target": "north", "month": "2026-11"}
    first = pd.DataFrame({"target_id": "north", "time": t, "load_mw": [1.0, 2.0, 3.0, 4.0],
                          "updated_at": [new, old, old, old]})
    assert bank.upsert("load", keys, first, on=["target_id", "time"], version_col="updated_at") == 4
    second = pd.DataFrame({"target_id": "north", "time": [t[0], t[1], t[1], t[2]],
                           "load_mw": [10.0, 20.0, 21.0, 30.0],
                           "updated_at": [old, new, new, old]})
    # t0: stored is newer -> kept; t1: newer incoming, duplicated -> last one; t2: tie -> incoming
    assert bank.upsert("load", keys, second, on=["target_id", "time"],
                       version_col="updated_at") == 4
    back = bank.read_partition("load", keys).set_index("time")["load_mw"]
    assert back.tolist() == [1.0, 21.0, 30.0, 4.0]
    assert len(bank.files("load")) == 1


@pytest.mark.parametrize(("mutate", "column"), [
    (lambda d: d.drop(columns="location"), "location"),
    (lambda d: d.assign(valid_time=d["valid_time"].astype(str)), "valid_time"),
    (lambda d: d.assign(valid_time=d["valid_time"].dt.tz_localize(None)), "valid_time"),
    (lambda d: d.assign(t2m_c="warm"), "t2m_c"),
    (lambda d: d.assign(location=None), "location"),
    (lambda d: d.assign(step_h=100_000), "step_h"),
])
def test_schema_violations_name_the_dataset_and_column(bank, mutate, column):
    with pytest.raises(BankError) as err:
        write_weather_run(bank, "arome-0025", RUN, mutate(weather_run(RUN)))
    assert WF in str(err.value) and column in str(err.value)
    assert "\n" not in str(err.value)
    assert bank.files(WF) == []


def test_load_schema_requires_columns(bank):
    df = pd.DataFrame({"target_id": ["a"], "time": [pd.Timestamp("2026-01-01", tz="UTC")]})
    with pytest.raises(BankError, match=r"load: missing required column 'load_mw'"):
        bank.write_partition("load", {"target": "a", "month": "2026-01"},
                             df.assign(updated_at=df["time"]))


@pytest.mark.parametrize("keys", [
    {"model": "../x", "run_date": "2026-11-20"},
    {"model": "a/b", "run_date": "2026-11-20"},
    {"model": ".hidden", "run_date": "2026-11-20"},
    {"model": "arome", "run_date": "20261120"},
    {"model": "arome"},
])
def test_partition_values_must_be_safe_path_segments(bank, keys):
    with pytest.raises(BankError, match=WF):
        bank.write_partition(WF, keys, weather_run(RUN))
    with pytest.raises(BankError):
        bank.files(WF, {"model": "../../etc"})


def test_missing_and_corrupt_partitions_raise_bank_errors_naming_them(bank):
    with pytest.raises(BankError, match="does not exist"):
        bank.read_partition(WF, KEYS, part="run=06")
    rel = write_weather_run(bank, "arome-0025", RUN, weather_run(RUN))
    bank.store.local_path(rel).write_bytes(b"PAR1 truncated")
    with pytest.raises(BankError, match=r"run_date=2026-11-20/run=06\.parquet"):
        bank.read(WF)
    with pytest.raises(BankError, match=r"run=06\.parquet"):
        bank.read_partition(WF, KEYS, part="run=06")


def test_bad_filters_and_corrupt_remote_files_are_bank_errors(bank):
    write_weather_run(bank, "arome-0025", RUN, weather_run(RUN))
    with pytest.raises(BankError, match="bad column or filter"):
        bank.read(WF, filter_sql="no_such_column > 1")
    with pytest.raises(BankError, match="bad column or filter"):
        bank.read(WF, filter_sql="valid_time >>>")
    mem = Bank(f"memory://bank-{uuid.uuid4().hex}")
    rel = write_weather_run(mem, "arome-0025", RUN, weather_run(RUN))
    mem.store.write_bytes(rel, b"PAR1 not really")
    with pytest.raises(BankError, match=r"run=06\.parquet"):
        mem.read(WF)


def test_killed_writer_leaves_only_a_temp_file_that_is_ignored_and_cleaned(bank):
    rel = write_weather_run(bank, "arome-0025", RUN, weather_run(RUN, steps=5))
    before = bank.read(WF)
    child = (
        "import os, signal, sys\n"
        "from aggregat.storage import Store\n"
        "s = Store(sys.argv[1])\n"
        "with s.atomic_writer(sys.argv[2]) as fh:\n"
        "    fh.write(b'PAR1' + b'x' * 100000)\n"
        "    fh.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", child, bank.url, rel], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [n for n in os.listdir(bank.store.local_path(rel).parent) if n.startswith(".tmp-")]
    assert len(leftovers) == 1
    assert bank.files(WF) == [rel]
    pd.testing.assert_frame_equal(bank.read(WF), before)
    assert bank.clean_tmp() == 1
    assert not [n for n in os.listdir(bank.store.local_path(rel).parent) if n.startswith(".tmp-")]


def _kill_writer_before_any_byte(store_url: str, rel: str) -> None:
    child = (
        "import os, signal, sys\n"
        "from aggregat.storage import Store\n"
        "with Store(sys.argv[1]).atomic_writer(sys.argv[2]) as fh:\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", child, store_url, rel], timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _temp_files(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(".tmp-")]


def test_a_killed_writers_empty_temp_file_is_skipped_by_plain_globs_and_swept_by_the_next_write(
        bank):
    import duckdb

    from aggregat.ops.ledger import Ledger

    ledger = Ledger(bank, job="t", run_id="r1")
    with ledger.step("fetch", "arome-0025/2026-11-20T06") as st:
        st.rows = 1
    (rel,) = bank.files("ledger")
    folder = bank.store.local_path(rel).parent
    _kill_writer_before_any_byte(bank.url, rel)
    (leftover,) = _temp_files(folder)
    assert os.path.getsize(folder / leftover) == 0
    glob = f"{bank.store.local_path()}/**/*.parquet"
    count = duckdb.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning=true)")
    assert count.fetchall() == [(1,)]  # the 0-byte temp file is not matched
    with ledger.step("fetch", "arome-0025/2026-11-20T12") as st:  # the same ledger part
        st.rows = 2
    assert _temp_files(folder) == []
    assert len(ledger.entries()) == 2


def test_temp_files_of_live_writers_are_kept_and_stale_ones_removed(bank, tmp_path):
    from aggregat.storage import STALE_TMP_S, tmp_name

    folder = bank.store.local_path("weather_forecast")
    folder.mkdir(parents=True)
    live = folder / tmp_name("a.parquet")  # this process: alive
    old = folder / ".tmp-0123456789abcdef-b.parquet"  # older naming, no pid
    live.write_bytes(b""), old.write_bytes(b"")
    assert bank.clean_tmp() == 0
    past = os.path.getmtime(old) - STALE_TMP_S - 60
    os.utime(old, (past, past))
    assert bank.clean_tmp() == 1
    assert _temp_files(folder) == [live.name]


def test_memory_bank_writes_reads_and_checksums_like_a_local_one(bank):
    mem = Bank(f"memory://bank-{uuid.uuid4().hex}")
    for b in (bank, mem):
        write_weather_run(b, "arome-0025", RUN, weather_run(RUN))
        write_weather_run(b, "arpege-01", RUN, weather_run(RUN, seed=5))
    assert mem.files(WF) == bank.files(WF)
    assert mem.partitions(WF) == bank.partitions(WF)
    sql = "location = ? AND valid_time < ?"
    params = ["lyon", RUN + pd.Timedelta(hours=3)]
    got = mem.read(WF, where={"model": "arpege-01"}, filter_sql=sql, params=params)
    want = bank.read(WF, where={"model": "arpege-01"}, filter_sql=sql, params=params)
    assert len(got) == 3
    pd.testing.assert_frame_equal(got, want)
    for model in ("arome-0025", "arpege-01"):
        keys = {"model": model, "run_date": "2026-11-20"}
        assert mem.checksum(WF, keys) == bank.checksum(WF, keys)
    mem.delete_partition(WF, {"model": "arome-0025", "run_date": "2026-11-20"})
    assert [p["model"] for p in mem.partitions(WF)] == ["arpege-01"]


def test_checksum_depends_on_content_not_on_row_order(bank, tmp_path):
    other = Bank(str(tmp_path / "other"))
    df = weather_run(RUN)
    write_weather_run(bank, "arome-0025", RUN, df)
    write_weather_run(other, "arome-0025", RUN, df.sample(frac=1, random_state=0))
    a, b = bank.checksum(WF, KEYS), other.checksum(WF, KEYS)
    assert a == b and a["rows"] == len(df) and a["parts"] == 1
    changed = df.copy()
    changed.loc[5, "t2m_c"] += 0.5
    write_weather_run(other, "arome-0025", RUN, changed)
    assert other.checksum(WF, KEYS)["sha256"] != a["sha256"]
    assert other.checksum(WF, KEYS)["rows"] == a["rows"]


def test_free_form_datasets_are_stored_as_given(bank):
    df = pd.DataFrame({"step": ["extract", "sync"], "rows": [3, 4]})
    bank.write_partition("notes", {"day": "2026-11-20"}, df)
    bank.write_partition("notes", {"day": "2026-11-21"}, df.assign(rows=[5, 6]))
    assert bank.partitions("notes") == [{"day": "2026-11-20"}, {"day": "2026-11-21"}]
    got = bank.read("notes", where={"day": ["2026-11-21"]})
    assert got["rows"].tolist() == [5, 6]
    assert bank.datasets() == ["notes"]


def test_remote_reads_fetch_every_file_and_name_a_missing_or_corrupt_one(bank):
    mem = Bank(f"memory://bank-{uuid.uuid4().hex}")
    runs = [RUN + pd.Timedelta(hours=6 * k) for k in range(5)]
    rels = [write_weather_run(b, "arome-0025", r, weather_run(r, seed=k))
            for k, r in enumerate(runs) for b in (bank, mem)][1::2]
    how = {"filter_sql": "location = ?", "params": ["lyon"], "order_by": ["run_time", "valid_time"]}
    pd.testing.assert_frame_equal(mem.read_files(WF, rels, **how), bank.read_files(WF, rels, **how))
    with pytest.raises(BankError, match=r"missing bank file memory://.*/nope\.parquet"):
        mem.read_files(WF, [*rels, "weather_forecast/nope.parquet"])
    mem.store.write_bytes(rels[2], b"PAR1 not really")
    with pytest.raises(BankError, match=rf"unreadable bank file .*{rels[2]}"):
        mem.read_files(WF, rels)


def test_a_long_window_on_object_storage_is_listed_at_once_with_the_same_files(bank, monkeypatch):
    from aggregat.bank.window import weather_runs

    mem = Bank(f"memory://bank-{uuid.uuid4().hex}")
    runs = [RUN + pd.Timedelta(hours=12 * k) for k in range(90)]  # 45 days, two runs a day
    for b in (bank, mem):
        for r in runs:
            write_weather_run(b, "arome-0025", r, weather_run(r, steps=2))
        write_weather_run(b, "arpege-01", runs[3], weather_run(runs[3], steps=2))
    listed = []
    monkeypatch.setattr(mem.store, "listdir", lambda rel="": listed.append(rel) or [])
    first, last = runs[5], runs[80]  # 39 days: more than a listing a day is worth
    assert weather_runs(mem, "arome-0025", first, last) == weather_runs(bank, "arome-0025",
                                                                        first, last)
    assert len(weather_runs(mem, "arome-0025", first, last)) == 78 and listed == []  # whole days
    days = sorted({f"{r:%Y-%m-%d}" for r in runs[10:80]}, reverse=True)  # the caller's order
    where = {"model": ["arpege-01", "arome-0025"], "run_date": days}
    assert mem.files(WF, where) == bank.files(WF, where)
    assert mem.files(WF, where, parts=["run=00"]) == bank.files(WF, where, parts=["run=00"])
