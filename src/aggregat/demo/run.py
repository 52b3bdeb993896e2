"""``aggregat demo``: the whole chain offline, on the embedded default environment.

1. a portfolio of French industrial sites and one deterministic "true" world (truth.py);
2. an energy DB (SQLite by default) holding the measured load that world drives;
3. a year of forecast history migrated into the bank, as from the legacy data bank;
4. a simulated Météo-France archive (AROME + ARPEGE, GRIB2/CCSDS) for the last N days, served
   over real HTTP on 127.0.0.1;
5. ``run backfill`` of the N days (fetch -> extract -> sync -> predict -> publish), ``run weekly``
   (train, promote), ``run daily`` for today; then the health report.

Every step is the production code; only the outside world (Météo-France, the energy DB's
content) is simulated. Rerunning the demo redoes nothing that is already done.

It runs on any environment: a root on object storage, the energy DB on PostgreSQL, extraction on
a Dask cluster. The demo's local files (its sites, the simulated archive) go to the root when it
is a folder, else to ``{AGGREGAT_HOME or ./aggregat-data}/demo-{env}``. An environment the demo
did not fill is refused unless forced (:func:`check_demo_target`): the demo writes simulated load
into the energy DB and forecasts into the bank. Its mark is the object ``.aggregat-demo.json`` at
the root, written before anything else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from aggregat.config import Environment, default_root
from aggregat.demo.sites import write_demo_sites
from aggregat.errors import InputError
from aggregat.storage import Store
from aggregat.weather.products import get_product
from aggregat.weather.sites import load_locations, load_sites

# AROME drives the day-ahead forecast; ARPEGE (surface package only) shows the second model.
DEMO_PACKAGES = {"arome-0025": ["SP1", "SP2"], "arpege-01": ["SP1"]}
TARGET = "portfolio"
SIM_SEED = 2026  # one synthetic background for every run: successive runs agree


@dataclass
class DemoStep:
    name: str
    seconds: float
    detail: str


@dataclass
class DemoReport:
    steps: list[DemoStep] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)
    health: object | None = None
    env: Environment | None = None  # the environment as the demo configured it (models, sites)

    def timed(self, name: str, fn: Callable[[], str]) -> None:
        started = time.perf_counter()
        detail = fn()
        self.steps.append(DemoStep(name, time.perf_counter() - started, detail))

    @property
    def total_s(self) -> float:
        return sum(s.seconds for s in self.steps)


DEMO_MARKER = ".aggregat-demo.json"


def local_workdir(env: Environment) -> Path:
    """Where the demo keeps its local files: the root if it is a folder, else a local folder."""
    store = Store(env.root)
    if store.is_local:
        return store.local_path()
    return Path(default_root()) / f"demo-{env.name}"


def check_demo_target(env: Environment, force: bool = False) -> None:
    """Refuse (InputError) an environment holding data the demo did not write, unless ``force``;
    otherwise mark the root as the demo's.

    Demo data: the root holds the marker (or, written by versions before it, a local root holds
    the demo's ``demo/archive``). Otherwise any file in the datalake, bank or registry, or any
    row in the energy DB's load or forecast table, is someone's real data.
    """
    root = Store(env.root)
    if root.exists(DEMO_MARKER):
        return
    legacy = root.is_local and (root.local_path() / "demo" / "archive").is_dir()
    if not legacy and not force:
        found = [f"{what} {url}" for what, url in (("datalake", env.datalake),
                                                    ("bank", env.bank), ("registry", env.registry))
                 if Store(url).listdir("")]
        found += _energy_rows(env)
        if found:
            raise InputError(
                f"environment {env.name} already holds data the demo did not write "
                f"({'; '.join(found)}): the demo would add simulated load and forecasts to it; "
                "run it on another environment, or pass force to write into this one anyway",
                param="force")
    body = {"env": env.name, "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "forced": bool(force and not legacy)}
    root.write_bytes(DEMO_MARKER, json.dumps(body).encode())


def _energy_rows(env: Environment) -> list[str]:
    """The energy DB's load / forecast tables that hold rows."""
    import sqlalchemy as sa

    from aggregat.energy.db import make_engine, safe_url
    from aggregat.energy.schema import forecast_table, load_table

    engine = make_engine(env.energy_db, env.energy)
    found = []
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for table in (load_table(env.energy), forecast_table(env.energy)):
                if (inspector.has_table(table.name, schema=table.schema)
                        and conn.execute(sa.select(sa.literal(1)).select_from(table)
                                         .limit(1)).first() is not None):
                    found.append(f"rows in table {table.fullname} of {safe_url(env.energy_db)}")
    finally:
        engine.dispose()
    return found


def demo_environment(env: Environment) -> Environment:
    """The environment with the demo's sites and weather settings (models, packages)."""
    sites = env.sites or str(local_workdir(env) / "sites.csv")
    if not Path(sites).is_file():
        write_demo_sites(Path(sites))
    weather = env.weather.model_copy(update={"models": list(DEMO_PACKAGES),
                                             "packages": DEMO_PACKAGES, "runs": [0]})
    return env.model_copy(update={"sites": sites, "weather": weather})


def run_demo(env: Environment, *, days: int = 3, history_days: int = 365,
             now: datetime | None = None, force: bool = False,
             log: Callable[[str], None] = print) -> DemoReport:
    """Run the whole chain on ``env``; returns what each step did and how long it took."""
    from aggregat import api

    check_demo_target(env, force)
    now = now or datetime.now(UTC)
    today = now.date()
    configured = {k: getattr(env.weather, k) for k in ("base_url", "sources")}
    env = demo_environment(env)
    report = DemoReport()
    locations = load_locations(env.sites)
    weights = {k: float(v["weight"]) for k, v in load_sites(env.sites)[1].items()}
    first_day = pd.Timestamp(today, tz="UTC") - pd.Timedelta(days=days - 1)
    history_start = first_day - pd.Timedelta(days=history_days)
    world: dict = {}

    def truth() -> str:
        from aggregat.demo.truth import portfolio_load, truth_weather

        world["weather"] = truth_weather(locations, history_start - pd.Timedelta(days=2),
                                         pd.Timestamp(today, tz="UTC") + pd.Timedelta(days=3))
        world["load"] = portfolio_load(world["weather"]["t2m"], weights)
        return (f"{len(locations)} sites, hourly weather and load from {history_start:%Y-%m-%d} "
                f"to {today}")

    report.timed("simulate the world", truth)
    report.timed("energy DB: measured load", lambda: _fill_energy_db(env, world["load"], now))
    report.timed("migrate forecast history", lambda: _migrate_history(
        env, world["weather"], history_start, first_day))
    archive = local_workdir(env) / "demo" / "archive"
    runs = [first_day + pd.Timedelta(days=d) for d in range(days)]
    report.timed("simulate Météo-France archive", lambda: _simulate_archive(
        archive, runs, locations, world["weather"]))

    from aggregat.weather.loopback import serve_folder

    with serve_folder(archive) as base_url:
        log(f"serving the simulated archive at {base_url}")
        # The simulated archive is the one open-data source, whatever sources are configured.
        env = env.model_copy(update={"weather": env.weather.model_copy(
            update={"base_url": base_url, "sources": []})})
        # The past days first; today comes with the daily run, after training.
        yesterday = today - timedelta(days=1)
        if days > 1:
            report.timed("run backfill", lambda: _job(api.backfill(env, first_day.date(),
                                                                   until=yesterday)))
        report.timed("run weekly (train)", lambda: _job(api.weekly(env)))
        report.timed("run daily", lambda: _job(api.daily(env, today)))

    report.env = env.model_copy(update={"weather": env.weather.model_copy(
        update=configured)})
    report.health = api.health(env)
    report.where = {"bank": env.bank, "datalake": env.datalake, "models": env.registry,
                    "energy DB": env.energy_db, "sites": env.sites}
    return report


def _job(result) -> str:
    from aggregat.ops.timing import Timing

    timing = Timing.of_steps(result.steps)
    ran = [r for r in timing.rows if r.status not in ("done",)]
    steps = ", ".join(f"{step} {secs:.1f}s" for step, secs in timing.by_step().items())
    result.raise_for_problems()
    return f"{len(ran)} step(s) run: {steps}" if ran else "nothing left to do"


def _fill_energy_db(env: Environment, load: pd.Series, now: datetime) -> str:
    """The measured load as the energy DB holds it: up to an hour ago, only what is new."""
    import sqlalchemy as sa

    from aggregat.energy.db import make_engine
    from aggregat.energy.schema import create_default_tables, insert_measurements, load_table

    engine = make_engine(env.energy_db, env.energy)
    create_default_tables(engine, env.energy)
    table = load_table(env.energy)
    with engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(table.c[env.energy.load_time_col]))).scalar()
    measured = load[load.index <= pd.Timestamp(now) - pd.Timedelta(hours=1)]
    if newest is not None:
        newest = pd.Timestamp(newest)
        newest = newest.tz_localize("UTC") if newest.tzinfo is None else newest
        measured = measured[measured.index > newest]
    frame = pd.DataFrame({"target_id": TARGET, "time": measured.index, "load_mw": measured.values})
    rows = insert_measurements(engine, env.energy, frame) if len(frame) else 0
    engine.dispose()
    return f"{rows} new hourly rows of target '{TARGET}' in {env.energy.load_table}"


def _migrate_history(env: Environment, weather: dict, start: pd.Timestamp,
                     end: pd.Timestamp) -> str:
    """Forecast history before the archive days, written straight into the bank (the legacy
    data bank's history, copied once, as the roadmap's first item asks)."""
    from aggregat.bank import Bank, has_weather_run, write_weather_run
    from aggregat.demo.truth import forecast_history

    bank = Bank(env.bank)
    runs = pd.date_range(start, end - pd.Timedelta(days=1), freq="D")
    todo = [r for r in runs if not has_weather_run(bank, "arome-0025", r)]
    for run, frame in forecast_history(weather, pd.DatetimeIndex(todo), "arome-0025"):
        write_weather_run(bank, "arome-0025", run, frame)
    return f"{len(todo)} daily AROME runs written ({len(runs) - len(todo)} already there)"


def _simulate_archive(archive: Path, runs: list[pd.Timestamp], locations, weather: dict) -> str:
    from aggregat.weather.simulate import PointDriver, crop_for_points, simulate_run

    driver = PointDriver(locations.lats, locations.lons, list(locations.site_ids), weather)
    count = skipped = 0
    for model, packages in DEMO_PACKAGES.items():
        product = get_product(model)
        # Cropped to the sites: the full grids would only make the demo slower.
        grid = crop_for_points(product, locations.lats, locations.lons, margin_deg=0.3)
        for run in runs:
            run_dt = run.to_pydatetime()
            if (archive / f"{run_dt:%Y-%m-%dT%H:%M:%SZ}" / product.model / product.res).is_dir():
                skipped += 1
                continue
            files = simulate_run(product, run_dt, archive, grid=grid, packages=packages,
                                 seed=SIM_SEED, driver=driver)
            count += len(files)
    return (f"{count} GRIB2 files ({len(runs)} days x {len(DEMO_PACKAGES)} models, CCSDS)"
            + (f", {skipped} runs already there" if skipped else ""))

