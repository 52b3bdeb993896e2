"""Options and helpers shared by every command group."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from aggregat.config import Environment, load_environment
from aggregat.errors import AggregatError

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


# How a CSV's local times are read (aggregat.timeutil.parse_times), for every command reading one.
TimeFormatOption = Annotated[str | None, typer.Option(
    "--time-format", help="strptime format of the times (default ISO 8601; one format per "
    "file), e.g. '%d/%m/%Y %H:%M'.")]
AmbiguousOption = Annotated[str | None, typer.Option(
    "--ambiguous", help="A repeated October local time the file order cannot resolve (it "
    "occurs once): first (summer time), second (winter time) or drop.")]
NonexistentOption = Annotated[str | None, typer.Option(
    "--nonexistent", help="A local time in the March DST gap: shift_forward or drop (default: "
    "an error).")]


def styled(text: str, style: str) -> Text:
    """``text`` (printed as it is, never read as markup) in ``style``."""
    return Text(text, style=style)


def environment(env: str | None, config: str | None = None) -> Environment:
    """Resolve the environment a command runs in."""
    return load_environment(env, config)


# Library parameters the CLI takes as these flags: its errors name the flag, the library's the
# parameter.
FLAGS = {"if_older": "--if-older", "horizon": "--horizon", "csv": "--csv", "sites": "--sites",
         "test_weeks": "--test-weeks", "since": "--since", "scheduler": "--scheduler",
         "time_col": "--time-col", "value_col": "--value-col", "target_col": "--target-col",
         "target": "--target", "time_format": "--time-format", "tz": "--tz",
         "ambiguous": "--ambiguous", "nonexistent": "--nonexistent", "variables": "--variables",
         "base_url": "--base-url", "dataset": "--dataset"}


def error_line(exc: AggregatError) -> str:
    """The error's message with the parameters it names shown as the CLI's flags (those of
    :data:`FLAGS`, or of the command's :func:`flags`).

    Only whole words are replaced, not inside a path (``load.csv``) or a `setting`.
    """
    names = {**FLAGS, **getattr(exc, "cli_flags", {})}
    message = str(exc)
    for param in getattr(exc, "params", ()):
        if param in names:
            message = re.sub(rf"(?<![\w`./-]){re.escape(param)}(?![\w`/-])(?!\.\w)",
                             names[param], message)
    return message


@contextlib.contextmanager
def flags(**names: str) -> Iterator[None]:
    """The flags a command takes for the library's parameters where they differ from
    :data:`FLAGS` (``with flags(tz="--csv-tz"): api.read_backtest_csv(...)``); the innermost
    block wins. Only the parameters an error declares (``param=``) are renamed."""
    try:
        yield
    except AggregatError as exc:
        exc.cli_flags = {**names, **getattr(exc, "cli_flags", {})}
        raise
