"""Shared fixtures of the weather tests: small simulated Météo-France archives and a GRIB reader.

Other weather tests may append fixtures here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import eccodes
import numpy as np
import pandas as pd
import pytest

from aggregat.weather.products import get_product
from aggregat.weather.simulate import PointDriver, crop_for_points, simulate_run

RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)
# Sparse steps over three AROME time groups (00H06H, 07H12H, 13H18H): night and day.
STEPS = (0, 1, 2, 3, 7, 12, 13, 14)
HEADER_KEYS = ("centre", "dataDate", "dataTime", "discipline", "parameterCategory",
               "parameterNumber", "typeOfFirstFixedSurface", "level",
               "productDefinitionTemplateNumber", "startStep", "endStep", "stepUnits",
               "packingType", "bitsPerValue", "bitmapPresent", "numberOfMissing", "Ni", "Nj",
               "latitudeOfFirstGridPointInDegrees", "longitudeOfFirstGridPointInDegrees",
               "latitudeOfLastGridPointInDegrees", "longitudeOfLastGridPointInDegrees",
               "binaryScaleFactor", "decimalScaleFactor")


def read_grib(path: str | Path, values: bool = True) -> list[dict]:
    """Every message of a file as a dict of header keys (+ ``values`` with NaN where missing)."""
    out = []
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                # Code-table keys decode as strings by default ("sfc"): ask for numbers.
                msg = {k: (eccodes.codes_get_double(h, k) if k.endswith("InDegrees")
                           else eccodes.codes_get_long(h, k)) for k in HEADER_KEYS
                       if k != "packingType"}
                msg["packingType"] = eccodes.codes_get_string(h, "packingType")
                if msg["productDefinitionTemplateNumber"] == 8:
                    msg["typeOfStatisticalProcessing"] = eccodes.codes_get(
                        h, "typeOfStatisticalProcessing")
                if values:
                    v = eccodes.codes_get_values(h)
                    if msg["bitmapPresent"]:
                        bitmap = eccodes.codes_get_array(h, "bitmap")
                        v = np.where(bitmap == 1, v, np.nan)
                    msg["values"] = v
                    # One packing unit: the largest error 16-bit packing can make.
                    msg["precision"] = (2.0 ** msg["binaryScaleFactor"]
                                        / 10.0 ** msg["decimalScaleFactor"])
            finally:
                eccodes.codes_release(h)
            out.append(msg)
    return out


@pytest.fixture(scope="session")
def grib_reader():
    """``read_grib(path, values=True) -> list[dict]`` (a fixture, tests are not a package)."""
    return read_grib


@pytest.fixture(scope="session")
def driver_points() -> dict:
    """Three sites in the Paris area and their driven hourly weather (bank units)."""
    lats = np.array([48.85, 48.60, 49.05])
    lons = np.array([2.35, 1.95, 2.80])
    ids = ["paris", "rambouillet", "meaux"]
    times = pd.date_range(RUN, RUN + timedelta(hours=14), freq="h")
    hour = times.hour.to_numpy()[:, None]
    k = np.arange(3)[None, :]
    day = np.clip(np.sin(np.pi * (hour - 8) / 9), 0, None)  # sun between 08 and 17 UTC
    series = {
        "t2m": 5.0 + 3.0 * day + k,  # °C
        "rh2m": 80.0 - 20.0 * day + k,
        "u10": 3.0 + 0.1 * hour - k,
        "v10": -2.0 + 0.0 * hour + k,
        "ssrd": 250.0 * day + 10.0 * k,  # W/m² over the previous hour
        "tp": 0.4 * (hour % 3 == 0) + 0.1 * k,  # mm over the previous hour
        "lcc": 60.0 + 0.0 * hour + 10 * k,
    }
    frames = {name: pd.DataFrame(np.array(np.broadcast_to(v, (len(times), 3))), index=times,
                               columns=ids)
              for name, v in series.items()}
    frames["t2m"].iloc[5, 0] = np.nan  # a gap: background value there
    return {"lats": lats, "lons": lons, "ids": ids, "frames": frames}


@pytest.fixture(scope="session")
def sim_arome(tmp_path_factory, driver_points) -> dict:
    """AROME 0.025° run on a small grid around Paris, SP1+SP2, STEPS, with and without driver."""
    product = get_product("arome-0025")
    grid = crop_for_points(product, driver_points["lats"], driver_points["lons"], margin_deg=0.3)
    driver = PointDriver(driver_points["lats"], driver_points["lons"], driver_points["ids"],
                         driver_points["frames"])
    plain_dir = tmp_path_factory.mktemp("arome_plain")
    driven_dir = tmp_path_factory.mktemp("arome_driven")
    plain = simulate_run(product, RUN, plain_dir, grid=grid, steps=STEPS, seed=7)
    driven = simulate_run(product, RUN, driven_dir, grid=grid, steps=STEPS, seed=7, driver=driver)
    return {"product": product, "run": RUN, "grid": grid, "steps": STEPS, "driver": driver,
            "plain_dir": plain_dir, "plain": plain, "driven_dir": driven_dir, "driven": driven}
