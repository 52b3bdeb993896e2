"""The bank in processes forked after the parent used it (the embedded jobs predict and train
several targets in a fork-started process pool, after sync has read the bank)."""

from __future__ import annotations

import subprocess
import sys

from child_process import child_env

CHILD = """
import sys
import pandas as pd
from aggregat.bank import Bank, read_load, write_load
from aggregat.parallel import run_tasks

bank = Bank(sys.argv[1])
times = pd.date_range("2026-11-01", periods=48, freq="h", tz="UTC")
write_load(bank, pd.DataFrame({"target_id": "a", "time": times, "load_mw": 1.0,
                               "updated_at": times[-1]}))
assert len(read_load(bank)) == 48  # this process's DuckDB is started, its threads running

def rows(_):
    return len(read_load(Bank(sys.argv[1])))

print(sorted(r for _, r, e in run_tasks(rows, range(4), workers=2)))
"""


def test_workers_forked_after_a_bank_read_read_the_bank(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "bank")],
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "[48, 48, 48, 48]"
