"""Response time of each dashboard page: on the demo data, and on a synthetic target with 3 years
of half-hourly load and day-ahead forecasts (the forecast page and its chart's first series).

    python benches/bench_dashboard.py [--n 7]

Prints the median of N requests per page (the first, cold request apart) and, last,
``pages_max_ms=…`` (the slowest median)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

import aggregat

PAGES = ["/", "/runs", "/calendar", "/models", "/forecasts/{t}",
         "/api/forecasts/{t}/series?width=1200",
         "/metrics"]


def synthetic(env, target: str = "big3y") -> str:
    """3 years of half-hourly load and one day-ahead issue a day for it, into the bank."""
    from aggregat.bank import write_forecast, write_load

    bank = aggregat.open_bank(env)
    end = pd.Timestamp.now(tz="UTC").floor("D")
    times = pd.date_range(end - pd.Timedelta(days=3 * 365), end, freq="30min", inclusive="left")
    load = 50 + 10 * np.sin(np.arange(len(times)) / 48 * 2 * np.pi)
    write_load(bank, pd.DataFrame({"target_id": target, "time": times, "load_mw": load}))
    issue = times.floor("D") - pd.Timedelta(hours=14)
    write_forecast(bank, pd.DataFrame({"target_id": target, "issue_time": issue,
                                       "valid_time": times, "p10_mw": load - 3,
                                       "p50_mw": load + 0.5, "p90_mw": load + 3,
                                       "model_version": "synthetic", "is_baseline": False}))
    return target


def bench(client: TestClient, path: str, n: int) -> float:
    client.get(path)  # cold: caches, imports
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=7)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    (home / "aggregat.toml").write_text(f'[env.b]\nroot = "{home / "data"}"\n')
    env = aggregat.run_demo(aggregat.open_env("b", home / "aggregat.toml"), days=2,
                            history_days=30, log=lambda _m: None).env
    worst = 0.0
    for label, target in (("demo", "portfolio"), ("3y", None)):
        if target is None:
            t0 = time.perf_counter()
            target = synthetic(env)
            print(f"synthetic 3-year half-hourly target written in "
                  f"{time.perf_counter() - t0:.1f} s")
        client = TestClient(aggregat.dashboard_app(env))
        if label == "3y":
            t0 = time.perf_counter()
            client.get(f"/forecasts/{target}")
            client.get(f"/api/forecasts/{target}/series?width=1200")
            print(f"3y forecast page + chart series, cold (first read of the bank): "
                  f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        for page in PAGES:
            path = page.format(t=target)
            ms = bench(client, path, args.n)
            worst = max(worst, ms)
            print(f"{label:5s} {path:45s} median {ms:8.1f} ms")
    print(f"pages_max_ms={worst:.1f}")


if __name__ == "__main__":
    main()
