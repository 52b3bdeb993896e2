"""``aggregat model``: backtest (train, predict, list and promote come with the registry)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from aggregat.cli.common import (
    AmbiguousOption,
    ConfigOption,
    EnvOption,
    NonexistentOption,
    TimeFormatOption,
    console,
    environment,
    flags,
)
from aggregat.timeutil import Horizon

app = typer.Typer(no_args_is_help=True)


def _cols(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


@app.command("backtest")
def backtest(
    csv: Annotated[list[str] | None, typer.Option("--csv", help="CSV file(s) with time, load "
                   "and weather columns; repeat the option or use a glob; later files win on "
                   "duplicate times. Without it: the environment's bank and targets.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Bank mode: the target to "
                      "backtest (default: every target).")] = None,
    time_col: Annotated[str, typer.Option("--time-col", help="Time column ('' = the first, "
                        "unnamed column).")] = "time",
    load_col: Annotated[str, typer.Option("--load-col", help="Load column (MW).")] = "load_mw",
    weather_cols: Annotated[str | None, typer.Option("--weather-cols", help="Comma-separated "
                            "weather columns, taken as the forecast available for each valid "
                            "time.")] = None,
    known_cols: Annotated[str | None, typer.Option("--known-cols", help="Comma-separated "
                          "columns known in advance (e.g. a holiday flag).")] = None,
    holidays: Annotated[str, typer.Option("--holidays", help="Public-holiday calendar: a "
                        "country or subdivision code (FR, AU-VIC, DE-BY) or 'none'.")] = "FR",
    school_holidays: Annotated[str | None, typer.Option("--school-holidays", help="School "
                               "holidays as a feature: FR (share of zones A/B/C on holiday), "
                               "FR-Zone C, NL-Zuid, ... (the 'holidays' package).")] = None,
    tz: Annotated[str, typer.Option("--tz", help="Local time zone of the calendar and issue "
                  "hour.")] = "Europe/Paris",
    csv_tz: Annotated[str, typer.Option("--csv-tz", help="Time zone of CSV times written "
                      "without an offset.")] = "UTC",
    time_format: TimeFormatOption = None,
    ambiguous: AmbiguousOption = None,
    nonexistent: NonexistentOption = None,
    issue_hour: Annotated[float, typer.Option("--issue-hour", help="Local hour of D-1 at which "
                          "the forecast of day D is issued.")] = 10.0,
    test_weeks: Annotated[int, typer.Option("--test-weeks", min=1, help="Test on the last N "
                          "weeks; retrain weekly on all earlier data.")] = 8,
    horizon: Annotated[str, typer.Option("--horizon", help="day-ahead (issued at --issue-hour "
                       "of D-1 for day D) or intraday (an issue every --every-h hours for the "
                       "next --hours).")] = Horizon.DAY_AHEAD,
    every_h: Annotated[float, typer.Option("--every-h", help="Intraday: hours between "
                       "issues (aligned on --issue-hour).")] = 6.0,
    hours: Annotated[float, typer.Option("--hours", help="Intraday: hours each issue "
                     "covers.")] = 36.0,
    blend: Annotated[bool | None, typer.Option("--blend/--no-blend", help="Intraday: blend with "
                     "the newest day-ahead forecast (its backtest runs first), as production "
                     "does; default: forecast.intraday_blend (on).")] = None,
    extra_features: Annotated[bool, typer.Option("--extra-features/--no-extra-features",
                              help="Bank mode: use the targets' extra_features (RTE data, "
                              "other tables) as configured, or leave them out to measure "
                              "their effect.")] = True,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default "
                   "./backtest-<name>/).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the run (default: the "
                    "first CSV's file name).")] = None,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Backtest of the production pipeline (day-ahead or intraday): on your own CSV (--csv), or
    on the environment's bank and targets. JSON report, forecasts CSV and PNG plot in --out."""
    from aggregat import api

    t0 = time.perf_counter()
    say = lambda msg: console.print(f"  {msg}")  # noqa: E731
    with flags(horizon="--horizon", every_h="--every-h", hours="--hours", tz="--tz",
               issue_hour="--issue-hour", school_holidays="--school-holidays",
               test_weeks="--test-weeks", weather_cols="--weather-cols",
               known_cols="--known-cols", targets="--target"):
        if not csv:
            settings = environment(env, config)
            reports = api.backtest_env(settings, target, test_weeks=test_weeks, horizon=horizon,
                                       blend=blend, extra_features=extra_features,
                                       progress=say)
            for report in reports:
                folder = (out / report.name if out and len(reports) > 1
                          else out or Path(f"backtest-{report.name}"))
                _write_outputs(report, folder, t0)
            return
        wcols, kcols = _cols(weather_cols), _cols(known_cols)
        with flags(tz="--csv-tz", paths="--csv"):
            frame = api.read_backtest_csv(csv, time_col=time_col, load_col=load_col,
                                          weather_cols=wcols, known_cols=kcols, tz=csv_tz,
                                          time_format=time_format, ambiguous=ambiguous,
                                          nonexistent=nonexistent)
        paths = frame.attrs["paths"]
        run_name = name or Path(paths[0]).stem
        console.print(f"{run_name}: {len(frame)} rows from {len(paths)} file(s), "
                      f"{frame.index[0]:%Y-%m-%d} .. {frame.index[-1]:%Y-%m-%d} UTC")
        # The same pipeline as bank mode, on a temporary bank holding the CSV (removed after).
        report = api.backtest(frame, load_col=load_col, weather_cols=wcols, known_cols=kcols,
                              name=run_name, horizon=horizon, holidays=holidays,
                              school_holidays=school_holidays, tz=tz, issue_hour=issue_hour,
                              test_weeks=test_weeks, every_h=every_h, hours=hours,
                              blend=blend is not False, progress=say)
    report.report["inputs"]["csv"] = [str(p) for p in paths]
    _write_outputs(report, out or Path(f"backtest-{run_name}"), t0)


def _write_outputs(report, folder: Path, t0: float) -> None:
    """report.json, forecasts.csv and backtest.png in ``folder``; the summary lines."""
    report.report["timing_s"]["wall"] = round(time.perf_counter() - t0, 2)
    report.write(folder)
    r, m = report.report, report.metrics
    console.print(f"test {r['protocol']['test_start']} .. {r['protocol']['test_end']}"
                  f": MAE {m['mae']:.4g} MW (persistence {m['mae_persistence']:.4g}), "
                  f"MAPE {m['mape']:.2%}, pinball {m['pinball']:.4g}, "
                  f"CRPS {m['crps']:.4g} (rCRPS {m['rcrps']:.4f}), "
                  f"baseline rows {r['baseline_share']:.0%}, {r['timing_s']['wall']:.0f} s")
    console.print(f"report, forecasts and plot in {folder}/")
    typer.echo(report.summary_line())
