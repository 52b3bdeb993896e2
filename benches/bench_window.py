"""Benchmark (issue 3): reading a 14-day forecast window must not depend on the history length.

Builds two weather_forecast banks with one model, one run a day (00 UTC, steps 0-48 h hourly),
500 sites and 4 float32 variables: one with 3 years of runs, one with the last 3 months only
(hard links to the same files). Then times ``read_weather`` of the last 14 days for all sites in
each, and, for reference, a DuckDB query of the same window over a glob of the whole 3-year
dataset (the "scan the history" pattern of the legacy).

The banks are cached in ``--workdir`` (default: a temporary folder removed at the end).
Last line: ``read_14d_s=<3-year median> ratio_3y_3m=<3y / 3m>``; targets <= 0.1 s and <= 1.5.

    python benches/bench_window.py [--workdir DIR] [--years 3] [--sites 500] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aggregat.bank import Bank, read_weather
from aggregat.bank.store import parquet_options

MODEL = "arpege-01"
STEPS = np.arange(49)
VARIABLES = ("t2m_c", "rh2m_pct", "wind_speed_10m_ms", "ssrd_wm2")


def build(root: Path, first: pd.Timestamp, days: int, sites: int, seed: int = 0) -> int:
    """Write ``days`` daily runs from ``first`` straight with pyarrow; returns bytes written."""
    bank = Bank(str(root))
    rng = np.random.default_rng(seed)
    locations = pa.array(np.tile([f"site{i:04d}" for i in range(sites)], len(STEPS)))
    step_h = pa.array(np.repeat(STEPS, sites).astype("int16"))
    offsets = np.repeat(STEPS, sites).astype("int64") * 3_600_000_000  # microseconds
    n = len(STEPS) * sites
    total = 0
    for day in range(days):
        run = first + pd.Timedelta(days=day)
        run_us = run.value // 1000
        rel = bank.part_path("weather_forecast", {"model": MODEL, "run_date": f"{run:%Y-%m-%d}"},
                             "run=00")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ts = pa.timestamp("us", tz="UTC")
        cols = {
            "model": pa.array([MODEL] * n),
            "run_time": pa.array(np.full(n, run_us), ts),
            "available_at": pa.array(np.full(n, run_us + 4 * 3_600_000_000), ts),
            "valid_time": pa.array(run_us + offsets, ts),
            "step_h": step_h,
            "location": locations,
        }
        for var in VARIABLES:
            cols[var] = pa.array(rng.normal(10, 5, n).astype("float32"))
        table = pa.table(cols)
        pq.write_table(table, path, **parquet_options(table))
        total += path.stat().st_size
    return total


def link_last(src: Path, dst: Path, dates: list[str]) -> None:
    """The 3-month bank: hard links to the newest runs of the 3-year one."""
    for date in dates:
        rel = Path("weather_forecast") / f"model={MODEL}" / f"run_date={date}"
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in (src / rel).iterdir():
            target = dst / rel / f.name
            if not target.exists():
                os.link(f, target)


def timed(fns: dict[str, object], repeats: int) -> dict[str, tuple[float, float, object]]:
    """Median wall and CPU seconds of each function, calls interleaved (so a change in the load
    of the machine hits every function alike), and each one's last result."""
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    out: dict[str, object] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            out[name] = fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), out[k]) for k in fns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", help="cache folder for the built banks (kept)")
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--sites", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    tmp = None if args.workdir else tempfile.mkdtemp(prefix="bench-window-")
    work = Path(args.workdir or tmp)
    last_run = pd.Timestamp("2026-11-27T00:00Z")
    days_3y = 365 * args.years + 1
    first = last_run - pd.Timedelta(days=days_3y - 1)
    tag = f"{args.years}y-{args.sites}s-{len(VARIABLES)}v-v2"  # v2: parquet_options
    big, small = work / f"bank-{tag}", work / f"bank-{tag}-3m"
    marker = big / ".built"
    try:
        if not marker.exists():
            t = time.perf_counter()
            size = build(big, first, days_3y, args.sites)
            marker.write_text("ok")
            print(f"built {days_3y} runs x {args.sites} sites x {len(STEPS)} steps "
                  f"({days_3y * args.sites * len(STEPS) / 1e6:.1f} M rows, {size / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - t:.1f} s")
        else:
            print(f"using cached bank {big}")
        dates_3m = list(pd.date_range(last_run - pd.Timedelta(days=91), last_run, freq="D")
                        .strftime("%Y-%m-%d"))
        link_last(big, small, dates_3m)

        end = last_run + pd.Timedelta(days=1)
        start = end - pd.Timedelta(days=14)
        banks = {"3y": Bank(str(big)), "3m": Bank(str(small))}
        for bank in banks.values():  # warm the page cache and the DuckDB connection
            read_weather(bank, start, end)
        results = timed({name: (lambda b=bank: read_weather(b, start, end))
                         for name, bank in banks.items()}, args.repeats)
        med = {}
        for name, (wall, cpu, df) in results.items():
            med[name] = wall
            n_files = len(banks[name].files("weather_forecast"))
            print(f"{name}: {n_files} runs in bank, 14-day window {len(df)} rows "
                  f"({df['location'].nunique()} sites), median {wall * 1000:.1f} ms wall, "
                  f"{cpu * 1000:.1f} ms CPU over {args.repeats} reads")
        print(f"load average during the reads: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        scan = {}
        for name, root in (("3y", big), ("3m", small)):
            glob = str(root / "weather_forecast" / "**" / "*.parquet")
            sql = (f"SELECT * FROM read_parquet('{glob}', hive_partitioning = false) "
                   "WHERE valid_time >= ? AND valid_time < ?")
            t = time.perf_counter()
            scanned = con.sql(sql, params=[start, end]).to_arrow_table().num_rows
            scan[name] = time.perf_counter() - t
        print(f"reference: DuckDB glob over the whole dataset, same window ({scanned} rows): "
              f"3y {scan['3y'] * 1000:.0f} ms, 3m {scan['3m'] * 1000:.0f} ms "
              f"(ratio {scan['3y'] / scan['3m']:.1f}; {scan['3y'] / med['3y']:.1f}x the "
              "partition read on 3y)")
        print(f"read_14d_s={med['3y']:.4f} ratio_3y_3m={med['3y'] / med['3m']:.2f}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
