"""The data bank: partitioned Parquet datasets, atomic partition writes, window reads.

>>> bank = Bank("aggregat-data/bank")                      # or "s3://bucket/bank", "memory://x"
>>> write_weather_run(bank, "arome-0025", "2026-11-28T00Z", df)
>>> read_weather(bank, "2026-11-14T00Z", "2026-11-28T00Z", locations=["paris"])
"""

from aggregat.bank.datasets import (
    DATASETS,
    FORECAST,
    FORECAST_EXPLAIN,
    LOAD,
    WEATHER_FORECAST,
    WEATHER_VARIABLES,
    Column,
    Dataset,
    conform,
    get_dataset,
    register_dataset,
)
from aggregat.bank.store import Bank
from aggregat.bank.window import (
    forecast_issue_dates,
    forecast_issues,
    has_weather_run,
    load_months,
    merge_weather_run,
    nominal_available_at,
    read_forecast,
    read_forecast_explain,
    read_load,
    read_weather,
    target_ids,
    utc,
    weather_run_dates,
    weather_run_partition,
    weather_runs,
    write_forecast,
    write_forecast_explain,
    write_load,
    write_weather_run,
)

__all__ = [
    "DATASETS", "FORECAST", "FORECAST_EXPLAIN", "LOAD", "WEATHER_FORECAST", "WEATHER_VARIABLES",
    "Bank", "Column", "Dataset", "conform", "forecast_issue_dates", "forecast_issues",
    "get_dataset", "has_weather_run", "load_months", "merge_weather_run", "nominal_available_at",
    "read_forecast", "read_forecast_explain", "read_load", "read_weather", "register_dataset",
    "target_ids", "utc", "weather_run_dates", "weather_run_partition", "weather_runs",
    "write_forecast", "write_forecast_explain", "write_load", "write_weather_run",
]
