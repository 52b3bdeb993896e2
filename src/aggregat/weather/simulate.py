"""Write realistic Météo-France ARPEGE/AROME archives with ecCodes (tests, demo, benchmarks).

What is realistic:
- names and layout: one file per (package, time group) at
  ``{out_dir}/{run}/{model}/{res}/{PKG}/{model}__{res}__{PKG}__{group}__{run}.grib2``, exactly
  the open-data URL layout below its base URL;
- GRIB2 headers: centre 85 (lfpw), regular_ll grid scanned from the north-west (longitudes stored
  in 0..360, e.g. -12° as 348°; ecCodes decodes them back to -12..16), parameters identified by
  discipline/category/number, level type/level; template 4.0 for instantaneous fields and 4.8 for
  ``ssrd``/``tp`` (accumulated from the run start: start step 0, end step s, no step-0 message) and
  ``gust10`` (maximum since the previous step, the hour); steps in hours; CCSDS, 16 bits;
- message order: by step, then by parameter in catalogue order;
- a bitmap for points outside the model domain (AROME only): the four corners of the AROME
  extent are cut by triangles whose legs are 20 % (0.025°) or 29 % (0.01°, 17 % of the points as
  in real files) of the domain's width and height; see :func:`domain_mask`;
- values: smooth travelling weather systems, temperature with seasons, latitude gradient, relief
  and a cloud-damped diurnal cycle (K), geostrophic 10 m wind from the pressure field, gusts above
  the wind, clouds with random overlap, clear-sky radiation (Haurwitz) damped by clouds, rain under
  thick low clouds; accumulations are non-decreasing before packing, the 16-bit packing adds the
  tiny noise real files have. Successive runs forecast the same weather plus a lead-time error.
What is not: no land/sea contrast or real orography, no physics linking fields beyond the above,
no fronts or convection, a seam at the antimeridian on the global grid, one synthetic "truth"
per seed (not a climate).

A :class:`PointDriver` imposes given hourly series at given points: the grid point nearest each
point carries exactly the driver value (within packing precision), ``ssrd``/``tp`` re-accumulated
from the run start so that de-accumulation gives the driver's hourly values back.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import eccodes
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from aggregat.errors import ConfigError, InputError
from aggregat.weather.humidity import dew_point
from aggregat.weather.products import (
    PARAMETERS,
    Grid,
    Parameter,
    Product,
    as_utc,
    get_product,
)
from aggregat.weather.simfields import SyntheticWeather

PACKINGS = ("grid_ccsds", "grid_simple")
_ECMWF_UNIT_DIVISOR = {"tp": 1000.0, "tcc": 100.0}  # mm -> m, % -> fraction
# A field of every ECMWF step file that the catalogue does not use: the index must skip it.
ECMWF_DECOY = "skt"
MISSING = 1.0e20  # never a field value; readers get ecCodes' default 9999 or NaN via the bitmap
CORNER_CUT = {"arome-0025": 0.20, "arome-001": 0.29}
_ACCUMULATED = ("ssrd", "tp")
_COLUMN_TO_NAME = {p.column: p.name for p in PARAMETERS.values()}


@dataclass
class PointDriver:
    """Hourly weather imposed at points, in bank units.

    ``series[name]`` (name as in products.PARAMETERS, or its bank column such as ``t2m_c``) is a
    DataFrame indexed by UTC valid time with one column per point id. Units: t2m/t850 °C, rh2m
    and cloud covers %, u10/v10/ws10/gust10 m/s, msl hPa, ssrd W/m² mean over the previous hour,
    tp mm over the previous hour. Missing values (NaN, absent times or ids) keep the background.
    Two points on the same grid point: the later one wins. A point in the AROME cut corners
    (:func:`domain_mask`) stays missing, as outside the model domain.
    """

    lats: np.ndarray
    lons: np.ndarray
    ids: Sequence[str]
    series: dict[str, pd.DataFrame]

    def __post_init__(self) -> None:
        self.lats = np.asarray(self.lats, dtype=np.float64)
        self.lons = np.asarray(self.lons, dtype=np.float64)
        self.ids = [str(i) for i in self.ids]
        if not (len(self.lats) == len(self.lons) == len(self.ids)):
            raise InputError("PointDriver: lats, lons and ids must have the same length")
        series = {}
        for key, frame in self.series.items():
            name = _COLUMN_TO_NAME.get(key, key)
            if name not in PARAMETERS:
                raise InputError(f"PointDriver: unknown variable {key!r} (use e.g. t2m or t2m_c)")
            index = pd.DatetimeIndex(frame.index)
            index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
            if not index.is_unique:
                raise InputError(f"PointDriver: {key!r} has duplicate valid times")
            try:
                series[name] = frame.set_axis(index).reindex(columns=self.ids).astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(f"PointDriver: {key!r} has non-numeric values ({exc})") from None
        self.series = series
        self._arrays = {name: frame.to_numpy() for name, frame in series.items()}

    def grib_values(self, name: str, valid: datetime) -> np.ndarray | None:
        """Values at ``valid`` in GRIB units (amounts over the previous hour for ssrd/tp)."""
        frame = self.series.get(name)
        if frame is None:
            return None
        pos = frame.index.get_indexer([pd.Timestamp(valid)])[0]
        if pos < 0:
            return None
        values = self._arrays[name][pos]
        param = PARAMETERS[name]
        if name in _ACCUMULATED:
            if np.nanmin(values, initial=0.0) < -1e-6:
                raise InputError(f"PointDriver: negative {name} at {valid:%Y-%m-%dT%H:%MZ}")
            values = np.maximum(values, 0.0) * (3600.0 if param.per_second else 1.0)
        else:
            values = (values - param.offset) / param.scale
        return values


def grid_axes(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes (north to south) and longitudes (west to east) of a grid, in degrees."""
    lat = np.round(grid.lat_first - np.arange(grid.nj) * grid.dlat, 6)
    lon = np.round(grid.lon_first + np.arange(grid.ni) * grid.dlon, 6)
    return lat, lon


def nearest_index(grid: Grid, lats: Iterable[float], lons: Iterable[float]) -> np.ndarray:
    """Flat indices (GRIB scanning order) of the grid points nearest to points; error if outside."""
    lats = np.asarray(lats, dtype=np.float64)
    lons = np.asarray(lons, dtype=np.float64)
    j = np.rint((grid.lat_first - lats) / grid.dlat).astype(np.int64)
    east = (lons - grid.lon_first + grid.dlon / 2) % 360.0 - grid.dlon / 2  # -dlon/2..360
    i = np.rint(east / grid.dlon).astype(np.int64)
    if grid.is_global:
        i %= grid.ni
    bad = (j < 0) | (j >= grid.nj) | (i < 0) | (i >= grid.ni)
    if bad.any():
        k = int(np.argmax(bad))
        raise ConfigError(f"point ({lats[k]:.4f}, {lons[k]:.4f}) is outside the grid "
                          f"{grid.lat_first}..{grid.lat_last}N {grid.lon_first}..{grid.lon_last}E")
    return j * grid.ni + i


def crop_for_points(product: str | Product, lats: Iterable[float], lons: Iterable[float],
                    margin_deg: float = 0.5) -> Grid:
    """The smallest sub-grid of ``product``'s grid holding the points plus a margin."""
    product = get_product(product) if isinstance(product, str) else product
    full = product.grid
    lats = np.asarray(list(lats), dtype=np.float64)
    lons = np.asarray(list(lons), dtype=np.float64)
    if lats.size == 0:
        raise ConfigError(f"{product.id}: no points to crop the grid for")
    nearest_index(full, lats, lons)  # every point must be on the grid
    if not full.is_global:
        return full.crop(lats.max() + margin_deg, lats.min() - margin_deg,
                         lons.min() - margin_deg, lons.max() + margin_deg)
    # Global grid: work in -180..180 so that a box across Greenwich stays one box.
    lons = np.where(lons >= 180.0, lons - 360.0, lons)
    i0 = int(np.floor((lons.min() - margin_deg) / full.dlon))
    i1 = int(np.ceil((lons.max() + margin_deg) / full.dlon))
    sub = full.crop(lats.max() + margin_deg, lats.min() - margin_deg, 0.0, 1.0)
    return Grid(lat_first=sub.lat_first, lon_first=round(i0 * full.dlon, 6), dlat=full.dlat,
                dlon=full.dlon, ni=min(i1 - i0 + 1, full.ni), nj=sub.nj)


def domain_mask(product: Product, grid: Grid) -> np.ndarray | None:
    """Boolean (nj, ni) array, True where a point is outside the model domain; None if none is.

    AROME: with u, v the position in the full extent (0 at the west/south edge, 1 at the
    east/north edge), a point is outside when u + v, (1-u) + v, u + (1-v) or (1-u) + (1-v) is
    below the product's corner cut (0.20 for 0.025°, 0.29 for 0.01°).
    """
    cut = CORNER_CUT.get(product.id)
    if cut is None:
        return None
    full = product.grid
    lat, lon = grid_axes(grid)
    v = ((lat - full.lat_last) / (full.lat_first - full.lat_last))[:, None]
    u = ((lon - full.lon_first) / (full.lon_last - full.lon_first))[None, :]
    corner = np.minimum(np.minimum(u + v, 1 - u + v), np.minimum(u + 1 - v, 2 - u - v))
    mask = corner < cut - 1e-9
    return mask if mask.any() else None


class _Encoder:
    """One ecCodes template handle per parameter, cloned for each message."""

    def __init__(self, grid: Grid, run: datetime, packing: str, bits: int,
                 mask: np.ndarray | None, ecmwf_names: dict[str, str] | None = None) -> None:
        self.grid, self.run, self.packing, self.bits = grid, run, packing, bits
        self.mask = None if mask is None else mask.ravel()
        self.templates: dict[str, int] = {}
        # ECMWF files: centre 98, and each field as ecCodes encodes that shortName for ECMWF
        # (precipitation in m, cloud cover as a fraction), as the real open-data files are.
        self.ecmwf_names = ecmwf_names

    def _template(self, p: Parameter) -> int:
        if p.name in self.templates:
            return self.templates[p.name]
        g, run = self.grid, self.run
        h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
        keys: list[tuple[str, object]] = [
            ("centre", 85), ("subCentre", 0), ("significanceOfReferenceTime", 1),
            ("dataDate", int(f"{run:%Y%m%d}")), ("dataTime", int(f"{run:%H%M}")),
            ("productionStatusOfProcessedData", 0), ("typeOfProcessedData", 1),
            ("Ni", g.ni), ("Nj", g.nj), ("iScansNegatively", 0), ("jScansPositively", 0),
            ("jPointsAreConsecutive", 0),
            ("latitudeOfFirstGridPointInDegrees", g.lat_first),
            ("longitudeOfFirstGridPointInDegrees", round(g.lon_first % 360.0, 6)),
            ("latitudeOfLastGridPointInDegrees", g.lat_last),
            ("longitudeOfLastGridPointInDegrees", round(g.lon_last % 360.0, 6)),
            ("iDirectionIncrementInDegrees", g.dlon), ("jDirectionIncrementInDegrees", g.dlat),
            ("productDefinitionTemplateNumber", 0 if p.statistic is None else 8),
            ("discipline", p.discipline), ("parameterCategory", p.category),
            ("parameterNumber", p.number), ("typeOfGeneratingProcess", 2),
            # Météo-France writes 0 (not "missing") for surface levels; isobaric levels in Pa.
            ("typeOfFirstFixedSurface", p.level_type), ("scaleFactorOfFirstFixedSurface", 0),
            ("scaledValueOfFirstFixedSurface", p.level * (100 if p.level_type == 100 else 1)),
            ("indicatorOfUnitOfTimeRange", 1),
        ]
        if p.statistic is not None:
            keys += [("typeOfStatisticalProcessing", p.statistic), ("typeOfTimeIncrement", 2),
                     ("indicatorOfUnitForTimeRange", 1)]
        for key, value in keys:
            eccodes.codes_set(h, key, value)
        if self.ecmwf_names is not None:
            eccodes.codes_set(h, "centre", 98)
            eccodes.codes_set_string(h, "shortName", self.ecmwf_names.get(p.name, p.name))
        eccodes.codes_set_string(h, "packingType", self.packing)
        eccodes.codes_set(h, "bitsPerValue", self.bits)
        self.templates[p.name] = h
        return h

    def message(self, p: Parameter, step: int, values: np.ndarray, previous: int = 0) -> bytes:
        """One GRIB2 message; ``previous``: the product's step before ``step`` (maxima start)."""
        h = eccodes.codes_clone(self._template(p))
        try:
            if p.statistic is None:
                eccodes.codes_set(h, "forecastTime", step)
            else:
                start = 0 if p.accumulated_from_start else previous
                eccodes.codes_set(h, "startStep", start)
                eccodes.codes_set(h, "endStep", step)
            flat = values.astype(np.float64).ravel()  # a copy: masking never touches fields
            if self.ecmwf_names is not None:
                flat = flat / _ECMWF_UNIT_DIVISOR.get(p.name, 1.0)
            if self.mask is not None:
                flat[self.mask] = MISSING
                eccodes.codes_set(h, "bitmapPresent", 1)
                eccodes.codes_set(h, "missingValue", MISSING)
            eccodes.codes_set_values(h, flat)
            return eccodes.codes_get_message(h)
        finally:
            eccodes.codes_release(h)

    def close(self) -> None:
        for h in self.templates.values():
            eccodes.codes_release(h)
        self.templates.clear()


def _write_groups(product: Product, run: datetime, out_dir: Path, packages: Sequence[str],
                  groups: Sequence[tuple[int, int]], steps: Sequence[int], grid: Grid, seed: int,
                  driver: PointDriver | None, bits: int, packing: str) -> list[Path]:
    """Write the files of consecutive time groups (one task of a pool, or everything)."""
    # The fields are small matrix products: multi-threaded BLAS only adds contention (20x).
    with threadpool_limits(limits=1, user_api="blas"):
        return _write_groups_serial(product, run, out_dir, packages, groups, steps, grid, seed,
                                    driver, bits, packing)


def _write_groups_serial(product: Product, run: datetime, out_dir: Path,
                         packages: Sequence[str], groups: Sequence[tuple[int, int]],
                         steps: Sequence[int], grid: Grid, seed: int,
                         driver: PointDriver | None, bits: int, packing: str) -> list[Path]:
    lat, lon = grid_axes(grid)
    weather = SyntheticWeather(lat, lon, run, seed)
    ecmwf = product.provider == "ecmwf"
    encoder = _Encoder(grid, run, packing, bits, domain_mask(product, grid),
                       product.index_names if ecmwf else None)
    index = None if driver is None else nearest_index(grid, driver.lats, driver.lons)
    wanted = set(steps)
    # Maxima cover the interval since the previous output step (1 h, 3 h after 48 h on 0.25°).
    previous = dict(zip(product.steps[1:], product.steps[:-1], strict=True))
    params = {pkg: product.parameters(pkg) for pkg in packages}
    needs_acc = any(p.accumulated_from_start for ps in params.values() for p in ps)
    upper_air = any(p.level_type == 100 for ps in params.values() for p in ps)
    acc = {n: np.zeros((grid.nj, grid.ni)) for n in _ACCUMULATED}
    done_hour = 0

    def adjust_at(valid: datetime):
        def adjust(fields: dict[str, np.ndarray]) -> None:
            if driver is None:
                return
            for name, field in fields.items():
                values = driver.grib_values(name, valid)
                if values is not None:
                    ok = ~np.isnan(values)
                    np.put(field, index[ok], values[ok])  # flat index = GRIB scanning order
        return adjust

    def accumulate_to(step: int) -> None:
        nonlocal done_hour
        for hour in range(done_hour + 1, step + 1):
            amounts = weather.hourly(hour)
            adjust_at(run + timedelta(hours=hour))(amounts)
            for name in _ACCUMULATED:
                acc[name] += amounts[name]
        done_hour = max(done_hour, step)

    written: list[Path] = []
    try:
        for group in groups:
            file_steps = [s for s in product.group_steps(group) if s in wanted]
            chunks: dict[str, list[bytes]] = {pkg: [] for pkg in packages}
            for step in file_steps:
                if needs_acc:  # first, so that instant() reuses the clouds of this hour
                    accumulate_to(step)
                fields = weather.instant(step, adjust_at(run + timedelta(hours=step)), upper_air)
                if needs_acc:
                    fields.update(acc)
                if ecmwf:
                    fields["d2m"] = dew_point(fields["t2m"] - 273.15, fields["rh2m"]) + 273.15
                    chunks[packages[0]].append(encoder.message(_decoy(), step, fields["t2m"]))
                for pkg in packages:
                    for p in params[pkg]:
                        if step in product.expected_steps(p, group):
                            chunks[pkg].append(encoder.message(p, step, fields[p.name],
                                                               previous.get(step, 0)))
            for pkg in packages:
                if chunks[pkg]:
                    path = _atomic_write(out_dir / product.archive_rel(run, pkg, group),
                                         chunks[pkg])
                    if ecmwf:
                        _write_ecmwf_index(path, chunks[pkg], run, group[0])
                    written.append(path)
    finally:
        encoder.close()
    return written


def _decoy() -> Parameter:
    return Parameter(ECMWF_DECOY, "skt_c", 0, 0, 17, 1, 0, grib_units="K")


def _write_ecmwf_index(path: Path, chunks: list[bytes], run: datetime, step: int) -> Path:
    """The ``.index`` beside an ECMWF step file: one JSON line per message, as ECMWF writes it."""
    lines, offset = [], 0
    for chunk in chunks:
        h = eccodes.codes_new_from_message(chunk)
        try:
            name = eccodes.codes_get_string(h, "shortName")
        finally:
            eccodes.codes_release(h)
        lines.append(json.dumps({
            "domain": "g", "date": f"{run:%Y%m%d}", "time": f"{run:%H%M}", "expver": "0001",
            "class": "od", "type": "fc", "stream": "oper", "step": str(step), "levtype": "sfc",
            "param": name, "_offset": offset, "_length": len(chunk)}))
        offset += len(chunk)
    return _atomic_write(path.with_suffix(".index"), ["\n".join(lines).encode() + b"\n"])


def _atomic_write(path: Path, chunks: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
    os.replace(tmp, path)
    return path


def simulate_run(product: str | Product, run: datetime, out_dir: str | Path, *,
                 packages: Sequence[str] = ("SP1", "SP2"), grid: Grid | None = None,
                 steps: Sequence[int] | None = None, seed: int = 0,
                 driver: PointDriver | None = None, bits_per_value: int = 16,
                 packing: str = "grid_ccsds", workers: int = 1) -> list[Path]:
    """Write one run as Météo-France would publish it; returns the files written.

    ``grid``: a sub-grid of the product's grid (``Grid.crop``, :func:`crop_for_points`) for fast
    tests; ``steps``: a subset of the product's steps (only the groups holding some are written);
    ``workers`` > 1 writes contiguous chunks of time groups in a process pool.
    """
    product = get_product(product) if isinstance(product, str) else product
    run = product.check_run(as_utc(run))
    packages = [product.check_package(p) for p in packages]
    grid = grid or product.grid
    if packing not in PACKINGS:
        raise ConfigError(f"packing {packing!r} is not supported: use one of {', '.join(PACKINGS)}")
    if not 1 <= bits_per_value <= 32:
        raise ConfigError(f"bits_per_value={bits_per_value}: use 1..32 (Météo-France uses 16)")
    steps = sorted(set(product.steps if steps is None else steps))
    unknown = sorted(set(steps) - set(product.steps))
    if unknown:
        raise ConfigError(f"{product.id}: no step {unknown[0]} (steps 0..{product.max_step})")
    groups = [g for g in product.groups if any(s in steps for s in product.group_steps(g))]
    out_dir = Path(out_dir)
    args = (product, run, out_dir, packages)
    tail = (steps, grid, seed, driver, bits_per_value, packing)
    if workers <= 1 or len(groups) < 2:
        return _write_groups(*args, groups, *tail)
    chunks = [list(c) for c in np.array_split(np.arange(len(groups)), min(workers, len(groups)))]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_write_groups, *args, [groups[i] for i in c], *tail)
                   for c in chunks if c]
        return [path for f in futures for path in f.result()]


def simulate_archive(product: str | Product, runs: Iterable[datetime], out_dir: str | Path,
                     **kw) -> list[Path]:
    """:func:`simulate_run` for several runs (same keyword arguments); all files written."""
    return [path for run in runs for path in simulate_run(product, run, out_dir, **kw)]
