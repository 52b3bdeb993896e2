"""Incremental copy of measured load from the energy DB into the bank dataset ``load``.

How it stays correct when interrupted at any point:

- Rows are read ordered by the watermark column (``load_updated_col``, or the time column when the
  table has no update stamp) through a server-side cursor, ``sync_fetch_rows`` per round trip.
- Every ``sync_batch_rows`` rows, the batch is upserted into the bank (by target/time, newest
  ``updated_at`` wins: re-copying a row never duplicates it) and only THEN the watermark (the
  largest watermark-column value written) is saved in the bank dataset ``sync_state``.
- The next run reads from ``watermark - sync_lookback_days`` with ``>=``: rows sharing the
  watermark value, rows committed late with an older stamp, and (without an update column)
  corrections of recent measurements are picked up again; the upsert makes that harmless.

So a crash before a bank write loses nothing (the watermark has not moved) and a crash after it
duplicates nothing (the upsert absorbs the re-read). Rows deleted from the source are not
propagated. The state remembers which database it came from: pointing ``energy_db`` elsewhere
starts a full copy.

Rows outside their target's plausible bounds (:mod:`aggregat.plausibility`) are rejected as
``load import`` rejects them: not written, counted and named (target/time/value) in the report,
the log and the job ledger; the watermark still moves past them, so a corrected row (new update
stamp) is copied by a later sync.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from aggregat.config import EnergySettings
from aggregat.energy.db import (
    require_table,
    safe_url,
    table_ref,
    to_db_time,
    validate_identifier,
    with_retries,
)
from aggregat.errors import BankError, EnergyDBError
from aggregat.plausibility import MAX_EXAMPLES, Plausibility

log = logging.getLogger(__name__)

STATE_DATASET = "sync_state"


@dataclass
class SyncReport:
    """What one ``energy sync`` did."""

    table: str
    rows_read: int = 0
    rows_written: int = 0
    rows_skipped_null: int = 0
    batches: int = 0
    watermark_before: datetime | None = None
    watermark_after: datetime | None = None
    full: bool = False
    duration_s: float = 0.0
    targets: set[str] = field(default_factory=set)
    rows_rejected: int = 0
    # the first implausible rows: target, time (ISO), value_mw, why
    rejected_examples: list[dict[str, object]] = field(default_factory=list)

    def summary(self) -> str:
        kind = "full" if self.full else "incremental"
        rejected = ""
        if self.rows_rejected:
            more = " ..." if self.rows_rejected > len(self.rejected_examples) else ""
            rejected = (f"; {self.rows_rejected} implausible row(s) rejected, not stored ("
                        + "; ".join(f"target {r['target']!r} {r['time']}: {r['why']}"
                                    for r in self.rejected_examples) + more + ")")
        return (f"energy sync ({kind}) from {self.table}: {self.rows_read} rows read, "
                f"{self.rows_written} written to bank 'load' in {self.batches} batch(es), "
                f"{len(self.targets)} target(s), watermark {_fmt(self.watermark_before)} -> "
                f"{_fmt(self.watermark_after)}, {self.duration_s:.2f}s{rejected}")


def _fmt(value: datetime | None) -> str:
    return value.isoformat() if value else "none"


def _db_id(engine: sa.Engine) -> str:
    """Identity of the source database (URL without password), to detect a re-pointed config."""
    return hashlib.sha256(safe_url(engine.url).encode()).hexdigest()[:16]


# Where a sync reads from: (sync_state partition key, id of the database or service).
Source = tuple[str, str]


def _source(settings: EnergySettings, engine: sa.Engine | Source) -> Source:
    if isinstance(engine, tuple):
        return engine
    schema, name = validate_identifier(settings.load_table, "load_table")
    return (f"{schema}.{name}" if schema else name), _db_id(engine)


def load_state(bank, settings: EnergySettings, engine: sa.Engine | Source) -> datetime | None:
    """The saved watermark for this source table and database (an engine, or the ``Source`` of
    another backend), or None (full copy)."""
    key, db_id = _source(settings, engine)
    try:
        state = bank.read_partition(STATE_DATASET, {"source": key})
    except BankError:
        return None
    if state.empty or str(state["db_id"].iloc[0]) != db_id:
        return None
    if str(state["watermark_col"].iloc[0]) != _watermark_col(settings):
        return None  # the mapping changed: the old watermark means something else
    return pd.Timestamp(state["watermark"].iloc[0]).tz_convert("UTC").to_pydatetime()


def _save_state(bank, settings: EnergySettings, engine: sa.Engine | Source, watermark: datetime,
                rows: int) -> None:
    key, db_id = _source(settings, engine)
    frame = pd.DataFrame({
        "source": [key],
        "db_id": [db_id],
        "watermark_col": [_watermark_col(settings)],
        "watermark": [pd.Timestamp(watermark).tz_convert("UTC")],
        "synced_at": [pd.Timestamp.now(tz="UTC")],
        "rows": [rows],
    })
    bank.write_partition(STATE_DATASET, {"source": key}, frame)


def _watermark_col(settings: EnergySettings) -> str:
    return settings.load_updated_col or settings.load_time_col


def db_times(values: pd.Series, where: str, fix: str) -> pd.Series:
    """Times from a DB as UTC (naive values are UTC; SQLite returns text in any layout); an
    EnergyDBError naming ``where`` (the table and column) and saying ``fix`` otherwise."""
    try:
        return pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        try:
            return pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as exc:
            raise EnergyDBError(f"{where}: values that are not times ({str(exc)[:120]}); "
                                f"{fix}") from None


def _to_utc(values: pd.Series, settings: EnergySettings, column: str) -> pd.Series:
    return db_times(values, f"table {settings.load_table!r} column {column!r}",
                    "check [energy] mapping")


def rows_to_load(rows: list, settings: EnergySettings, synced_at: pd.Timestamp
                 ) -> tuple[pd.DataFrame, int, datetime | None]:
    """Rows (target, time, value[, updated]) -> the bank ``load`` schema, rows skipped, and the
    largest watermark-column value among the rows (None if there is none)."""
    cols = ["target_id", "time", "load_mw"] + (["updated_at"] if settings.load_updated_col else [])
    return frame_to_load(pd.DataFrame.from_records(rows, columns=cols), settings, synced_at)


def frame_to_load(raw: pd.DataFrame, settings: EnergySettings, synced_at: pd.Timestamp
                  ) -> tuple[pd.DataFrame, int, datetime | None]:
    """:func:`rows_to_load` of a frame with columns target_id, time, load_mw[, updated_at]."""
    wm_raw = raw["updated_at" if settings.load_updated_col else "time"].dropna()
    wm_max = (_to_utc(wm_raw, settings, _watermark_col(settings)).max().to_pydatetime()
              if len(wm_raw) else None)
    raw["load_mw"] = pd.to_numeric(raw["load_mw"], errors="coerce")
    keep = raw["target_id"].notna() & raw["time"].notna() & raw["load_mw"].notna()
    raw = raw[keep]
    out = pd.DataFrame({
        "target_id": raw["target_id"].astype(str),
        "time": _to_utc(raw["time"], settings, settings.load_time_col),
        "load_mw": raw["load_mw"].astype("float64"),
    })
    if settings.load_updated_col:
        upd = raw["updated_at"]
        out["updated_at"] = _to_utc(upd.where(upd.notna(), synced_at), settings,
                                    settings.load_updated_col)
    else:
        out["updated_at"] = synced_at
    # Within one read, keep the newest version of each (target, time).
    out = out.sort_values("updated_at").drop_duplicates(["target_id", "time"], keep="last")
    return out.reset_index(drop=True), int((~keep).sum()), wm_max


def _fetchable(column, is_time: bool, engine: sa.Engine):
    """Times come from PostgreSQL as text: pg8000 decodes timestamps 10x slower than pandas
    parses ISO text (the session runs in UTC, so the text carries "+00" or is UTC)."""
    if is_time and engine.dialect.name == "postgresql":
        return sa.cast(column, sa.Text).label(column.name)
    return column


def sync_load(engine: sa.Engine, bank, settings: EnergySettings, *, full: bool = False,
              plausibility: Plausibility | None = None) -> SyncReport:
    """Copy new and updated measured load from the energy DB into the bank (see module doc).

    ``plausibility``: the bounds per target (:meth:`Plausibility.from_env`); default: the
    environment-wide ``settings.max_load_mw`` and no negative load."""
    plausibility = plausibility or Plausibility(settings.max_load_mw)
    return with_retries(lambda: _sync_once(engine, bank, settings, full, plausibility), settings,
                        "energy sync", engine,
                        on_failure="the bank keeps what earlier runs copied; rerun later")


def _reject(frame: pd.DataFrame, plausibility: Plausibility, report: SyncReport) -> pd.DataFrame:
    """``frame`` without its implausible rows, which are counted and named in ``report``."""
    bad = plausibility.implausible(frame["target_id"], frame["load_mw"].to_numpy())
    if not bad.any():
        return frame
    rejected = frame[bad]
    report.rows_rejected += len(rejected)
    for r in rejected.head(MAX_EXAMPLES - len(report.rejected_examples)).itertuples():
        report.rejected_examples.append({
            "target": r.target_id, "time": f"{r.time:%Y-%m-%dT%H:%MZ}", "value_mw": r.load_mw,
            "why": plausibility.describe(r.target_id, r.load_mw)})
    return frame[~bad]


def _sync_once(engine: sa.Engine, bank, settings: EnergySettings, full: bool,
               plausibility: Plausibility) -> SyncReport:
    started = time.perf_counter()
    names = [settings.load_target_col, settings.load_time_col, settings.load_value_col]
    if settings.load_updated_col:
        names.append(settings.load_updated_col)
    for setting, name in zip(("load_target_col", "load_time_col", "load_value_col",
                              "load_updated_col"), names, strict=False):
        validate_identifier(name, setting)
    source = table_ref(settings.load_table, "load_table", *names)
    wm_name = _watermark_col(settings)
    wm_col = source.c[wm_name]
    since_param = sa.bindparam("since", type_=sa.DateTime(timezone=True))
    if engine.dialect.name == "sqlite":
        # SQLite stores times as text in whatever layout the writer chose ("T" or " ", with or
        # without fractions or "Z"): compare and order them as instants, not as strings.
        wm_col = sa.func.julianday(wm_col)
        since_param = sa.func.julianday(sa.bindparam("since", type_=sa.String))
    watermark = None if full else load_state(bank, settings, engine)
    report = SyncReport(table=settings.load_table, watermark_before=watermark,
                        watermark_after=watermark, full=watermark is None)
    # names: target, time, value[, updated]; positions 1 and 3 are times
    query = sa.select(*(_fetchable(source.c[n], i in (1, 3), engine)
                        for i, n in enumerate(names))).order_by(wm_col)
    if watermark is not None:
        since = watermark - timedelta(days=settings.sync_lookback_days)
        since_value = (f"{since:%Y-%m-%d %H:%M:%S.%f}" if engine.dialect.name == "sqlite"
                       else to_db_time(since, engine))
        query = query.where(wm_col >= since_param).params(since=since_value)

    def chunks():
        cols = ["target_id", "time", "load_mw"] + (["updated_at"] if settings.load_updated_col
                                                   else [])
        with engine.connect() as conn:
            require_table(conn, settings.load_table, "load_table",
                          "set [energy] load_table to the measured-load table, or create the "
                          "default one with `aggregat energy init-db`")
            result = conn.execution_options(stream_results=True,
                                            yield_per=settings.sync_fetch_rows).execute(query)
            for chunk in result.partitions():
                yield pd.DataFrame.from_records(chunk, columns=cols)

    copy_chunks(chunks(), bank, settings, _source(settings, engine), report, plausibility)
    report.duration_s = time.perf_counter() - started
    if report.rows_rejected:
        log.warning(report.summary())
    else:
        log.debug(report.summary())
    return report


def copy_chunks(chunks, bank, settings: EnergySettings, source: Source, report: SyncReport,
                plausibility: Plausibility) -> None:
    """Copy ``chunks`` (frames of target_id, time, load_mw[, updated_at] in watermark order) into
    the bank: every ``sync_batch_rows`` rows, the upsert, THEN the watermark (module doc)."""
    from aggregat.bank import write_load

    synced_at = pd.Timestamp.now(tz="UTC")
    # Chunks are converted to columnar frames as they arrive (far less memory than tuples).
    pending: list[pd.DataFrame] = []
    pending_rows = 0
    pending_max: datetime | None = None

    def flush() -> None:
        nonlocal pending_rows, pending_max
        frame = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
        if len(pending) > 1:  # a (target, time) corrected twice within this batch
            frame = (frame.sort_values("updated_at", kind="stable")
                     .drop_duplicates(["target_id", "time"], keep="last"))
        if not frame.empty:
            write_load(bank, frame)  # the upsert: the bank write must succeed first ...
            report.rows_written += len(frame)
            report.targets.update(frame["target_id"].unique())
        if pending_max is not None:
            new_wm = max(pending_max, report.watermark_after or pending_max)
            _save_state(bank, settings, source, new_wm, len(frame))  # ... then the watermark
            report.watermark_after = new_wm
        report.batches += 1
        pending.clear()
        pending_rows, pending_max = 0, None

    for raw in chunks:
        frame, skipped, chunk_max = frame_to_load(raw, settings, synced_at)
        pending.append(_reject(frame, plausibility, report))
        pending_rows += len(raw)
        report.rows_read += len(raw)
        report.rows_skipped_null += skipped
        if chunk_max is not None:
            pending_max = max(chunk_max, pending_max or chunk_max)
        if pending_rows >= settings.sync_batch_rows:
            flush()
    if pending:
        flush()
