"""Options and helpers shared by every command group."""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console

from aggregat.config import Environment, load_environment
from aggregat.errors import AggregatError

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


@contextlib.contextmanager
def flags(**names: str) -> Iterator[None]:
    """Errors of the library name its parameters (``every_h``); the command line says them as
    its flags (``--every-h``): ``with flags(every_h="--every-h"): api.backtest(...)``."""
    try:
        yield
    except AggregatError as exc:
        text = str(exc)
        for param, flag in names.items():
            text = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", flag, text)
        if text == str(exc):
            raise
        clone = copy.copy(exc)
        clone.args = (text,)
        raise clone from None
