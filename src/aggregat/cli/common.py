"""Options and helpers shared by every command group."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from aggregat.config import Environment, load_environment

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

EnvOption = Annotated[
    str | None,
    typer.Option("--env", "-e", envvar="AGGREGAT_ENV",
                 help="Environment (a section of aggregat.toml); default: the file's default_env, "
                      "else the embedded 'local'."),
]
ConfigOption = Annotated[
    str | None,
    typer.Option("--config", envvar="AGGREGAT_CONFIG", help="Path of aggregat.toml."),
]


def environment(env: str | None, config: str | None = None) -> Environment:
    """Resolve the environment a command runs in."""
    return load_environment(env, config)
