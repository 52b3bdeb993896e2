"""``aggregat alerts test|check``: a test message to every channel; evaluate and alert now."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment

app = typer.Typer(no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _show(report, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        console.print(report.summary(), style="green" if report.ok else "yellow")
    # sys.exit, not typer.Exit: main() runs click with standalone_mode=False (cli/health.py).
    sys.exit(report.exit_code)


@app.command("test")
def test(env: EnvOption = None, config: ConfigOption = None, as_json: JsonOption = False
         ) -> None:
    """Send a test message to every channel of [alerts] channels.

    Exit code 0 = every channel took it, 1 = a channel failed (named), 2 = no channel.
    """
    from aggregat import api

    _show(api.alert(environment(env, config)), as_json)


@app.command("check")
def check(env: EnvOption = None, config: ConfigOption = None, as_json: JsonOption = False
          ) -> None:
    """Evaluate the health now and alert: each new problem once, each cleared one once.

    For cron or the scheduler (e.g. every 15 min). Exit code 0, or 1 when a channel failed.
    """
    from aggregat import api

    _show(api.check_alerts(environment(env, config)), as_json)
