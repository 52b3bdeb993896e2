"""``aggregat env``: show the resolved configuration (secrets masked) and check connections."""

from __future__ import annotations

import json
import sys

import typer
from rich.text import Text

from aggregat.cli.common import ConfigOption, EnvOption, console, environment, styled

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(env: EnvOption = None, config: ConfigOption = None,
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the resolved configuration of an environment, secrets masked."""
    settings = environment(env, config)
    dump = settings.masked_dump()
    if as_json:
        typer.echo(json.dumps(dump, indent=2))
        return
    source = settings.source_file or "embedded default (no aggregat.toml)"
    console.print(Text.assemble(("environment", "bold"), f" {settings.name}  ",
                                (f"from {source}", "dim")))
    _print_tree(dump, indent=1)


def _print_tree(tree: dict, indent: int) -> None:
    pad = "  " * indent
    for key, value in tree.items():
        if key == "name":
            continue
        if isinstance(value, dict):
            console.print(Text.assemble(pad, (key, "bold")))
            _print_tree(value, indent + 1)
        else:
            console.print(f"{pad}{key} = {value}")


@app.command("check")
def check(env: EnvOption = None, config: ConfigOption = None,
          offline: bool = typer.Option(False, "--offline",
                                       help="Skip the Météo-France reachability check."),
          timeout: float = typer.Option(5.0, "--timeout", min=0.1,
                                        help="Seconds per network check."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON."),
          access: bool = typer.Option(
              False, "--access", help="Review access instead: energy-DB users of sync and "
              "publish, other environments' credentials, shared secrets, the dashboard token; "
              "every environment unless --env.")) -> None:
    """Check that every connection is reachable and writable and the settings are complete.

    Exit code 0 when everything is fine, 1 when any problem (or access violation) was found
    (one line per problem, with its fix).
    """
    from rich.table import Table

    from aggregat import api

    if access:
        _check_access(env, config, as_json)
        return
    settings = environment(env, config)
    checks = api.check_env(settings, offline=offline, timeout_s=timeout)
    bad = [c for c in checks if c.status == "problem"]
    if as_json:
        typer.echo(json.dumps({"env": settings.name, "ok": not bad,
                               "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        styles = {"ok": "green", "warning": "yellow", "problem": "bold red", "skipped": "dim"}
        table = Table("check", "status", "detail", title=f"env check {settings.name}")
        for c in checks:
            table.add_row(c.name, styled(c.status, styles.get(c.status, "")), c.message)
        console.print(table)
        console.print(Text.assemble((f"{len(bad)} problem(s)", "bold red"),
                                    f" in env {settings.name}") if bad
                      else styled(f"env {settings.name} ok", "green"))
    if bad:
        sys.exit(1)  # not typer.Exit: main() runs click with standalone_mode=False


def _check_access(env: str | None, config: str | None, as_json: bool) -> None:
    from aggregat import api

    report = api.check_access(env, config=config)
    if as_json:
        typer.echo(json.dumps({"envs": report.envs, "ok": report.ok,
                               "findings": [f.as_dict() for f in report.findings]}, indent=2))
    else:
        # Plain echo: one finding per line, never wrapped at the terminal's width.
        for finding in report.findings:
            if finding.status != "ok":
                typer.echo(f"{finding.status}: {finding.line()}")
        typer.echo(report.summary())
    if report.exit_code:
        sys.exit(report.exit_code)
