"""``aggregat serve``: the web dashboard of an environment (docs/dashboard.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment


def serve(
    env: EnvOption = None,
    config: ConfigOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by "
                                      "default; another one exposes the dashboard).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8050,
) -> None:
    """Serve the dashboard: health, runs, calendar, forecasts, models, /metrics; actions only
    with [env.X.dashboard] actions = true and AGGREGAT_<ENV>_DASHBOARD_TOKEN set."""
    from aggregat import api

    settings = environment(env, config)
    console.print(f"aggregat dashboard of env {settings.name}: http://{host}:{port} "
                  "(Ctrl-C to stop)")
    api.serve(settings, host=host, port=port)
