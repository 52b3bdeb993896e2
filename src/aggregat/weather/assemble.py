"""Fields at locations -> one tidy frame per run: de-accumulation, units, derived wind.

Radiation and precipitation are accumulated from the run start, one message per end step, spread
over several time-group files: they can only be de-accumulated once every file of the run has been
read, so this happens here, in the parent process, on small arrays.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from aggregat.weather.decode_task import Field
from aggregat.weather.humidity import relative_humidity
from aggregat.weather.products import PARAMETERS

log = logging.getLogger(__name__)

# Packing noise on an accumulation can make a difference slightly negative; beyond this (in GRIB
# units per hour) it is reported, and clipped all the same.
_NEGATIVE_TOLERANCE = {"ssrd": 20_000.0, "tp": 0.05}


def column_name(field: Field) -> str:
    """Bank column of a field: the catalogue's name with its unit, else one built from its keys."""
    header = field.header
    if header.param is not None:
        return PARAMETERS[header.param].column
    unit = re.sub(r"[^a-z0-9]+", "", header.units.lower().replace("**", "").replace("-", "m"))
    return f"{header.short_name}_{header.level_name}{header.level}_{unit or 'nounit'}".lower()


def deaccumulate(
    ends: dict[int, tuple[int, np.ndarray]], expected_steps: Sequence[int] | None, name: str
) -> dict[int, tuple[np.ndarray, int]]:
    """Amounts over each interval ending at a step, from accumulations.

    ``ends``: end step -> (start step, accumulated value over [start, end]). Returns end step ->
    (amount over the interval, interval length in hours). An interval is only produced when the
    previous step is known (the previous expected step of the catalogue, or the previous step
    present for generic files): a hole never turns into a longer, mislabelled interval.
    """
    cumulative: dict[int, np.ndarray | float] = {0: 0.0}
    direct: dict[int, tuple[np.ndarray, int]] = {}
    for end in sorted(ends):
        start, value = ends[end]
        if start == 0:
            cumulative[end] = value
        elif start in cumulative:
            cumulative[end] = cumulative[start] + value
        else:  # an amount over its own interval, whose start is not known as a cumulative
            direct[end] = (value, end - start)
    known = sorted(cumulative)
    out: dict[int, tuple[np.ndarray, int]] = {}
    for end in known[1:]:
        prev = _previous(expected_steps, end) if expected_steps else known[known.index(end) - 1]
        if prev not in cumulative:
            continue
        out[end] = (np.asarray(cumulative[end] - cumulative[prev], dtype=np.float64), end - prev)
    for end, item in direct.items():
        out.setdefault(end, item)
    return {end: (_clip(amount, name, end), hours) for end, (amount, hours) in out.items()}


def _clip(amount: np.ndarray, name: str, end: int) -> np.ndarray:
    finite = amount[~np.isnan(amount)]
    worst = float(finite.min()) if finite.size else 0.0
    if worst < -_NEGATIVE_TOLERANCE.get(name, 0.0):
        log.warning("%s: accumulation decreases by %.3g at step %d; clipped to 0", name, -worst,
                    end)
    return np.where(amount < 0, 0.0, amount)


def _previous(expected_steps: Sequence[int], end: int) -> int:
    earlier = [s for s in expected_steps if s < end]
    return earlier[-1] if earlier else 0


def assemble_run(
    fields: Iterable[Field],
    location_ids: Sequence[str],
    *,
    model: str,
    run_time: datetime,
    available_at: datetime,
    expected_steps: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per (valid time, location) with one column per variable, in bank units."""
    instant: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    accumulated: dict[str, dict[int, tuple[int, np.ndarray]]] = defaultdict(dict)
    for f in fields:
        h = f.header
        param = PARAMETERS.get(h.param) if h.param else None
        values = f.values.astype(np.float64) * h.unit_scale
        if param is not None and param.accumulated_from_start:
            accumulated[param.name][h.end_step] = (h.start_step, values)
        else:
            instant[column_name(f)][h.end_step] = _to_bank_units(values, param)
    return assemble_columns(instant, accumulated, location_ids, model=model, run_time=run_time,
                            available_at=available_at, expected_steps=expected_steps)


def assemble_columns(
    instant: dict[str, dict[int, np.ndarray]],
    accumulated: dict[str, dict[int, tuple[int, np.ndarray]]],
    location_ids: Sequence[str],
    *,
    model: str,
    run_time: datetime,
    available_at: datetime,
    expected_steps: Sequence[int] | None = None,
) -> pd.DataFrame:
    """The frame of :func:`assemble_run` from values already per location: ``instant`` maps a
    bank column to step -> values in bank units, ``accumulated`` a catalogue parameter to end step
    -> (start step, accumulation in GRIB units). Extraction and the history import both end here,
    so both convert alike (de-accumulation, W/m², derived humidity and wind)."""
    columns: dict[str, dict[int, np.ndarray]] = dict(instant)
    for name, ends in accumulated.items():
        param = PARAMETERS[name]
        per_interval = deaccumulate(ends, expected_steps, name)
        columns[param.column] = {
            end: (amount / (3600.0 * hours) if param.per_second else amount)
            for end, (amount, hours) in per_interval.items()
        }
    t, td = columns.get("t2m_c"), columns.get("d2m_c")
    if t and td and "rh2m_pct" not in columns:  # ECMWF gives the dew point, not the humidity
        columns["rh2m_pct"] = {s: relative_humidity(t[s], td[s]) for s in sorted(set(t) & set(td))}
    u, v = columns.get("u10_ms"), columns.get("v10_ms")
    if u and v:
        common = sorted(set(u) & set(v))
        columns["wind_speed_10m_ms"] = {s: np.hypot(u[s], v[s]) for s in common}
        # Meteorological convention: the direction the wind blows from, clockwise from north.
        columns["wind_dir_10m_deg"] = {
            s: np.mod(270.0 - np.degrees(np.arctan2(v[s], u[s])), 360.0) for s in common}
    steps = sorted({s for col in columns.values() for s in col})
    n_loc = len(location_ids)
    frame = pd.DataFrame({
        "model": model,
        "run_time": pd.Timestamp(run_time),
        "available_at": pd.Timestamp(available_at),
        "valid_time": pd.DatetimeIndex([run_time + timedelta(hours=s) for s in steps]
                                       ).repeat(n_loc),
        "step_h": np.repeat(np.array(steps, dtype=np.int16), n_loc),
        "location": np.tile(np.asarray(location_ids, dtype=object), len(steps)),
    })
    nan_row = np.full(n_loc, np.nan)
    for name in sorted(columns):
        by_step = columns[name]
        frame[name] = np.concatenate([by_step.get(s, nan_row) for s in steps]).astype(np.float32) \
            if steps else np.zeros(0, np.float32)
    return frame


def _to_bank_units(values: np.ndarray, param) -> np.ndarray:
    if param is None:
        return values
    return values * param.scale + param.offset
