"""aggregat: forecast an energy aggregator's consumption from Météo-France weather forecasts.

The public API is this namespace (``__all__``), documented in ``docs/api.md``::

    import aggregat

    env = aggregat.open_env("local")
    report = aggregat.daily(env)
    frame = aggregat.forecasts(env, "portfolio", start, end)

Names are imported on first use (PEP 562), so ``import aggregat`` and the CLI's ``--help`` stay
fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from aggregat.version import __version__

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["open_env", "daily", "intraday", "intraday_issue_at", "weekly", "backfill", "weather",
         "load", "forecasts",
         "train", "predict", "explain", "default_issue_time", "models", "promote", "backtest",
         "read_backtest_csv", "backtest_env", "fetch", "extract", "extract_files", "sync",
         "sync_tables", "rte_sync",
         "publish", "import_load", "import_weather_history", "init_energy_db", "health",
         "check_env", "check_access", "schedule",
         "next_runs", "run_demo", "availability", "open_bank", "dataset_keys", "copy_bank",
         "write_table", "run_label", "alert", "check_alerts", "targets", "ledger", "runs",
         "ledger_steps", "calendar", "run_lock", "dashboard_app", "serve", "bigquery_ddl",
         "read_bigquery"], "aggregat.api"),
    **dict.fromkeys(
        ["RunReport", "StepReport", "AlertReport", "TrainResult", "PredictResult",
         "ModelVersion", "BacktestReport", "LedgerEntry", "JobRun", "Calendar", "CalendarRow",
         "CalendarCell", "AvailabilityReport", "RunAvailability", "Explanation"],
        "aggregat.results"),
    "Horizon": "aggregat.timeutil",
    "Environment": "aggregat.config",
    "HealthReport": "aggregat.ops.health",
    "AccessReport": "aggregat.ops.access",
    "FetchReport": "aggregat.weather.fetch",
    "ExtractReport": "aggregat.weather.extract",
    "HistoryReport": "aggregat.weather.history",
    "SyncReport": "aggregat.energy.sync",
    "TableSyncReport": "aggregat.energy.tables",
    "RteSyncReport": "aggregat.rte.sync",
    "PublishReport": "aggregat.energy.publish",
    "ExternalTable": "aggregat.bank.external",
    **dict.fromkeys(
        ["AggregatError", "ConfigError", "InputError", "FetchError", "GribError", "BankError",
         "EnergyDBError", "ModelError", "LockedError", "PartialRunError", "ClusterError"],
        "aggregat.errors"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name == "weather":  # the subpackage, callable as aggregat.api.weather (its docstring)
        return import_module("aggregat.weather")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aggregat' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from aggregat.api import (  # noqa: F401
        alert,
        availability,
        backfill,
        backtest,
        backtest_env,
        bigquery_ddl,
        calendar,
        check_access,
        check_alerts,
        check_env,
        copy_bank,
        daily,
        dashboard_app,
        dataset_keys,
        default_issue_time,
        extract,
        extract_files,
        fetch,
        forecasts,
        health,
        import_load,
        import_weather_history,
        init_energy_db,
        intraday,
        intraday_issue_at,
        ledger,
        ledger_steps,
        load,
        models,
        next_runs,
        open_bank,
        open_env,
        predict,
        promote,
        publish,
        read_backtest_csv,
        read_bigquery,
        rte_sync,
        run_demo,
        run_label,
        run_lock,
        runs,
        schedule,
        serve,
        sync,
        sync_tables,
        targets,
        train,
        weather,
        weekly,
        write_table,
    )
    from aggregat.bank.external import ExternalTable  # noqa: F401
    from aggregat.config import Environment  # noqa: F401
    from aggregat.energy.publish import PublishReport  # noqa: F401
    from aggregat.energy.sync import SyncReport  # noqa: F401
    from aggregat.energy.tables import TableSyncReport  # noqa: F401
    from aggregat.errors import (  # noqa: F401
        AggregatError,
        BankError,
        ClusterError,
        ConfigError,
        EnergyDBError,
        FetchError,
        GribError,
        InputError,
        LockedError,
        ModelError,
        PartialRunError,
    )
    from aggregat.ops.access import AccessReport  # noqa: F401
    from aggregat.ops.health import HealthReport  # noqa: F401
    from aggregat.results import (  # noqa: F401
        AlertReport,
        AvailabilityReport,
        BacktestReport,
        Calendar,
        CalendarCell,
        CalendarRow,
        JobRun,
        LedgerEntry,
        ModelVersion,
        PredictResult,
        RunAvailability,
        RunReport,
        StepReport,
        TrainResult,
    )
    from aggregat.rte.sync import RteSyncReport  # noqa: F401
    from aggregat.timeutil import Horizon  # noqa: F401
    from aggregat.weather.extract import ExtractReport  # noqa: F401
    from aggregat.weather.fetch import FetchReport  # noqa: F401
