"""Benchmark (issue 4): energy DB sync and publish on SQLite and a real PostgreSQL (pgserver).

Fills the default measured-load table with ``--targets`` x ``--days`` hourly rows, then times:

- ``select``: a plain SQLAlchemy fetch of all rows (the reference: the cost of reading the table);
- ``sync_full``: ``sync_load`` into an empty bank (read + bank upsert + watermark);
- ``sync_incr``: a second sync after one more day of data (look-back 1 day);
- ``publish``: one issue time of 48 hourly forecasts per target, into the default table;
- ``republish``: the same issue again (delete + insert in one transaction).

Last line (PostgreSQL): ``sync_full_s=… sync_rows_per_s=… sync_incr_s=… publish_s=…
ratio_sync_select=…`` where the ratio is sync_full / select measured in the same run.

    python benches/bench_energy.py [--targets 100] [--days 60]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from aggregat.bank import Bank, write_forecast
from aggregat.config import EnergySettings
from aggregat.energy.db import make_engine
from aggregat.energy.publish import publish_forecast
from aggregat.energy.schema import create_default_tables, insert_measurements
from aggregat.energy.sync import sync_load

START = pd.Timestamp("2026-01-01T00:00Z")


def load_frame(targets: int, first: pd.Timestamp, days: int) -> pd.DataFrame:
    times = pd.date_range(first, periods=24 * days, freq="h")
    ids = np.repeat([f"site-{i:04d}" for i in range(targets)], len(times))
    t = np.tile(times, targets)
    rng = np.random.default_rng(0)
    return pd.DataFrame({"target_id": ids, "time": t, "load_mw": rng.uniform(1, 50, len(t)),
                         "updated_at": t + pd.Timedelta(minutes=30)})


def forecast_frame(targets: int, issue: pd.Timestamp) -> pd.DataFrame:
    valid = pd.date_range(issue + pd.Timedelta(hours=14), periods=48, freq="h")
    ids = np.repeat([f"site-{i:04d}" for i in range(targets)], len(valid))
    p50 = np.linspace(10, 20, len(ids))
    return pd.DataFrame({"target_id": ids, "issue_time": issue,
                         "valid_time": np.tile(valid, targets),
                         "p10_mw": p50 - 1, "p50_mw": p50, "p90_mw": p50 + 1,
                         "model_version": "bench", "is_baseline": False})


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(url: str, work: Path, targets: int, days: int) -> dict[str, float]:
    settings = EnergySettings(sync_lookback_days=1.0)
    engine = make_engine(url, settings)
    create_default_tables(engine, settings)
    insert_measurements(engine, settings, load_frame(targets, START, days))
    rows = targets * days * 24
    out: dict[str, float] = {"rows": rows}
    with engine.connect() as conn:
        out["select_s"], _ = timed(lambda: conn.execute(
            sa.text("SELECT target_id, time_utc, value_mw, updated_at FROM load_measurements "
                    "ORDER BY updated_at")).fetchall())
    bank = Bank(str(work / "bank"))
    out["sync_full_s"], report = timed(lambda: sync_load(engine, bank, settings))
    assert report.rows_written == rows
    insert_measurements(engine, settings,
                        load_frame(targets, START + pd.Timedelta(days=days), 1))
    out["sync_incr_s"], report = timed(lambda: sync_load(engine, bank, settings))
    out["sync_incr_rows"] = report.rows_read
    issue = pd.Timestamp("2026-03-15T10:00Z")
    write_forecast(bank, forecast_frame(targets, issue))
    out["publish_s"], _ = timed(lambda: publish_forecast(engine, bank, settings, issue))
    out["republish_s"], _ = timed(lambda: publish_forecast(engine, bank, settings, issue))
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args()
    import pgserver

    work = Path(tempfile.mkdtemp(prefix="aggregat-bench-energy-"))
    server = pgserver.get_server(work / "pg", cleanup_mode="delete")
    try:
        info = server.get_postmaster_info()
        pg = f"postgresql+pg8000://postgres@/postgres?unix_sock={info.socket_dir}/.s.PGSQL.{info.port}"
        results = {}
        for name, url in (("sqlite", f"sqlite:///{work}/energy.sqlite"), ("postgres", pg)):
            (work / name).mkdir()
            results[name] = r = bench(url, work / name, args.targets, args.days)
            print(f"{name:8s} rows={int(r['rows'])} select={r['select_s']:.2f}s "
                  f"sync_full={r['sync_full_s']:.2f}s ({r['rows'] / r['sync_full_s']:.0f} rows/s) "
                  f"sync_incr={r['sync_incr_s']:.2f}s ({int(r['sync_incr_rows'])} rows read) "
                  f"publish={r['publish_s']:.2f}s republish={r['republish_s']:.2f}s "
                  f"({args.targets * 48} rows)")
        r = results["postgres"]
        rate = r["rows"] / r["sync_full_s"]
        print(f"sync_full_s={r['sync_full_s']:.2f} sync_rows_per_s={rate:.0f}"
              f" sync_incr_s={r['sync_incr_s']:.2f} publish_s={r['publish_s']:.2f} "
              f"ratio_sync_select={r['sync_full_s'] / r['select_s']:.1f}")
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
