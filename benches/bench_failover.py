"""Benchmark (issue 14): how long a fetch takes to fail over from a broken first source.

Serves a small simulated AROME 0.025° run (SP1+SP2, 18 files) on 127.0.0.1 and fetches it with
the default settings (8 workers, 5 retries, 0.5 s backoff doubling to 30 s, 60 s timeout) from
``[first, good]`` where the first source is:

- ``good``: itself fine (the reference: no failover at all);
- ``closed-port``: nothing listens (connection refused: given up after 3 refusals, each file
  moves on at its first one);
- ``empty``: answers 404 for every file (each file moves on at once);
- ``busy``: answers 503 for every file (each file is retried with backoff, then moves on).

Prints the median of ``--repeats`` fetches per case and its excess over ``good`` (same run).
Last line: ``failover_refused_s=<excess> failover_404_s=<excess> failover_503_s=<excess>``.

    python benches/bench_failover.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aggregat.weather.datalake import Datalake
from aggregat.weather.fetch import fetch_run
from aggregat.weather.loopback import serve_folder
from aggregat.weather.products import get_product
from aggregat.weather.simulate import simulate_run
from aggregat.weather.sources import open_data

PRODUCT = get_product("arome-0025")
RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)


class _Busy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(first: str, good: str, work: Path) -> float:
    lake = Datalake(str(Path(tempfile.mkdtemp(dir=work)) / "lake"))
    t0 = time.perf_counter()
    report = fetch_run(PRODUCT, RUN, lake, sources=[open_data(first, "first"),
                                                   open_data(good, "good")], progress=False)
    took = time.perf_counter() - t0
    assert report.complete, report.summary()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        grid = PRODUCT.grid.crop(46.2, 46.0, 2.0, 2.2)
        simulate_run(PRODUCT, RUN, work / "archive", grid=grid,
                     steps=[g[0] for g in PRODUCT.groups])
        (work / "empty").mkdir()
        busy = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
        busy.daemon_threads = True
        threading.Thread(target=busy.serve_forever, daemon=True).start()
        try:
            with serve_folder(work / "archive") as good, serve_folder(work / "empty") as empty:
                firsts = {"good": good, "closed-port": f"http://127.0.0.1:{_closed_port()}/pnt",
                          "empty": empty, "busy": f"http://127.0.0.1:{busy.server_port}/pnt"}
                medians = {}
                for case, first in firsts.items():
                    times = [_timed(first, good, work) for _ in range(args.repeats)]
                    medians[case] = statistics.median(times)
                    print(f"{case:12s} median {medians[case]:7.3f} s  "
                          f"(runs: {', '.join(f'{t:.3f}' for t in times)})")
        finally:
            busy.shutdown()
            busy.server_close()
    excess = {k: medians[k] - medians["good"] for k in medians}
    print(f"failover_refused_s={excess['closed-port']:.3f} failover_404_s={excess['empty']:.3f} "
          f"failover_503_s={excess['busy']:.3f}")


if __name__ == "__main__":
    main()
