"""``aggregat model train | list | predict | promote``: the registry lifecycle of each target.

Registered on :data:`aggregat.cli.model.app` by importing this module (see cli/main.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from aggregat.cli.common import ConfigOption, EnvOption, console, environment, flags
from aggregat.cli.model import app
from aggregat.errors import PartialRunError
from aggregat.timeutil import Horizon

TargetOption = Annotated[
    list[str] | None,
    typer.Option("--target", "-t", help="Target id (repeat for several); default: all targets."),
]
HorizonOption = Annotated[
    str,
    typer.Option("--horizon", help="day-ahead, or intraday (an issue every "
                 "forecast.intraday_every_h hours for the next forecast.intraday_hours; its "
                 "models and forecasts are kept as <target>@intraday)."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Targets in parallel (default: env workers, else all "
                 "cores); the env's Dask scheduler is used when configured."),
]


def _failed(results: list, what: str) -> None:
    bad = [r for r in results if r.failed]
    if bad:
        names = ", ".join(f"{r.target} ({r.error})" for r in bad)
        raise PartialRunError(f"{what} failed for {len(bad)} of {len(results)} target(s): {names}")


@app.command("train")
def train(
    target: TargetOption = None,
    if_older: Annotated[str | None, typer.Option("--if-older", help="Only retrain targets whose "
                        "newest model is older than this (7d, 36h, 2w).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if the model is young "
                     "(after a deployment: retrains only, no dataset rebuild).")] = False,
    workers: WorkersOption = None,
    horizon: HorizonOption = Horizon.DAY_AHEAD,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Train each target on its bank history, save it to the registry, promote if better."""
    from aggregat import api

    def show(r) -> None:
        if r.status == "skipped":
            console.print(f"{r.target}: skipped, {r.reason}")
        elif r.status == "trained":
            mark = "promoted" if r.promoted else "kept current"
            console.print(f"{r.target}: trained {r.version} in {r.seconds:.1f} s, {mark} "
                          f"({r.reason})")
        else:
            console.print(Text.assemble((f"{r.target}: failed", "red"), f" {r.error}"))

    with flags(if_older="--if-older", horizon="--horizon", targets="--target"):
        results = api.train(environment(env, config), target, horizon, force, if_older=if_older,
                            workers=workers, on_result=show)
    _failed(results, "training")


@app.command("list")
def list_models(
    target: Annotated[str | None, typer.Option("--target", "-t", help="Only this target.")] = None,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Versions in the environment's registry; '*' marks the current (production) one."""
    from aggregat import api

    e = environment(env, config)
    rows = api.models(e, target)
    if not rows:
        console.print(f"no model in {e.registry}; run `aggregat model train`")
        return
    table = Table("", "target", "version", "trained at (UTC)", "data", "val MAE", "coverage",
                  "code", title=f"registry {e.registry}")
    for r in rows:
        val = r.metrics.get("validation") or {}
        data = f"{str(r.data_start)[:10]}..{str(r.data_end)[:10]}"
        table.add_row("*" if r.current else "", r.target, r.version, str(r.trained_at)[:19],
                      data, _num(val.get("mae")), _num(val.get("coverage_10_90")),
                      str(r.code_version))
    console.print(table)


def _num(x) -> str:
    return "-" if x is None or x != x else f"{x:.4g}"


@app.command("predict")
def predict(
    issue_time: Annotated[str | None, typer.Option("--issue-time", help="Issue time: local to "
                          "forecast.timezone (2026-11-28T10:00) unless it has an offset "
                          "(2026-11-28T09:00Z); default: today at forecast.issue_hour_local."
                          )] = None,
    target: TargetOption = None,
    workers: WorkersOption = None,
    horizon: HorizonOption = Horizon.DAY_AHEAD,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Forecast the next day (or the next hours, intraday) of each target with its current
    model; writes dataset forecast."""
    from aggregat import api
    from aggregat.timeutil import fmt_time, parse_cli_time

    e = environment(env, config)
    tz = e.forecast.timezone
    issue = (api.default_issue_time(e) if issue_time is None
             else parse_cli_time(issue_time, tz, param="--issue-time"))
    console.print(f"issue time {fmt_time(issue, tz)}")

    def show(r) -> None:
        if r.status == "predicted":
            flag = f", {r.baseline_rows} baseline rows" if r.baseline_rows else ""
            note = (f" ({r.note})", "yellow") if r.note else ""
            console.print(Text.assemble(f"{r.target}: {r.rows} rows with {r.version}{flag}",
                                        note))
        else:
            console.print(Text.assemble((f"{r.target}: failed", "red"), f" {r.error}"))

    with flags(issue_time="--issue-time", horizon="--horizon", targets="--target"):
        results = api.predict(e, issue, target, horizon, workers=workers, on_result=show)
    _failed(results, "prediction")


@app.command("promote")
def promote(
    target: Annotated[str, typer.Option("--target", "-t", help="Target id.")],
    version: Annotated[str, typer.Option("--version", help="Version (see `aggregat model "
                       "list`).")],
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Make a version the production model of a target (e.g. to roll back)."""
    from aggregat import api

    api.promote(environment(env, config), target, version)
    console.print(f"{target}: current model is now {version}")


@app.command("explain")
def explain(
    target: Annotated[str, typer.Option("--target", "-t", help="Target id.")],
    issue_time: Annotated[str, typer.Option("--issue-time", help="Issue time of the forecast: "
                          "local to forecast.timezone unless it has an offset.")],
    png: Annotated[Path | None, typer.Option("--png", help="Also write a stacked bar chart of "
                   "the groups per valid time here.")] = None,
    horizon: HorizonOption = Horizon.DAY_AHEAD,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """What each feature group (temperature, radiation, calendar, holidays, lags, ...)
    contributed to the P50 of a forecast; the groups and the base sum to P50."""
    from aggregat import api
    from aggregat.timeutil import fmt_time, parse_cli_time

    e = environment(env, config)
    issue = parse_cli_time(issue_time, e.forecast.timezone, param="--issue-time")
    with flags(issue_time="--issue-time", horizon="--horizon", target="--target"):
        ex = api.explain(e, target, issue, horizon)
    p50 = ex.p50
    table = Table(title=f"{target}: P50 issued {fmt_time(issue, e.forecast.timezone)}, "
                  f"{len(p50)} valid times, mean {p50.mean():.4g} MW")
    for col in ("group", "mean MW", "min MW", "max MW"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for group, row in ex.totals().iterrows():
        table.add_row(str(group), _num(row["mean_mw"]), _num(row["min_mw"]), _num(row["max_mw"]))
    console.print(table)
    if png is not None:
        console.print(f"chart: {ex.to_png(png)}")
