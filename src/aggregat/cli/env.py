"""``aggregat env``: show the resolved configuration (secrets masked) and check connections."""

from __future__ import annotations

import json

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment

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
    console.print(f"[bold]environment[/] {settings.name}  [dim]from {source}[/]")
    _print_tree(dump, indent=1)


def _print_tree(tree: dict, indent: int) -> None:
    pad = "  " * indent
    for key, value in tree.items():
        if key == "name":
            continue
        if isinstance(value, dict):
            console.print(f"{pad}[bold]{key}[/]")
            _print_tree(value, indent + 1)
        else:
            console.print(f"{pad}{key} = {value}")
