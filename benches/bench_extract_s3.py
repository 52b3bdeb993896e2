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

``--moto-process`` serves from moto in a process of its own instead: each s3 run then prints the
CPU seconds of the client side (this process and the workers: what stays on the workers' cores
with a real store on another machine) and of moto apart, and the last line adds their medians.

    python benches/bench_extract_s3.py [--workdir DIR] [--repeats 3] [--workers N]
                                       [--moto-process]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_extract import RUN, generate, make_sites  # noqa: E402
from moto_server import moto_in_process, moto_process  # noqa: E402

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
    parser.add_argument("--moto-process", action="store_true",
                        help="moto in its own process: its CPU apart from the client's")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-s3-"))
    local = Datalake(str(workdir / "datalake"))
    generate("arome-0025", workdir, local)

    import boto3

    url, stop, moto_cpu = moto_process() if args.moto_process else moto_in_process()
    os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "b",
                       "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1"})
    boto3.client("s3").create_bucket(Bucket="bench")
    remote = Datalake("s3://bench/datalake")
    t0 = time.perf_counter()
    remote.store.fs.put(str(workdir / "datalake") + "/", "bench/datalake/", recursive=True)
    print(f"uploaded the run in {time.perf_counter() - t0:.1f} s")
    locations = make_sites(get_product("arome-0025"))
    times: dict[str, list[float]] = {"local": [], "s3": []}
    cpus: dict[str, list[float]] = {"local": [], "s3": [], "moto": []}
    for i in range(args.repeats):
        for name, lake, bank in (("local", local, Bank(str(workdir / f"bank-{i}"))),
                                 ("s3", remote, Bank(f"s3://bench/bank-{i}"))):
            cpu0, moto0 = _cpu(), moto_cpu()
            t0 = time.perf_counter()
            report = extract_run("arome-0025", RUN, datalake=lake, bank=bank,
                                 locations=locations, packages=["SP1", "SP2"],
                                 workers=args.workers)
            times[name].append(time.perf_counter() - t0)
            cpus[name].append(_cpu() - cpu0)
            assert not report.partial and not report.quarantined, report.summary()
            split = ""
            if name == "s3" and args.moto_process:
                cpus["moto"].append(moto_cpu() - moto0)
                split = f" client + moto {cpus['moto'][-1]:.2f} s"
            print(f"{name}: {times[name][-1]:.2f} s, cpu {cpus[name][-1]:.2f} s{split} "
                  f"({report.rows} rows)", flush=True)
    stop()
    local_s, s3_s = statistics.median(times["local"]), statistics.median(times["s3"])
    line = f"local_s={local_s:.2f} s3_s={s3_s:.2f} ratio={s3_s / local_s:.2f}"
    line += f" cpu_local_s={statistics.median(cpus['local']):.2f}"
    line += f" cpu_s3_s={statistics.median(cpus['s3']):.2f}"  # + moto when in this process
    if args.moto_process:
        line += f" cpu_moto_s={statistics.median(cpus['moto']):.2f}"
    print(line)


if __name__ == "__main__":
    main()
