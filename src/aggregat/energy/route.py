"""Where measured load comes from and where forecasts go: the energy DB, or BigQuery.

The one place that reads ``[energy] source`` and ``publish_to``; the API and the jobs call these.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import sqlalchemy as sa

    from aggregat.config import Environment
    from aggregat.energy.publish import PublishReport
    from aggregat.energy.sync import SyncReport
    from aggregat.plausibility import Plausibility

T = TypeVar("T")


def _with_engine(env: Environment, role: str, action: Callable[[sa.Engine], T]) -> T:
    from aggregat.energy.db import make_engine

    engine = make_engine(env.energy_url(role), env.energy, must_exist=True)
    try:
        return action(engine)
    finally:
        engine.dispose()


def sync_measured_load(env: Environment, bank, *, full: bool = False,
                       plausibility: Plausibility | None = None) -> SyncReport:
    """``energy sync`` from the configured source (energy DB or BigQuery) into ``bank``."""
    if env.energy.source == "bigquery":
        from aggregat.energy.bigquery import sync_load_bigquery

        return sync_load_bigquery(bank, env.energy, full=full, plausibility=plausibility)
    from aggregat.energy.sync import sync_load

    return _with_engine(env, "sync", lambda engine: sync_load(
        engine, bank, env.energy, full=full, plausibility=plausibility))


def publish_issue(env: Environment, bank, issue_time: datetime, *,
                  target_ids: list[str] | None = None) -> PublishReport:
    """``energy publish`` of one issue to the configured destination (energy DB or BigQuery)."""
    if env.energy.publish_to == "bigquery":
        from aggregat.energy.bigquery import publish_bigquery

        return publish_bigquery(bank, env.energy, issue_time, target_ids=target_ids)
    from aggregat.energy.publish import publish_forecast

    return _with_engine(env, "publish", lambda engine: publish_forecast(
        engine, bank, env.energy, issue_time, target_ids=target_ids))
