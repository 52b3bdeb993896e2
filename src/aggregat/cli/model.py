"""``aggregat model``: backtest (train, predict, list and promote come with the registry)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import typer

from aggregat.cli.common import ConfigOption, EnvOption, console, environment
from aggregat.config import mask_json
from aggregat.errors import ConfigError
from aggregat.timeutil import Horizon

app = typer.Typer(no_args_is_help=True)


def _cols(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


def _fmt(x: float, digits: int) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def summary_line(m: dict) -> str:
    """``MAE=… RMSE=… nMAE=… skill=… coverage=…`` (MW, MW, fraction, fraction, fraction)."""
    return (f"MAE={_fmt(m['mae'], 3)} RMSE={_fmt(m['rmse'], 3)} nMAE={_fmt(m['nmae'], 4)} "
            f"skill={_fmt(m.get('skill', float('nan')), 4)} "
            f"coverage={_fmt(m['coverage_10_90'], 4)}")


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
    time_format: Annotated[str | None, typer.Option("--time-format", help="strptime format of "
                           "the CSV times (default ISO 8601; one format per file).")] = None,
    ambiguous: Annotated[str | None, typer.Option("--ambiguous", help="A repeated October "
                         "local time the file order cannot resolve: first, second or "
                         "drop.")] = None,
    nonexistent: Annotated[str | None, typer.Option("--nonexistent", help="A local time in the "
                           "March DST gap: shift_forward or drop (default: an error).")] = None,
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
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default "
                   "./backtest-<name>/).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the run (default: the "
                    "first CSV's file name).")] = None,
    env: EnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Backtest of the production pipeline (day-ahead or intraday): on your own CSV (--csv), or
    on the environment's bank and targets. JSON report, forecasts CSV and PNG plot in --out."""
    import zoneinfo

    from aggregat.forecast.backtest import expand_paths, read_csv_inputs
    from aggregat.forecast.calendar import calendar_code, parse_holiday_code, school_zones
    from aggregat.forecast.csv_import import backtest_csv, check_columns
    from aggregat.forecast.pipeline import check_horizon

    t0 = time.perf_counter()
    check_horizon(horizon)
    if not (0 < every_h <= 24 and 0 < hours <= 72):
        raise ConfigError(f"--every-h {every_h:g} / --hours {hours:g}: use 0 < every-h <= 24 "
                          "and 0 < hours <= 72")
    if not csv:
        _bank_backtest(env, config, target, test_weeks, out, t0, horizon, blend)
        return
    for zone, opt in ((tz, "--tz"), (csv_tz, "--csv-tz")):
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"{opt} {zone!r}: unknown time zone; use an IANA name such as "
                              "Europe/Paris") from exc
    if not 0 <= issue_hour < 24:
        raise ConfigError(f"--issue-hour {issue_hour}: must be within [0, 24)")
    cal, school = calendar_code(holidays), calendar_code(school_holidays)
    if cal:
        parse_holiday_code(cal)
    if school:
        try:
            school_zones(school)
        except ConfigError as exc:
            raise ConfigError(f"--school-holidays: {exc}") from None
    paths = expand_paths(csv)
    run_name = name or paths[0].stem
    wcols, kcols = _cols(weather_cols), _cols(known_cols)
    overlap = set(wcols) & set(kcols)
    if overlap:
        raise ConfigError(f"--weather-cols and --known-cols both list {', '.join(overlap)}")
    check_columns([*wcols, *kcols])
    load, weather = read_csv_inputs([str(p) for p in paths], time_col, load_col, wcols, kcols,
                                    naive_tz=csv_tz, time_format=time_format,
                                    ambiguous=ambiguous, nonexistent=nonexistent)
    console.print(f"{run_name}: {len(load)} rows from {len(paths)} file(s), "
                  f"{load.index[0]:%Y-%m-%d} .. {load.index[-1]:%Y-%m-%d} UTC")
    # The same pipeline as bank mode, on a temporary bank holding the CSV (removed after).
    result = backtest_csv(load, weather, wcols, kcols, tz=tz, issue_hour=issue_hour,
                          holidays=cal, test_weeks=test_weeks, horizon=horizon,
                          intraday_every_h=every_h, intraday_hours=hours,
                          school_holidays=school, intraday_blend=blend is not False,
                          progress=lambda msg: console.print(f"  {msg}"))
    result.report["inputs"]["csv"] = [str(p) for p in paths]
    _write_outputs(result, run_name, out or Path(f"backtest-{run_name}"), tz, t0)


def _bank_backtest(env, config, target, test_weeks, out, t0, horizon, blend=None) -> None:
    """The production pipeline on the environment's bank, for each target."""
    from aggregat.bank import Bank
    from aggregat.forecast.pipeline import backtest_target
    from aggregat.forecast.targets import resolve_targets

    settings = environment(env, config)
    if blend is not None:
        settings = settings.model_copy(update={"forecast": settings.forecast.model_copy(
            update={"intraday_blend": blend})})
    targets = resolve_targets(settings, Bank(settings.bank), [target] if target else None)
    if not targets:
        raise ConfigError(f"no target in env {settings.name}: configure [forecast] targets or "
                          "import load into the bank, or give --csv")
    for t in targets:
        result = backtest_target(settings, t, test_weeks, horizon=horizon,
                                 progress=lambda msg: console.print(f"  {msg}"))
        result.report["inputs"]["bank"] = settings.bank
        folder = out / t.id if out and len(targets) > 1 else out or Path(f"backtest-{t.id}")
        _write_outputs(result, t.id, folder, settings.forecast.timezone, t0)


def _write_outputs(result, run_name: str, folder: Path, tz: str, t0: float) -> None:
    """report.json, forecasts.csv and backtest.png in ``folder``; the summary lines."""
    from aggregat.forecast.plot import plot_backtest
    from aggregat.storage import Store

    report = result.report
    report["name"] = run_name
    report["timing_s"]["wall"] = round(time.perf_counter() - t0, 2)
    store = Store(str(folder.resolve()))
    store.write_bytes("report.json", mask_json(report, indent=1, default=str).encode())
    f = result.forecasts.copy()
    for c in ("issue_time", "valid_time"):
        f[c] = f[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    store.write_bytes("forecasts.csv", f.to_csv(index=False).encode())
    m = report["metrics"]
    store.write_bytes("backtest.png", plot_backtest(
        result.forecasts, title=f"{run_name}: {report['protocol']['horizon']} P10-P90, "
        f"MAE {m['mae']:.3g} MW, coverage {m['coverage_10_90']:.0%}", tz=tz))
    console.print(f"test {report['protocol']['test_start']} .. {report['protocol']['test_end']}"
                  f": MAE {m['mae']:.4g} MW (persistence {m['mae_persistence']:.4g}), "
                  f"MAPE {m['mape']:.2%}, pinball {m['pinball']:.4g}, "
                  f"baseline rows {report['baseline_share']:.0%}, "
                  f"{report['timing_s']['wall']:.0f} s")
    console.print(f"report, forecasts and plot in {folder}/")
    typer.echo(summary_line(m))
