"""The CSV backtest goes through a temporary bank and the bank-mode pipeline, and gives the
results of the core fed the CSV directly (the bank stores weather as float32)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import aggregat.forecast.core.backtest as bt
from aggregat.bank import Bank, read_load, write_weather_run
from aggregat.errors import ConfigError, InputError
from aggregat.forecast.core.backtest import read_csv_inputs, run_backtest
from aggregat.forecast.core.features import (
    FeatureConfig,
    build_features,
    issue_time_for_day,
    prepare_load,
    prepare_weather,
    target_day,
)
from aggregat.forecast.core.models import ModelConfig
from aggregat.forecast.csv_import import (
    BANK_LABEL,
    backtest_csv,
    check_columns,
    import_csv_inputs,
    run_window,
)
from aggregat.forecast.synthetic import synthetic_load_weather

FAST = {"max_rounds": 120, "learning_rate": 0.2, "min_data_in_leaf": 10, "num_leaves": 15,
        "calibration_days": 7}


def _csv(tmp_path, tz="Europe/Paris", days=63, freq="1h", start="2026-01-01"):
    df = synthetic_load_weather(start=start, days=days, freq=freq, tz=tz, seed=5)
    df["time"] = df["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "in.csv"
    df.rename(columns={"holiday": "Holiday"}).to_csv(path, index=False)
    return read_csv_inputs([str(path)], "time", "load_mw", ("t2m_c", "ssrd_wm2"), ("Holiday",))


def _float32(weather: pd.DataFrame) -> pd.DataFrame:
    """What the bank stores: the same values rounded to float32."""
    cols = [c for c in weather.columns if c != "valid_time"]
    return weather.assign(**{c: weather[c].astype("float32").astype(float) for c in cols})


class _Captured(Exception):
    pass


def _features_fed_to_core(monkeypatch, load, weather, tz, issue_hour):
    """Features of every backtest issue from the inputs the bank path gives ``run_backtest``
    and from the CSV inputs given directly (float32-rounded)."""
    seen = {}

    def spy(load_, weather_, config, **kw):
        seen.update(load=load_, weather=weather_, config=config)
        raise _Captured

    monkeypatch.setattr(bt, "run_backtest", spy)
    with pytest.raises(_Captured):
        backtest_csv(load, weather, ("t2m_c", "ssrd_wm2"), ("Holiday",), tz=tz,
                     issue_hour=issue_hour, holidays="FR", test_weeks=1)
    fc = FeatureConfig(tz=tz, issue_hour=issue_hour, holidays="FR",
                       weather_cols=("t2m_c", "ssrd_wm2"), known_cols=("Holiday",))
    assert seen["config"] == ModelConfig(features=fc)
    s = prepare_load(load)
    res = s.index[1] - s.index[0]
    first = target_day(s.index[0], tz) + pd.Timedelta(days=7)
    days = pd.date_range(first, bt.test_days(s, tz, 1)[-1], freq="D")
    issues = pd.DatetimeIndex([issue_time_for_day(d, tz, issue_hour) for d in days])
    cols = ["t2m_c", "ssrd_wm2", "Holiday"]
    direct = build_features(s, prepare_weather(_float32(weather), cols, res), issues, fc, res)
    bank = build_features(prepare_load(seen["load"]), prepare_weather(seen["weather"], cols, res),
                          issues, fc, res)
    return direct, bank


@pytest.mark.parametrize("tz, issue_hour", [
    ("Europe/Paris", 10.0),          # DST change inside the data (2026-03-29)
    ("Pacific/Kiritimati", 0.0),     # UTC+14, earliest possible issue
    ("Pacific/Pago_Pago", 23.5),     # UTC-11, latest issue, fractional hour
])
def test_every_issue_sees_the_whole_csv_weather(tmp_path, monkeypatch, tz, issue_hour):
    load, weather = _csv(tmp_path, tz=tz, start="2026-02-20", days=45)
    direct, bank = _features_fed_to_core(monkeypatch, load, weather, tz, issue_hour)
    pd.testing.assert_frame_equal(bank, direct)
    # Warm-up included from the first issue on: the smoothed temperature is never missing.
    assert direct["t2m_c_prev_day_mean"].notna().all()


def test_bank_path_gives_the_metrics_of_the_core_path(tmp_path):
    load, weather = _csv(tmp_path)
    res = backtest_csv(load, weather, ("t2m_c", "ssrd_wm2"), ("Holiday",), tz="Europe/Paris",
                       issue_hour=10.0, holidays="FR", test_weeks=1, model_params=FAST)
    fc = FeatureConfig(tz="Europe/Paris", issue_hour=10.0, holidays="FR",
                       weather_cols=("t2m_c", "ssrd_wm2"), known_cols=("Holiday",))
    ref = run_backtest(load, _float32(weather), ModelConfig(features=fc, **FAST), test_weeks=1)
    assert res.report["metrics"]["n"] == 7 * 24
    for k, v in ref.report["metrics"].items():
        assert res.report["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True), k
    np.testing.assert_allclose(res.forecasts["p50_mw"], ref.forecasts["p50_mw"], rtol=1e-12)
    assert res.report["inputs"]["bank"] == BANK_LABEL
    assert res.report["inputs"]["known_cols"] == ["Holiday"]
    assert res.report["inputs"]["weather_cols"] == ["t2m_c", "ssrd_wm2"]
    assert res.report["inputs"]["csv_import"]["runs"] > 60


def test_temporary_bank_is_removed_also_on_error(tmp_path, monkeypatch):
    load, weather = _csv(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))

    def boom(*args, **kw):
        assert any(tmp.iterdir())  # the bank exists while the pipeline runs
        raise RuntimeError("boom")

    monkeypatch.setattr(bt, "run_backtest", boom)
    with pytest.raises(RuntimeError, match="boom"):
        backtest_csv(load, weather, ("t2m_c",), (), test_weeks=1)
    assert not any(tmp.iterdir())


def test_import_writes_the_load_and_overlapping_runs(tmp_path):
    load, weather = _csv(tmp_path, days=20)
    bank = Bank(str(tmp_path / "bank"))
    stats = import_csv_inputs(bank, load, weather, ["t2m_c"], warmup_days=3)
    got = read_load(bank, ["csv"])
    assert len(got) == len(load) == stats["load_rows"]
    np.testing.assert_array_equal(got["load_mw"].to_numpy(), load.to_numpy())
    back, ahead = run_window(3)
    assert back == pd.Timedelta(hours=46) and ahead == pd.Timedelta(hours=78)
    # Runs reach further for intraday windows longer than a day-ahead's 48 h, never less.
    assert run_window(3, span=pd.Timedelta(hours=60)) == (back, ahead + pd.Timedelta(hours=12))
    assert run_window(3, span=pd.Timedelta(hours=36)) == (back, ahead)
    part = bank.read("weather_forecast", {"model": ["csv"], "run_date": ["2026-01-10"]})
    assert part["valid_time"].min() == pd.Timestamp("2026-01-10", tz="UTC") - back
    assert part["valid_time"].max() == pd.Timestamp("2026-01-10", tz="UTC") + ahead
    assert (part["available_at"] == pd.Timestamp("2026-01-10T04:00Z")).all()
    assert set(part["location"]) == {"csv"} and "ssrd_wm2" not in part
    # The bulk writer stores what write_weather_run would for the same rows.
    ref = Bank(str(tmp_path / "ref"))
    write_weather_run(ref, "csv", "2026-01-10T00Z", part[["valid_time", "location", "t2m_c"]])
    pd.testing.assert_frame_equal(
        ref.read("weather_forecast", {"model": ["csv"], "run_date": ["2026-01-10"]}), part)


@pytest.mark.parametrize("cols, msg", [(("t2m", "Location"), "reserved"),
                                       (("Temp", "temp"), "differ only by case")])
def test_columns_the_bank_cannot_hold_are_refused(cols, msg):
    with pytest.raises(ConfigError, match=msg):
        check_columns(cols)


def test_a_csv_without_load_values_is_an_input_error(tmp_path):
    load, weather = _csv(tmp_path, days=20)
    with pytest.raises(InputError, match="fewer than 3 values"):
        backtest_csv(load * np.nan, weather, ("t2m_c",), ())
