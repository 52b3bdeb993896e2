"""Extracting a run from an ``s3://`` datalake against the same run in a local one (issue 15).

The simulated AROME 0.025° run of bench_extract.py (SP1 + SP2, 500 sites) is extracted end to end
(verify hashes, decode, write the bank) from a local datalake and from the same files on a real
S3 API (moto server on loopback, in this process), alternately, ``--repeats`` times each. The
last line is ``local_s=… s3_s=… ratio=…`` (medians of the same run). Each run also prints the
CPU seconds it took (this process, moto included, plus the workers): on a busy machine, wall
times follow CPU. moto serves from this process (one GIL shared with the parent of the workers):
a real store (or MinIO) serves faster, and on another machine.

``--workers 1`` decodes in one process: the transfer then has the other core, and what is left
of the difference is what transfer does not overlap with decoding.

    python benches/bench_extract_s3.py [--workdir DIR] [--repeats 3] [--workers N]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_extract import RUN, generate, make_sites  # noqa: E402

from aggregat.bank import Bank  # noqa: E402
from aggregat.weather.datalake import Datalake  # noqa: E402
from aggregat.weather.extract import extract_run  # noqa: E402
from aggregat.weather.products import get_product  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the pool's workers)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-s3-"))
    local = Datalake(str(workdir / "datalake"))
    generate("arome-0025", workdir, local)

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "b",
                       "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1"})
    boto3.client("s3").create_bucket(Bucket="bench")
    remote = Datalake("s3://bench/datalake")
    t0 = time.perf_counter()
    remote.store.fs.put(str(workdir / "datalake") + "/", "bench/datalake/", recursive=True)
    print(f"uploaded the run in {time.perf_counter() - t0:.1f} s")
    locations = make_sites(get_product("arome-0025"))
    times: dict[str, list[float]] = {"local": [], "s3": []}
    for i in range(args.repeats):
        for name, lake, bank in (("local", local, Bank(str(workdir / f"bank-{i}"))),
                                 ("s3", remote, Bank(f"s3://bench/bank-{i}"))):
            cpu0 = _cpu()
            t0 = time.perf_counter()
            report = extract_run("arome-0025", RUN, datalake=lake, bank=bank,
                                 locations=locations, packages=["SP1", "SP2"],
                                 workers=args.workers)
            times[name].append(time.perf_counter() - t0)
            assert not report.partial and not report.quarantined, report.summary()
            print(f"{name}: {times[name][-1]:.2f} s, cpu {_cpu() - cpu0:.2f} s "
                  f"({report.rows} rows)", flush=True)
    server.stop()
    local_s, s3_s = statistics.median(times["local"]), statistics.median(times["s3"])
    print(f"local_s={local_s:.2f} s3_s={s3_s:.2f} ratio={s3_s / local_s:.2f}")


if __name__ == "__main__":
    main()
