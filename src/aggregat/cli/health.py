"""``aggregat health``: freshness, last runs, model age; exit 0/1/2 for ok/warning/failed."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.text import Text

from aggregat.cli.common import ConfigOption, EnvOption, console, environment, styled

_STYLE = {"ok": "green", "warning": "yellow", "failed": "bold red", "info": "cyan"}


def health(
    env: EnvOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    no_alert: Annotated[bool, typer.Option(
        "--no-alert", help="Do not alert the [alerts] channels.")] = False,
) -> None:
    """Report the health of an environment: data freshness, last runs and step durations, row
    counts, model age and metrics, last publish.

    Exit code 0 = ok, 1 = warning, 2 = failed (thresholds in the [jobs] settings). Then the
    new and cleared problems are alerted to the [alerts] channels (unless --no-alert).
    """
    from rich.table import Table

    from aggregat import api

    settings = environment(env, config)
    report = api.health(settings, alert=not no_alert)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        table = Table("section", "check", "status", "value", "detail",
                      title=f"health of env {settings.name} at {report.checked_at:%Y-%m-%d %H:%M}Z")
        for item in report.items:
            style, shown = _STYLE.get(item.status, ""), item.as_dict()
            table.add_row(item.section, shown["name"], styled(item.status, style),
                          shown["value"], shown["detail"])
        console.print(table)
        style = _STYLE[report.status]
        console.print(Text.assemble(f"env {settings.name}: ", (report.status, style),
                                    f" (exit {report.exit_code})"))
        if report.alerts is not None and report.alerts.channels:
            console.print(report.alerts.summary())
    # sys.exit, not typer.Exit: main() runs click with standalone_mode=False, which would
    # swallow typer.Exit's code.
    sys.exit(report.exit_code)
