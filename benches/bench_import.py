"""Benchmark (issue 17): a year of weather history imported from the long format.

Writes (in a child process, so that its memory is not counted) one Parquet file of daily 00 UTC
AROME runs for ``--sites`` sites, steps 0..48 and six variables in GRIB units (2t, 2r, 10u, 10v,
ssrd and tp accumulated from the run start): 365 x 500 x 49 x 6 = 53.7 million rows by default.
Then imports it into an empty bank with :func:`aggregat.import_weather_history` and reports the
time and this process's peak resident memory. Goal: under 3 minutes and 2 GiB on 2 cores.

Last line: ``rows=… import_s=… rows_per_s=… peak_rss_mb=…``.

    python benches/bench_import.py [--runs 365] [--sites 500] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WRITE = """
import duckdb, sys
out, runs, sites = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(f'''
COPY (
  WITH r AS (SELECT TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_days(d::INT) AS run_time
             FROM range({runs}) t(d)),
       s AS (SELECT 'site-' || lpad(i::VARCHAR, 4, '0') AS site_id, i FROM range({sites}) t(i)),
       h AS (SELECT step FROM range(49) t(step)),
       v AS (SELECT * FROM (VALUES ('2t', 0), ('2r', 1), ('10u', 2), ('10v', 3), ('ssrd', 4),
                                   ('tp', 5)) t(variable, k))
  SELECT 'AROME' AS model, run_time, run_time + to_hours(step::INT) AS valid_time, site_id,
         variable,
         CASE k WHEN 0 THEN 275 + 8 * sin(step / 3.8) + (i % 7)
                WHEN 1 THEN 70 + 20 * cos(step / 3.8)
                WHEN 2 THEN 3 + (i % 5) WHEN 3 THEN -2 + (i % 3)
                WHEN 4 THEN step * 3600 * (120 + i % 50)
                ELSE step * 0.1 END AS value
  FROM r, s, h, v
) TO '{out}' (FORMAT PARQUET, ROW_GROUP_SIZE 1000000)
''')
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="30 runs x 100 sites")
    args = parser.parse_args()
    runs, sites = (30, 100) if args.quick else (args.runs, args.sites)
    import aggregat

    work = Path(tempfile.mkdtemp(prefix="aggregat-bench-import-"))
    try:
        data = work / "history.parquet"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _WRITE, str(data), str(runs), str(sites)],
                       check=True)
        print(f"wrote {data.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
        (work / "aggregat.toml").write_text(
            f'default_env = "b"\n[env.b]\nroot = "{work / "home"}"\n')
        env = aggregat.open_env("b", config=str(work / "aggregat.toml"))
        t0 = time.perf_counter()
        report = aggregat.import_weather_history(env, [data])
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(report.summary())
        print(f"rows={report.rows} import_s={seconds:.1f} rows_per_s={report.rows / seconds:.0f} "
              f"peak_rss_mb={peak_mb:.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
