"""Import measured load from a CSV file into the bank dataset ``load``.

The file needs a time column and a value column, and either a target column or ``--target``.
Every problem is one :class:`~aggregat.errors.InputError` line naming the file, the line (as an
editor counts them: the header is line 1) and the column, never a silent wrong number:

- times are ISO 8601 unless ``time_format`` (a strptime format) is given, so ``01/02/2026`` is
  never guessed as January or February; times with an offset (``Z``, ``+01:00``) are instants,
  naive times are local to ``tz`` (default UTC), read in file order for each target: of the
  repeated October hour the first rows are summer time, the next winter time; a time in the
  March gap, or a repeated-hour time present once, is an error naming its line unless
  ``nonexistent`` / ``ambiguous`` say what to do (:func:`aggregat.timeutil.parse_times`);
- values are numbers in ``unit`` (W, kW or MW) converted to MW; empty values are skipped and
  counted;
- a (target, time) present twice is an error naming both lines;
- values outside the target's plausible bounds (:mod:`aggregat.plausibility`) are rejected,
  counted and named by line in the summary; when ALL are implausible the file is an error (most
  likely a unit mistake, which the message names) and nothing is imported.

Rows get ``updated_at`` = import time, so a re-import replaces earlier values (the bank upserts by
target/time, newest ``updated_at`` wins) and never duplicates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aggregat.errors import ConfigError, InputError
from aggregat.plausibility import MAX_EXAMPLES, Plausibility
from aggregat.timeutil import parse_times, zone

UNITS_TO_MW = {"mw": 1.0, "kw": 1e-3, "w": 1e-6}
_FIRST, _LAST = "1900-01-01", "2199-12-31"  # plausible measurement times


@dataclass
class ImportReport:
    """What one ``load import`` did."""

    path: str
    rows: int
    skipped_empty: int
    targets: list[str]
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)  # "line N target ...: why"

    def summary(self) -> str:
        span = f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC" if self.rows else "-"
        skipped = f", {self.skipped_empty} empty value(s) skipped" if self.skipped_empty else ""
        if self.rejected:
            more = " ..." if self.rejected > len(self.rejected_examples) else ""
            skipped += (f"; {self.rejected} implausible value(s) rejected, not stored "
                        f"({'; '.join(self.rejected_examples)}{more})")
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
    ambiguous: str | None = None, nonexistent: str | None = None,
) -> tuple[pd.DataFrame, int]:
    """Read and validate a load CSV; returns (frame in the bank ``load`` schema, empty values).

    ``ambiguous``/``nonexistent``: what to do with DST times the file cannot resolve (see
    :func:`aggregat.timeutil.parse_times`).

    The frame has ``target_id``, ``time`` (UTC), ``load_mw`` (float64), ``updated_at`` (now).
    Plausibility is not checked here (:func:`import_load_csv` does).
    """
    frame, empty = _read(path, target=target, time_col=time_col, value_col=value_col,
                         target_col=target_col, unit=unit, tz=tz, time_format=time_format,
                         sep=sep, decimal=decimal, ambiguous=ambiguous, nonexistent=nonexistent)
    return frame.drop(columns="line"), empty


def _read(path: str | Path, *, target: str | None, time_col: str, value_col: str,
          target_col: str, unit: str, tz: str, time_format: str | None, sep: str, decimal: str,
          ambiguous: str | None = None, nonexistent: str | None = None,
          ) -> tuple[pd.DataFrame, int]:
    """:func:`read_load_csv` keeping each row's ``line`` (for the plausibility messages)."""
    path = Path(path)
    factor = UNITS_TO_MW.get(unit.lower())
    if factor is None:
        raise InputError(f"unit {unit!r} is not supported; use W, kW or MW")
    try:
        zone(tz)
    except ConfigError as exc:
        raise InputError(str(exc)) from None
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

    times = parse_times(raw[time_col], tz=tz, source=str(path), column=time_col, lines=lines,
                        by=targets.to_numpy(), time_format=time_format, ambiguous=ambiguous,
                        nonexistent=nonexistent)
    outside = np.asarray((times < pd.Timestamp(_FIRST, tz="UTC"))
                         | (times > pd.Timestamp(_LAST, tz="UTC")))
    if outside.any():  # a typo in the year (pandas' nanosecond times stop in 1677 and 2262)
        i = int(outside.argmax())
        raise _fail(path, int(lines[i]), time_col, f"time {raw[time_col].iloc[i]!r} is not "
                    f"between {_FIRST} and {_LAST}; check the year")
    text = raw[value_col]
    empty = (text == "").to_numpy()
    numbers = text.str.replace(decimal, ".", regex=False) if decimal != "." else text
    values = pd.to_numeric(numbers.where(~empty, "nan"), errors="coerce").to_numpy(float)
    bad = ~empty & ~np.isfinite(values)
    if bad.any():
        i = int(bad.argmax())
        raise _fail(path, int(lines[i]), value_col,
                    f"cannot read {text.iloc[i]!r} as a number in {unit}")
    frame = pd.DataFrame({
        "target_id": targets.astype(str).to_numpy(),
        "time": times,
        "load_mw": values * factor,
        "line": lines,
    })[~empty & ~times.isna()]  # NaT: a DST row dropped on request
    dup = frame.duplicated(["target_id", "time"], keep=False)
    if dup.any():
        rows = frame[dup].sort_values(["target_id", "time", "line"])
        first, second = rows.iloc[0], rows.iloc[1]
        raise _fail(path, int(second["line"]), time_col,
                    f"time {first['time']:%Y-%m-%dT%H:%MZ} appears twice for target "
                    f"{first['target_id']!r} (first at line {int(first['line'])})")
    frame = frame.sort_values(["target_id", "time"]).reset_index(drop=True)
    frame["updated_at"] = pd.Timestamp.now(tz="UTC")
    return frame, int(empty.sum())


def import_load_csv(bank, path: str | Path, *, plausibility: Plausibility | None = None,
                    **options) -> ImportReport:
    """Validate ``path`` (see :func:`read_load_csv`), reject implausible values (module doc)
    and upsert the rest into the bank's ``load``."""
    from aggregat.bank import write_load

    defaults = {"target": None, "time_col": "time", "value_col": "load_mw",
                "target_col": "target_id", "unit": "MW", "tz": "UTC", "time_format": None,
                "sep": ",", "decimal": ".", "ambiguous": None, "nonexistent": None}
    frame, skipped = _read(path, **{**defaults, **options})
    plausibility = plausibility or Plausibility()
    bad = plausibility.implausible(frame["target_id"], frame["load_mw"].to_numpy())
    rejected = frame[bad].sort_values("line")
    examples = [f"line {int(r.line)} target {r.target_id!r} {r.time:%Y-%m-%dT%H:%MZ}: "
                f"{plausibility.describe(r.target_id, r.load_mw)}"
                for r in rejected.head(MAX_EXAMPLES).itertuples()]
    if len(rejected) and bad.all():
        raise InputError(f"{path}: all {len(rejected)} values are implausible, nothing imported "
                         f"(first: {examples[0]}); "
                         f"{_unit_hint(frame, plausibility, options.get('unit', 'MW'))}")
    frame = frame[~bad].drop(columns="line")
    if not frame.empty:
        write_load(bank, frame)
    return ImportReport(
        path=str(path), rows=len(frame), skipped_empty=skipped,
        targets=sorted(frame["target_id"].unique()),
        start=frame["time"].min() if len(frame) else None,
        end=frame["time"].max() if len(frame) else None,
        rejected=len(rejected), rejected_examples=examples,
    )


def _unit_hint(frame: pd.DataFrame, plausibility: Plausibility, unit: str) -> str:
    """The unit in which every value would be plausible, if there is one."""
    given = UNITS_TO_MW[unit.lower()]
    for name, factor in (("MW", 1.0), ("kW", 1e-3), ("W", 1e-6)):
        scaled = frame["load_mw"].to_numpy() * factor / given
        if factor != given and not plausibility.implausible(frame["target_id"], scaled).any():
            return f"the values look like {name}, not {unit}: give --unit {name}"
    return ("check the unit (--unit W, kW or MW) and the bounds ([energy] max_load_mw, the "
            "target's min_mw / max_mw / net_load)")
