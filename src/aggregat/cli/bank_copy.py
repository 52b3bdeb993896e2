"""``aggregat bank copy``: copy history between environments (registered on the ``bank`` group)."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from aggregat.cli.bank import app
from aggregat.cli.common import ConfigOption, console, environment
from aggregat.errors import ConfigError, InputError, PartialRunError


def _since(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since {value!r}: expected a date YYYY-MM-DD") from None


@app.command("copy")
def copy(
    source: Annotated[str, typer.Option("--from", help="Environment to copy from.")],
    target: Annotated[str, typer.Option("--to", help="Environment to copy into.")],
    datasets: Annotated[str | None, typer.Option(
        "--datasets", help="Comma-separated datasets (default: all but ledger and sync_state).")
    ] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only partitions dated on or after this day (YYYY-MM-DD).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be copied.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Copy bank partitions from one environment to another: resumable, idempotent, verified.

    Partitions already identical in the target (same rows and checksum) are skipped; each copied
    partition is verified by row count and checksum. Holds the target environment's run lock.
    """
    from aggregat import api

    if source == target:
        raise ConfigError(f"--from and --to are both {source!r}: pick two environments")
    src_env, dst_env = environment(source, config), environment(target, config)
    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None

    def show(item) -> None:
        if not as_json and item.action != "same":
            style = "red" if item.action == "failed" else ""
            text = f"{item.action:8} {item.label}  {item.rows:,} rows"
            if item.error:
                text += f"  {item.error}"
            console.print(text, style=style or None, highlight=False)

    report = api.copy_bank(src_env, dst_env, names, _since(since), dry_run=dry_run,
                           on_partition=show)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        table = Table("action", "partitions", "rows", title=f"bank copy {source} -> {target}")
        for action in ("new", "replace", "copied", "replaced", "same", "failed"):
            items = [i for i in report.items if i.action == action]
            if items:
                table.add_row(action, str(len(items)), f"{sum(i.rows for i in items):,}")
        if report.items:
            console.print(table)
        console.print(report.summary())
    if report.failed:
        raise PartialRunError(f"bank copy {source} -> {target}: {len(report.failed)} partition(s) "
                              f"failed verification (first: {report.failed[0].label}: "
                              f"{report.failed[0].error}); rerun to retry them")
