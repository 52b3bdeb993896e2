"""``aggregat energy``: create the default tables, sync measured load, publish forecasts."""

from __future__ import annotations

from typing import Annotated

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment

app = typer.Typer(no_args_is_help=True)


@app.command("init-db")
def init_db(env: EnvOption = None, config: ConfigOption = None) -> None:
    """Create the default load and forecast tables in the energy DB (existing ones are kept)."""
    from aggregat import api

    created, where = api.init_energy_db(environment(env, config))
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
    """Copy new and corrected measured load, and the tables of [energy.tables.NAME], from the
    energy DB into the bank (incremental)."""
    from aggregat import api

    environ = environment(env, config)
    report = api.sync(environ, full=full)
    console.print(report.summary())
    for table in api.sync_tables(environ, full=full):
        console.print(table.summary())


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
    from aggregat import api
    from aggregat.timeutil import fmt_time, parse_cli_time

    environ = environment(env, config)
    tz = environ.forecast.timezone
    when = parse_cli_time(issue_time, tz, param="--issue-time")
    console.print(f"issue time {fmt_time(when, tz)}")
    report = api.publish(environ, when, target or None)
    console.print(report.summary())
