"""``aggregat run daily|intraday|weekly|backfill`` and ``aggregat schedule``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer
from rich.text import Text

from aggregat.cli.common import ConfigOption, EnvOption, console, environment
from aggregat.errors import ConfigError

app = typer.Typer(no_args_is_help=True)

ForceOption = Annotated[bool, typer.Option("--force", help="Redo steps that already finished.")]


def _day(text: str | None, what: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a date: write it like 2026-11-28") from None


def _finish(result) -> None:
    from aggregat.ops.timing import Timing

    Timing.of_steps(result.steps).print(console, title=f"{result.job}: timing")
    if result.alerts is not None and result.alerts.channels:
        console.print(result.alerts.summary())
    result.raise_for_problems()
    console.print(f"{result.job}: ok", style="green")


@app.command("daily")
def daily(
    day: Annotated[str | None, typer.Option("--date", help="Day (UTC), default today.")] = None,
    force: ForceOption = False,
    no_publish: Annotated[bool, typer.Option("--no-publish", help="Skip publishing.")] = False,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """fetch -> extract -> sync -> predict -> publish for one day."""
    from aggregat import api

    _finish(api.daily(environment(env, config), _day(day, "--date"), force=force,
                      publish=not no_publish))


@app.command("intraday")
def intraday(
    at: Annotated[str | None, typer.Option(
        "--at", help="Time (local to forecast.timezone unless it has an offset), default now: "
        "the newest intraday issue at or before it is forecast.")] = None,
    force: ForceOption = False,
    no_publish: Annotated[bool, typer.Option("--no-publish", help="Skip publishing.")] = False,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """fetch -> extract -> sync -> predict -> publish of the newest intraday issue (needs
    forecast.intraday = true)."""
    import pandas as pd

    from aggregat import api
    from aggregat.timeutil import fmt_time, parse_cli_time

    settings = environment(env, config)
    tz = settings.forecast.timezone
    when = parse_cli_time(at, tz, param="--at") if at is not None else pd.Timestamp.now(tz="UTC")
    console.print(f"--at {fmt_time(when, tz)}")
    console.print(f"intraday issue {fmt_time(api.intraday_issue_at(settings, when), tz)}")
    _finish(api.intraday(settings, when, force=force, publish=not no_publish))


@app.command("weekly")
def weekly(force: ForceOption = False, env: EnvOption = None, config: ConfigOption = None) -> None:
    """Retrain models older than forecast.retrain_after_days (and the intraday ones when
    forecast.intraday is on), evaluate, apply the promotion rule."""
    from aggregat import api

    _finish(api.weekly(environment(env, config), force=force))


@app.command("backfill")
def backfill(
    since: Annotated[str, typer.Option("--since", help="First day (UTC) to check.")],
    until: Annotated[str | None, typer.Option("--until", help="Last day, default today.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would run.")] = False,
    force: ForceOption = False,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the missing or failed steps since a day, reading the datalake archive first."""
    from aggregat import api

    result = api.backfill(environment(env, config), _day(since, "--since"), dry_run,
                          until=_day(until, "--until"), force=force)
    if dry_run:
        for step, part in result.planned:
            console.print(f"would run {step:8s} {part}")
        console.print(f"{len(result.planned)} step(s) to run")
        return
    _finish(result)


def schedule(
    once: Annotated[bool, typer.Option("--once", help="Run the daily job (then the intraday "
                                       "one when forecast.intraday is on) once, then exit.")
                    ] = False,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the daily, weekly (and intraday) jobs at their configured times, in the foreground."""
    from aggregat import api

    settings = environment(env, config)
    fs = settings.forecast
    upcoming = api.next_runs(settings)
    intraday = (f", intraday every {fs.intraday_every_h:g} h (next at "
                f"{upcoming['intraday']:%Y-%m-%d %H:%M})" if "intraday" in upcoming else "")
    console.print(f"schedule for env {settings.name}: daily at {settings.jobs.daily_at}, weekly "
                  f"on {settings.jobs.weekly_on} at {settings.jobs.weekly_at}{intraday} "
                  f"({fs.timezone}); Ctrl-C to stop")
    api.schedule(settings, once=once, log=lambda m: console.print(
        Text.assemble((f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S%z}", "dim"), f" {m}")))
