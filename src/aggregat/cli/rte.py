"""``aggregat rte``: RTE open data (national consumption, Tempo colours) into the bank."""

from __future__ import annotations

from typing import Annotated

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment

app = typer.Typer(no_args_is_help=True)


@app.command("sync")
def sync(
    since: Annotated[str | None, typer.Option("--since", help="Read from this day (local, "
                     "2026-01-01) instead of the last sync's watermark minus the look-back.")
                     ] = None,
    tempo: Annotated[bool, typer.Option("--tempo/--no-tempo", help="Also the Tempo day "
                     "colours ([rte] tempo_dataset).")] = True,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """France's consumption (realised, RTE's D-1 and D forecasts) and Tempo colours from the
    ODRE portal into the bank, each value with the time it became known (incremental)."""
    from aggregat import api

    report = api.rte_sync(environment(env, config), since=since, tempo=tempo)
    console.print(report.summary())
