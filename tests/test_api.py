"""The public API as a notebook uses it: the demo environment end to end through ``aggregat.*``
alone (the walk-through of docs/api.md), typed results, and the API's own rules."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

import aggregat

SRC = Path(aggregat.__file__).parent


def test_every_public_name_resolves():
    assert "open_env" in aggregat.__all__ and "RunReport" in aggregat.__all__
    for name in aggregat.__all__:
        assert getattr(aggregat, name) is not None, name
    assert sorted(dir(aggregat)) == sorted(aggregat.__all__)
    with pytest.raises(AttributeError):
        aggregat.no_such_name  # noqa: B018


def test_weather_is_callable_even_after_the_subpackage_is_imported():
    import aggregat.weather.products  # noqa: F401  (binds the subpackage to aggregat.weather)

    assert callable(aggregat.weather)


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    """The demo's environment (two days of archive, 30 days of history) in a fresh home."""
    home = tmp_path_factory.mktemp("home")
    (home / "aggregat.toml").write_text(f'[env.nb]\nroot = "{home / "data"}"\n')
    env = aggregat.open_env("nb", home / "aggregat.toml")
    report = aggregat.run_demo(env, days=2, history_days=30, log=lambda _msg: None)
    return env, report


def test_walkthrough(demo_env):
    """docs/api.md, as a notebook runs it."""
    _, demo = demo_env
    env = demo.env  # the demo's models and packages, the configured (unreachable) source
    assert demo.health.exit_code in (0, 1)  # ok, or a warning about the short history

    # Jobs return typed reports; a rerun redoes nothing.
    today = dt.datetime.now(dt.UTC).date()
    run = aggregat.daily(env, today)
    assert isinstance(run, aggregat.RunReport) and run.ok and run.exit_code == 0, run.problems
    assert run.steps and all(isinstance(s, aggregat.StepReport) for s in run.steps)
    assert {s.status for s in run.steps} <= {"done", "ok", "skipped"}
    plan = aggregat.backfill(env, today - dt.timedelta(days=1), dry_run=True)
    assert plan.planned == []

    # Data: DataFrames of the window asked for.
    end = pd.Timestamp(today, tz="UTC") + pd.Timedelta(days=2)
    start = end - pd.Timedelta(days=5)
    weather = aggregat.weather(env, start, end, models=["arome-0025"])
    assert len(weather) and set(weather["model"]) == {"arome-0025"}
    assert weather["valid_time"].min() >= start and weather["valid_time"].max() < end
    load = aggregat.load(env, "portfolio", start - pd.Timedelta(days=10), end)
    assert len(load) and set(load["target_id"]) == {"portfolio"}
    fc = aggregat.forecasts(env, "portfolio", start, end)
    assert len(fc) and {"p10_mw", "p50_mw", "p90_mw"} <= set(fc.columns)
    assert (fc["p10_mw"] <= fc["p90_mw"]).all()

    # Models: eager lists of typed results.
    versions = aggregat.models(env)
    assert versions and all(isinstance(v, aggregat.ModelVersion) for v in versions)
    live = [v for v in versions if v.current]
    assert [v.target for v in live] == ["portfolio"]
    issue = aggregat.default_issue_time(env)
    predicted = aggregat.predict(env, issue, "portfolio")
    assert [type(r) for r in predicted] == [aggregat.PredictResult]
    assert predicted[0].status == "predicted" and predicted[0].rows > 0
    assert predicted[0].issue_time == issue
    trained = aggregat.train(env, "portfolio", if_older="7d")
    assert [(r.target, r.status) for r in trained] == [("portfolio", "skipped")]
    aggregat.promote(env, "portfolio", live[0].version)

    health = aggregat.health(env)
    assert isinstance(health, aggregat.HealthReport) and health.exit_code in (0, 1)


def test_backtest_on_a_plain_frame(tmp_path):
    times = pd.date_range("2025-01-01", "2025-03-01", freq="h", tz="UTC", inclusive="left")
    hour = times.hour.to_numpy()
    temp = 10 + 8 * pd.Series(range(len(times))).mod(24).between(10, 16).to_numpy()
    frame = pd.DataFrame({"load": 50 + 10 * ((hour >= 7) & (hour < 20)) - 0.5 * temp,
                          "temp": temp}, index=times)
    report = aggregat.backtest(frame, load_col="load", weather_cols=["temp"], holidays="none",
                               tz="UTC", test_weeks=1, name="plain")
    assert isinstance(report, aggregat.BacktestReport)
    assert report.metrics["mae"] < 5 and len(report.forecasts)
    assert report.summary_line().startswith("MAE=")
    assert report.to_json(tmp_path / "r.json").is_file()
    assert (tmp_path / "out" / "backtest.png").exists() is False
    report.write(tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "report.json", "forecasts.csv", "backtest.png"}


@pytest.mark.parametrize("call", [
    lambda env: aggregat.predict(env, dt.datetime(2026, 11, 28, 9)),
    lambda env: aggregat.weather(env, dt.datetime(2026, 11, 28), "2026-11-29T00:00Z"),
    lambda env: aggregat.load(env, "x", start=pd.Timestamp("2026-11-28")),
    lambda env: aggregat.intraday(env, at=dt.datetime(2026, 11, 28, 9)),
])
def test_naive_times_are_refused_naming_the_parameter(tmp_path, call):
    env = _local(tmp_path)
    with pytest.raises(aggregat.AggregatError) as err:
        call(env)
    message = str(err.value)
    assert "\n" not in message
    assert any(p in message for p in ("issue_time", "start", "at ", "at:", "intraday"))


def _local(tmp_path) -> aggregat.Environment:
    (tmp_path / "aggregat.toml").write_text(f'[env.t]\nroot = "{tmp_path / "data"}"\n')
    return aggregat.open_env("t", tmp_path / "aggregat.toml")


def test_a_single_id_is_one_id_not_its_letters(tmp_path):
    env = _local(tmp_path)
    from aggregat.bank import Bank, write_load

    times = pd.date_range("2026-11-01", periods=4, freq="h", tz="UTC")
    write_load(Bank(env.bank), pd.DataFrame({"target_id": "vic", "time": times,
                                             "load_mw": [1.0, 2, 3, 4]}))
    assert len(aggregat.load(env, "vic")) == 4
    assert len(aggregat.load(env, ["vic"])) == 4


def test_results_are_eager_lists(tmp_path):
    env = _local(tmp_path)
    with pytest.raises(aggregat.ModelError):  # raised at the call, not when iterated
        aggregat.train(env)


def test_cli_calls_only_the_public_api():
    """Modules under cli/ and demo/ reach the lower layers only through aggregat.api (and the
    few presentation helpers listed here)."""
    allowed = {"aggregat", "aggregat.api", "aggregat.errors", "aggregat.config",
               "aggregat.results", "aggregat.timeutil", "aggregat.ops.timing", "aggregat.logs"}
    offenders = []
    for path in sorted([*(SRC / "cli").glob("*.py"), *(SRC / "dashboard").glob("*.py")]):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                    "aggregat") and not node.module.startswith("aggregat.cli"):
                if node.module not in allowed and not node.module.startswith(
                        "aggregat.dashboard"):
                    offenders.append(f"{path.name}: from {node.module}")
    assert not offenders, offenders
