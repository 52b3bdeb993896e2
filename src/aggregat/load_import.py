"""Import measured load from a CSV file into the bank dataset ``load``.

The file needs a time column and a value column, and either a target column or ``--target``.
Every problem is one :class:`~aggregat.errors.InputError` line naming the file, the line (as an
editor counts them: the header is line 1) and the column, never a silent wrong number:

- times are ISO 8601 unless ``time_format`` (a strptime format) is given, so ``01/02/2026`` is
  never guessed as January or February; times with an offset (``Z``, ``+01:00``) are instants,
  naive times are local to ``tz`` (default UTC; an ambiguous or missing local time at a DST change
  is an error unless the series is regular enough for pandas to infer the repeated hour);
- values are numbers in ``unit`` (kW or MW) converted to MW; empty values are skipped and counted;
- a (target, time) present twice is an error naming both lines.

Rows get ``updated_at`` = import time, so a re-import replaces earlier values (the bank upserts by
target/time, newest ``updated_at`` wins) and never duplicates them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from aggregat.errors import InputError

UNITS_TO_MW = {"mw": 1.0, "kw": 1e-3}
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


@dataclass
class ImportReport:
    """What one ``load import`` did."""

    path: str
    rows: int
    skipped_empty: int
    targets: list[str]
    start: pd.Timestamp | None
    end: pd.Timestamp | None

    def summary(self) -> str:
        span = f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC" if self.rows else "-"
        skipped = f", {self.skipped_empty} empty value(s) skipped" if self.skipped_empty else ""
        return (f"imported {self.rows} rows for {len(self.targets)} target(s) "
                f"({', '.join(self.targets[:5])}{' ...' if len(self.targets) > 5 else ''}) "
                f"from {self.path}: {span}{skipped}")


def _fail(path: Path, line: int | None, column: str | None, what: str,
          param: str | tuple[str, ...] = ()) -> InputError:
    where = str(path) + (f" line {line}" if line is not None else "")
    where += f" column {column!r}" if column else ""
    return InputError(f"{where}: {what}", param=param)


def read_load_csv(
    path: str | Path, *, target: str | None = None, time_col: str = "time",
    value_col: str = "load_mw", target_col: str = "target_id", unit: str = "MW",
    tz: str = "UTC", time_format: str | None = None, sep: str = ",", decimal: str = ".",
) -> tuple[pd.DataFrame, int]:
    """Read and validate a load CSV; returns (frame in the bank ``load`` schema, empty values).

    The frame has ``target_id``, ``time`` (UTC), ``load_mw`` (float64), ``updated_at`` (now).
    """
    path = Path(path)
    factor = UNITS_TO_MW.get(unit.lower())
    if factor is None:
        raise InputError(f"unit {unit!r} is not supported; use kW or MW")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"time zone {tz!r} is unknown; use an IANA name such as "
                         "Europe/Paris or UTC") from None
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        header = pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8-sig").columns.tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise _fail(path, None, None, f"not a readable CSV ({str(exc).strip()[:120]})") from None
    use_target_col = target_col in header
    for col, option in ((time_col, "time_col"), (value_col, "value_col")):
        if col not in header:
            raise _fail(path, 1, col, f"column not found (columns: {', '.join(header)}); "
                        f"name the right one with {option}", param=option)
    if target is None and not use_target_col:
        raise _fail(path, 1, target_col, f"column not found (columns: {', '.join(header)}); "
                    "name it with target_col or give one target ID",
                    param=("target_col", "target"))
    usecols = [time_col, value_col] + ([target_col] if use_target_col else [])
    try:
        raw = pd.read_csv(path, sep=sep, usecols=usecols, dtype=str, keep_default_na=False,
                          skip_blank_lines=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise _fail(path, None, None, f"not a readable CSV ({str(exc).strip()[:120]})") from None
    raw = raw.map(str.strip)
    raw = raw[(raw != "").any(axis=1)]  # blank lines
    lines = raw.index.to_numpy() + 2  # header is line 1

    targets = raw[target_col] if use_target_col else pd.Series(target, index=raw.index)
    if use_target_col:
        bad = targets == ""
        if bad.any():
            raise _fail(path, int(lines[bad.to_numpy().argmax()]), target_col, "empty target id")
        if target is not None:
            keep = targets == target
            if not keep.any():
                raise _fail(path, None, target_col, f"no row for target {target!r}")
            raw, targets, lines = raw[keep], targets[keep], lines[keep.to_numpy()]

    times = _parse_times(path, raw[time_col], lines, time_col, time_format, zone, targets)
    text = raw[value_col]
    empty = (text == "").to_numpy()
    numbers = text.str.replace(decimal, ".", regex=False) if decimal != "." else text
    values = pd.to_numeric(numbers.where(~empty, "nan"), errors="coerce").to_numpy(float)
    bad = ~empty & ~pd.Series(values).map(math.isfinite).to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise _fail(path, int(lines[i]), value_col,
                    f"cannot read {text.iloc[i]!r} as a number in {unit}")
    frame = pd.DataFrame({
        "target_id": targets.astype(str).to_numpy(),
        "time": times,
        "load_mw": values * factor,
        "line": lines,
    })[~empty]
    dup = frame.duplicated(["target_id", "time"], keep=False)
    if dup.any():
        rows = frame[dup].sort_values(["target_id", "time", "line"])
        first, second = rows.iloc[0], rows.iloc[1]
        raise _fail(path, int(second["line"]), time_col,
                    f"time {first['time']:%Y-%m-%dT%H:%MZ} appears twice for target "
                    f"{first['target_id']!r} (first at line {int(first['line'])})")
    frame = frame.drop(columns="line").sort_values(["target_id", "time"]).reset_index(drop=True)
    frame["updated_at"] = pd.Timestamp.now(tz="UTC")
    return frame, int(empty.sum())


def _parse_times(path: Path, text: pd.Series, lines, column: str, time_format: str | None,
                 zone: ZoneInfo, targets: pd.Series) -> pd.Series:
    """Text -> UTC timestamps, with the line of the first bad value in the error."""
    fmt = time_format or "ISO8601"
    has_offset = text.str.contains(_OFFSET)
    if has_offset.any() and not has_offset.all():
        i = int((~has_offset).to_numpy().argmax() if has_offset.iloc[0] else has_offset.argmax())
        raise _fail(path, int(lines[i]), column,
                    f"{text.iloc[i]!r} mixes times with and without UTC offset in one file; "
                    "use one convention")
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=bool(has_offset.any()))
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        hint = f"expected format {time_format!r}" if time_format else \
            "expected ISO 8601 (2026-01-31 13:00); give time_format for another layout"
        raise _fail(path, int(lines[i]), column, f"cannot read {text.iloc[i]!r} as a time; {hint}",
                    param="time_format")
    if has_offset.any():
        return parsed.dt.tz_convert("UTC")
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    for _, idx in parsed.groupby(targets.to_numpy()).groups.items():
        local = parsed.loc[idx].sort_values()
        try:
            aware = local.dt.tz_localize(zone, ambiguous="infer", nonexistent="raise")
        except Exception:  # ambiguous or non-existent local times (DST changes)
            probe = local.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
            bad_idx = probe.index[probe.isna()][0]
            i = text.index.get_loc(bad_idx)
            raise _fail(path, int(lines[i]), column,
                        f"local time {text.iloc[i]!r} is ambiguous or does not exist in {zone.key} "
                        "(DST change); give times in UTC or with an offset") from None
        out.loc[aware.index] = aware.dt.tz_convert("UTC")
    return out


def import_load_csv(bank, path: str | Path, **options) -> ImportReport:
    """Validate ``path`` (see :func:`read_load_csv`) and upsert it into the bank's ``load``."""
    from aggregat.bank import write_load

    frame, skipped = read_load_csv(path, **options)
    if not frame.empty:
        write_load(bank, frame)
    return ImportReport(
        path=str(path), rows=len(frame), skipped_empty=skipped,
        targets=sorted(frame["target_id"].unique()),
        start=frame["time"].min() if len(frame) else None,
        end=frame["time"].max() if len(frame) else None,
    )
