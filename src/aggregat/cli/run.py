"""``aggregat run``: see the issue tracker; commands are added here."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


def schedule() -> None:
    """Run the daily and weekly jobs at their configured times, in the foreground."""
    raise typer.Exit(1)
