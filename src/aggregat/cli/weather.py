"""``aggregat weather``: fetch Météo-France files into the datalake, extract them into the bank."""

from __future__ import annotations

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment, flags, styled

app = typer.Typer(no_args_is_help=True)


# ================================================================================================
# weather fetch  (owner: fetch helper; `extract` and `extract-file` go in their own block below)
# ================================================================================================
def _fetch_table(report):  # -> rich.table.Table
    from rich.table import Table

    from aggregat.api import run_label

    state = "complete" if report.complete else "PARTIAL"
    table = Table(title=f"{report.product} run {run_label(report.run)}: {state}",
                  caption=report.summary(), title_justify="left", caption_justify="left")
    table.add_column("file", no_wrap=True)
    for col, justify in (("status", "left"), ("source", "left"), ("MB", "right"),
                         ("s", "right"), ("attempts", "right"), ("error", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    style = {"downloaded": "green", "skipped": "dim", "missing": "red", "failed": "bold red"}
    suffix = f"__{run_label(report.run)}.grib2"  # the run is in the title: keep names short
    # Problems first; on a long run (AROME 0.01: 104 files) the fine ones are only counted.
    rows = report.problems + [f for f in report.files if f not in report.problems]
    if len(rows) > 30:
        rows = report.problems
    for f in rows:
        status = styled(f.status, style.get(f.status, ""))
        table.add_row(f.name.removesuffix(suffix), status, f.source or "", f"{f.bytes / 1e6:.2f}",
                      f"{f.seconds:.1f}", str(f.attempts), f.error or "")
    return table


@app.command("fetch")
def fetch(
    model: str = typer.Option(..., "--model", "-m", help="Product, e.g. arome-0025, arpege-01."),
    run: str | None = typer.Option(None, "--run", help="Run time (UTC), e.g. 2026-11-28T00."),
    latest: bool = typer.Option(False, "--latest",
                                help="Fetch the newest run complete at the sources."),
    packages: str | None = typer.Option(None, "--packages", "-p",
                                        help="Comma-separated packages, e.g. SP1,SP2 "
                                             "(default: the config's, else the catalogue's)."),
    base_url: str | None = typer.Option(None, "--base-url",
                                        help="One open-data base URL instead of the configured "
                                             "sources."),
    source: str | None = typer.Option(None, "--source",
                                      help="Comma-separated configured sources to use, in this "
                                           "order (default: weather.sources)."),
    workers: int | None = typer.Option(None, "--workers", min=1,
                                       help="Parallel downloads "
                                            "(default: weather.download_workers)."),
    retries: int | None = typer.Option(None, "--retries", min=0,
                                       help="Retries per file (default: weather.retries)."),
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Download one run of a model into the datalake (parallel, retried, resumed, verified).

    Exit code 3 when the run is partial (missing or failed files are named).
    """
    from aggregat import api
    from aggregat.errors import ConfigError

    if (run is None) == (not latest):
        raise ConfigError("weather fetch: give either --run 2026-11-28T00 or --latest")
    with flags(run="--run", packages="--packages", base_url="--base-url", workers="--workers",
               retries="--retries", sources="--source"):
        report = api.fetch(environment(env, config), model, run, _csv(packages),
                           base_url=base_url, sources=_csv(source), workers=workers,
                           retries=retries, progress=True)
    if latest:
        console.print(f"newest complete run: {report.product} {api.run_label(report.run)}")
    console.print(_fetch_table(report))
    for name, why in report.sources_given_up.items():
        console.print(styled(f"source {name} given up: {why}", "yellow"))
    report.raise_for_partial()


# ================================================================================================
# weather availability
# ================================================================================================
_CELL = {"present": ("█", "green"), "incomplete": ("▒", "yellow"), "missing": ("░", "dim"),
         "error": ("?", "red")}
_STATE = {"complete": "green", "incomplete": "yellow", "missing": "dim", "error": "bold red"}


def _availability_table(report):  # -> rich.table.Table
    from rich.table import Table
    from rich.text import Text

    from aggregat.api import run_label

    table = Table(title=f"{report.model} at {', '.join(report.sources)}", title_justify="left",
                  caption="█ present  ▒ incomplete  ░ missing  ? no answer; one mark per time "
                          f"group {report.groups[0]} … {report.groups[-1]}",
                  caption_justify="left")
    table.add_column("run", no_wrap=True)
    table.add_column("state")
    several = len(report.sources) > 1
    for source in report.sources:
        for package in report.packages:
            table.add_column(f"{source} {package}" if several else package, no_wrap=True)
    for run in report.runs:
        cells = []
        for source in report.sources:
            for package in report.packages:
                statuses = run.files[source][package]
                cell = Text()
                for group in report.groups:
                    mark, style = _CELL[statuses[group]]
                    cell.append(mark, style=style)
                present = sum(v == "present" for v in statuses.values())
                cell.append(f" {present}/{len(statuses)}")
                cells.append(cell)
        table.add_row(run_label(run.run), styled(run.state, _STATE[run.state]), *cells)
    return table


@app.command("availability")
def availability(
    model: str = typer.Option(..., "--model", "-m", help="Product, e.g. arome-0025, arpege-01."),
    since: str | None = typer.Option(None, "--since",
                                     help="First day (UTC) of runs shown, e.g. 2026-11-27 "
                                          "(default: the last 48 h)."),
    packages: str | None = typer.Option(None, "--packages", "-p",
                                        help="Comma-separated packages, e.g. SP1,SP2 "
                                             "(default: the config's, else the catalogue's)."),
    base_url: str | None = typer.Option(None, "--base-url",
                                        help="Open-data base URL (default: weather.base_url)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Show which runs are at the source: runs x packages x time groups, present, missing or
    incomplete, from cheap probes (no download). Exit 0; 2 on a bad option."""
    import json

    from aggregat import api

    with flags(since="--since", packages="--packages", base_url="--base-url"):
        report = api.availability(environment(env, config), model, since, _csv(packages),
                                  base_url=base_url)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=1))
    else:
        newest = report.newest_complete
        console.print(_availability_table(report))
        console.print(f"newest complete run: {report.model} "
                      f"{api.run_label(newest) if newest else 'none'}")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


# ================================================================================================
# weather import-history
# ================================================================================================
@app.command("import-history")
def import_history(
    files: list[str] = typer.Argument(..., help="CSV or Parquet files of weather forecasts as "
                                      "they were issued, or bigquery:PROJECT.DATASET.TABLE "
                                      "(or bigquery:SELECT ...)."),
    fmt: str = typer.Option("long", "--format",
                            help="long: model,run_time,valid_time,site_id,variable,value[,unit]; "
                                 "wide: one column per variable."),
    mapping: str | None = typer.Option(None, "--mapping",
                                       help="TOML mapping of column, model, variable names and "
                                            "units (docs/weather.md)."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows",
                                       help="Skip bad rows (counted) instead of stopping."),
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Import a weather history (GRIB units, as a GRIB parser writes it) into the bank, converted
    as extraction converts. Re-importing replaces; on a bad row nothing is changed."""
    from aggregat import api

    with flags(paths="FILE", format="--format", mapping="--mapping",
               skip_bad_rows="--skip-bad-rows"):
        report = api.import_weather_history(environment(env, config), files, format=fmt,
                                            mapping=mapping, skip_bad_rows=skip_bad_rows)
    console.print(report.summary())
