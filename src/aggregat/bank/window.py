"""Dataset helpers: write a weather run, load and forecasts; read time windows by partition.

A window read computes the partition keys that can hold rows of the window (run dates that can
reach it for weather, months for load, issue dates for forecasts), reads only those files and
pushes the time/location filters into DuckDB. Its cost depends on the window, not on the length of
the history (the legacy stack's 14-day read scanned all of it).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

import pandas as pd

from aggregat.bank.datasets import check_keys, conform
from aggregat.bank.store import Bank
from aggregat.errors import BankError
from aggregat.timeutil import as_utc

log = logging.getLogger(__name__)

WEATHER = "weather_forecast"
LOAD = "load"
FORECAST = "forecast"
FORECAST_EXPLAIN = "forecast_explain"
# Nominal delay between a run's time and its publication on Météo-France open data, used as
# ``available_at`` when the writer does not know the actual fetch time.
AVAILABILITY_DELAY_H = {"arome": 3.0, "arpege": 4.0}
DEFAULT_DELAY_H = 4.0
_US = pd.Timedelta(microseconds=1)


def utc(value: datetime | str | pd.Timestamp, what: str = "time") -> pd.Timestamp:
    """A tz-aware UTC Timestamp; naive values are refused (:func:`aggregat.timeutil.as_utc`)."""
    return as_utc(value, param=what, error=BankError)


def _days(first: pd.Timestamp, last: pd.Timestamp, fmt: str = "%Y-%m-%d") -> list[str]:
    if last < first:
        return []
    return list(pd.date_range(first.floor("D"), last.floor("D"), freq="D").strftime(fmt))


def _months(first: pd.Timestamp, last: pd.Timestamp) -> list[str]:
    if last < first:
        return []
    periods = pd.period_range(first.tz_localize(None).to_period("M"),
                              last.tz_localize(None).to_period("M"), freq="M")
    return [p.strftime("%Y-%m") for p in periods]


def _key_values(bank: Bank, dataset: str, key: str) -> list[str]:
    """Values of the first partition key (a short listing: models or targets)."""
    prefix = f"{key}="
    return [n[len(prefix):] for n in bank.store.listdir(dataset) if n.startswith(prefix)]


def _ids(values: str | Collection[str] | None) -> list[str] | None:
    """A collection of ids; one string is one id (not its letters)."""
    if values is None:
        return None
    return [values] if isinstance(values, str) else list(values)


def _dated_parts(bank: Bank, dataset: str, where: dict[str, str], date_key: str,
                 first: pd.Timestamp | None, last: pd.Timestamp | None, part_re: re.Pattern[str]
                 ) -> list[tuple[pd.Timestamp, str]]:
    """(time, part file) of the parts of a series, date partitions ``first``..``last`` (whole
    days; all when None), sorted by time; the time is the date key plus the part's HH[MM]."""
    if first is not None or last is not None:
        dates = _days(utc(first if first is not None else last),
                      utc(last if last is not None else first))
        if not dates:
            return []
        where = {**where, date_key: dates}
    out = []
    for rel in bank.files(dataset, where):
        folder, name = rel.rsplit("/", 1)
        match = part_re.match(name)
        if match is None:
            continue
        day = dict(s.split("=", 1) for s in folder.split("/")[1:])[date_key]
        hh, mm = match.group(1), match.group(2) or "00"
        out.append((pd.Timestamp(f"{day}T{hh}:{mm}:00Z"), rel))
    return sorted(out)


def _key_dates(bank: Bank, dataset: str, where: dict[str, str], key: str) -> list[str]:
    return sorted({p[key] for p in bank.partitions(dataset, where)})


# -- what the other layers may ask about partitions ----------------------------------------------
def target_ids(bank: Bank, dataset: str = LOAD) -> list[str]:
    """Target ids with data in ``dataset`` (``load`` or ``forecast``), sorted."""
    if dataset not in (LOAD, FORECAST):
        raise BankError(f"{dataset}: dataset is not partitioned by target (use {LOAD!r} or "
                        f"{FORECAST!r})")
    return sorted(_key_values(bank, dataset, "target"))


def _in(column: str, values: Sequence[str]) -> str:
    return f'"{column}" IN ({", ".join("?" for _ in values)})'


# -- weather_forecast ----------------------------------------------------------------------------
_RUN_PART = re.compile(r"^run=(\d{2})()\.parquet$")


def weather_run_partition(model: str, run_time: datetime | str) -> tuple[dict[str, str], str]:
    """(partition keys, part) of one model run: where :func:`write_weather_run` writes it."""
    run = utc(run_time, "run_time")
    return {"model": model, "run_date": f"{run:%Y-%m-%d}"}, f"run={run:%H}"


def has_weather_run(bank: Bank, model: str, run_time: datetime | str) -> bool:
    """True when the bank holds the rows of this model run."""
    keys, part = weather_run_partition(model, run_time)
    return bank.store.exists(bank.part_path(WEATHER, keys, part))


def weather_run_dates(bank: Bank, model: str) -> list[str]:
    """Days (``YYYY-MM-DD``) with at least one run of ``model``, sorted."""
    return _key_dates(bank, WEATHER, {"model": model}, "run_date")


def weather_runs(bank: Bank, model: str, first: datetime | str | None = None,
                 last: datetime | str | None = None) -> list[tuple[pd.Timestamp, str]]:
    """(run time, part file) of the runs of ``model`` made on the days of ``first``..``last``
    (all runs when both are None), sorted by run time."""
    return _dated_parts(bank, WEATHER, {"model": model}, "run_date", first, last, _RUN_PART)


def nominal_available_at(model: str, run_time: pd.Timestamp) -> pd.Timestamp:
    """When a run is normally published (run time + the model family's usual delay)."""
    family = model.split("-", 1)[0].lower()
    return run_time + pd.Timedelta(hours=AVAILABILITY_DELAY_H.get(family, DEFAULT_DELAY_H))


def write_weather_run(bank: Bank, model: str, run_time: datetime | str, df: pd.DataFrame,
                      available_at: datetime | str | None = None) -> str:
    """Write (replace) the rows of one model run; returns the part's relative path.

    ``df`` needs ``valid_time``, ``location`` and variable columns; ``model``, ``run_time``,
    ``step_h`` and ``available_at`` are filled when absent (``available_at`` from the argument,
    else :func:`nominal_available_at`). Partition: ``model``, ``run_date``; part ``run=HH``.
    """
    run = utc(run_time, "run_time")
    if run != run.floor("h"):
        raise BankError(f"{WEATHER}: run_time {run} is not on the hour")
    df = df.copy()
    for col, value in (("model", model), ("run_time", run)):
        if col not in df:
            df[col] = value
        elif len(df) and not (df[col] == value).all():
            raise BankError(f"{WEATHER}: column {col!r} holds values other than {value} for run "
                            f"{model} {run:%Y-%m-%dT%HZ}")
    for col in ("valid_time", "location"):
        if col not in df:
            raise BankError(f"{WEATHER}: missing required column {col!r}")
    if "available_at" not in df:
        df["available_at"] = (utc(available_at, "available_at") if available_at is not None
                              else nominal_available_at(model, run))
    if "step_h" not in df and isinstance(df["valid_time"].dtype, pd.DatetimeTZDtype):
        hours = (df["valid_time"] - df["run_time"]) / pd.Timedelta(hours=1)
        df["step_h"] = hours.round().astype("int64")
    dups = df.duplicated(["location", "valid_time"])
    if dups.any():
        raise BankError(f"{WEATHER}: run {model} {run:%Y-%m-%dT%HZ} has {int(dups.sum())} "
                        "duplicate (location, valid_time) rows")
    keys, part = weather_run_partition(model, run)
    return bank.write_partition(WEATHER, keys, df, part=part)


def merge_weather_run(bank: Bank, model: str, run_time: datetime | str, df: pd.DataFrame,
                      keep: Mapping[str, Collection[tuple[str, int]]]
                      ) -> tuple[str | None, dict[str, int], int]:
    """Write a run like :func:`write_weather_run`, keeping stored values the new rows lack.

    ``keep`` maps a label (the file that should have provided them) to (column, step_h) cells; for
    those cells a value missing in ``df`` (NaN, or no row at all) is taken from the partition
    already stored, so re-extracting a run with a bad file never replaces good values with
    missing ones. New values always win. Returns the part's path (None: nothing stored, nothing
    new, nothing written), the values kept per label and the rows written.
    """
    run = utc(run_time, "run_time")
    keys, part = weather_run_partition(model, run)
    rel = bank.part_path(WEATHER, keys, part=part)
    kept = {label: 0 for label in keep}
    if not bank.store.exists(rel) or not any(keep.values()):
        if not len(df):
            return None, kept, 0
        return write_weather_run(bank, model, run, df), kept, len(df)
    try:
        old = bank.read_partition(WEATHER, keys, part=part)
    except BankError as exc:  # an unreadable old part must not block a new extraction
        log.warning("%s: stored values cannot be kept (%s)", rel, exc)
        return write_weather_run(bank, model, run, df), kept, len(df)
    old = old.astype({"step_h": "int64"}).set_index(["step_h", "location"])
    new = df.copy()
    if "step_h" not in new:
        new["step_h"] = ((new["valid_time"] - run) / pd.Timedelta(hours=1)).round()
    new = new.astype({"step_h": "int64"}).set_index(["step_h", "location"])
    steps = {step for cells in keep.values() for _, step in cells}
    extra = old.index[old.index.get_level_values(0).isin(steps)].difference(new.index)
    if len(new):  # sites removed since the last extraction stay removed
        extra = extra[extra.get_level_values(1).isin(new.index.get_level_values(1))]
    merged = new.reindex(new.index.append(extra))
    for label, cells in keep.items():
        for column, step in cells:
            if column not in old:
                continue
            if column not in merged:
                merged[column] = float("nan")
            rows = merged.index.get_level_values(0) == step
            stored = old[column].reindex(merged.index[rows])
            fill = merged.loc[rows, column].isna().to_numpy() & stored.notna().to_numpy()
            if fill.any():
                merged.loc[merged.index[rows][fill], column] = stored.to_numpy()[fill]
                kept[label] += int(fill.sum())
    merged = merged.reset_index()
    merged["valid_time"] = run + pd.to_timedelta(merged["step_h"], unit="h")
    for col in ("model", "run_time", "available_at"):
        if col in df and len(df):
            merged[col] = df[col].iloc[0]
        elif col in old:
            merged[col] = old[col].iloc[0]
    return write_weather_run(bank, model, run, merged), kept, len(merged)


def read_weather(bank: Bank, start: datetime | str, end: datetime | str,
                 models: str | Collection[str] | None = None,
                 locations: str | Collection[str] | None = None, max_lead_h: float = 102,
                 issued_before: datetime | str | None = None,
                 columns: list[str] | None = None, latest: bool = False) -> pd.DataFrame:
    """Forecast rows with ``start <= valid_time < end``, reading only the runs that can reach it.

    Run dates from ``start - max_lead_h`` to ``end`` (and not after ``issued_before``) are turned
    into partition paths directly; rows are further limited to ``step_h <= max_lead_h``, to
    ``locations``, and to ``available_at <= issued_before`` (what was known at an issue time).
    ``latest=True`` keeps, per (model, location, valid_time), the newest run only.
    """
    t0, t1 = utc(start, "start"), utc(end, "end")
    first = t0 - pd.Timedelta(hours=float(max_lead_h))
    last = t1 - _US
    cutoff = None
    if issued_before is not None:
        cutoff = utc(issued_before, "issued_before")
        last = min(last, cutoff)
    models = _ids(models) if models is not None else _key_values(bank, WEATHER, "model")
    dates = _days(first, last)
    if t1 <= t0 or not models or not dates:
        return bank.read_files(WEATHER, [], columns)
    files = bank.files(WEATHER, {"model": models, "run_date": dates})
    conds = ["valid_time >= ?", "valid_time < ?", "step_h <= ?"]
    params: list = [t0, t1, math.floor(max_lead_h)]  # an int keeps the step_h filter pushed down
    if cutoff is not None:
        conds.append("available_at <= ?")
        params.append(cutoff)
    if locations is not None:
        locations = _ids(locations)
        if not locations:
            return bank.read_files(WEATHER, [], columns)
        conds.append(_in("location", locations))
        params.extend(locations)
    if latest and columns is not None:
        columns = list(dict.fromkeys([*columns, "model", "location", "valid_time", "run_time"]))
    df = bank.read_files(WEATHER, files, columns, " AND ".join(conds), params)
    if latest and len(df):
        df = (df.sort_values("run_time", kind="stable")
                .drop_duplicates(["model", "location", "valid_time"], keep="last")
                .sort_values(["model", "valid_time", "location"], kind="stable")
                .reset_index(drop=True))
    return df


# -- load ----------------------------------------------------------------------------------------
def write_load(bank: Bank, df: pd.DataFrame) -> int:
    """Upsert measured load by (target_id, time), newest ``updated_at`` winning; returns rows given.

    ``updated_at`` defaults to now when absent (an import is the update). Partition: ``target``,
    ``month`` (UTC month of ``time``).
    """
    if "updated_at" not in df:
        df = df.assign(updated_at=pd.Timestamp.now(tz="UTC"))
    frame = conform(LOAD, df).to_pandas()
    if frame.empty:
        return 0
    month = frame["time"].dt.strftime("%Y-%m")
    groups = list(frame.groupby([frame["target_id"], month], sort=True))
    for (target, mon), _ in groups:  # check every partition key before writing any
        check_keys(LOAD, {"target": str(target), "month": str(mon)})
    for (target, mon), group in groups:
        bank.upsert(LOAD, {"target": str(target), "month": str(mon)}, group,
                    on=["target_id", "time"], version_col="updated_at")
    return int(len(frame.drop_duplicates(["target_id", "time"])))


def read_load(bank: Bank, target_ids: str | Collection[str] | None = None,
              start: datetime | str | None = None,
              end: datetime | str | None = None) -> pd.DataFrame:
    """Load rows with ``start <= time < end`` (open ends allowed), reading only those months."""
    targets = _ids(target_ids) if target_ids is not None else _key_values(bank, LOAD, "target")
    if not targets:
        return bank.read_files(LOAD, [])
    where: dict[str, list[str]] = {"target": targets}
    conds, params = [], []
    t0 = utc(start, "start") if start is not None else None
    t1 = utc(end, "end") if end is not None else None
    if t0 is not None:
        conds.append("time >= ?")
        params.append(t0)
    if t1 is not None:
        conds.append("time < ?")
        params.append(t1)
    if t0 is not None and t1 is not None:
        where["month"] = _months(t0, t1 - _US)
        if not where["month"]:
            return bank.read_files(LOAD, [])
    files = bank.files(LOAD, where)
    if (t0 is None) != (t1 is None):
        files = _prune_months(files, t0, t1)
    return bank.read_files(LOAD, files, filter_sql=" AND ".join(conds) or None, params=params)


def _prune_months(files: list[str], t0: pd.Timestamp | None, t1: pd.Timestamp | None) -> list[str]:
    lo = f"{t0:%Y-%m}" if t0 is not None else ""
    hi = f"{t1 - _US:%Y-%m}" if t1 is not None else "9999-99"
    out = []
    for rel in files:
        month = rel.split("/month=", 1)[1].split("/", 1)[0]
        if lo <= month <= hi:
            out.append(rel)
    return out


def load_months(bank: Bank, target: str) -> list[str]:
    """Months (``YYYY-MM``, UTC) with measured load of ``target``, sorted."""
    return _key_dates(bank, LOAD, {"target": target}, "month")


# -- forecast ------------------------------------------------------------------------------------
_ISSUE_PART = re.compile(r"^issue=(\d{2})(\d{2})\.parquet$")


def forecast_issue_dates(bank: Bank, target: str) -> list[str]:
    """Days (``YYYY-MM-DD``, UTC) with at least one forecast issue of ``target``, sorted."""
    return _key_dates(bank, FORECAST, {"target": target}, "issue_date")


def forecast_issues(bank: Bank, target: str, first: datetime | str | None = None,
                    last: datetime | str | None = None) -> list[tuple[pd.Timestamp, str]]:
    """(issue time, part file) of the forecasts of ``target`` issued on the days of
    ``first``..``last`` (all when both are None), sorted by issue time."""
    return _dated_parts(bank, FORECAST, {"target": target}, "issue_date", first, last,
                        _ISSUE_PART)


def write_forecast(bank: Bank, df: pd.DataFrame) -> int:
    """Write (replace) the forecasts of each (target_id, issue_time) in ``df``; returns rows.

    Partition: ``target``, ``issue_date``; part ``issue=HHMM``. Re-issuing replaces the part.
    """
    frame = conform(FORECAST, df).to_pandas()
    dups = frame.duplicated(["target_id", "issue_time", "valid_time"])
    if dups.any():
        raise BankError(f"{FORECAST}: {int(dups.sum())} duplicate (target_id, issue_time, "
                        "valid_time) rows")
    groups = [({"target": str(target), "issue_date": f"{issue:%Y-%m-%d}"}, f"issue={issue:%H%M}",
               group) for (target, issue), group in frame.groupby(["target_id", "issue_time"])]
    for keys, _, _ in groups:  # check every partition key before writing any
        check_keys(FORECAST, keys)
    for keys, part, group in groups:
        bank.write_partition(FORECAST, keys, group, part=part)
    return int(len(frame))


def write_forecast_explain(bank: Bank, df: pd.DataFrame) -> int:
    """Write (replace) the P50 contributions of each (target_id, issue_time) in ``df``
    (dataset ``forecast_explain``, partitioned like ``forecast``); returns rows."""
    frame = conform(FORECAST_EXPLAIN, df).to_pandas()
    groups = [({"target": str(target), "issue_date": f"{issue:%Y-%m-%d}"}, f"issue={issue:%H%M}",
               group) for (target, issue), group in frame.groupby(["target_id", "issue_time"])]
    for keys, _, _ in groups:
        check_keys(FORECAST_EXPLAIN, keys)
    for keys, part, group in groups:
        bank.write_partition(FORECAST_EXPLAIN, keys, group, part=part)
    return int(len(frame))


def read_forecast_explain(bank: Bank, target_id: str, issue_time: datetime | str
                          ) -> pd.DataFrame:
    """The P50 contributions of one target's forecast issued at ``issue_time``."""
    issue = utc(issue_time, "issue_time")
    files = bank.files(FORECAST_EXPLAIN, {"target": [target_id],
                                          "issue_date": [f"{issue:%Y-%m-%d}"]},
                       parts=[f"issue={issue:%H%M}"])
    return bank.read_files(FORECAST_EXPLAIN, files)


def read_forecast(bank: Bank, target_ids: str | Collection[str] | None = None,
                  issue_time: datetime | str | None = None,
                  start: datetime | str | None = None, end: datetime | str | None = None,
                  max_horizon_h: float = 168) -> pd.DataFrame:
    """Forecasts of one issue time, or with ``start <= valid_time < end``, or all of them.

    With a window and no issue time, only issue dates from ``start - max_horizon_h`` to ``end``
    are read.
    """
    targets = _ids(target_ids) if target_ids is not None else _key_values(bank, FORECAST,
                                                                          "target")
    if not targets:
        return bank.read_files(FORECAST, [])
    where: dict[str, list[str]] = {"target": targets}
    parts = None
    conds, params = [], []
    t0 = utc(start, "start") if start is not None else None
    t1 = utc(end, "end") if end is not None else None
    if issue_time is not None:
        issue = utc(issue_time, "issue_time")
        where["issue_date"] = [f"{issue:%Y-%m-%d}"]
        parts = [f"issue={issue:%H%M}"]
    elif t0 is not None and t1 is not None:
        where["issue_date"] = _days(t0 - pd.Timedelta(hours=max_horizon_h), t1 - _US)
    if t0 is not None:
        conds.append("valid_time >= ?")
        params.append(t0)
    if t1 is not None:
        conds.append("valid_time < ?")
        params.append(t1)
    files = bank.files(FORECAST, where, parts=parts)
    return bank.read_files(FORECAST, files, filter_sql=" AND ".join(conds) or None,
                           params=params)
