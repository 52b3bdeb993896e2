"""The one rule for times and horizons.

- Python API (:func:`as_utc`): a time must carry its zone; a naive one is an error naming the
  parameter (a silent guess between UTC and local time is off by one or two hours).
- Command line (:func:`parse_cli_time`): a time without an offset is local to the environment's
  ``forecast.timezone``; a local time in a DST gap or in the repeated October hour is an error
  unless an offset says which instant is meant.
- CSV files (:func:`parse_times`): one format per file (ISO 8601 unless a format is given),
  naive times local to a given zone, localized in file order (the first of the repeated October
  hour is summer time, the second winter time); nothing is guessed silently.
- Printing (:func:`fmt_time`): every time shows its offset.
- :class:`Horizon`: the forecast horizons, in one place.

Storage-free: imports nothing from aggregat but :mod:`aggregat.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from aggregat.errors import AggregatError, ConfigError, InputError

_OFFSET = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
AMBIGUOUS = ("first", "second", "drop")
NONEXISTENT = ("shift_forward", "drop")


class Horizon(StrEnum):
    """Forecast horizons; equal to their strings, which the bank and the ledger store."""

    DAY_AHEAD = "day-ahead"
    INTRADAY = "intraday"

    @classmethod
    def parse(cls, value: str, *, param: str = "horizon",
              error: type[AggregatError] = ConfigError) -> Horizon:
        """``value`` as a Horizon, or a one-line ``error`` naming ``param`` and the choices."""
        try:
            return cls(value)
        except ValueError:
            raise error(f"{param} {value!r}: use one of "
                        f"{', '.join(h.value for h in cls)}", param=param) from None


def zone(tz: str, *, param: str = "time zone") -> ZoneInfo:
    """``tz`` as a ZoneInfo, or a ConfigError naming ``param``."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"{param} {tz!r} is unknown; use an IANA name such as Europe/Paris "
                          "or UTC") from None


def as_utc(value: datetime | pd.Timestamp | str, *, param: str,
           error: type[AggregatError] = InputError) -> pd.Timestamp:
    """The Python-API rule: an aware time (or ISO string with offset) as a UTC Timestamp; a naive
    one is refused with an ``error`` naming ``param``."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise error(f"{param} {value!r} is not a time; write it like 2026-11-28T10:00+01:00") \
            from None
    if ts is pd.NaT:
        raise error(f"{param} {value!r} is not a time; write it like 2026-11-28T10:00+01:00")
    if ts.tzinfo is None:
        raise error(f"{param} {ts:%Y-%m-%d %H:%M} has no time zone: pass an aware datetime "
                    "(e.g. datetime(..., tzinfo=ZoneInfo('Europe/Paris'))) or a string with an "
                    "offset (2026-11-28T10:00+01:00, ...Z for UTC)")
    return ts.tz_convert("UTC")


def parse_cli_time(text: str, tz: str, *, param: str) -> pd.Timestamp:
    """The command-line rule: ``text`` with an offset is that instant; without one it is local to
    ``tz`` (the environment's ``forecast.timezone``). Returns an aware UTC Timestamp."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{param} {text!r} is not a time: write it like 2026-11-28T10:00 "
                          f"(local, {tz}) or 2026-11-28T10:00+01:00") from None
    if value.tzinfo is not None:
        return pd.Timestamp(value).tz_convert("UTC")
    z = zone(tz, param="forecast.timezone")
    early, late = value.replace(tzinfo=z, fold=0), value.replace(tzinfo=z, fold=1)
    if early.utcoffset() != late.utcoffset():
        back = pd.Timestamp(early).tz_convert("UTC").tz_convert(z).tz_localize(None)
        if back.to_pydatetime() != value:
            raise ConfigError(f"{param} {value:%Y-%m-%d %H:%M} does not exist in {tz} (DST gap); "
                              "give a time outside the gap or with an offset")
        raise ConfigError(f"{param} {value:%Y-%m-%d %H:%M} happens twice in {tz} (DST change): "
                          f"add the offset, {_offset(early)} for the first or {_offset(late)} "
                          "for the second")
    return pd.Timestamp(early).tz_convert("UTC")


def _offset(value: datetime) -> str:
    delta = value.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def fmt_time(ts: datetime | pd.Timestamp, tz: str | None = None) -> str:
    """``2026-11-28 10:00+01:00 (09:00 UTC)`` (local to ``tz``), or ``2026-11-28 09:00Z``."""
    utc = pd.Timestamp(ts).tz_convert("UTC")
    if tz is None or tz == "UTC":
        return f"{utc:%Y-%m-%d %H:%M}Z"
    local = utc.tz_convert(tz)
    same_day = local.date() == utc.date()
    return (f"{local:%Y-%m-%d %H:%M}{_offset(local)} "
            f"({utc:%H:%M}" + ("" if same_day else f" on {utc:%Y-%m-%d}") + " UTC)")


def parse_times(values: Sequence[str] | pd.Series, *, tz: str | None = None,
                source: str = "FILE", column: str | None = None, first_line: int = 2,
                lines: Sequence[int] | None = None, by: Sequence | None = None,
                time_format: str | None = None, ambiguous: str | None = None,
                nonexistent: str | None = None) -> pd.DatetimeIndex:
    """The one CSV time parser: text -> UTC DatetimeIndex, one error line per problem.

    ``values`` are in file order (line ``first_line`` onwards, or ``lines``). Times with an offset
    are exact; a file mixing times with and without one is an error. Naive times are local to
    ``tz`` (none: an error). ISO 8601 unless ``time_format`` (strptime) is given; a value that does
    not parse is an error naming its line. Localization keeps file order within each group of
    ``by`` (e.g. the target): of a repeated October hour the first occurrence is summer time and
    the second winter time; a third, or one that occurs once, is an error unless ``ambiguous``
    ("first", "second", "drop") says what to do with those. A time in the March gap is an error
    unless ``nonexistent`` ("shift_forward", "drop"). Dropped rows are NaT.
    """
    text = pd.Series(values, dtype=object).astype(str).str.strip().reset_index(drop=True)
    line_of = (np.asarray(lines, dtype=int) if lines is not None
               else first_line + np.arange(len(text)))
    where = source + (f" column {column!r}" if column else "")

    def fail(i: int, what: str, param: str | tuple[str, ...] = ()) -> InputError:
        return InputError(f"{source} line {int(line_of[i])}"
                          + (f" column {column!r}" if column else "") + f": {what}", param=param)

    if ambiguous not in (None, *AMBIGUOUS):
        raise ConfigError(f"{where}: ambiguous {ambiguous!r}: use one of {', '.join(AMBIGUOUS)}")
    if nonexistent not in (None, *NONEXISTENT):
        raise ConfigError(f"{where}: nonexistent {nonexistent!r}: use one of "
                          f"{', '.join(NONEXISTENT)}")
    if text.empty:
        return pd.DatetimeIndex([], tz="UTC")
    has_offset = text.str.contains(_OFFSET).to_numpy()
    if has_offset.any() and not has_offset.all():
        i = int((~has_offset).argmax() if has_offset[0] else has_offset.argmax())
        raise fail(i, f"{text.iloc[i]!r} mixes times with and without UTC offset in one file; "
                   "use one convention")
    fmt = time_format or "ISO8601"
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=bool(has_offset[0]))
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        hint = (f"expected format {time_format!r} (one format per file)" if time_format else
                "expected ISO 8601 (2026-01-31 13:00), one format per file; give time_format "
                "for another layout")
        raise fail(i, f"cannot read {text.iloc[i]!r} as a time; {hint}", "time_format")
    if has_offset[0]:
        return pd.DatetimeIndex(parsed).tz_convert("UTC")
    if tz is None:
        raise fail(0, f"{text.iloc[0]!r} has no UTC offset and no time zone is given; give the "
                   "zone of the file (tz) or write times with an offset", "tz")
    z = zone(tz)
    naive = pd.DatetimeIndex(parsed)
    summer = naive.tz_localize(z, ambiguous=np.ones(len(naive), bool), nonexistent="NaT")
    exact = naive.tz_localize(z, ambiguous="NaT", nonexistent="NaT")
    gap = np.asarray(summer.isna())
    if gap.any() and nonexistent is None:
        i = int(gap.argmax())
        raise fail(i, f"{naive[i]:%Y-%m-%d %H:%M} does not exist in {tz} (DST gap); fix the row, "
                   "write times with an offset, or choose nonexistent shift_forward|drop",
                   "nonexistent")
    flags = np.ones(len(naive), bool)  # True: summer time (only read where ambiguous)
    drop = gap.copy() if nonexistent == "drop" else np.zeros(len(naive), bool)
    twice = np.asarray(exact.isna()) & ~gap
    if twice.any():
        rows = pd.DataFrame({"t": naive[twice],
                             "g": np.asarray(by, dtype=object)[twice] if by is not None else 0,
                             "i": np.flatnonzero(twice)})
        rank = rows.groupby(["g", "t"]).cumcount().to_numpy()
        count = rows.groupby(["g", "t"])["i"].transform("size").to_numpy()
        third = rank >= 2
        if third.any():
            i = int(rows["i"].to_numpy()[third][0])
            raise fail(i, f"{naive[i]:%Y-%m-%d %H:%M} appears a third time; a local time is at "
                       f"most twice in {tz} (DST change)")
        alone = count == 1
        if alone.any() and ambiguous is None:
            i = int(rows["i"].to_numpy()[alone][0])
            raise fail(i, f"{naive[i]:%Y-%m-%d %H:%M} happens twice in {tz} (DST change) but "
                       "occurs once here, so the order of the rows cannot tell which; write "
                       "times with an offset, or choose ambiguous first|second|drop",
                       "ambiguous")
        idx = rows["i"].to_numpy()
        flags[idx] = rank == 0  # file order: summer time first, then winter time
        if ambiguous in ("first", "second"):
            flags[idx[alone]] = ambiguous == "first"
        elif ambiguous == "drop":
            drop[idx[alone]] = True
    shift = "shift_forward" if nonexistent == "shift_forward" else "NaT"
    out = naive.tz_localize(z, ambiguous=flags, nonexistent=shift).tz_convert("UTC")
    if drop.any():
        out = out.where(~drop, pd.NaT)
    return pd.DatetimeIndex(out)


# -- availability: when a value becomes known ----------------------------------------------------
_DAY_BEFORE = re.compile(r"^D(?:-(\d+))?\s+([01]?\d|2[0-3]):([0-5]\d)$")
_SHIFT = re.compile(r"^([+-])\s*(\d+(?:\.\d+)?)\s*(min|h|d)$")
_SHIFT_UNITS = {"min": "min", "h": "h", "d": "D"}


def check_availability(rule: str) -> str:
    """``rule`` if it is a valid availability rule (see :func:`available_at`), else ValueError
    saying how to write one. A plain name is a column name (checked by the caller)."""
    text = rule.strip()
    if _DAY_BEFORE.match(text) or _SHIFT.match(text) or re.fullmatch(r"[A-Za-z_]\w*", text):
        return text
    raise ValueError(f"availability {rule!r}: write '+1h' (the value's time plus a delay), "
                     "'D-1 19:00' (a local time on the day before the value's local day), "
                     "or the name of a column holding the time it was known")


def available_at(times: pd.Series | pd.DatetimeIndex, rule: str, tz: str) -> pd.DatetimeIndex:
    """When values at ``times`` (aware) become known, by ``rule``:

    - ``+1h``, ``+30min``, ``-2d``: their time plus (minus) a delay (a measurement published an
      hour after its interval; a contract known two days ahead);
    - ``D-1 19:00``, ``D-2 10:40``, ``D 06:00``: a local time (``tz``) on the day N days before
      the value's local day (a day-ahead forecast published at 19:00 the day before).
    Local times in a DST gap move forward; in the repeated hour, the first (summer) one counts.
    """
    idx = pd.DatetimeIndex(times).tz_convert("UTC")
    text = check_availability(rule)
    shift = _SHIFT.match(text)
    if shift:
        delta = pd.Timedelta(float(shift.group(2)), unit=_SHIFT_UNITS[shift.group(3)])
        return idx + delta if shift.group(1) == "+" else idx - delta
    day = _DAY_BEFORE.match(text)
    if not day:
        raise ValueError(f"availability {rule!r} names a column: read it from the data")
    days, hour, minute = int(day.group(1) or 0), int(day.group(2)), int(day.group(3))
    local_day = idx.tz_convert(tz).tz_localize(None).normalize()
    naive = local_day - pd.Timedelta(days=days) + pd.Timedelta(hours=hour, minutes=minute)
    return pd.DatetimeIndex(naive.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
                            ).tz_convert("UTC")


def is_column_rule(rule: str) -> bool:
    """Whether an availability rule names a column (not a delay nor a day-before time)."""
    text = rule.strip()
    return not (_DAY_BEFORE.match(text) or _SHIFT.match(text))
