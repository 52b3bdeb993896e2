"""``aggregat health``: freshness, last runs, model age; exit 0/1/2 for ok/warning/failed."""

from __future__ import annotations

import typer


def health() -> None:
    """Report the health of an environment."""
    raise typer.Exit(1)
