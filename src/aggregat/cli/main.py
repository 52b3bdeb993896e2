"""The ``aggregat`` command: groups of subcommands, and one-line errors instead of tracebacks."""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.text import Text

from aggregat import __version__
from aggregat.cli import (
    alerts,
    bank,
    bank_copy,  # noqa: F401  (registers bank copy)
    demo,
    energy,
    env,
    health,
    load,
    model,
    model_ops,  # noqa: F401  (registers train/list/predict/promote)
    rte,
    run,
    serve,
    weather,
    weather_extract,  # noqa: F401  (registers extract commands)
)
from aggregat.cli.common import err_console, error_line
from aggregat.config import mask
from aggregat.errors import AggregatError

app = typer.Typer(
    name="aggregat",
    help="Forecast an energy aggregator's consumption from Météo-France weather forecasts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(env.app, name="env", help="Show and check environments.")
app.add_typer(weather.app, name="weather", help="Fetch and extract Météo-France forecasts.")
app.add_typer(bank.app, name="bank", help="Inspect and copy the data bank.")
app.add_typer(load.app, name="load", help="Import measured load into the bank.")
app.add_typer(model.app, name="model", help="Train, predict, promote and backtest models.")
app.add_typer(energy.app, name="energy", help="Sync load from, publish forecasts to the energy DB.")
app.add_typer(rte.app, name="rte", help="RTE open data: national consumption, Tempo days.")
app.add_typer(run.app, name="run", help="Scheduled jobs: daily, intraday, weekly, backfill.")
app.add_typer(alerts.app, name="alerts", help="Send a test alert; evaluate and alert now.")
app.command("health")(health.health)
app.command("schedule")(run.schedule)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aggregat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    log_json: bool = typer.Option(False, "--log-json", envvar="AGGREGAT_LOG_JSON",
                                  help="Structured JSON logs on stderr."),
) -> None:
    from aggregat.logs import setup_logging

    setup_logging(logging.DEBUG if verbose else logging.INFO, json_format=log_json)


def _click_errors() -> tuple[type[BaseException], ...]:
    """Click's exception base, from click and from the click that typer >= 0.29 bundles."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _is_click_error(exc: BaseException) -> bool:
    # Duck typing as a fallback: another bundled click would not be any class imported above.
    return isinstance(exc, _click_errors()) or (
        isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "show", None))
        and callable(getattr(exc, "format_message", None)))


def _usage_line(exc: BaseException) -> str:
    """``<message>; try 'aggregat X --help'`` on one line (click prints several)."""
    message = " ".join(str(exc.format_message()).split()).rstrip(".")  # type: ignore[attr-defined]
    path = getattr(getattr(exc, "ctx", None), "command_path", None) or "aggregat"
    return f"{message}; try '{path} --help'"


def _error(message: str) -> None:
    # Text, not markup: "[env.prod]" in a message is the place to fix, not a style.
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def main() -> None:
    """Entry point: run the app, turning user errors into one masked line and an exit code."""
    from aggregat.logs import mask_streams

    mask_streams()  # whatever any command prints, secrets never reach the terminal
    try:
        # standalone_mode=False returns typer.Exit codes instead of exiting: pass them on.
        rc = app(standalone_mode=False, prog_name="aggregat")
        sys.exit(rc if isinstance(rc, int) else 0)
    except AggregatError as exc:
        _error(mask(error_line(exc)))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:
        if _is_click_error(exc):  # usage errors (unknown command or option, bad value...)
            if str(exc.format_message()).strip():  # type: ignore[attr-defined]
                _error(mask(_usage_line(exc)))
            sys.exit(2)  # (an empty message: a group run without a command; its help is shown)
        if os.environ.get("AGGREGAT_DEBUG"):
            raise
        err_console.print(Text.assemble(
            ("internal error:", "bold red"),
            f" {type(exc).__name__}: {mask(str(exc))} (rerun with AGGREGAT_DEBUG=1 for the "
            "traceback, and please report it)"), soft_wrap=True)
        sys.exit(70)


if __name__ == "__main__":
    main()
