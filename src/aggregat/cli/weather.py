"""``aggregat weather``: fetch Météo-France files into the datalake, extract them into the bank."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
