"""Data builders shared by the energy tests (imported as a plain module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def measurements(targets=("a", "b"), start=T0, hours=48, value=100.0, lag=timedelta(minutes=30)):
    """Hourly rows as a source DB holds them: updated ``lag`` after each measured hour."""
    rows = []
    for i, target in enumerate(targets):
        for h in range(hours):
            t = start + timedelta(hours=h)
            rows.append({"target_id": target, "time_utc": t, "value_mw": value + 10 * i + h,
                         "updated_at": t + lag})
    return rows


def to_db(engine, rows):
    """Rows as the dialect stores them (naive UTC on SQLite)."""
    from aggregat.energy.db import to_db_time

    return [{k: to_db_time(v, engine) if isinstance(v, datetime) else v for k, v in r.items()}
            for r in rows]


def forecast_frame(targets=("a", "b"), issue=datetime(2026, 1, 10, 10, tzinfo=UTC),
                   hours=24, offset=0.0, version="m-1"):
    """A bank ``forecast`` frame for one issue time."""
    rows = []
    for target in targets:
        for h in range(hours):
            p50 = 50.0 + h + offset
            rows.append({"target_id": target, "issue_time": issue,
                         "valid_time": issue + timedelta(hours=14 + h),
                         "p10_mw": p50 - 5, "p50_mw": p50, "p90_mw": p50 + 5,
                         "model_version": version, "is_baseline": False})
    return pd.DataFrame(rows)


def write(tmp_path, text, name="load.csv"):
    """A CSV file ``name`` in ``tmp_path`` holding ``text``."""
    path = tmp_path / name
    path.write_text(text)
    return path
