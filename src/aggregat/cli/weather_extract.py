"""``aggregat weather extract`` and ``extract-file`` (registered on the ``weather`` group)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from aggregat.cli.common import ConfigOption, EnvOption, console, environment
from aggregat.cli.progress import progress_bar
from aggregat.cli.weather import app
from aggregat.errors import ConfigError, InputError, PartialRunError

if TYPE_CHECKING:  # ecCodes loads only for the commands that decode GRIB
    from aggregat.weather.extract import ExtractReport

MethodOption = Annotated[str | None, typer.Option("--method", help="nearest or bilinear.")]
WorkersOption = Annotated[int | None, typer.Option("--workers", "-j",
                                                   help="Processes (default: all cores).")]
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", help="Dask scheduler address (tcp://HOST:PORT); default: the config's.")]


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _print_report(report: ExtractReport) -> None:
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
    for name, count in report.kept:
        console.print(f"  kept {count} stored values for file {name}")
    for name in report.unverified:
        console.print(f"  [yellow]unverified:[/] {name} is not in the run's manifest "
                      "(copied by hand?): extracted without a hash check")
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
    from aggregat.bank import Bank
    from aggregat.weather.datalake import Datalake
    from aggregat.weather.extract import extract_run
    from aggregat.weather.products import get_product, parse_run
    from aggregat.weather.sites import load_locations

    settings = environment(env, config)
    product = get_product(model)
    datalake = Datalake(settings.datalake, quarantine=settings.quarantine)
    if latest == bool(run):
        raise ConfigError("give exactly one of --run or --latest")
    if latest:
        runs = datalake.runs(product)
        if not runs:
            raise InputError(f"no {product.id} run in the datalake {settings.datalake}: "
                             "fetch one first")
        run_time = runs[-1]
    else:
        run_time = parse_run(run)
    locations = load_locations(sites or settings.sites, areas or settings.areas)
    with progress_bar(f"extract {product.id}") as start:
        report = extract_run(
            product, run_time, datalake=datalake, bank=Bank(settings.bank), locations=locations,
            packages=_csv(packages), method=method or settings.weather.method,
            workers=workers or settings.workers, scheduler=scheduler or settings.scheduler,
            progress=start,
        )
    _print_report(report)
    if report.partial:
        raise PartialRunError(
            f"{product.id} run {run_time:%Y-%m-%dT%H}Z: partial, "
            f"{len(report.bad_files)} bad file(s) ({len(report.quarantined)} quarantined in "
            f"{settings.quarantine}), {len(report.missing_files)} missing; fetch again, then "
            "extract again")


@app.command("extract-file")
def extract_file(
    files: Annotated[list[Path], typer.Argument(help="GRIB1/GRIB2 files, regular lat/lon grids.")],
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
    """Extract any regular lat/lon GRIB file(s) of any centre at the sites into a table."""
    from aggregat.storage import Store
    from aggregat.weather.extract import extract_files
    from aggregat.weather.sites import load_locations

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out}: use a .parquet or .csv file name")
    locations = load_locations(sites, areas)
    with progress_bar("extract") as start:
        frame, report = extract_files([str(f) for f in files], locations,
                                      variables=_csv(variables), method=method or "nearest",
                                      workers=workers, scheduler=scheduler, progress=start)
    buffer = io.BytesIO()
    if out.suffix.lower() == ".csv":
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    Store(str(out.resolve().parent)).write_bytes(out.name, buffer.getvalue())
    _print_report(report)
    console.print(f"wrote {len(frame)} rows to {out}")
    if report.partial:
        raise PartialRunError(f"{len(report.bad_files)} of {len(files)} file(s) could not be read")
