"""Ledger semantics: skip finished steps, force, failures, stale running records, storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregat.bank import Bank
from aggregat.config import register_secret
from aggregat.errors import PartialRunError
from aggregat.ops.ledger import Ledger, partition_month

P = "arome-0025/2026-11-28T00"


@pytest.fixture(params=["local", "memory"])
def bank(request, tmp_path):
    if request.param == "local":
        return Bank(str(tmp_path / "bank"))
    import uuid

    return Bank(f"memory://ledger-{uuid.uuid4().hex}")


def test_finished_step_is_skipped_unless_forced(bank):
    ledger = Ledger(bank, job="daily")
    calls = []
    for _ in range(2):
        with ledger.step("extract", P) as st:
            if not st.skip:
                calls.append(1)
                st.rows = 42
    assert calls == [1]
    # A new run (new Ledger, fresh read from the bank) also skips it.
    again = Ledger(bank, job="daily")
    with again.step("extract", P) as st:
        assert st.skip
    with again.step("extract", P, force=True) as st:
        assert not st.skip
        st.rows = 43
    entry = Ledger(bank).last("extract", P)
    assert (entry.status, entry.attempts, entry.rows, entry.job) == ("ok", 2, 43, "daily")
    assert entry.duration_s is not None and entry.ended_at >= entry.started_at
    assert entry.code_version.startswith("0.") or "+" in entry.code_version
    assert [r.status for r in again.timing.rows] == ["done", "ok"]


def test_failure_is_recorded_masked_and_reraised_then_retried(bank):
    register_secret("hunter2-topsecret")
    ledger = Ledger(bank)
    with pytest.raises(RuntimeError), ledger.step("sync", "2026-11-28") as st:
        st.rows = 7
        raise RuntimeError("db refused password hunter2-topsecret\nsecond line")
    entry = Ledger(bank).last("sync", "2026-11-28")
    assert entry.status == "failed" and entry.attempts == 1
    assert "hunter2-topsecret" not in entry.error and "***" in entry.error
    assert "\n" not in entry.error
    assert not ledger.done("sync", "2026-11-28")
    with ledger.step("sync", "2026-11-28") as st:
        assert not st.skip  # a failed step is retried without --force
    entry = Ledger(bank).last("sync", "2026-11-28")
    assert (entry.status, entry.attempts, entry.error) == ("ok", 2, None)


def test_partial_and_skipped_statuses(bank):
    ledger = Ledger(bank)
    with pytest.raises(PartialRunError), ledger.step("fetch", P):
        raise PartialRunError("2 of 8 files missing")
    with ledger.step("train", "2026-W48") as st:
        st.mark_skipped("model younger than 7 days")
    fresh = Ledger(bank)
    assert fresh.last("fetch", P).status == "partial"
    train = fresh.last("train", "2026-W48")
    assert train.status == "skipped" and train.details["reason"].startswith("model younger")
    assert fresh.failed_or_missing("fetch", [P]) == [P]
    assert fresh.failed_or_missing("train", ["2026-W48"]) == ["2026-W48"]


def test_running_record_of_a_dead_run_is_stale_and_rerun(bank):
    killed = Ledger(bank, run_id="deadbeef")
    killed.start("publish", "2026-11-28")  # the process dies here: no finish()
    # The same run still sees its own record as running.
    assert killed.last("publish", "2026-11-28").status == "running"
    nxt = Ledger(bank, run_id="next")
    entry = nxt.last("publish", "2026-11-28")
    assert entry.status == "failed" and entry.stale and "deadbeef" in entry.error
    assert not nxt.done("publish", "2026-11-28")
    assert nxt.failed_or_missing("publish", ["2026-11-28", "2026-11-29"]) == [
        "2026-11-28", "2026-11-29"]
    with nxt.step("publish", "2026-11-28") as st:
        assert not st.skip
    entry = Ledger(bank).last("publish", "2026-11-28")
    assert (entry.status, entry.attempts, entry.stale) == ("ok", 2, False)


def test_mark_stale_rewrites_records(bank):
    Ledger(bank, run_id="old").start("extract", P)
    nxt = Ledger(bank, run_id="new")
    assert nxt.mark_stale() == 1
    raw = bank.read("ledger")
    assert list(raw["status"]) == ["failed"]


def test_entries_filters_and_partitioning(bank):
    ledger = Ledger(bank, job="backfill")
    for day in ("2026-10-31", "2026-11-01", "2026-11-02"):
        with ledger.step("sync", day):
            pass
    with ledger.step("train", "weekly-latest"):
        pass
    assert [e.partition for e in ledger.entries("sync")] == ["2026-10-31", "2026-11-01",
                                                             "2026-11-02"]
    assert len(ledger.entries()) == 4
    future = datetime.now(UTC) + timedelta(hours=1)
    assert ledger.entries(since=future) == []
    assert {p["month"] for p in bank.partitions("ledger")} == {"2026-10", "2026-11", "nodate"}
    assert set(ledger.latest_by_step()) == {"sync", "train"}
    assert len(ledger.last_run("backfill")) == 4
    assert partition_month("arpege-01/2026-01-05T12") == "2026-01"


def test_bad_step_name_is_refused(bank):
    from aggregat.errors import BankError

    with pytest.raises(BankError):
        Ledger(bank).start("../evil", "2026-11-28")
