"""``aggregat weather extract`` and ``extract-file`` (registered on the ``weather`` group)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from aggregat.cli.common import ConfigOption, EnvOption, console, environment, flags
from aggregat.cli.progress import progress_bar
from aggregat.cli.weather import app
from aggregat.errors import ConfigError, PartialRunError

MethodOption = Annotated[str | None, typer.Option(
    "--method", help="nearest, or bilinear (lat/lon and rotated lat/lon grids).")]
WorkersOption = Annotated[int | None, typer.Option("--workers", "-j",
                                                   help="Processes (default: all cores).")]
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", help="Dask scheduler address (tcp://HOST:PORT); default: the config's.")]


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _print_report(report) -> None:
    console.print(report.summary())
    for issue in report.issues:
        console.print(Text.assemble("  ", ("catalogue:", "yellow"), f" {issue}"))
    for _path, error in report.bad_files:
        console.print(Text.assemble("  ", ("bad file:", "red"), f" {error}"))
    for name in report.missing_files:
        console.print(Text.assemble("  ", ("missing file:", "red"),
                                    f" {name} (fetch it, then extract again)"))
    for moved in report.quarantined:
        console.print(f"  quarantined -> {moved}")
    for back in report.restored:
        console.print(f"  restored from the quarantine (reads fine now) -> {back}")
    for name, count in report.kept:
        console.print(f"  kept {count} stored values for file {name}")
    for name in report.unverified:
        console.print(Text.assemble("  ", ("unverified:", "yellow"),
                                    f" {name} is not in the run's manifest (copied by hand?): "
                                    "extracted without a hash check"))
    if report.missing_values:
        console.print(f"  {report.missing_values} values missing (bitmap) left as NaN",
                      style="yellow")


@app.command("extract")
def extract(
    model: Annotated[str, typer.Option("--model", "-m", help="Product, e.g. arome-0025.")],
    run: Annotated[str | None, typer.Option("--run", help="Run time, e.g. 2026-11-28T00.")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Newest run in the datalake.")] = False,
    packages: Annotated[str | None, typer.Option("--packages", help="e.g. SP1,SP2.")] = None,
    sites: Annotated[str | None, typer.Option("--sites", help="Sites CSV (default: config).")
                     ] = None,
    areas: Annotated[str | None, typer.Option("--areas", help="Areas GeoJSON.")] = None,
    method: MethodOption = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Extract a run from the datalake at the sites/areas into the bank (weather_forecast)."""
    from aggregat import api

    settings = environment(env, config)
    if latest == bool(run):
        raise ConfigError("give exactly one of --run or --latest")
    with progress_bar(f"extract {model}") as start, flags(
            run="--run", packages="--packages", sites="--sites", areas="--areas",
            method="--method", workers="--workers", scheduler="--scheduler"):
        report = api.extract(settings, model, run, _csv(packages), sites=sites, areas=areas,
                             method=method, workers=workers, scheduler=scheduler,
                             progress=start)
    _print_report(report)
    if report.partial:
        raise PartialRunError(
            f"{report.model} run {report.run_time:%Y-%m-%dT%H}Z: partial, "
            f"{len(report.bad_files)} bad file(s) ({len(report.quarantined)} quarantined in "
            f"{settings.quarantine}), {len(report.missing_files)} missing; fetch again, then "
            "extract again")


@app.command("extract-file")
def extract_file(
    files: Annotated[list[Path], typer.Argument(help="GRIB1/GRIB2 files, any centre and grid.")],
    sites: Annotated[str | None, typer.Option("--sites", help="Sites CSV.")] = None,
    areas: Annotated[str | None, typer.Option("--areas", help="Areas GeoJSON.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .parquet or .csv.")] = Path(
        "weather.parquet"),
    variables: Annotated[str | None, typer.Option(
        "--variables", help="Catalogue names to keep (e.g. t2m,tp); default: all.")] = None,
    method: MethodOption = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Extract GRIB file(s) of any centre and grid at the sites into a table (bilinear: lat/lon
    and rotated lat/lon grids only)."""
    from aggregat import api

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out}: use a .parquet or .csv file name")
    with progress_bar("extract") as start, flags(sites="--sites", areas="--areas",
                                                  variables="--variables", method="--method"):
        frame = api.extract_files(files, sites, method or "nearest", areas=areas,
                                  variables=_csv(variables), workers=workers,
                                  scheduler=scheduler, progress=start)
    report = frame.attrs.pop("report")
    api.write_table(frame, out)
    _print_report(report)
    console.print(f"wrote {len(frame)} rows to {out}")
    if report.partial:
        raise PartialRunError(f"{len(report.bad_files)} of {len(files)} file(s) could not be read")
