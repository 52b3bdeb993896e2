"""``aggregat demo``: the whole chain on the embedded default, offline."""

from __future__ import annotations

from typing import Annotated

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment


def demo(
    days: Annotated[int, typer.Option("--days", min=1, max=60, help="Days of runs to simulate.")] = 2,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the main job offline: simulated Météo-France archive -> HTTP fetch -> extract -> bank."""
    from rich.table import Table

    from aggregat.bank import Bank, read_weather
    from aggregat.demo.run import run_demo

    settings = environment(env, config)
    console.print(f"[bold]aggregat demo[/] in environment {settings.name} ({settings.root})")
    report = run_demo(settings, days=days, log=console.print)
    table = Table(title="what the demo did", title_justify="left")
    for col in ("step", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for step in report.steps:
        table.add_row(step.name, f"{step.seconds:.1f}", step.detail)
    table.add_row("[bold]total[/]", f"[bold]{report.total_s:.1f}[/]", "")
    console.print(table)
    frame = read_weather(Bank(settings.bank), "2000-01-01T00:00Z", "2100-01-01T00:00Z", latest=True)
    if len(frame):
        site = frame["location"].iloc[0]
        sample = frame[frame.location == site].head(6)
        cols = ["model", "valid_time", "t2m_c", "wind_speed_10m_ms", "ssrd_wm2", "tp_mm"]
        console.print(f"weather_forecast at {site} (first rows):")
        console.print(sample[[c for c in cols if c in sample]].to_string(index=False))
    console.print("where to look:")
    for name, path in report.where.items():
        console.print(f"  {name:9s} {path}")
