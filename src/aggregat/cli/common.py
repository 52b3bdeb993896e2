"""Options and helpers shared by every command group."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from aggregat.config import Environment, load_environment

# No markup: user and library text ("[env.prod] ...") prints as it is; styles go through
# rich.text.Text (Text.assemble(("error:", "bold red"), " ", message)) or Text(..., style=...).
console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)

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


def styled(text: str, style: str) -> Text:
    """``text`` (printed as it is, never read as markup) in ``style``."""
    return Text(text, style=style)


def environment(env: str | None, config: str | None = None) -> Environment:
    """Resolve the environment a command runs in."""
    return load_environment(env, config)
