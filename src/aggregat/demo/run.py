"""``aggregat demo``: the whole job offline, on the embedded default environment.

A simulated Météo-France archive is served over real HTTP on 127.0.0.1, so every step runs the
production code: fetch (parallel, verified, manifest) -> extract (all cores) -> bank.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregat.config import Environment
from aggregat.demo.sites import write_demo_sites
from aggregat.weather.products import get_product
from aggregat.weather.sites import load_locations

DEMO_MODELS = ("arome-0025", "arpege-01")


@dataclass
class DemoStep:
    name: str
    seconds: float
    detail: str


@dataclass
class DemoReport:
    steps: list[DemoStep] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)

    def timed(self, name: str, fn: Callable[[], str]) -> None:
        started = time.perf_counter()
        detail = fn()
        self.steps.append(DemoStep(name, time.perf_counter() - started, detail))

    @property
    def total_s(self) -> float:
        return sum(s.seconds for s in self.steps)


def demo_runs(days: int, today: datetime | None = None) -> list[datetime]:
    """The 00 UTC runs of the last ``days`` days (today included)."""
    today = (today or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=d) for d in range(days - 1, -1, -1)]


def run_demo(env: Environment, *, days: int = 2, today: datetime | None = None,
             log: Callable[[str], None] = print) -> DemoReport:
    """Simulate, serve, fetch and extract ``days`` days of AROME and ARPEGE runs for the demo sites."""
    from aggregat.bank import Bank
    from aggregat.weather.datalake import Datalake
    from aggregat.weather.extract import extract_run
    from aggregat.weather.fetch import fetch_run
    from aggregat.weather.loopback import serve_folder
    from aggregat.weather.simulate import crop_for_points, simulate_run

    report = DemoReport()
    demo_dir = Path(env.root) / "demo"
    sites_csv = Path(env.sites) if env.sites else write_demo_sites(demo_dir / "sites.csv")
    locations = load_locations(sites_csv, env.areas)
    archive = demo_dir / "archive"
    runs = demo_runs(days, today)
    datalake, bank = Datalake(env.datalake), Bank(env.bank)

    def simulate() -> str:
        count = 0
        for model in DEMO_MODELS:
            product = get_product(model)
            # Cropped to the sites: the real grids would only make the demo slower.
            grid = crop_for_points(product, locations.lats, locations.lons, margin_deg=1.0)
            for run in runs:
                count += len(simulate_run(product, run, archive, grid=grid, seed=run.toordinal()))
        return f"{count} GRIB2 files ({len(runs)} days x {len(DEMO_MODELS)} models) in {archive}"

    report.timed("simulate archive", simulate)
    with serve_folder(archive) as base_url:
        log(f"serving the simulated archive at {base_url}")

        def fetch() -> str:
            files = downloaded = 0
            for model in DEMO_MODELS:
                for run in runs:
                    result = fetch_run(model, run, datalake, base_url=base_url, progress=False,
                                       workers=env.weather.download_workers)
                    result.raise_for_partial()
                    files += len(result.files)
                    downloaded += sum(1 for f in result.files if f.status == "downloaded")
            return f"{files} files verified ({downloaded} downloaded, the rest already there)"

        report.timed("fetch over HTTP", fetch)

    def extract() -> str:
        rows = decoded = 0
        for model in DEMO_MODELS:
            for run in runs:
                result = extract_run(model, run, datalake=datalake, bank=bank,
                                     locations=locations, workers=env.workers)
                rows += result.rows
                decoded += result.decoded
        return f"{decoded} messages decoded, {rows} rows at {len(locations)} sites"

    report.timed("extract to bank", extract)
    report.where = {"datalake": env.datalake, "bank": env.bank, "sites": str(sites_csv)}
    return report
