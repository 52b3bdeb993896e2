"""Default tables of the energy DB, created by ``aggregat energy init-db`` (or the first publish).

Names come from :class:`~aggregat.config.EnergySettings` (validated identifiers):

- the measured-load table (``load_table``) with the configured column names: target, time (UTC),
  value (MW), updated_at; primary key (target, time). A production DB usually has its own table;
  this one serves the embedded default, the demo and tests.
- the forecast table (``forecast_table``): target_id, issue_time, valid_time, p10_mw, p50_mw,
  p90_mw, model_version, published_at; primary key (target_id, issue_time, valid_time).

Times are ``timestamp with time zone`` where the dialect has it; on SQLite they are stored as
naive UTC text, which the readers interpret as UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

from aggregat.config import EnergySettings
from aggregat.energy.db import validate_identifier

FORECAST_COLUMNS = ("target_id", "issue_time", "valid_time", "p10_mw", "p50_mw", "p90_mw",
                    "model_version", "published_at")


def forecast_table(settings: EnergySettings, metadata: sa.MetaData | None = None) -> sa.Table:
    """The forecast table as SQLAlchemy sees it (for create, delete and insert)."""
    schema, name = validate_identifier(settings.forecast_table, "forecast_table")
    ts = sa.DateTime(timezone=True)
    return sa.Table(
        name, metadata or sa.MetaData(),
        sa.Column("target_id", sa.String(128), primary_key=True),
        sa.Column("issue_time", ts, primary_key=True),
        sa.Column("valid_time", ts, primary_key=True),
        sa.Column("p10_mw", sa.Float),
        sa.Column("p50_mw", sa.Float),
        sa.Column("p90_mw", sa.Float),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("published_at", ts, nullable=False),
        schema=schema,
    )


def load_table(settings: EnergySettings, metadata: sa.MetaData | None = None) -> sa.Table:
    """The measured-load table with the configured column names."""
    schema, name = validate_identifier(settings.load_table, "load_table")
    cols = {
        "target": validate_identifier(settings.load_target_col, "load_target_col")[1],
        "time": validate_identifier(settings.load_time_col, "load_time_col")[1],
        "value": validate_identifier(settings.load_value_col, "load_value_col")[1],
    }
    ts = sa.DateTime(timezone=True)
    columns = [
        sa.Column(cols["target"], sa.String(128), primary_key=True),
        sa.Column(cols["time"], ts, primary_key=True),
        sa.Column(cols["value"], sa.Float),
    ]
    if settings.load_updated_col:
        updated = validate_identifier(settings.load_updated_col, "load_updated_col")[1]
        columns.append(sa.Column(updated, ts, nullable=False, index=True))
    return sa.Table(name, metadata or sa.MetaData(), *columns, schema=schema)


def create_default_tables(engine: sa.Engine, settings: EnergySettings,
                          which: tuple[str, ...] = ("load", "forecast")) -> list[str]:
    """Create the default tables that do not exist yet; returns the names created."""
    metadata = sa.MetaData()
    tables = []
    if "load" in which:
        tables.append(load_table(settings, metadata))
    if "forecast" in which:
        tables.append(forecast_table(settings, metadata))
    created = []
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        for table in tables:
            if not inspector.has_table(table.name, schema=table.schema):
                table.create(conn)
                created.append(table.fullname)
    return created


def insert_measurements(engine: sa.Engine, settings: EnergySettings, frame) -> int:
    """Insert measured load (columns target_id, time, load_mw[, updated_at]) into the load table.

    For the demo and tests, which fill an embedded energy DB; times are UTC instants, a missing
    ``updated_at`` is now. Returns the number of rows inserted.
    """
    import json

    import pandas as pd

    table = load_table(settings)
    names = [c.name for c in table.columns]
    pg = engine.dialect.name == "postgresql"
    now = pd.Timestamp.now(tz="UTC")

    def times(values) -> list:
        ts = pd.to_datetime(pd.Series(values), utc=True)
        if pg:  # ISO text for json_populate_recordset
            return ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").tolist()
        if engine.dialect.name == "sqlite":
            ts = ts.dt.tz_localize(None)
        return list(ts.dt.to_pydatetime())

    columns = [frame["target_id"].astype(str).tolist(), times(frame["time"]),
               frame["load_mw"].astype(float).tolist()]
    if len(names) == 4:
        columns.append(times(frame["updated_at"] if "updated_at" in frame else
                             [now] * len(frame)))
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    with engine.begin() as conn:
        if pg:  # see publish: pg8000 is slow on executemany and long statements
            prep = engine.dialect.identifier_preparer
            cols = ", ".join(prep.quote(n) for n in names)
            name = prep.format_table(table)
            statement = sa.text(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM "
                                f"json_populate_recordset(NULL::{name}, CAST(:rows AS json))")
            for start in range(0, len(rows), 20000):
                conn.execute(statement, {"rows": json.dumps(rows[start:start + 20000])})
        elif rows:
            conn.execute(table.insert(), rows)
    return len(rows)
