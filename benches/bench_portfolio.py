"""Benchmark: the daily job and the weekly training of a simulated portfolio on a Dask cluster.

For each size (N sites, T targets, Y years of hourly history) it builds a world with the demo's
simulators (truth weather and load, the forecast history in the bank, the measured load in the
energy DB, one simulated AROME SP1 run of the day served over loopback HTTP), then, with a
Dask cluster of 1 and of 2 workers (scheduler in this process, worker processes over TCP on
127.0.0.1, one thread each), times ``run weekly --force`` (one training task per target) and
``run daily --force`` (extract, sync, predict and publish of every target; the files are already
in the datalake after the first daily, so fetch is a check). Prints a table and, last, the
figures of the largest size: ``daily_s=… weekly_s=… targets=… workers=…``.

``--stack prod`` (the default) is the production shape: root on an S3 API server (moto in server
mode on loopback, in a process of its own, reached through the standard ``AWS_*`` variables,
which the worker processes inherit) and the energy DB on PostgreSQL (pgserver); ``--stack
local`` uses a local root and SQLite. moto is a Python server sharing this machine's cores:
read S3 times as an upper bound.

Site ``s`` belongs to target ``s % T``; every target's load is the demo's portfolio load of its
sites. History is capped at ``--site-years`` (sites x years) per size so the big sizes fit in
memory and time; the table says which history each size had.

    python benches/bench_portfolio.py [--sizes 50/5,200/20,500/50] [--workers 1,2] [--years 3]
                                      [--stack prod|local]
    python benches/bench_portfolio.py --quick        # 10/2,20/4,40/8 with 0.3 years
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

DAY = datetime(2026, 11, 27, tzinfo=UTC)  # the daily job's day (AROME 00Z of that day)


def sites_csv(path: Path, n: int) -> list[tuple[str, float, float, float]]:
    """``n`` sites on a jittered grid around Lyon (one region: small simulated GRIB files)."""
    rng = np.random.default_rng(n)
    side = int(np.ceil(np.sqrt(n)))
    rows = []
    for i in range(n):
        lat = 44.6 + 1.8 * (i // side) / max(side - 1, 1) + rng.uniform(-0.02, 0.02)
        lon = 4.2 + 2.0 * (i % side) / max(side - 1, 1) + rng.uniform(-0.02, 0.02)
        rows.append((f"s{i:03d}", round(lat, 4), round(lon, 4), round(rng.uniform(0.5, 3), 2)))
    path.write_text("id,name,lat,lon,weight\n" + "".join(
        f"{i},{i},{la},{lo},{w}\n" for i, la, lo, w in rows))
    return rows


def build_world(root: Path, n_sites: int, n_targets: int, years: float, base_url: str,
                data_root: str = "data", energy_db: str | None = None) -> Path:
    """The world's files under ``root`` (its data under ``data_root``: a folder or a URL, its
    energy DB at ``energy_db``, default SQLite in the folder); returns its aggregat.toml (env
    ``bench``)."""
    from aggregat.bank import Bank, write_weather_run
    from aggregat.config import EnergySettings, load_environment
    from aggregat.demo.truth import forecast_history, portfolio_load, truth_weather
    from aggregat.energy.db import make_engine
    from aggregat.energy.schema import create_default_tables, insert_measurements
    from aggregat.weather.sites import load_locations

    root.mkdir(parents=True, exist_ok=True)
    sites = sites_csv(root / "sites.csv", n_sites)
    locations = load_locations(str(root / "sites.csv"))
    end = pd.Timestamp(DAY) + pd.Timedelta(days=3)
    start = (pd.Timestamp(DAY) - pd.Timedelta(days=round(365 * years))).normalize()
    truth = truth_weather(locations, start - pd.Timedelta(days=2), end)
    groups = {f"t{j:02d}": [s for k, s in enumerate(sites) if k % n_targets == j]
              for j in range(n_targets)}
    targets = "".join(
        f'[[env.bench.forecast.targets]]\nid = "{t}"\nsites = [{", ".join(repr(s[0]) for s in g)}]'
        f'\nweather_models = ["arome-0025"]\n' for t, g in groups.items())
    config = root / "aggregat.toml"
    energy_db = energy_db or f"sqlite:///{root}/data/energy.sqlite"
    (root / "data").mkdir(exist_ok=True)
    config.write_text(f"""default_env = "bench"
[env.bench]
root = "{data_root}"
energy_db = "{energy_db}"
sites = "sites.csv"
[env.bench.weather]
base_url = "{base_url}"
models = ["arome-0025"]
packages = {{ "arome-0025" = ["SP1"] }}
{targets}""")
    bank = Bank(load_environment("bench", config).bank)
    runs = pd.date_range(start, pd.Timestamp(DAY) - pd.Timedelta(days=1), freq="D")
    for run, frame in forecast_history(truth, runs, "arome-0025"):
        write_weather_run(bank, "arome-0025", run, frame)
    measured = pd.concat([pd.DataFrame({"target_id": t, "time": load.index, "load_mw": load})
                          for t, load in ((t, portfolio_load(truth["t2m"], {s[0]: s[3] for s in g}))
                                          for t, g in groups.items())], ignore_index=True)
    measured = measured[(measured["time"] >= start) & (measured["time"] < pd.Timestamp(DAY)
                                                       + pd.Timedelta(hours=9))]
    settings = EnergySettings()
    engine = make_engine(energy_db, settings)
    create_default_tables(engine, settings)
    insert_measurements(engine, settings, measured.assign(updated_at=pd.Timestamp(DAY)))
    engine.dispose()
    simulate_day(root / "archive", locations, truth)
    from aggregat import api

    api.sync(load_environment("bench", config))  # the load history into the bank (untimed)
    return config


def simulate_day(archive: Path, locations, truth: dict) -> None:
    from aggregat.weather.products import get_product
    from aggregat.weather.simulate import PointDriver, crop_for_points, simulate_run

    product = get_product("arome-0025")
    driver = PointDriver(locations.lats, locations.lons, list(locations.site_ids), truth)
    grid = crop_for_points(product, locations.lats, locations.lons, margin_deg=0.2)
    simulate_run(product, DAY, archive, grid=grid, packages=["SP1"], seed=1, driver=driver)


def measure(config: Path, workers: int) -> dict:
    """weekly --force then daily --force on a fresh ``workers``-worker cluster; seconds."""
    import distributed

    from aggregat.config import load_environment
    from aggregat.ops import jobs

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0") as cluster:
        env = load_environment("bench", config).model_copy(
            update={"scheduler": cluster.scheduler_address})
        t = time.perf_counter()
        weekly = jobs.weekly(env, force=True)
        weekly_s = time.perf_counter() - t
        weekly.raise_for_problems()
        t = time.perf_counter()
        daily = jobs.daily(env, DAY.date(), force=True)
        daily_s = time.perf_counter() - t
        daily.raise_for_problems()
    per_target = [t["seconds"] for t in _train_details(env)]
    steps: dict[str, float] = {}
    for step in daily.steps:  # a step may run once per partition (a weather run, a target)
        steps[step.step] = steps.get(step.step, 0.0) + (step.seconds or 0.0)
    return {"weekly_s": weekly_s, "daily_s": daily_s,
            "train_task_s": statistics.median(per_target) if per_target else float("nan"),
            "extract_s": steps.get("extract", 0.0), "predict_s": steps.get("predict", 0.0),
            "daily_steps": steps}


def _train_details(env) -> list[dict]:
    """Seconds of each target's newest model (meta ``fit_seconds``)."""
    from aggregat.forecast.registry import Registry

    reg = Registry(env.registry)
    return [{"target": t, "seconds": reg.meta(t, reg.versions(t)[-1])["fit_seconds"]}
            for t in reg.targets()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50/5,200/20,500/50", help="sites/targets,...")
    ap.add_argument("--workers", default="1,2", help="cluster sizes, e.g. 1,2")
    ap.add_argument("--years", type=float, default=3.0, help="history (capped by --site-years)")
    ap.add_argument("--site-years", type=float, default=150.0,
                    help="at most sites x years of history per size (memory and time)")
    ap.add_argument("--quick", action="store_true", help="sizes 10/2,20/4,40/8, 0.3 years")
    ap.add_argument("--workdir", default=None, help="keep the worlds here (default: a temp dir)")
    ap.add_argument("--stack", choices=("prod", "local"), default="prod",
                    help="prod: root on S3 (moto) and PostgreSQL (pgserver); local: folder, SQLite")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.years = "10/2,20/4,40/8", 0.3
    sizes = [tuple(int(x) for x in s.split("/")) for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-portfolio-"))
    print(f"machine: {_cores()} cores (shared); workdir {work}; stack {args.stack}")
    rows = []
    with contextlib.ExitStack() as stack:
        new_store = stack.enter_context(_prod_stack(work)) if args.stack == "prod" else None
        for n_sites, n_targets in sizes:
            rows += _size(work, n_sites, n_targets, min(args.years, args.site_years / n_sites),
                          workers, new_store)
    _table(rows, sizes)


def _size(work: Path, n_sites: int, n_targets: int, years: float, workers: list[int],
          new_store) -> list[dict]:
    from aggregat.weather.loopback import serve_folder

    rows = []
    root = work / f"{n_sites}-{n_targets}"
    (root / "archive").mkdir(parents=True, exist_ok=True)
    where = new_store(f"{n_sites}-{n_targets}") if new_store else {}
    with serve_folder(root / "archive") as base_url:
        t = time.perf_counter()
        config = build_world(root, n_sites, n_targets, years, base_url, **where)
        print(f"{n_sites} sites / {n_targets} targets / {years:.2f} years: world built in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        for w in workers:
            r = measure(config, w)
            rows.append({"sites": n_sites, "targets": n_targets, "years": years,
                         "workers": w, **r})
            print(f"  {w} worker(s): weekly {r['weekly_s']:.1f} s (median task "
                  f"{r['train_task_s']:.1f} s), daily {r['daily_s']:.1f} s (extract "
                  f"{r['extract_s']:.1f} s, predict {r['predict_s']:.1f} s)", flush=True)
            print("    daily steps: " + ", ".join(f"{k} {v:.1f} s"
                                                  for k, v in r["daily_steps"].items()), flush=True)
    return rows


@contextlib.contextmanager
def _prod_stack(work: Path):
    """An S3 API server (moto) and a PostgreSQL server for the run; yields a function giving
    each size a fresh bucket root and database (``data_root``, ``energy_db``)."""
    import boto3
    import pgserver
    import sqlalchemy as sa
    from moto_server import moto_process

    # moto in a process of its own, as a store is: in this process it would serve under the GIL
    # of the job process, which reads a portfolio's training inputs itself.
    endpoint, stop_s3, _ = moto_process()
    # The product and the Dask worker processes reach it through the standard variables only.
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    pg_dir = Path(tempfile.mkdtemp(prefix="bench-portfolio-pg-"))
    pg = pgserver.get_server(pg_dir / "data", cleanup_mode="delete")
    info = pg.get_postmaster_info()
    pg_socket = f"{info.socket_dir}/.s.PGSQL.{info.port}"

    def new_store(name: str) -> dict[str, str]:
        bucket = "bench-" + name.replace("/", "-")
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        db = "bench_" + name.replace("-", "_")
        admin = sa.create_engine(f"postgresql+pg8000://postgres@/postgres?unix_sock={pg_socket}",
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
        admin.dispose()
        return {"data_root": f"s3://{bucket}/data",
                "energy_db": f"postgresql+pg8000://postgres@/{db}?unix_sock={pg_socket}"}

    try:
        yield new_store
    finally:
        pg.cleanup()
        shutil.rmtree(pg_dir, ignore_errors=True)
        stop_s3()


def _table(rows: list[dict], sizes: list[tuple[int, int]]) -> None:
    print()
    print("| sites | targets | years | workers | weekly s | s/target | median train task s "
          "| daily s | extract s | predict s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['sites']} | {r['targets']} | {r['years']:.2f} | {r['workers']} | "
              f"{r['weekly_s']:.1f} | {r['weekly_s'] / r['targets']:.2f} | "
              f"{r['train_task_s']:.1f} | {r['daily_s']:.1f} | {r['extract_s']:.1f} | "
              f"{r['predict_s']:.1f} |")
    last = [r for r in rows if (r["sites"], r["targets"]) == sizes[-1]]
    best = min(last, key=lambda r: r["weekly_s"])
    print(f"daily_s={best['daily_s']:.1f} weekly_s={best['weekly_s']:.1f} "
          f"targets={best['targets']} workers={best['workers']}")


def _cores() -> int:
    from aggregat.parallel import default_workers

    return default_workers()


if __name__ == "__main__":
    main()
