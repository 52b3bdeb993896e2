"""``aggregat energy``: create the default tables, sync measured load, publish forecasts."""

from __future__ import annotations

from typing import Annotated

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment

app = typer.Typer(no_args_is_help=True)


@app.command("init-db")
def init_db(env: EnvOption = None, config: ConfigOption = None) -> None:
    """Create the default load and forecast tables in the energy DB (existing ones are kept)."""
    from aggregat.energy.db import make_engine, safe_url, with_retries
    from aggregat.energy.schema import create_default_tables

    environ = environment(env, config)
    engine = make_engine(environ.energy_db, environ.energy)
    try:
        created = with_retries(lambda: create_default_tables(engine, environ.energy),
                               environ.energy, "energy init-db", engine)
    finally:
        engine.dispose()
    where = safe_url(engine.url)
    if created:
        console.print(f"created {', '.join(created)} in {where}")
    else:
        console.print(f"tables already present in {where}; nothing to do")


@app.command("sync")
def sync(
    env: EnvOption = None,
    config: ConfigOption = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore the watermark: copy everything "
                                       "again (idempotent).")] = False,
) -> None:
    """Copy new and corrected measured load from the energy DB into the bank (incremental)."""
    from aggregat.bank import Bank
    from aggregat.energy.db import make_engine
    from aggregat.energy.sync import sync_load
    from aggregat.plausibility import Plausibility

    environ = environment(env, config)
    bounds = Plausibility.from_env(environ)
    engine = make_engine(environ.energy_db, environ.energy, must_exist=True)
    try:
        report = sync_load(engine, Bank(environ.bank), environ.energy, full=full,
                           plausibility=bounds)
    finally:
        engine.dispose()
    console.print(report.summary())


@app.command("publish")
def publish(
    issue_time: Annotated[str, typer.Option("--issue-time", help="Issue time of the forecast to "
                                            "publish: local to forecast.timezone "
                                            "(2026-11-28T10:00) unless it has an offset "
                                            "(2026-11-28T09:00Z).")],
    target: Annotated[list[str] | None, typer.Option("--target", help="Only this target "
                                                     "(repeatable; <id>@intraday for an "
                                                     "intraday forecast); default: all "
                                                     "day-ahead targets.")] = None,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Write the bank's forecasts of one issue time into the energy DB in one transaction."""
    from aggregat.bank import Bank
    from aggregat.energy.db import make_engine
    from aggregat.energy.publish import publish_forecast
    from aggregat.timeutil import fmt_time, parse_cli_time

    environ = environment(env, config)
    tz = environ.forecast.timezone
    when = parse_cli_time(issue_time, tz, param="--issue-time")
    console.print(f"issue time {fmt_time(when, tz)}")
    engine = make_engine(environ.energy_db, environ.energy, must_exist=True)
    try:
        report = publish_forecast(engine, Bank(environ.bank), environ.energy, when,
                                  target_ids=target or None)
    finally:
        engine.dispose()
    console.print(report.summary())
