"""The small world of the job tests (imported as a plain module): three sites near Lyon, measured
load in an energy DB, simulated AROME runs served over loopback HTTP (fixtures in conftest.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from child_process import child_env  # noqa: F401  (re-exported for the job tests)

DAYS = [date(2026, 11, 26), date(2026, 11, 27)]
SITES = ("id,name,lat,lon\nlyon,Lyon,45.71,4.85\nfeyzin,Feyzin,45.67,4.86\n"
         "jarrie,Jarrie,45.09,5.75\n")


def simulate_archive(root: Path) -> Path:
    """The AROME 00Z runs of DAYS (package SP1, cropped around the sites) under ``root``."""
    from aggregat.weather.products import get_product
    from aggregat.weather.simulate import crop_for_points, simulate_run

    product = get_product("arome-0025")
    grid = crop_for_points(product, [45.71, 45.67, 45.09], [4.85, 4.86, 5.75], margin_deg=0.2)
    for day in DAYS:
        run = datetime(day.year, day.month, day.day, tzinfo=UTC)
        simulate_run(product, run, root, grid=grid, packages=["SP1"], seed=5)
    return root


def measured_load() -> pd.DataFrame:
    """Hourly load of target ``portfolio`` from 2026-10-25 to the end of DAYS."""
    times = pd.date_range("2026-10-25", "2026-11-27 23:00", freq="h", tz="UTC")
    hour = times.hour.to_numpy()
    load = 10 + 2 * ((hour >= 6) & (hour < 22)) + 0.5 * (times.day_of_week.to_numpy() < 5)
    # Metered load is never exactly flat for hours (the input guards take that for a stuck
    # meter and train nothing on it): a little deterministic noise.
    noise = np.random.default_rng(7).normal(0.0, 0.05, len(times))
    return pd.DataFrame({"target_id": "portfolio", "time": times,
                         "load_mw": (load + noise).round(3)})


def make_env(tmp_path: Path, base_url: str, measured: pd.DataFrame | None,
             energy_db: str | None = None,
             extra: str = "") -> Path:
    """A config file for env ``test`` under ``tmp_path`` (``extra``: more TOML sections of
    ``env.test``); fills its energy DB with ``measured`` unless the URL holds a secret."""
    from aggregat.config import EnergySettings
    from aggregat.energy.db import make_engine
    from aggregat.energy.schema import create_default_tables, insert_measurements

    (tmp_path / "sites.csv").write_text(SITES)
    energy_db = energy_db or f"sqlite:///{tmp_path}/energy.sqlite"
    config = tmp_path / "aggregat.toml"
    config.write_text(f"""
default_env = "test"
[env.test]
root = "data"
sites = "sites.csv"
energy_db = "{energy_db}"
[env.test.weather]
base_url = "{base_url}"
models = ["arome-0025"]
packages = {{ "arome-0025" = ["SP1"] }}
retries = 1
retry_backoff_s = 0.01
[env.test.energy]
retries = 0
retry_backoff_s = 0.01
timeout_s = 5
{extra}""")
    if "${" not in energy_db:
        settings = EnergySettings()
        engine = make_engine(energy_db, settings)
        create_default_tables(engine, settings)
        insert_measurements(engine, settings, measured.assign(
            updated_at=pd.Timestamp("2026-11-28", tz="UTC")))
        engine.dispose()
    return config
