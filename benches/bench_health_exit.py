"""Benchmark (audit finding 8): ``aggregat health --json`` must never abort at interpreter exit.

It once ended with SIGABRT (exit 134) after printing its report, 1 run in 31. This runs the
real command ``--runs`` times as separate processes against a demo root and counts the runs
killed by a signal (or exiting 128+), and the runs whose output is not the JSON report.

    python benches/bench_health_exit.py [--runs 200] [--home PATH]

``--home``: an existing ``AGGREGAT_HOME`` (e.g. one ``aggregat demo`` built; it is only read);
without it, a demo root is built in a temporary folder first (a few minutes).
Last line: ``runs=200 aborts=0 bad_output=0 median_s=…``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aggregat


def child_env(home: Path) -> dict[str, str]:
    src = str(Path(aggregat.__file__).resolve().parents[1])
    env = {**os.environ, "AGGREGAT_HOME": str(home)}
    env.pop("AGGREGAT_CONFIG", None)
    env.pop("AGGREGAT_ENV", None)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def build_demo(home: Path) -> None:
    print(f"building a demo root in {home} (a few minutes)...", flush=True)
    subprocess.run([sys.executable, "-m", "aggregat.cli.main", "demo"], cwd=home.parent,
                   env=child_env(home), check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--home", type=Path, help="an existing demo AGGREGAT_HOME")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-health-"))
    try:
        home = args.home.resolve() if args.home else scratch / "aggregat-data"
        if not args.home:
            build_demo(home)
        env = child_env(home)
        aborts, bad, seconds = 0, 0, []
        for i in range(1, args.runs + 1):
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-X", "faulthandler", "-m", "aggregat.cli.main", "health",
                 "--json"], cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
            seconds.append(time.perf_counter() - t0)
            if done.returncode < 0 or done.returncode >= 128:
                aborts += 1
                print(f"run {i}: exit {done.returncode}\n{done.stderr[-3000:]}", flush=True)
                continue
            try:
                report = json.loads(done.stdout)
                ok = report["exit_code"] == done.returncode
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                bad += 1
                print(f"run {i}: exit {done.returncode}, output not the report: "
                      f"{done.stdout[:200]!r} {done.stderr[-500:]!r}", flush=True)
            if i % 10 == 0:
                print(f"... {i} runs, {aborts} aborts", flush=True)
        print(f"runs={args.runs} aborts={aborts} bad_output={bad} "
              f"median_s={statistics.median(seconds):.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
