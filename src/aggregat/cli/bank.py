"""``aggregat bank``: list datasets and partitions of the data bank, show rows."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from aggregat.cli.common import ConfigOption, EnvOption, console, environment
from aggregat.errors import BankError, InputError

app = typer.Typer(no_args_is_help=True)


def _bank(env: str | None, config: str | None):
    from aggregat import api

    return api.open_bank(environment(env, config))


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _parse_where(items: list[str] | None) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InputError(f"--where {item!r}: expected KEY=VALUE or KEY=V1,V2")
        where.setdefault(key.strip(), []).extend(v.strip() for v in value.split(","))
    return where


def _check_dataset(bank, dataset: str) -> None:
    if dataset not in bank.datasets():
        known = ", ".join(bank.datasets()) or "none"
        raise BankError(f"dataset {dataset!r} not found in bank {bank.url} (datasets: {known})")


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@app.command("ls")
def ls(
    dataset: Annotated[str | None, typer.Argument(help="Dataset to list partitions of.")] = None,
    where: Annotated[list[str] | None, typer.Option(
        "--where", "-w", help="Partition filter KEY=VALUE[,VALUE] (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """List datasets (partitions, rows, size) or the partitions of one dataset."""
    bank = _bank(env, config)
    if dataset is None:
        rows = []
        for name in bank.datasets():
            stats = bank.partition_stats(name)
            rows.append({"dataset": name, "partitions": len(stats),
                         "files": sum(len(s["parts"]) for s in stats),
                         "rows": sum(s["rows"] for s in stats),
                         "bytes": sum(s["bytes"] for s in stats)})
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        table = Table("dataset", "partitions", "files", "rows", "size", title=f"bank {bank.url}")
        for r in rows:
            table.add_row(r["dataset"], str(r["partitions"]), str(r["files"]), f"{r['rows']:,}",
                          _size(r["bytes"]))
        console.print(table if rows else f"bank {bank.url} is empty")
        return
    _check_dataset(bank, dataset)
    stats = bank.partition_stats(dataset, _parse_where(where) or None)
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    key_names = list(stats[0]["keys"]) if stats else []
    table = Table(*key_names, "parts", "rows", "size", title=f"{dataset} in {bank.url}")
    for s in stats:
        table.add_row(*s["keys"].values(), ", ".join(s["parts"]), f"{s['rows']:,}",
                      _size(s["bytes"]))
    console.print(table)
    console.print(f"{len(stats)} partitions, {sum(s['rows'] for s in stats):,} rows, "
                  f"{_size(sum(s['bytes'] for s in stats))}")


@app.command("show")
def show(
    dataset: Annotated[str, typer.Argument(help="Dataset to show rows of.")],
    where: Annotated[list[str] | None, typer.Option(
        "--where", "-w",
        help="KEY=VALUE[,VALUE] on a partition key or a column (repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Rows to show.")] = 20,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Show the first rows of a dataset, optionally filtered by partition keys or columns."""
    from aggregat import api

    bank = _bank(env, config)
    _check_dataset(bank, dataset)
    filters = _parse_where(where)
    key_names = set(api.dataset_keys(bank, dataset))
    keys = {k: v for k, v in filters.items() if k in key_names}
    conds, params = [], []
    for col, values in filters.items():
        if col in key_names:
            continue
        conds.append(f'CAST("{col.replace(chr(34), "")}" AS VARCHAR) IN '
                     f'({", ".join("?" for _ in values)})')
        params.extend(values)
    cols = [c.strip() for c in columns.split(",")] if columns else None
    df = bank.read(dataset, where=keys or None, columns=cols,
                   filter_sql=" AND ".join(conds) or None, params=params, limit=limit)
    if as_json:
        for line in df.to_json(orient="records", lines=True, date_format="iso").splitlines():
            typer.echo(line)
        return
    table = Table(*map(str, df.columns), title=f"{dataset} (first {len(df)} rows)")
    for row in df.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


@app.command("bigquery-ddl")
def bigquery_ddl(
    dataset: Annotated[str | None, typer.Option(
        "--dataset", "-d", help="BigQuery dataset ([project.]dataset) to hold the tables; "
        "default aggregat_<env>.")] = None,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Print CREATE EXTERNAL TABLE statements so BigQuery queries the bank (gs://) in place."""
    from aggregat import api

    for table in api.bigquery_ddl(environment(env, config), dataset):
        typer.echo(f"-- bank dataset {table.bank_dataset}")
        typer.echo(table.statement)
