"""``aggregat demo``: the whole chain offline, on the embedded default or any environment."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from aggregat.cli.common import ConfigOption, EnvOption, console, environment, flags, styled


def demo(
    days: Annotated[int, typer.Option("--days", min=1, max=30,
                                      help="Days of Météo-France runs to simulate.")] = 3,
    history_days: Annotated[int, typer.Option("--history-days", min=30, max=1500,
                                              help="Days of migrated forecast history.")] = 365,
    force: Annotated[bool, typer.Option("--force", help="Run even on an environment holding "
                                        "data the demo did not write.")] = False,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the main job offline: simulated Météo-France archive and energy DB -> backfill ->
    weekly training -> daily prediction and publication -> health."""
    import logging

    from rich.table import Table

    from aggregat.api import run_demo

    if logging.getLogger("aggregat").level > logging.DEBUG:  # the table says what happened
        logging.getLogger("aggregat").setLevel(logging.WARNING)
    settings = environment(env, config)
    console.print(Text.assemble(("aggregat demo", "bold"),
                                f" in environment {settings.name} ({settings.root})"))
    with flags(force="--force"):
        report = run_demo(settings, days=days, history_days=history_days, force=force,
                          log=console.print)
    table = Table(title="what the demo did", title_justify="left")
    for col in ("step", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for step in report.steps:
        table.add_row(step.name, f"{step.seconds:.1f}", step.detail)
    table.add_row(styled("total", "bold"), styled(f"{report.total_s:.1f}", "bold"), "")
    console.print(table)
    health = report.health
    bad = [i for i in health.items if i.status != "ok"]
    for item in bad:
        console.print(f"  health {item.status}: {item.section} {item.name}: {item.value}")
    style = {"ok": "green", "warning": "yellow", "failed": "red"}.get(health.status, "")
    console.print(Text.assemble("health: ", (health.status, style),
                                f" ({len(health.items)} checks)"))
    console.print("where to look:")
    for name, path in report.where.items():
        console.print(f"  {name:10s} {path}")
    console.print("next: `aggregat health`, `aggregat model list`, `aggregat bank ls`, "
                  "`aggregat run daily --force`")
    console.print("dashboard: `aggregat serve`"
                  + ("" if settings.name == "local" else f" --env {settings.name}")
                  + ", then open http://127.0.0.1:8050")
    if health.exit_code:
        sys.exit(health.exit_code)
