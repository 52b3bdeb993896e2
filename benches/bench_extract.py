"""Extraction speed against its references, measured in one run (issue 2).

For one simulated AROME 0.025° run (SP1 0-51 h, SP2 clouds; CCSDS 16 bits; real time groups) and
one ARPEGE 0.1° run (0-102 h), with 500 sites:

  (a) decode-only: ecCodes decoding the needed messages in one process (the floor for one core),
  (b) ``extract_run`` end to end into a bank with default parallelism,
  (c) cfgrib/xarray: ``open_datasets`` per file + vectorized nearest ``.sel`` of the same values.

Values of (b) are checked against (a) at the nearest grid points. The last line is (for AROME)
``decode_s=… extract_s=… cfgrib_s=… ratio_decode=… speedup_cfgrib=… peak_rss_mb=…`` (the peak is
measured as proportional set size, parent + workers, in a separate untimed run).
Targets on a 2-core machine: ratio_decode <= 0.8, speedup_cfgrib >= 6, peak_rss_mb <= 1024.

    python benches/bench_extract.py [--workdir DIR] [--repeats 3] [--skip-cfgrib] [--only arome]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import eccodes
import numpy as np
import psutil

from aggregat.bank import Bank, read_weather
from aggregat.weather.datalake import Datalake
from aggregat.weather.extract import extract_run
from aggregat.weather.grib import read_header
from aggregat.weather.products import PARAMETERS, get_product
from aggregat.weather.simulate import simulate_run
from aggregat.weather.sites import Locations

RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)
WANTED = ("t2m", "rh2m", "u10", "v10", "ssrd", "tp", "lcc", "mcc", "hcc")
# cfgrib's names of the wanted fields; Météo-France's tp decodes as "unknown" (so does tcc, in SP2,
# which is not wanted): only the same values as (a) and (b) are loaded.
CFGRIB_NAMES = {"t2m", "r2", "u10", "v10", "ssrd", "lcc", "mcc", "hcc"}


class PeakRSS:
    """Peak memory of this process and its children, sampled every 20 ms.

    Proportional set size (PSS): pages shared by the forked workers and the parent (libraries,
    the parent's heap before the fork) count once, split between them, as the kernel accounts
    them; a sum of RSS would count them once per process.
    """

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pss(proc: psutil.Process) -> int:
        try:
            return proc.memory_full_info().pss
        except (psutil.Error, AttributeError):
            return proc.memory_info().rss

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                total = self._pss(me) + sum(self._pss(c) for c in me.children(recursive=True))
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_sites(product, n: int = 500, seed: int = 7) -> Locations:
    """Sites spread over France (inside both AROME and ARPEGE 0.1 domains)."""
    rng = np.random.default_rng(seed)
    lats = rng.uniform(42.5, 51.0, n)
    lons = rng.uniform(-4.5, 8.0, n)
    return Locations.points([f"site{i:03d}" for i in range(n)], lats, lons)


def generate(product_id: str, workdir: Path, datalake: Datalake) -> list[str]:
    product = get_product(product_id)
    marker = workdir / f"{product_id}.done"
    if not marker.exists():
        t0 = time.perf_counter()
        archive = workdir / "archive"
        paths = simulate_run(product, RUN, archive, packages=("SP1", "SP2"))
        print(f"[{product_id}] generated {len(paths)} files in {time.perf_counter() - t0:.1f} s")
        from aggregat.weather.datalake import HASH, file_digest

        manifest = {"files": {}}
        for path in paths:
            package = path.parent.name
            group = product.group_of(path.name.split("__")[3])
            rel = datalake.file_rel(product, RUN, package, group)
            target = datalake.local_path(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            manifest["files"][rel.split("/", 2)[2]] = {
                "size": target.stat().st_size, "hash": f"{HASH}:{file_digest(target)}"}
        datalake.write_manifest(product, RUN, manifest)
        marker.touch()
    return datalake.run_files(product, RUN)


def decode_only(paths: list[str], sites: Locations) -> tuple[float, dict, int]:
    """One process: read every message, decode the wanted ones (the single-core floor)."""
    wanted = set(WANTED)
    t0 = time.perf_counter()
    values: dict[tuple[str, int], np.ndarray] = {}
    count = 0
    index = None
    for path in paths:
        with open(path, "rb") as fh:
            while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
                header = read_header(h, path, 0)
                if header.param in wanted:
                    field = eccodes.codes_get_values(h)
                    count += 1
                    if index is None:
                        g = header.geometry
                        i = np.round(((sites.lons - g.lon_first) % 360) / g.dlon).astype(int)
                        j = np.round((g.lat_first - sites.lats) / g.dlat).astype(int)
                        index = j * g.ni + i
                    values[(header.param, header.end_step)] = field[index]
                eccodes.codes_release(h)
    return time.perf_counter() - t0, values, count


def run_extract(product_id: str, datalake: Datalake, bank_dir: Path, sites: Locations,
                memory: bool = False):
    """Time one extraction; with ``memory`` also sample its peak memory (which costs CPU, so
    timed runs go without it)."""
    bank = Bank(str(bank_dir))
    mem = PeakRSS() if memory else None
    if mem:
        mem.__enter__()
    t0 = time.perf_counter()
    report = extract_run(product_id, RUN, datalake=datalake, bank=bank, locations=sites,
                         variables=WANTED)
    seconds = time.perf_counter() - t0
    if mem:
        mem.__exit__()
    return seconds, (mem.peak if mem else 0), report, bank


def run_cfgrib(paths: list[str], sites: Locations) -> float:
    import cfgrib
    import xarray as xr

    t0 = time.perf_counter()
    lat = xr.DataArray(sites.lats, dims="site")
    lon = xr.DataArray(sites.lons, dims="site")
    n = 0
    for path in paths:
        names = CFGRIB_NAMES | ({"unknown"} if "__SP1__" in path else set())
        for ds in cfgrib.open_datasets(path, backend_kwargs={"indexpath": ""}):
            wanted = [name for name in ds.data_vars if name in names]
            if not wanted:
                continue
            picked = ds[wanted].sel(latitude=lat, longitude=lon, method="nearest")
            for name in wanted:
                picked[name].values  # noqa: B018  (force the decode)
                n += 1
    return time.perf_counter() - t0


def check(values: dict, bank: Bank, sites: Locations, product_id: str) -> float:
    """Largest difference between the bank and decode-only, for instant fields (nearest)."""
    frame = read_weather(bank, RUN, RUN + timedelta(days=5), models=[product_id])
    worst = 0.0
    for (param, step), ref in values.items():
        p = PARAMETERS[param]
        if p.accumulated_from_start:
            continue
        got = frame[frame.step_h == step].set_index("location").loc[sites.ids, p.column]
        expected = (ref * p.scale + p.offset).astype(np.float32)
        worst = max(worst, float(np.nanmax(np.abs(got.to_numpy() - expected))))
    return worst


def bench(product_id: str, workdir: Path, repeats: int, skip_cfgrib: bool) -> dict:
    datalake = Datalake(str(workdir / "datalake"))
    paths = [str(datalake.local_path(r)) for r in generate(product_id, workdir, datalake)]
    sites = make_sites(get_product(product_id))
    size_mb = sum(os.path.getsize(p) for p in paths) / 1e6
    print(f"[{product_id}] {len(paths)} files, {size_mb:.0f} MB, {len(sites)} sites")
    decode_times, extract_times, peaks = [], [], []
    for r in range(repeats):
        # Interleave the two so that machine noise hits both alike.
        d, values, count = decode_only(paths, sites)
        decode_times.append(d)
        e, _, report, bank = run_extract(product_id, datalake, workdir / f"bank{r}", sites)
        extract_times.append(e)
        print(f"[{product_id}] repeat {r}: decode-only {d:.2f} s ({count} messages), "
              f"extract {e:.2f} s ({report.decoded} decoded, {report.rows} rows)")
    _, peak, _, _ = run_extract(product_id, datalake, workdir / "bank-mem", sites, memory=True)
    peaks.append(peak)
    print(f"[{product_id}] peak memory of an extraction (PSS, parent + workers): "
          f"{peak / 2**20:.0f} MB")
    worst = check(values, bank, sites, product_id)
    print(f"[{product_id}] max |extract - ecCodes| at nearest points: {worst:.2e}")
    cfgrib_s = float("nan")
    if not skip_cfgrib:
        cfgrib_s = run_cfgrib(paths, sites)
        print(f"[{product_id}] cfgrib open_datasets + nearest sel: {cfgrib_s:.2f} s")
    d, e = statistics.median(decode_times), statistics.median(extract_times)
    return {"decode_s": d, "extract_s": e, "cfgrib_s": cfgrib_s, "ratio_decode": e / d,
            "speedup_cfgrib": cfgrib_s / e, "peak_rss_mb": max(peaks) / 2**20}


def main() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)  # cfgrib's xarray merge notice
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cfgrib", action="store_true")
    parser.add_argument("--only", choices=["arome", "arpege"], default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-extract-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}, {os.cpu_count()} cores")
    results = {}
    for product_id in ("arpege-01", "arome-0025"):
        if args.only and not product_id.startswith(args.only):
            continue
        results[product_id] = res = bench(product_id, workdir, args.repeats, args.skip_cfgrib)
        print(f"[{product_id}] " + " ".join(f"{k}={v:.3g}" for k, v in res.items()))
    last = results.get("arome-0025") or next(iter(results.values()))
    print(" ".join(f"{k}={v:.3g}" for k, v in last.items()))


if __name__ == "__main__":
    main()
