"""Publish the forecasts of one issue time from the bank into the energy DB.

Two ways, chosen by ``[energy] publish_procedure``:

- unset (default): one transaction on the table ``forecast_table`` (created with the default
  schema if missing): delete the rows of this issue time for the published targets, insert the
  new ones in multi-row INSERTs. Re-publishing an issue replaces it; readers see the old issue or
  the new one, never half of it.
- set (e.g. ``insertPrevisionElec``): one transaction calling ``CALL <procedure>(:rows)`` once per
  batch of ``publish_batch_rows`` rows, ``rows`` being a JSON array of objects with the keys of
  :data:`~aggregat.energy.schema.FORECAST_COLUMNS` (times as ISO 8601 UTC, missing quantiles as
  null). The procedure owns the replace semantics, as the legacy one did.

Configured names are validated identifiers, quoted when the dialect needs it, hence
case-sensitive on PostgreSQL: a procedure created unquoted as ``insertPrevisionElec`` is stored
(and must be configured) as ``insertprevisionelec``.

Rows carry the model version, the issue time and the publish time. If the DB is unreachable or
refuses the write, :class:`~aggregat.errors.EnergyDBError` says so; the forecast is untouched in
the bank, so the next run publishes it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from aggregat.config import EnergySettings
from aggregat.energy.db import to_db_time, validate_identifier, with_retries
from aggregat.energy.schema import FORECAST_COLUMNS, forecast_table
from aggregat.errors import BankError, ConfigError
from aggregat.timeutil import as_utc

log = logging.getLogger(__name__)

# Rows per executemany call (SQLAlchemy pages them further into multi-row INSERTs).
_MAX_ROWS_PER_INSERT = 5000


@dataclass
class PublishReport:
    """What one ``energy publish`` did."""

    issue_time: datetime
    rows: int
    targets: list[str]
    destination: str
    published_at: datetime
    duration_s: float = 0.0
    rows_changed: int | None = None  # rows inserted, updated or deleted (BigQuery MERGE only)

    def summary(self) -> str:
        changed = "" if self.rows_changed is None else f" ({self.rows_changed} changed)"
        return (f"published issue {self.issue_time:%Y-%m-%dT%H:%MZ}: {self.rows} rows{changed}, "
                f"{len(self.targets)} target(s) into {self.destination} in {self.duration_s:.2f}s")


def _utc(value: datetime, param: str = "issue_time") -> datetime:
    return as_utc(value, param=param).to_pydatetime()


def forecast_records(frame: pd.DataFrame, published_at: datetime) -> list[dict]:
    """Bank ``forecast`` rows -> one dict per row with the energy-DB column names."""
    missing = {"target_id", "issue_time", "valid_time", "p50_mw"} - set(frame.columns)
    if missing:
        raise BankError(f"bank dataset 'forecast' lacks columns {sorted(missing)}; "
                        "re-run `aggregat model predict`")
    records = []
    baseline = frame["is_baseline"] if "is_baseline" in frame else pd.Series(False, frame.index)
    versions = frame["model_version"] if "model_version" in frame else pd.Series(None, frame.index)
    for row, is_base, version in zip(frame.itertuples(index=False), baseline, versions,
                                     strict=True):
        rec = {
            "target_id": str(row.target_id),
            "issue_time": _utc(row.issue_time),
            "valid_time": _utc(row.valid_time, "valid_time"),
            "model_version": str(version) if isinstance(version, str) and version
            else ("baseline" if bool(is_base) else "unknown"),
            "published_at": published_at,
        }
        for q in ("p10_mw", "p50_mw", "p90_mw"):
            value = getattr(row, q, None)
            rec[q] = None if value is None or math.isnan(float(value)) else float(value)
        records.append(rec)
    return records


def publish_forecast(engine: sa.Engine, bank, settings: EnergySettings, issue_time: datetime,
                     *, target_ids: list[str] | None = None) -> PublishReport:
    """Write the bank's forecasts of ``issue_time`` into the energy DB (see module doc).

    Without ``target_ids``: the day-ahead forecasts only; intraday ones (``<target>@intraday``,
    possibly issued at the same time) are published only when named."""
    issue_time, records, targets, published_at = issue_records(bank, issue_time, target_ids)
    started = time.perf_counter()
    if settings.publish_procedure:
        destination = f"procedure {settings.publish_procedure}"
        action = lambda: _call_procedure(engine, settings, records)  # noqa: E731
    else:
        destination = f"table {settings.forecast_table}"
        action = lambda: _replace_in_table(engine, settings, issue_time, targets, records)  # noqa: E731
    with_retries(action, settings, f"energy publish of issue {issue_time:%Y-%m-%dT%H:%MZ}", engine,
                 on_failure="forecast kept in the bank; will be published by the next run")
    report = PublishReport(issue_time, len(records), targets, destination, published_at,
                           time.perf_counter() - started)
    log.debug(report.summary())
    return report


def issue_records(bank, issue_time: datetime, target_ids: list[str] | None
                  ) -> tuple[datetime, list[dict], list[str], datetime]:
    """The bank's forecasts of ``issue_time`` as records to publish: (issue time in UTC, records,
    targets, published_at). Without ``target_ids``, day-ahead targets only."""
    from aggregat.bank import read_forecast

    issue_time = _utc(issue_time)
    frame = read_forecast(bank, target_ids=target_ids, issue_time=issue_time)
    if target_ids is None and frame is not None and not frame.empty:
        frame = frame[~frame["target_id"].str.contains("@", regex=False)]
    if frame is None or frame.empty:
        raise BankError(f"no forecast for issue time {issue_time:%Y-%m-%dT%H:%MZ} in the bank "
                        "dataset 'forecast'; run `aggregat model predict --issue-time` first")
    published_at = datetime.now(UTC).replace(microsecond=0)
    records = forecast_records(frame, published_at)
    return issue_time, records, sorted({r["target_id"] for r in records}), published_at


def _replace_in_table(engine: sa.Engine, settings: EnergySettings, issue_time: datetime,
                      targets: list[str], records: list[dict]) -> None:
    table = forecast_table(settings)
    rows = [{**r, **{k: to_db_time(r[k], engine)
                     for k in ("issue_time", "valid_time", "published_at")}} for r in records]
    with engine.begin() as conn:  # one transaction: all of the issue or none of it
        table.create(conn, checkfirst=True)
        conn.execute(table.delete().where(
            table.c.issue_time == to_db_time(issue_time, engine),
            table.c.target_id.in_(targets),
        ))
        if engine.dialect.name == "postgresql":
            # One short statement per batch with the rows as one JSON parameter: pg8000 spends
            # seconds parsing long multi-row INSERTs and sends executemany row by row.
            prep = engine.dialect.identifier_preparer
            cols = ", ".join(prep.quote(c) for c in FORECAST_COLUMNS)
            name = prep.format_table(table)
            statement = sa.text(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM "
                                f"json_populate_recordset(NULL::{name}, CAST(:rows AS json))")
            for start in range(0, len(records), _MAX_ROWS_PER_INSERT):
                batch = [_jsonable(r) for r in records[start:start + _MAX_ROWS_PER_INSERT]]
                conn.execute(statement, {"rows": json.dumps(batch)})
        else:
            for start in range(0, len(rows), _MAX_ROWS_PER_INSERT):
                conn.execute(table.insert(), rows[start:start + _MAX_ROWS_PER_INSERT])


def _call_procedure(engine: sa.Engine, settings: EnergySettings, records: list[dict]) -> None:
    if engine.dialect.name == "sqlite":
        raise ConfigError("[energy] publish_procedure is set but SQLite has no stored procedures; "
                          "unset it to publish into forecast_table")
    schema, name = validate_identifier(settings.publish_procedure, "publish_procedure")
    prep = engine.dialect.identifier_preparer
    qualified = (prep.quote_schema(schema) + "." if schema else "") + prep.quote(name)
    statement = sa.text(f"CALL {qualified}(:rows)")  # name validated + quoted; data bound
    batch = max(1, settings.publish_batch_rows)
    with engine.begin() as conn:
        for start in range(0, len(records), batch):
            payload = [_jsonable(r) for r in records[start:start + batch]]
            conn.execute(statement, {"rows": json.dumps(payload)})


def _jsonable(record: dict) -> dict:
    out = {}
    for key in FORECAST_COLUMNS:
        value = record[key]
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        out[key] = value
    return out
