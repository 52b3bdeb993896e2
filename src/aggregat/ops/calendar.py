"""Days × datasets of an environment: which partitions are present, partial, failed or missing.

Each row is one series the jobs fill day by day: a weather model's run hour, a target's measured
load, a target's forecasts per horizon, the publishes per horizon. A cell's status comes from the
bank (is the partition there?) and the ledger (did the latest attempt fail or end partial?):
the ledger wins when it says failed or partial, the bank says present or missing otherwise, so
history migrated without a ledger reads as present. It reads partition listings, the ledger and
one window of load; it never writes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pandas as pd

from aggregat.bank import Bank, forecast_issues, read_load, target_ids, weather_runs
from aggregat.config import Environment
from aggregat.ops.ledger import Entry, Ledger
from aggregat.results import Calendar, CalendarCell, CalendarRow
from aggregat.timeutil import Horizon
from aggregat.weather.products import get_product

PRESENT, PARTIAL, FAILED, MISSING = "present", "partial", "failed", "missing"


def _day_of(partition: str) -> date | None:
    """The day a ledger partition names (``model/2026-11-28T00Z``, ``2026-11-28T0900Z``)."""
    text = partition.rsplit("/", 1)[-1][:10]
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _cell(day: date, present: bool, entries: list[Entry], detail: str = "",
          partial: bool = False) -> CalendarCell:
    """The status of one cell: the ledger's failed / partial first, then the bank."""
    statuses = {e.status for e in entries}
    refs = tuple((e.step, e.partition) for e in entries)
    errors = [e.error for e in entries if e.error]
    if "failed" in statuses:
        return CalendarCell(day, FAILED, errors[0] if errors else "failed", refs)
    if "partial" in statuses or (present and partial):
        return CalendarCell(day, PARTIAL, errors[0] if errors else detail, refs)
    if present:
        return CalendarCell(day, PRESENT, detail, refs)
    return CalendarCell(day, MISSING, detail or "not in the bank", refs)


def build_calendar(env: Environment, days: int, last: date | None = None) -> Calendar:
    """The calendar of the ``days`` days ending on ``last`` (default: today, UTC)."""
    last = last or pd.Timestamp.now(tz="UTC").date()
    first = last - timedelta(days=days - 1)
    window = [first + timedelta(days=i) for i in range(days)]
    bank = Bank(env.bank)
    by_step: dict[str, dict[str, list[Entry]]] = defaultdict(lambda: defaultdict(list))
    for entry in Ledger(bank).entries():
        day = _day_of(entry.partition)
        if day is not None and first <= day <= last:
            by_step[entry.step][entry.partition].append(entry)
    rows = _weather_rows(env, bank, window, by_step)
    stored = {dataset: set(target_ids(bank, dataset)) for dataset in ("load", "forecast")}
    targets = [t.id for t in env.forecast.targets]
    for dataset in ("load", "forecast"):
        targets += [t.split("@", 1)[0] for t in sorted(stored[dataset])
                    if t.split("@", 1)[0] not in targets]
    rows += _load_rows(bank, targets, stored["load"], window, by_step)
    horizons = [Horizon.DAY_AHEAD] + ([Horizon.INTRADAY] if env.forecast.intraday else [])
    for horizon in horizons:
        rows += _forecast_rows(bank, targets, stored["forecast"], horizon, window, by_step)
    for horizon in horizons:
        rows.append(_publish_row(horizon, window, by_step))
    return Calendar(env.name, window, rows)


def _step(name: str, horizon: str) -> str:
    return name if horizon == Horizon.DAY_AHEAD else f"{name}-{horizon}"


def _weather_rows(env, bank, window, by_step) -> list[CalendarRow]:
    rows = []
    for model in env.weather.models:
        product = get_product(model)
        present = {pd.Timestamp(run).strftime("%Y-%m-%dT%HZ")
                   for run, _ in weather_runs(bank, product.id,
                                              *(pd.Timestamp(d, tz="UTC")
                                                for d in (window[0], window[-1])))}
        for hour in [h for h in env.weather.runs if h in product.run_hours]:
            cells = []
            for day in window:
                stamp = f"{day:%Y-%m-%d}T{hour:02d}Z"
                part = f"{product.id}/{stamp}"
                entries = by_step["fetch"].get(part, []) + by_step["extract"].get(part, [])
                cells.append(_cell(day, stamp in present, entries))
            rows.append(CalendarRow("weather", f"{product.id} {hour:02d}Z", cells))
    return rows


def _load_rows(bank, targets, stored, window, by_step) -> list[CalendarRow]:
    """Configured targets without load in the bank (never read: their id may not even be a
    valid partition name) are missing every day."""
    start = pd.Timestamp(window[0], tz="UTC")
    present = [t for t in targets if t in stored]
    frame = (read_load(bank, present, start, start + pd.Timedelta(days=len(window)))
             if present else pd.DataFrame())
    rows = []
    for target in targets:
        times = frame.loc[frame["target_id"] == target, "time"] if len(frame) else pd.Series()
        counts = times.dt.date.value_counts() if len(times) else pd.Series(dtype=int)
        step = times.sort_values().diff().median() if len(times) > 1 else pd.Timedelta(minutes=30)
        per_day = max(1, int(pd.Timedelta(days=1) / step)) if pd.notna(step) and step else 48
        cells = []
        for day in window:
            n = int(counts.get(day, 0))
            sync = by_step["sync"].get(f"{day:%Y-%m-%d}", [])
            failed_sync = [e for e in sync if e.status == "failed"] if n == 0 else []
            cells.append(_cell(day, n > 0, failed_sync, f"{n} of {per_day} values",
                               partial=0 < n < per_day))
        rows.append(CalendarRow("load", target, cells))
    return rows


def _forecast_rows(bank, targets, stored, horizon, window, by_step) -> list[CalendarRow]:
    step = _step("predict", horizon)
    entries_by_day: dict[date, list[Entry]] = defaultdict(list)
    for part, entries in by_step[step].items():
        entries_by_day[_day_of(part)].extend(entries)
    rows = []
    for target in targets:
        key = target if horizon == Horizon.DAY_AHEAD else f"{target}@{horizon}"
        issued: dict[date, int] = defaultdict(int)
        first, last = (pd.Timestamp(d, tz="UTC") for d in (window[0], window[-1]))
        for issue, _ in forecast_issues(bank, key, first, last) if key in stored else []:
            issued[pd.Timestamp(issue).date()] += 1
        cells = [_cell(day, issued[day] > 0, entries_by_day.get(day, []),
                       f"{issued[day]} issue(s)") for day in window]
        rows.append(CalendarRow("forecast", f"{target} {horizon}", cells))
    return rows


def _publish_row(horizon, window, by_step) -> CalendarRow:
    step = _step("publish", horizon)
    entries_by_day: dict[date, list[Entry]] = defaultdict(list)
    for part, entries in by_step[step].items():
        entries_by_day[_day_of(part)].extend(entries)
    cells = []
    for day in window:
        entries = entries_by_day.get(day, [])
        ok = [e for e in entries if e.status == "ok"]
        rows = sum(e.rows or 0 for e in ok)
        cells.append(_cell(day, bool(ok), entries, f"{rows} rows" if ok else ""))
    return CalendarRow("publish", str(horizon), cells)
