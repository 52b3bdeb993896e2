"""Incremental copy of any energy-DB table (or query) into a bank dataset of its name.

``[env.X.energy.tables.NAME]`` declares the source (``table`` or ``query``), the ``time_col``,
the ``keys`` that identify a row with its time, the ``watermark_col`` the copy resumes from and
when a row became known (``available``). The bank dataset NAME holds, partitioned by UTC month
of ``time``: the key columns (text), ``time``, the value columns (numbers as float64, anything
else as text), ``available_at`` and ``updated_at`` (the watermark value, or the sync time).

The guarantees are those of the load sync (:mod:`aggregat.energy.sync`): rows are read ordered
by the watermark column through a server-side cursor; every ``sync_batch_rows`` rows they are
upserted into their month partitions (one atomic file write each, newest ``updated_at`` winning
per key and time) and only THEN the watermark is saved; the next run reads from ``watermark -
sync_lookback_days`` with ``>=``. A kill at any point leaves whole partitions only and loses
nothing; the rerun re-reads what the watermark does not cover and the upsert absorbs it.
The state remembers the database and the table's definition: changing either starts a full copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from aggregat.bank import Bank, Column, Dataset, register_dataset
from aggregat.config import EnergySettings, TableSettings
from aggregat.energy.db import require_table, safe_url, table_ref, to_db_time, with_retries
from aggregat.errors import BankError, ConfigError
from aggregat.timeutil import available_at, is_column_rule

log = logging.getLogger(__name__)

STATE_DATASET = "sync_state"
MONTH = r"^\d{4}-\d{2}$"


@dataclass
class TableSyncReport:
    """What one copy of an extra table did."""

    name: str
    source: str
    rows_read: int = 0
    rows_written: int = 0
    rows_skipped_null: int = 0
    batches: int = 0
    partitions: set[str] = field(default_factory=set)
    watermark_before: datetime | None = None
    watermark_after: datetime | None = None
    full: bool = False
    duration_s: float = 0.0

    def summary(self) -> str:
        kind = "full" if self.full else "incremental"
        fmt = lambda v: v.isoformat() if v else "none"  # noqa: E731
        return (f"table {self.name} ({kind}) from {self.source}: {self.rows_read} rows read, "
                f"{self.rows_written} written to bank '{self.name}' in {self.batches} batch(es), "
                f"{len(self.partitions)} month(s), watermark {fmt(self.watermark_before)} -> "
                f"{fmt(self.watermark_after)}, {self.duration_s:.2f}s")


def dataset_of(name: str, spec: TableSettings) -> Dataset:
    """The bank schema of table ``name`` (value columns are stored as they come)."""
    return Dataset(
        name=name, keys=("month",),
        columns=(*(Column(k, "str") for k in spec.keys), Column("time", "ts"),
                 Column("available_at", "ts"), Column("updated_at", "ts")),
        sort_by=("time", *spec.keys), key_formats={"month": MONTH},
        doc=f"energy DB {spec.table or 'query'} copied by `energy sync` (one row per key, time)")


def register_tables(settings: EnergySettings) -> None:
    """Register the schema of every configured table (before reading or writing them)."""
    for name, spec in settings.tables.items():
        register_dataset(dataset_of(name, spec))


def _where(name: str) -> str:
    return f"[energy.tables.{name}]"


def _watermark_col(spec: TableSettings) -> str:
    return spec.watermark_col or spec.time_col


def _definition(spec: TableSettings) -> str:
    """A hash of what the copy means: a new query or mapping starts a full copy."""
    return hashlib.sha256(json.dumps(spec.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


def _db_id(engine: sa.Engine) -> str:
    return hashlib.sha256(safe_url(engine.url).encode()).hexdigest()[:16]


def _state_keys(name: str) -> dict[str, str]:
    return {"source": f"table:{name}"}


def load_table_state(bank: Bank, name: str, spec: TableSettings, engine: sa.Engine
                     ) -> datetime | None:
    """The saved watermark of table ``name`` (None: full copy)."""
    try:
        state = bank.read_partition(STATE_DATASET, _state_keys(name))
    except BankError:
        return None
    if (state.empty or str(state["db_id"].iloc[0]) != _db_id(engine)
            or str(state["definition"].iloc[0]) != _definition(spec)):
        return None
    return pd.Timestamp(state["watermark"].iloc[0]).tz_convert("UTC").to_pydatetime()


def _save_state(bank: Bank, name: str, spec: TableSettings, engine: sa.Engine,
                watermark: datetime, rows: int) -> None:
    bank.write_partition(STATE_DATASET, _state_keys(name), pd.DataFrame({
        "source": [_state_keys(name)["source"]], "db_id": [_db_id(engine)],
        "definition": [_definition(spec)], "watermark_col": [_watermark_col(spec)],
        "watermark": [pd.Timestamp(watermark).tz_convert("UTC")],
        "synced_at": [pd.Timestamp.now(tz="UTC")], "rows": [rows]}))


def _times(values: pd.Series, name: str, column: str) -> pd.Series:
    from aggregat.energy.sync import db_times

    return db_times(values, f"{_where(name)} column {column!r}",
                    "fix time_col / watermark_col / available")


def _source(conn: sa.Connection, name: str, spec: TableSettings) -> tuple[sa.FromClause,
                                                                          list[str]]:
    """The table (or the query as a subquery) and the columns it has."""
    if spec.table is not None:
        require_table(conn, spec.table, f"tables.{name}.table",
                      f"fix {_where(name)} table or create the table")
        schema, table = spec.table.rsplit(".", 1) if "." in spec.table else (None, spec.table)
        present = [c["name"] for c in sa.inspect(conn).get_columns(table, schema=schema)]
        return table_ref(spec.table, f"tables.{name}.table", *present), present
    try:
        present = list(conn.execute(sa.text(f"SELECT * FROM ({spec.query}) AS src WHERE 1 = 0"))
                       .keys())
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", exc)
        raise ConfigError(f"{_where(name)} query fails on the energy DB: "
                          f"{str(orig).strip().splitlines()[0][:200]}; fix the query") from None
    text = sa.text(spec.query).columns(*(sa.column(c) for c in present))
    return text.subquery("src"), present


def _plan(name: str, spec: TableSettings, present: list[str]) -> tuple[list[str], str | None]:
    """The value columns copied, and the column holding availability (if the rule names one)."""
    avail_col = spec.available if spec.available and is_column_rule(spec.available) else None
    needed = [spec.time_col, *spec.keys, *([spec.watermark_col] if spec.watermark_col else []),
              *([avail_col] if avail_col else []), *spec.columns]
    missing = [c for c in needed if c not in present]
    if missing:
        raise ConfigError(f"{_where(name)}: column {missing[0]!r} not in the "
                          f"{'table' if spec.table else 'query'} (columns: "
                          f"{', '.join(present[:20])}); fix the setting")
    reserved = {"time", "available_at", "updated_at", "month"}
    others = [c for c in present if c not in {spec.time_col, *spec.keys, spec.watermark_col,
                                              avail_col}]
    values = list(spec.columns) or [c for c in others if c not in reserved]
    if not values:
        raise ConfigError(f"{_where(name)}: no value column to copy; list them in columns")
    return values, avail_col


def rows_to_frame(rows: list, names: list[str], name: str, spec: TableSettings,
                  values: list[str], avail_col: str | None, tz: str, synced_at: pd.Timestamp
                  ) -> tuple[pd.DataFrame, int, datetime | None]:
    """Source rows -> the bank rows, rows skipped (no time or key), largest watermark value."""
    raw = pd.DataFrame.from_records(rows, columns=names)
    wm = _watermark_col(spec)
    wm_raw = raw[wm].dropna()
    wm_max = _times(wm_raw, name, wm).max().to_pydatetime() if len(wm_raw) else None
    keep = raw[spec.time_col].notna()
    for k in spec.keys:
        keep &= raw[k].notna()
    raw = raw[keep].reset_index(drop=True)
    out = pd.DataFrame({k: raw[k].astype(str) for k in spec.keys})
    out["time"] = _times(raw[spec.time_col], name, spec.time_col)
    for c in values:
        numbers = pd.to_numeric(raw[c], errors="coerce")
        if raw[c].isna().equals(numbers.isna()):  # every value is a number (or empty)
            out[c] = numbers.astype("float64")
        else:
            out[c] = raw[c].astype("string").astype(object).where(raw[c].notna(), None)
    if spec.watermark_col and spec.watermark_col != spec.time_col:
        upd = _times(raw[spec.watermark_col], name, spec.watermark_col)
        out["updated_at"] = upd.fillna(synced_at)
    else:
        out["updated_at"] = synced_at
    if avail_col:
        out["available_at"] = _times(raw[avail_col], name, avail_col).fillna(out["updated_at"])
    elif spec.available:
        out["available_at"] = available_at(out["time"], spec.available, tz)
    elif spec.watermark_col and spec.watermark_col != spec.time_col:
        out["available_at"] = out["updated_at"]  # known once written: never too early
    else:
        out["available_at"] = out["time"]
    out = (out.sort_values("updated_at", kind="stable")
           .drop_duplicates([*spec.keys, "time"], keep="last"))
    return out.reset_index(drop=True), int((~keep).sum()), wm_max


def write_rows(bank: Bank, name: str, spec: TableSettings, frame: pd.DataFrame) -> set[str]:
    """Upsert ``frame`` into its month partitions (one atomic write each); returns the months."""
    months = frame["time"].dt.strftime("%Y-%m")
    done = set()
    for month, group in frame.groupby(months, sort=True):
        bank.upsert(name, {"month": str(month)}, group.reset_index(drop=True),
                    on=[*spec.keys, "time"], version_col="updated_at")
        done.add(str(month))
    return done


def sync_table(engine: sa.Engine, bank: Bank, settings: EnergySettings, name: str, *,
               tz: str = "Europe/Paris", full: bool = False) -> TableSyncReport:
    """Copy new and updated rows of table ``name`` into its bank dataset (module doc)."""
    spec = settings.tables[name]
    register_dataset(dataset_of(name, spec))
    return with_retries(lambda: _sync_once(engine, bank, settings, name, spec, tz, full),
                        settings, f"energy sync of table {name}", engine,
                        on_failure="the bank keeps what earlier runs copied; rerun later")


def _sync_once(engine: sa.Engine, bank: Bank, settings: EnergySettings, name: str,
               spec: TableSettings, tz: str, full: bool) -> TableSyncReport:
    started = time.perf_counter()
    watermark = None if full else load_table_state(bank, name, spec, engine)
    report = TableSyncReport(name=name, source=spec.table or "query", full=watermark is None,
                             watermark_before=watermark, watermark_after=watermark)
    synced_at = pd.Timestamp.now(tz="UTC")
    with engine.connect() as conn:
        src, present = _source(conn, name, spec)
        values, avail_col = _plan(name, spec, present)
        names = list(dict.fromkeys([spec.time_col, *spec.keys, _watermark_col(spec),
                                    *([avail_col] if avail_col else []), *values]))
        wm_col = src.c[_watermark_col(spec)]
        since_param = sa.bindparam("since", type_=sa.DateTime(timezone=True))
        if engine.dialect.name == "sqlite":
            # SQLite keeps times as text in any layout: compare and order them as instants.
            wm_col = sa.func.julianday(wm_col)
            since_param = sa.func.julianday(sa.bindparam("since", type_=sa.String))
        query = sa.select(*(src.c[n] for n in names)).order_by(wm_col)
        if watermark is not None:
            since = watermark - timedelta(days=settings.sync_lookback_days)
            since_value = (f"{since:%Y-%m-%d %H:%M:%S.%f}" if engine.dialect.name == "sqlite"
                           else to_db_time(since, engine))
            query = query.where(wm_col >= since_param).params(since=since_value)
        pending: list[pd.DataFrame] = []
        pending_rows, pending_max = 0, None

        def flush() -> None:
            nonlocal pending_rows, pending_max
            frame = pd.concat(pending, ignore_index=True)
            frame = (frame.sort_values("updated_at", kind="stable")
                     .drop_duplicates([*spec.keys, "time"], keep="last"))
            if not frame.empty:
                report.partitions |= write_rows(bank, name, spec, frame)  # the rows first ...
                report.rows_written += len(frame)
            if pending_max is not None:
                new_wm = max(pending_max, report.watermark_after or pending_max)
                _save_state(bank, name, spec, engine, new_wm, len(frame))  # ... then the mark
                report.watermark_after = new_wm
            report.batches += 1
            pending.clear()
            pending_rows, pending_max = 0, None

        result = conn.execution_options(stream_results=True,
                                        yield_per=settings.sync_fetch_rows).execute(query)
        for chunk in result.partitions():
            frame, skipped, chunk_max = rows_to_frame(chunk, names, name, spec, values,
                                                      avail_col, tz, synced_at)
            pending.append(frame)
            pending_rows += len(chunk)
            report.rows_read += len(chunk)
            report.rows_skipped_null += skipped
            if chunk_max is not None:
                pending_max = max(chunk_max, pending_max or chunk_max)
            if pending_rows >= settings.sync_batch_rows:
                flush()
        if pending:
            flush()
    report.duration_s = time.perf_counter() - started
    log.debug(report.summary())
    return report


def sync_tables(engine: sa.Engine, bank: Bank, settings: EnergySettings, *,
                tz: str = "Europe/Paris", full: bool = False,
                only: list[str] | None = None) -> list[TableSyncReport]:
    """Copy every configured table (or ``only`` these), one after the other."""
    names = list(settings.tables) if only is None else only
    unknown = [n for n in names if n not in settings.tables]
    if unknown:
        raise ConfigError(f"table {unknown[0]!r} is not configured ([energy.tables.NAME]; "
                          f"configured: {', '.join(settings.tables) or 'none'})")
    return [sync_table(engine, bank, settings, n, tz=tz, full=full) for n in names]
