"""``aggregat load``: import measured load into the bank."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aggregat.cli.common import (
    AmbiguousOption,
    ConfigOption,
    EnvOption,
    NonexistentOption,
    TimeFormatOption,
    console,
    environment,
)

app = typer.Typer(no_args_is_help=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV file with a time and a value column.")],
    target: Annotated[str | None, typer.Option("--target", help="Target id of every row (or, "
                      "with a target column, the only target imported).")] = None,
    time_col: Annotated[str, typer.Option("--time-col", help="Time column.")] = "time",
    value_col: Annotated[str, typer.Option("--value-col", help="Load column.")] = "load_mw",
    target_col: Annotated[str, typer.Option("--target-col", help="Target id column.")] =
        "target_id",
    unit: Annotated[str, typer.Option("--unit", help="Unit of the values: W, kW or MW.")] = "MW",
    tz: Annotated[str, typer.Option("--tz", help="Time zone of times without offset.")] = "UTC",
    time_format: TimeFormatOption = None,
    ambiguous: AmbiguousOption = None,
    nonexistent: NonexistentOption = None,
    sep: Annotated[str, typer.Option("--sep", help="Field separator.")] = ",",
    decimal: Annotated[str, typer.Option("--decimal", help="Decimal mark of the values.")] = ".",
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Validate a load CSV and upsert it into the bank dataset ``load`` (re-import replaces)."""
    from aggregat import api

    environ = environment(env, config)
    report = api.import_load(
        environ, file, target=target, time_col=time_col, value_col=value_col,
        target_col=target_col, unit=unit, tz=tz, time_format=time_format, sep=sep,
        decimal=decimal, ambiguous=ambiguous, nonexistent=nonexistent,
    )
    console.print(report.summary())
