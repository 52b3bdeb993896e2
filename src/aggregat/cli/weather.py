"""``aggregat weather``: fetch Météo-France files into the datalake, extract them into the bank."""

from __future__ import annotations

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment, styled

app = typer.Typer(no_args_is_help=True)


# ================================================================================================
# weather fetch  (owner: fetch helper; `extract` and `extract-file` go in their own block below)
# ================================================================================================
def _fetch_table(report):  # -> rich.table.Table
    from rich.table import Table

    from aggregat.weather.products import run_label

    state = "complete" if report.complete else "PARTIAL"
    table = Table(title=f"{report.product} run {run_label(report.run)}: {state}",
                  caption=report.summary(), title_justify="left", caption_justify="left")
    table.add_column("file", no_wrap=True)
    for col, justify in (("status", "left"), ("MB", "right"), ("s", "right"),
                         ("attempts", "right"), ("error", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    style = {"downloaded": "green", "skipped": "dim", "missing": "red", "failed": "bold red"}
    suffix = f"__{run_label(report.run)}.grib2"  # the run is in the title: keep names short
    # Problems first; on a long run (AROME 0.01: 104 files) the fine ones are only counted.
    rows = report.problems + [f for f in report.files if f not in report.problems]
    if len(rows) > 30:
        rows = report.problems
    for f in rows:
        status = styled(f.status, style.get(f.status, ""))
        table.add_row(f.name.removesuffix(suffix), status, f"{f.bytes / 1e6:.2f}",
                      f"{f.seconds:.1f}", str(f.attempts), f.error or "")
    return table


@app.command("fetch")
def fetch(
    model: str = typer.Option(..., "--model", "-m", help="Product, e.g. arome-0025, arpege-01."),
    run: str | None = typer.Option(None, "--run", help="Run time (UTC), e.g. 2026-11-28T00."),
    latest: bool = typer.Option(False, "--latest",
                                help="Fetch the newest run complete on the server."),
    packages: str | None = typer.Option(None, "--packages", "-p",
                                        help="Comma-separated packages, e.g. SP1,SP2 "
                                             "(default: the config's, else the catalogue's)."),
    base_url: str | None = typer.Option(None, "--base-url",
                                        help="Open-data base URL (default: weather.base_url)."),
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
    from aggregat.errors import ConfigError, FetchError
    from aggregat.weather.datalake import Datalake
    from aggregat.weather.fetch import fetch_run, find_latest_run
    from aggregat.weather.products import get_product, parse_run, run_label

    settings = environment(env, config)
    weather = settings.weather
    product = get_product(model)
    if (run is None) == (not latest):
        raise ConfigError("weather fetch: give either --run 2026-11-28T00 or --latest")
    if packages:
        pkgs = [p.strip() for p in packages.split(",") if p.strip()]
    else:
        pkgs = list(weather.packages.get(product.id) or product.default_packages)
    base = base_url or weather.base_url
    n_workers = workers or weather.download_workers
    n_retries = weather.retries if retries is None else retries
    # Backoff settings are optional in the config (weather.retry_backoff_s / retry_backoff_max_s).
    backoff_s = float(getattr(weather, "retry_backoff_s", 0.5))
    backoff_max_s = float(getattr(weather, "retry_backoff_max_s", 30.0))
    if latest:
        found = find_latest_run(product, base, pkgs, min_run_age_h=weather.min_run_age_h,
                                workers=n_workers, timeout_s=min(weather.timeout_s, 20.0),
                                backoff_s=backoff_s)
        if found is None:
            raise FetchError(f"no complete {product.id} run ({','.join(pkgs)}) in the last 48 h "
                             f"at {base}; check weather.base_url or fetch an older --run")
        run_time = found
        console.print(f"newest complete run: {product.id} {run_label(run_time)}")
    else:
        run_time = parse_run(run or "")
    datalake = Datalake(settings.datalake, quarantine=settings.quarantine)
    report = fetch_run(product, run_time, datalake, base_url=base,
                       packages=pkgs, workers=n_workers, retries=n_retries,
                       timeout_s=weather.timeout_s, backoff_s=backoff_s,
                       backoff_max_s=backoff_max_s, progress=True)
    console.print(_fetch_table(report))
    report.raise_for_partial()
