"""``/metrics``: the environment's state in the Prometheus text format.

A custom collector reads :func:`aggregat.health`, the ledger and the recent forecasts at each
scrape, into a registry of its own (never the process-global one, so two apps or a test never
share metrics)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

import aggregat
from aggregat.config import Environment, mask
from aggregat.dashboard.pages import read_series
from aggregat.dashboard.series import combine

_RUN_STATUS = {"ok": 0, "running": 0, "partial": 1, "failed": 2}
_HEALTH = {"ok": 0, "warning": 1, "failed": 2}
ERROR_DAYS = 7  # "recent" forecast error: the last week of day-ahead forecasts with load


class EnvironmentCollector:
    def __init__(self, env: Environment) -> None:
        self.env = env

    def collect(self) -> Iterator[Metric]:
        env = self.env
        health = aggregat.health(env)
        status = GaugeMetricFamily("aggregat_health_status",
                                   "Health of the environment: 0 ok, 1 warning, 2 failed",
                                   labels=["env"])
        status.add_metric([env.name], _HEALTH[health.status])
        yield status

        last: dict[str, aggregat.JobRun] = {}
        for run in aggregat.runs(env):
            last.setdefault(run.job, run)
        run_status = GaugeMetricFamily(
            "aggregat_job_last_run_status",
            "Last run of each job: 0 ok, 1 partial, 2 failed", labels=["env", "job"])
        run_seconds = GaugeMetricFamily("aggregat_job_last_run_duration_seconds",
                                        "Duration of each job's last run", labels=["env", "job"])
        run_start = GaugeMetricFamily("aggregat_job_last_run_start_timestamp_seconds",
                                      "Start of each job's last run (Unix time)",
                                      labels=["env", "job"])
        for job, run in sorted(last.items()):
            run_status.add_metric([env.name, job], _RUN_STATUS.get(run.status, 2))
            if run.seconds is not None:
                run_seconds.add_metric([env.name, job], run.seconds)
            run_start.add_metric([env.name, job], run.started_at.timestamp())
        yield from (run_status, run_seconds, run_start)

        fresh = GaugeMetricFamily("aggregat_data_age_hours",
                                  "Age of the newest data of each series",
                                  labels=["env", "series"])
        model_age = GaugeMetricFamily("aggregat_model_age_days",
                                      "Age of each target's newest trained model",
                                      labels=["env", "target"])
        for item in health.items:
            data = item.data or {}
            if item.section == "data" and isinstance(data.get("age_h"), int | float):
                fresh.add_metric([env.name, mask(item.name)], data["age_h"])
            if item.section == "model" and isinstance(data.get("age_days"), int | float):
                model_age.add_metric([env.name, mask(item.name)], data["age_days"])
        yield from (fresh, model_age)

        error = GaugeMetricFamily(
            "aggregat_forecast_mae_mw",
            f"MAE of day-ahead P50 against measured load over the last {ERROR_DAYS} days",
            labels=["env", "target"])
        end = pd.Timestamp.now(tz="UTC")
        start = end - pd.Timedelta(days=ERROR_DAYS)
        for target in aggregat.targets(env):
            frame = combine(*read_series(env, target, start=start, end=end), None)
            both = frame.dropna(subset=["actual", "p50"])
            if len(both):
                error.add_metric([env.name, mask(target)],
                                 float((both["p50"] - both["actual"]).abs().mean()))
        yield error


def metrics_registry(env: Environment) -> CollectorRegistry:
    """A fresh registry holding only this environment's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EnvironmentCollector(env))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
