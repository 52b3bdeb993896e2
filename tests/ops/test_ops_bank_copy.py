"""Bank copy between environments: dry run, verified copy, idempotent rerun, resume, since."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date

import pandas as pd
import pytest

from aggregat.bank import Bank, write_load
from aggregat.bank.copy import copy_bank
from aggregat.ops.ledger import Ledger


def _load(target: str, start: str, hours: int, value: float = 1.0) -> pd.DataFrame:
    times = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame({"target_id": target, "time": times,
                         "load_mw": [value + i for i in range(hours)],
                         "updated_at": pd.Timestamp("2026-11-28T00:00Z")})


def _fill(bank: Bank) -> None:
    write_load(bank, _load("portfolio", "2026-09-30T00:00Z", 48))  # months 2026-09 and 2026-10
    write_load(bank, _load("site_a", "2026-11-01T00:00Z", 24))
    Ledger(bank, job="daily").start("sync", "2026-11-28")  # env-specific: not copied by default


@pytest.fixture(params=["local", "memory"])
def banks(request, tmp_path):
    if request.param == "local":
        return Bank(str(tmp_path / "dev" / "bank")), Bank(str(tmp_path / "prod" / "bank"))
    tag = uuid.uuid4().hex
    return Bank(f"memory://copy-{tag}/dev"), Bank(f"memory://copy-{tag}/prod")


def test_dry_run_then_copy_then_idempotent(banks):
    src, dst = banks
    _fill(src)
    dry = copy_bank(src, dst, dry_run=True)
    assert [i.action for i in dry.items] == ["new", "new", "new"]
    assert dry.rows_copied == 72
    assert dst.datasets() == []  # a dry run writes nothing

    report = copy_bank(src, dst)
    assert [i.action for i in report.items] == ["copied"] * 3 and not report.failed
    assert "ledger" not in dst.datasets()
    for keys in src.partitions("load"):
        assert dst.checksum("load", keys) == src.checksum("load", keys)
    pd.testing.assert_frame_equal(dst.read("load", order_by=["target_id", "time"]),
                                  src.read("load", order_by=["target_id", "time"]))

    again = copy_bank(src, dst)
    assert [i.action for i in again.items] == ["same"] * 3
    assert again.rows_copied == 0


def test_differing_partition_is_replaced_and_resume_after_interruption(banks):
    src, dst = banks
    _fill(src)
    copy_bank(src, dst)
    # The target diverged on one partition, and lost another (as if a copy died mid-way).
    write_load(dst, _load("site_a", "2026-11-01T00:00Z", 24, value=99.0))
    dst.delete_partition("load", {"target": "portfolio", "month": "2026-10"})
    dry = copy_bank(src, dst, dry_run=True)
    assert sorted(i.action for i in dry.items) == ["new", "replace", "same"]
    report = copy_bank(src, dst)
    assert sorted(i.action for i in report.items) == ["copied", "replaced", "same"]
    got = dst.read_partition("load", {"target": "site_a", "month": "2026-11"})
    assert got["load_mw"].iloc[0] == 1.0
    # An extra part in the target partition is removed so the partition equals the source.
    dst.write_partition("load", {"target": "site_a", "month": "2026-11"},
                        _load("site_a", "2026-11-05T00:00Z", 2), part="extra")
    report = copy_bank(src, dst, datasets=["load"])
    assert sorted(i.action for i in report.items) == ["replaced", "same", "same"]
    assert dst.checksum("load", {"target": "site_a", "month": "2026-11"}) == src.checksum(
        "load", {"target": "site_a", "month": "2026-11"})


def test_since_and_explicit_datasets(banks):
    src, dst = banks
    _fill(src)
    report = copy_bank(src, dst, since=date(2026, 10, 15))
    assert sorted(i.label for i in report.items) == ["load/target=portfolio/month=2026-10",
                                                     "load/target=site_a/month=2026-11"]
    report = copy_bank(src, dst, datasets=["ledger"])
    assert [i.action for i in report.items] == ["copied"]
    from aggregat.errors import BankError

    with pytest.raises(BankError, match="not found in source bank"):
        copy_bank(src, dst, datasets=["nope"])
    with pytest.raises(BankError, match="same"):
        copy_bank(src, src)


def test_cli_copy_between_two_local_environments(tmp_path):
    config = tmp_path / "aggregat.toml"
    config.write_text(f'[env.dev]\nroot = "{tmp_path / "dev"}"\n'
                      f'[env.prod]\nroot = "{tmp_path / "prod"}"\n')
    _fill(Bank(str(tmp_path / "dev" / "bank")))
    cmd = [sys.executable, "-m", "aggregat.cli.main", "bank", "copy", "--from", "dev", "--to",
           "prod", "--config", str(config)]
    env = {**os.environ, "COLUMNS": "200"}
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "would copy 3 new" in dry.stdout
    assert not (tmp_path / "prod" / "bank" / "load").exists()
    out = subprocess.run([*cmd, "--since", "2026-10-01"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2 new" in out.stdout
    assert sorted(p["month"] for p in Bank(str(tmp_path / "prod" / "bank")).partitions("load")) \
        == ["2026-10", "2026-11"]
    bad = subprocess.run([*cmd, "--since", "yesterday"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr and "Traceback" not in bad.stderr


def test_same_content_with_other_bytes_is_not_copied(banks):
    import io

    import pyarrow.parquet as pq

    src, dst = banks
    _fill(src)
    keys = {"target": "site_a", "month": "2026-11"}
    rel = src.part_path("load", keys)
    table = pq.read_table(io.BytesIO(src.store.read_bytes(rel)))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")  # same rows, other bytes
    assert buf.getvalue() != src.store.read_bytes(rel)
    dst.store.write_bytes(rel, buf.getvalue())
    report = copy_bank(src, dst, datasets=["load"])
    assert {i.label: i.action for i in report.items}["load/target=site_a/month=2026-11"] == "same"


def test_failed_verification_is_reported_and_retried(banks, monkeypatch):
    src, dst = banks
    _fill(src)
    real = dst.store.write_bytes
    monkeypatch.setattr(dst.store, "write_bytes", lambda rel, data: real(rel, data[:-40]))
    report = copy_bank(src, dst, datasets=["load"])
    assert [i.action for i in report.items] == ["failed"] * 3
    assert "verification failed" in report.failed[0].error
    monkeypatch.setattr(dst.store, "write_bytes", real)
    report = copy_bank(src, dst, datasets=["load"])
    assert [i.action for i in report.items] == ["replaced"] * 3 and not report.failed
