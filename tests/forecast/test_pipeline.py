"""Bank-driven train / predict / promote on a small synthetic bank (weather runs + load)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aggregat.bank import Bank, read_forecast, write_load, write_weather_run
from aggregat.config import TargetSettings, load_environment
from aggregat.errors import AggregatError, ConfigError
from aggregat.forecast import pipeline
from aggregat.forecast.core import blend
from aggregat.forecast.registry import Registry
from aggregat.forecast.targets import (
    Target,
    combine_models,
    forecast_span,
    issue_weather,
    portfolio_issue_weather,
    resolve_targets,
    select_runs,
    site_mean,
    target_weather,
)

START = pd.Timestamp("2026-08-25T00:00Z")
DAYS = 50
END = START + pd.Timedelta(days=DAYS)
ISSUE = pd.Timestamp("2026-10-12T09:00Z")  # 11:00 Paris on D-1 = Oct 12; D = Oct 13
AROME, ARPEGE = "arome-0025", "arpege-01"
CONFIG = """
default_env = "test"
[env.test]
root = "{root}"
workers = 1
[env.test.forecast]
min_train_days = 14
validation_days = 7
promotion_margin = 0.02
[env.test.forecast.model_params]  # a small, quick LightGBM
max_rounds = 80
learning_rate = 0.2
min_data_in_leaf = 10
num_leaves = 15
calibration_days = 7
n_jobs = 1
"""


def _truth(times: pd.DatetimeIndex) -> np.ndarray:
    h = (times - START) / pd.Timedelta(hours=1)
    return 12 + 6 * np.sin(2 * np.pi * (h - 9) / 24) + 4 * np.sin(2 * np.pi * h / (24 * 9))


def _build_bank(root: Path) -> None:
    rng = np.random.default_rng(0)
    bank = Bank(str(root / "bank"))
    times = pd.date_range(START, END, freq="h", inclusive="left")
    temp = _truth(times)
    local = times.tz_convert("Europe/Paris")
    load = (300 + 40 * np.sin(2 * np.pi * (local.hour - 7) / 24) - 5 * temp
            + 30 * (local.day_of_week < 5) + rng.normal(0, 3, len(times)))
    write_load(bank, pd.DataFrame({"target_id": "portfolio", "time": times, "load_mw": load}))
    for model, every_h, lead_h in ((AROME, 12, 51), (ARPEGE, 24, 102)):
        for run in pd.date_range(START - pd.Timedelta(days=4), END, freq=f"{every_h}h"):
            valid = pd.date_range(run, run + pd.Timedelta(hours=lead_h), freq="h")
            rows = []
            for loc, offset in (("s1", -1.0), ("s2", 1.0)):
                rows.append(pd.DataFrame({
                    "valid_time": valid, "location": loc,
                    "t2m_c": _truth(valid) + offset + rng.normal(0, 0.5, len(valid)),
                    "ssrd_wm2": np.clip(400 * np.sin(2 * np.pi * (valid.hour - 6) / 24), 0, None),
                }))
            write_weather_run(bank, model, run, pd.concat(rows, ignore_index=True))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    _build_bank(root)
    return root


@pytest.fixture
def env(built, tmp_path):
    """An environment over a private copy of the bank, with an empty registry."""
    shutil.copytree(built / "bank", tmp_path / "bank")
    cfg = tmp_path / "aggregat.toml"
    cfg.write_text(CONFIG.format(root=tmp_path))
    return load_environment("test", cfg)


def _with(env, **forecast):
    return env.model_copy(update={"forecast": env.forecast.model_copy(update=forecast)})


def _target(env) -> Target:
    return resolve_targets(env, Bank(env.bank))[0]


@pytest.fixture
def trained(env):
    r = pipeline.train_target(env, _target(env))
    return env, r


# ----------------------------------------------------------------------------- targets
def test_default_target_per_load_series(env):
    targets = resolve_targets(env, Bank(env.bank))
    assert [t.id for t in targets] == ["portfolio"] and targets[0].sites == ()
    with pytest.raises(ConfigError, match="unknown target.*nope.*portfolio"):
        resolve_targets(env, Bank(env.bank), ["nope"])


def test_site_mean_weighs_values_and_averages_directions_as_vectors():
    t = pd.Timestamp("2026-10-12T00:00Z")
    df = pd.DataFrame({"model": "m", "run_time": t, "available_at": t, "valid_time": t,
                       "location": ["a", "b", "c"], "t2m_c": [10.0, 20.0, np.nan],
                       "wind_dir_10m_deg": [350.0, 10.0, np.nan]})
    out = site_mean(df, ["t2m_c", "wind_dir_10m_deg"], {"a": 3.0, "b": 1.0})
    assert out["t2m_c"].tolist() == [12.5]
    # 350 and 10 degrees (weights 3:1) average to just west of north, not to 95 (south-ish).
    expected = np.rad2deg(np.arctan2(3 * np.sin(np.deg2rad(350)) + np.sin(np.deg2rad(10)),
                                     3 * np.cos(np.deg2rad(350)) + np.cos(np.deg2rad(10))))
    assert np.isclose(out["wind_dir_10m_deg"].iloc[0], expected % 360)
    assert 354 < out["wind_dir_10m_deg"].iloc[0] < 356
    missing = site_mean(df.assign(wind_dir_10m_deg=np.nan), ["wind_dir_10m_deg"], {})
    assert missing["wind_dir_10m_deg"].isna().all()  # missing everywhere stays missing


def test_site_weights_and_model_preference(env):
    bank = Bank(env.bank)
    t = Target.from_settings(TargetSettings(id="p", sites=["s1", "s2"],
                                            weights={"s1": 1.0, "s2": 0.0}))
    w = target_weather(bank, t, ISSUE - pd.Timedelta(days=2), ISSUE + pd.Timedelta(days=3),
                       issued_before=ISSUE)
    raw = pd.read_parquet(Bank(env.bank).store.local_path(
        "weather_forecast/model=arome-0025/run_date=2026-10-12/run=00.parquet"))
    s1 = raw[raw["location"] == "s1"].set_index("valid_time")["t2m_c"]
    got = w[(w["model"] == AROME) & (w["run_time"] == pd.Timestamp("2026-10-12T00:00Z"))]
    assert len(got) and np.allclose(got.set_index("valid_time")["t2m_c"], s1.reindex(
        got["valid_time"]), atol=1e-4)
    assert (w["available_at"] <= ISSUE).all()
    # Beyond AROME's leads, ARPEGE; where AROME was available first, never ARPEGE.
    first_arome = w[w["model"] == AROME].groupby("valid_time")["available_at"].min()
    arp = w[w["model"] == ARPEGE]
    limit = arp["valid_time"].map(first_arome)
    assert len(arp) and (limit.isna() | (arp["available_at"] < limit)).all()
    assert limit.isna().any() and limit.notna().any()  # both cases occur
    with pytest.raises(ConfigError, match="weights for sites not in its site list"):
        Target.from_settings(TargetSettings(id="p", sites=["s1"], weights={"s9": 1.0}))


def test_combine_models_matches_as_of_selection_per_issue_time():
    rng = np.random.default_rng(3)
    rows = []
    base = pd.Timestamp("2026-01-01T00:00Z")
    for model, every, lead in (("A", 3, 12), ("B", 6, 30)):
        for k in range(8):
            run = base + pd.Timedelta(hours=every * k)
            avail = run + pd.Timedelta(hours=float(rng.uniform(1, 5)))
            for s in range(lead + 1):
                rows.append((model, run, avail, run + pd.Timedelta(hours=s), rng.normal()))
    frame = pd.DataFrame(rows, columns=["model", "run_time", "available_at", "valid_time", "x"])
    kept = combine_models(frame, ["A", "B"])
    assert not kept.duplicated(["available_at", "valid_time"]).any()
    for t in pd.date_range(base, base + pd.Timedelta(hours=50), freq="227min"):
        seen = frame[frame["available_at"] <= t].sort_values(["valid_time", "run_time"])
        pref = seen.assign(b=seen["model"] == "B")
        pref = pref[~(pref["b"] & pref.groupby("valid_time")["b"].transform("min").eq(False))]
        want = pref.groupby("valid_time")["x"].last()
        got = (kept[kept["available_at"] <= t].sort_values("available_at")
               .groupby("valid_time")["x"].last())
        pd.testing.assert_series_equal(got, want)


def test_issue_weather_reads_only_the_runs_issues_use(env):
    bank = Bank(env.bank)
    issues = pd.DatetimeIndex([ISSUE - pd.Timedelta(days=1), ISSUE])
    files, lead = select_runs(bank, AROME, issues, 102)
    # AROME runs 00Z/12Z published at 03Z/15Z: at 09Z the newest two are 00Z and 12Z the day
    # before; ARPEGE (00Z, published 04Z): today's and yesterday's.
    assert [f.split("model=")[1] for f in files] == [
        "arome-0025/run_date=2026-10-10/run=12.parquet",
        "arome-0025/run_date=2026-10-11/run=00.parquet",
        "arome-0025/run_date=2026-10-11/run=12.parquet",
        "arome-0025/run_date=2026-10-12/run=00.parquet"]
    assert lead == 69.0  # from the 12Z run the day before to two days after the issue
    # An intraday issue reaches intraday_hours ahead, not the end of day D (48 h).
    for hours, want in ((36, 57.0), (60, 81.0)):
        span = forecast_span("intraday", hours)
        assert select_runs(bank, AROME, issues, 102, span=span) == (files, want)
    assert select_runs(bank, AROME, issues, 70, span=forecast_span("intraday", 60))[1] == 70
    w = issue_weather(bank, _target(env), issues)
    assert set(w["run_time"].astype(str)) <= {
        "2026-10-10 12:00:00+00:00", "2026-10-11 00:00:00+00:00", "2026-10-11 12:00:00+00:00",
        "2026-10-12 00:00:00+00:00", "2026-10-10 00:00:00+00:00"}
    assert set(w["model"]) == {AROME, ARPEGE}
    assert not w.duplicated(["available_at", "valid_time"]).any()


def test_a_portfolio_read_gives_each_target_its_own_weather(env):
    bank = Bank(env.bank)
    days = pd.date_range(ISSUE - pd.Timedelta(days=20), ISSUE, freq="D")
    wanted = {  # other sites, weights, models, issue times and spans; one without sites (all)
        "a": (Target("a", sites=("s1",)), days),
        "b": (Target("b", sites=("s1", "s2"), weights={"s1": 3.0}, weather_models=(ARPEGE,)),
              days[5:]),
        "c": (Target("c", weather_models=(AROME, ARPEGE), weather_cols=("t2m_c",)), days[::3]),
    }
    together = portfolio_issue_weather(bank, wanted, max_lead_h=102.0, chunk_files=7)
    for tid, (target, issues) in wanted.items():
        alone = issue_weather(bank, target, issues, max_lead_h=102.0)
        assert len(alone) > 100
        pd.testing.assert_frame_equal(together[tid], alone)
    assert set(together["b"]["model"]) == {ARPEGE}
    warm = issue_weather(bank, Target("warm", sites=("s2",)), days, max_lead_h=102.0)
    assert (together["a"]["t2m_c"] < warm["t2m_c"] - 1).mean() > 0.9  # s1 is 2 degrees colder


def test_training_a_portfolio_at_once_gives_the_models_trained_one_by_one(env, tmp_path):
    bank = Bank(env.bank)
    load = bank.read("load")
    write_load(bank, load.assign(target_id="other", load_mw=load["load_mw"] * 0.5 + 20))
    sites = '[[env.test.forecast.targets]]\nid = "{}"\nsites = [{}]\n'
    cfg = tmp_path / "aggregat.toml"
    cfg.write_text(CONFIG.format(root=tmp_path) + sites.format("portfolio", '"s1", "s2"')
                   + sites.format("other", '"s2"'))
    env = load_environment("test", cfg)
    now = pd.Timestamp("2026-10-14T03:00Z")
    together = {r.target: r for r in pipeline.train_targets(env, force=True, now=now)}
    assert {t: r.status for t, r in together.items()} == {"portfolio": "trained",
                                                           "other": "trained"}
    reg = Registry(env.registry)
    hashes = {t: reg.meta(t, r.version)["model_hash"] for t, r in together.items()}
    for target in resolve_targets(env, bank):
        alone = pipeline.train_target(env, target, force=True, now=now)
        assert reg.meta(target.id, alone["version"])["model_hash"] == hashes[target.id]
    assert hashes["portfolio"] != hashes["other"]


# ------------------------------------------------------------------------------- train
def test_train_promotes_first_model_and_keeps_it_when_not_better(trained):
    env, first = trained
    reg = Registry(env.registry)
    assert first["status"] == "trained" and first["promoted"] and not first["baseline"]
    assert reg.current("portfolio") == first["version"]
    meta = reg.meta("portfolio")
    assert meta["weather_cols"] == ["t2m_c", "ssrd_wm2"] and "t2m_c" in meta["features"]
    assert np.isfinite(meta["metrics"]["validation"]["mae"])
    assert meta["data_end"].startswith("2026-10-13T23:00")
    # Retrained on the same data: no day the current model has not seen -> no fair comparison.
    again = pipeline.train_target(env, _target(env), force=True,
                                  now=pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=2))
    assert again["status"] == "trained" and not again["promoted"]
    assert "only 0 validation day(s)" in again["reason"]
    assert reg.current("portfolio") == first["version"]
    assert len(reg.versions("portfolio")) == 2
    assert reg.meta("portfolio", again["version"])["promotion"]["promoted"] is False


def test_promotion_compares_on_days_the_current_model_never_saw(env):
    reg = Registry(env.registry)
    t = _target(env)
    early = pipeline.train_target(env, t, until=pd.Timestamp("2026-10-02T00:00Z"),
                                  now=pd.Timestamp("2026-10-02T01:00Z"))
    assert early["promoted"]
    # A week more data, but the new model must be 50 % better: it is not, the old one stays.
    r = pipeline.train_target(_with(env, promotion_margin=0.5), t, force=True,
                              now=pd.Timestamp("2026-10-14T01:00Z"))
    meta = reg.meta("portfolio", r["version"])
    assert meta["metrics"]["compared_days"] == 7
    assert np.isfinite(meta["metrics"]["current_on_compared"]["mae"])
    assert not r["promoted"] and "not better than current" in r["reason"]
    assert reg.current("portfolio") == early["version"]


def test_better_model_replaces_a_baseline(env):
    reg = Registry(env.registry)
    t = _target(env)
    base = pipeline.train_target(_with(env, min_train_days=200), t,
                                 until=pd.Timestamp("2026-10-02T00:00Z"),
                                 now=pd.Timestamp("2026-10-02T01:00Z"))
    assert base["baseline"] and base["promoted"]
    r = pipeline.train_target(env, t, now=pd.Timestamp("2026-10-14T01:00Z"))
    assert r["promoted"] and not r["baseline"] and r["mae_new"] < 0.98 * r["mae_current"]
    assert reg.current("portfolio") == r["version"]


def test_if_older_skips_a_young_model(trained):
    env, first = trained
    reg = Registry(env.registry)
    r = pipeline.train_target(env, _target(env), if_older=pd.Timedelta(days=7))
    assert r["status"] == "skipped" and "old" in r["reason"]
    assert reg.versions("portfolio") == [first["version"]]
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=8)
    r = pipeline.train_target(env, _target(env), if_older=pd.Timedelta(days=7), now=later)
    assert r["status"] == "trained" and len(reg.versions("portfolio")) == 2


def test_promotion_rule():
    from aggregat.forecast.core.validation import promotion_rule as rule

    assert rule(None, None, 0, float("nan"), float("nan"), 0.02)[0] is True
    assert rule("v1", None, 7, 9.7, 10.0, 0.02)[0] is True
    assert rule("v1", None, 7, 9.9, 10.0, 0.02)[0] is False
    assert rule("v1", None, 2, 1.0, 10.0, 0.02)[0] is False  # too few unseen days
    assert rule("v1", None, 7, float("nan"), 10.0, 0.02)[0] is False
    assert rule("v1", None, 7, 9.0, float("nan"), 0.02)[0] is True
    assert rule("v1", "corrupt", 0, float("nan"), float("nan"), 0.02)[0] is True


def test_parse_age():
    assert pipeline.parse_age("7d") == pd.Timedelta(days=7)
    assert pipeline.parse_age("36h") == pd.Timedelta(hours=36)
    with pytest.raises(ConfigError, match="^if_older 'soon'"):
        pipeline.parse_age("soon")


def test_default_issue_time_is_today_at_the_local_issue_hour(env):
    at = pipeline.default_issue_time
    assert at(env, pd.Timestamp("2026-11-28T15:00Z")) == pd.Timestamp("2026-11-28T09:00Z")
    # 00:30 in Paris is already the next local day.
    assert at(env, pd.Timestamp("2026-11-28T23:30Z")) == pd.Timestamp("2026-11-29T09:00Z")
    assert at(env, pd.Timestamp("2026-07-01T12:00Z")) == pd.Timestamp("2026-07-01T08:00Z")


def test_unknown_model_param_is_a_config_error(env):
    with pytest.raises(ConfigError, match="model_params: unknown key"):
        pipeline.model_config(_with(env, model_params={"rounds": 3}), ())


def test_p50_members_can_be_set_and_bad_ones_are_named(env):
    assert pipeline.model_config(env, ()).p50_members == ("level", "nowcast", "linear",
                                                         "linear_residual", "kernel")
    cfg = pipeline.model_config(_with(env, model_params={"p50_members": ["level", "nowcast"]}),
                                ())
    assert cfg.p50_members == ("level", "nowcast")
    with pytest.raises(ConfigError, match=r"model_params: p50_members \('level', 'ridge'\)"):
        pipeline.model_config(_with(env, model_params={"p50_members": ["level", "ridge"]}), ())


def test_school_holidays_setting_reaches_the_features_or_is_named(env):
    assert pipeline.model_config(env, ()).features.school_holidays is None
    cfg = pipeline.model_config(_with(env, school_holidays="FR-Zone C"), ())
    assert cfg.features.school_holidays == "FR-Zone C"
    with pytest.raises(ConfigError, match=r"\[env.test.forecast\] school_holidays: .*Zone Q"):
        pipeline.model_config(_with(env, school_holidays="FR-Zone Q"), ())


# ----------------------------------------------------------------------------- predict
def _parts(env) -> list[str]:
    return Bank(env.bank).files("forecast")


def test_predict_writes_forecast_idempotently(trained):
    env, first = trained
    r = pipeline.predict_target(env, _target(env), ISSUE)
    assert r["version"] == first["version"] and r["rows"] == 24
    fc = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE)
    assert len(fc) == 24 and (fc["model_version"] == first["version"]).all()
    assert not fc["is_baseline"].any()
    assert (fc["p10_mw"] <= fc["p50_mw"]).all() and (fc["p50_mw"] <= fc["p90_mw"]).all()
    assert fc["valid_time"].min() == pd.Timestamp("2026-10-12T22:00Z")
    files = _parts(env)
    pipeline.predict_target(env, _target(env), ISSUE)
    assert _parts(env) == files
    again = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE)
    pd.testing.assert_frame_equal(again, fc)
    pipeline.predict_target(env, _target(env), ISSUE - pd.Timedelta(days=1))
    assert len(_parts(env)) == 2


def test_predict_reads_only_recent_partitions(trained):
    env, _ = trained
    bank = Bank(env.bank)
    old = [bank.store.local_path(f) for f in bank.files("weather_forecast",
                                                        {"run_date": ["2026-08-27"]})]
    old += [bank.store.local_path(f) for f in bank.files("load", {"month": ["2026-08"]})]
    assert len(old) == 4
    for p in old:
        p.write_bytes(b"not parquet")
    r = pipeline.predict_target(env, _target(env), ISSUE)
    assert r["rows"] == 24 and r["baseline_rows"] == 0
    # The corruption is real: training, which reads history, trips over it.
    with pytest.raises(AggregatError):
        pipeline.train_target(env, _target(env), force=True)


def test_baseline_fallback_is_flagged_when_no_model(env):
    r = pipeline.predict_target(env, _target(env), ISSUE)
    assert r["version"] == "baseline" and r["note"] == "no model in the registry"
    fc = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE)
    assert len(fc) == 24 and fc["is_baseline"].all() and (fc["model_version"] == "baseline").all()
    load = pd.read_parquet(Bank(env.bank).store.local_path(
        Bank(env.bank).files("load", {"month": ["2026-10"]})[0])).set_index("time")["load_mw"]
    week_before = load.reindex(fc["valid_time"] - pd.Timedelta(days=7)).to_numpy()
    assert np.allclose(fc["p50_mw"].to_numpy(), week_before)


def test_corrupt_current_model_falls_back_to_flagged_baseline(trained):
    env, first = trained
    path = Registry(env.registry).store.local_path(f"portfolio/{first['version']}/model.pkl")
    path.write_bytes(path.read_bytes()[:-10])
    r = pipeline.predict_target(env, _target(env), ISSUE)
    assert r["version"] == "baseline" and "corrupt" in r["note"]
    assert read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE)["is_baseline"].all()


# --------------------------------------------------------------------------------- CLI
def _cli(env, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "aggregat.cli.main", *args, "--config", env.source_file]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_model_trained_before_reinstall_is_listed_and_used_by_a_fresh_process(trained):
    """The registry lives in the env's storage: a new interpreter (as after a reinstall of the
    package) lists the model, predicts with it, and can roll back with promote."""
    env, first = trained
    out = _cli(env, "model", "list")
    assert out.returncode == 0, out.stderr
    assert first["version"] in out.stdout
    out = _cli(env, "model", "predict", "--issue-time", "2026-10-12T11:00")  # Paris time
    assert out.returncode == 0, out.stderr
    fc = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE)
    assert len(fc) == 24 and (fc["model_version"] == first["version"]).all()
    out = _cli(env, "model", "train", "--if-older", "7d")
    assert out.returncode == 0 and "skipped" in out.stdout
    out = _cli(env, "model", "promote", "--target", "portfolio", "--version", "nope")
    assert out.returncode == 2 and "no version 'nope'" in out.stderr


def test_targets_train_and_predict_in_parallel_processes(env):
    bank = Bank(env.bank)
    load = bank.read("load")
    write_load(bank, load.assign(target_id="half", load_mw=load["load_mw"] / 2,
                                 updated_at=pd.Timestamp.now(tz="UTC")))
    out = _cli(env, "model", "train", "--workers", "2")
    assert out.returncode == 0, out.stderr + out.stdout
    reg = Registry(env.registry)
    assert reg.targets() == ["half", "portfolio"]
    assert all(reg.current(t) for t in reg.targets())
    out = _cli(env, "model", "predict", "--issue-time", "2026-10-12T09:00Z", "--workers", "2")
    assert out.returncode == 0, out.stderr + out.stdout
    fc = read_forecast(bank, issue_time=ISSUE)
    assert sorted(fc["target_id"].unique()) == ["half", "portfolio"] and len(fc) == 48
    assert not fc["is_baseline"].any()
    half = fc.set_index(["target_id", "valid_time"])["p50_mw"]
    ratio = (half["half"] / half["portfolio"]).to_numpy()
    assert np.all(np.abs(ratio - 0.5) < 0.1)


def test_predict_on_a_dask_cluster_matches_local(trained):
    distributed = pytest.importorskip("distributed")
    env, first = trained
    pipeline.predict_target(env, _target(env), ISSUE)
    local = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE)
    Bank(env.bank).delete_partition("forecast", {"target": "portfolio",
                                                 "issue_date": f"{ISSUE:%Y-%m-%d}"})
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:  # no 8787 clash
        on_dask = env.model_copy(update={"scheduler": cluster.scheduler_address})
        results = pipeline.predict_targets(on_dask, ISSUE)
    assert [r.status for r in results] == ["predicted"]
    pd.testing.assert_frame_equal(read_forecast(Bank(env.bank), ["portfolio"],
                                                issue_time=ISSUE), local)


def test_backtest_on_the_bank_runs_the_production_pipeline(env, tmp_path):
    out = tmp_path / "bt"
    proc = _cli(env, "model", "backtest", "--test-weeks", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("MAE=") and "coverage=" in last
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["bank"] == env.bank
    assert report["metrics"]["n"] > 0 and (out / "backtest.png").is_file()


def test_intraday_model_lives_beside_the_day_ahead_one(trained):
    env, first = trained
    r = pipeline.train_target(env, _target(env), horizon="intraday")
    assert r["target"] == "portfolio@intraday" and r["promoted"]
    reg = Registry(env.registry)
    assert reg.current("portfolio") == first["version"]  # day-ahead untouched
    assert reg.meta("portfolio@intraday")["horizon"] == "intraday"
    p = pipeline.predict_target(env, _target(env), ISSUE, horizon="intraday")
    assert p["version"] == r["version"] and p["rows"] == 36 and p["baseline_rows"] == 0
    assert p["blended_rows"] == 0  # no day-ahead forecast in the bank yet
    fc = read_forecast(Bank(env.bank), ["portfolio@intraday"], issue_time=ISSUE)
    assert fc["valid_time"].min() == ISSUE and len(fc) == 36
    day_ahead = pipeline.predict_target(env, _target(env), ISSUE)
    assert day_ahead["rows"] == 24
    assert len(read_forecast(Bank(env.bank), ["portfolio@intraday"], issue_time=ISSUE)) == 36

    # Predicted again, the intraday forecast is blended with the day-ahead one of the same
    # issue wherever both cover a valid time (day D: 22:00Z to 20:00Z, the last intraday hour).
    again = pipeline.predict_target(env, _target(env), ISSUE, horizon="intraday")
    assert again["blended_rows"] == 23 and again["rows"] == 36
    q = ["p10_mw", "p50_mw", "p90_mw"]
    da = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE).set_index("valid_time")
    got = read_forecast(Bank(env.bank), ["portfolio@intraday"], issue_time=ISSUE
                        ).set_index("valid_time")
    alone = fc.set_index("valid_time")
    both = da.index.intersection(alone.index)
    w = blend.day_ahead_weight((both - ISSUE) / pd.Timedelta(hours=1))[:, None]
    want = np.sort((1 - w) * alone.loc[both, q].to_numpy() + w * da.loc[both, q].to_numpy(),
                   axis=1)
    np.testing.assert_allclose(got.loc[both, q].to_numpy(), want, rtol=1e-5)
    rest = alone.index.difference(both)
    np.testing.assert_allclose(got.loc[rest, q].to_numpy(), alone.loc[rest, q].to_numpy())
    off = _with(env, intraday_blend=False)
    assert pipeline.predict_target(off, _target(off), ISSUE, horizon="intraday")[
        "blended_rows"] == 0
    with pytest.raises(ConfigError, match="^horizon 'hourly'"):
        pipeline.train_target(env, _target(env), horizon="hourly")


def test_daily_publish_leaves_intraday_forecasts_out_unless_named(trained, tmp_path):
    import sqlalchemy as sa

    from aggregat.energy.publish import publish_forecast

    env, _ = trained
    pipeline.train_target(env, _target(env), horizon="intraday")
    pipeline.predict_target(env, _target(env), ISSUE)
    pipeline.predict_target(env, _target(env), ISSUE, horizon="intraday")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'energy.db'}")
    report = publish_forecast(engine, Bank(env.bank), env.energy, ISSUE.to_pydatetime())
    assert report.targets == ["portfolio"] and report.rows == 24
    both = publish_forecast(engine, Bank(env.bank), env.energy, ISSUE.to_pydatetime(),
                            target_ids=["portfolio", "portfolio@intraday"])
    assert both.targets == ["portfolio", "portfolio@intraday"] and both.rows == 24 + 36


# ------------------------------------------------------------------------- input guards
def _overwrite_load(env, times: pd.DatetimeIndex, values) -> None:
    write_load(Bank(env.bank), pd.DataFrame({"target_id": "portfolio", "time": times,
                                             "load_mw": values}))


def test_training_leaves_a_stuck_meter_out_and_says_so(env):
    stuck = pd.date_range("2026-09-20T00:00Z", periods=12, freq="h")
    _overwrite_load(env, stuck, 321.0)
    r = pipeline.train_target(env, _target(env))
    assert r["status"] == "trained" and r["masked_intervals"] == 12
    assert r["guards"].startswith("flatline 12 intervals (2026-09-20T00:00Z..")
    meta = Registry(env.registry).meta("portfolio")
    assert meta["guards"]["found"]["flatline"]["intervals"] == 12
    assert set(meta["guards"]["weather_reference"]) == {"t2m_c", "ssrd_wm2"}


def test_clean_inputs_are_not_flagged(trained):
    env, _ = trained
    r = pipeline.predict_target(env, _target(env), ISSUE)
    assert r["guard_flags"] is None and r["baseline_rows"] == 0
    fc = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE)
    assert fc["guard_flags"].isna().all()


def test_spike_in_recent_load_falls_back_to_the_flagged_baseline(trained):
    env, first = trained
    _overwrite_load(env, pd.DatetimeIndex([ISSUE - pd.Timedelta(days=2)]), 5000.0)
    r = pipeline.predict_target(env, _target(env), ISSUE)
    assert r["guard_flags"] == "spike" and r["version"] == "baseline"
    assert "input guards tripped (spike 1 interval" in r["note"]
    fc = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE)
    assert fc["is_baseline"].all() and (fc["guard_flags"] == "spike").all()
    assert fc["p50_mw"].max() < 1000  # the spike itself is not last week's value
    off = _with(env, guards=env.forecast.guards.model_copy(update={"spike_z": 0.0}))
    r = pipeline.predict_target(off, _target(env), ISSUE)
    assert r["guard_flags"] is None and r["version"] == first["version"]


def test_weather_in_kelvin_falls_back_to_the_flagged_baseline(trained):
    env, _ = trained
    bank = Bank(env.bank)
    for model, every_h, lead_h in ((AROME, 12, 51), (ARPEGE, 24, 102)):
        for run in pd.date_range((ISSUE - pd.Timedelta(days=4)).floor("D"), ISSUE,
                                 freq=f"{every_h}h"):
            valid = pd.date_range(run, run + pd.Timedelta(hours=lead_h), freq="h")
            write_weather_run(bank, model, run, pd.DataFrame({
                "valid_time": valid, "location": "s1", "t2m_c": _truth(valid) + 273.15,
                "ssrd_wm2": np.clip(400 * np.sin(2 * np.pi * (valid.hour - 6) / 24), 0, None)}))
    r = pipeline.predict_target(env, _target(env), ISSUE)
    assert r["guard_flags"] == "weather_drift" and "weather_drift t2m_c" in r["note"]
    fc = read_forecast(bank, ["portfolio"], issue_time=ISSUE)
    assert fc["is_baseline"].all()


# ------------------------------------------------------------------- explained forecasts
def test_explanation_is_stored_with_the_forecast_and_sums_to_p50(trained, tmp_path):
    from typer.testing import CliRunner

    import aggregat
    from aggregat.cli.main import app

    env, _ = trained
    pipeline.predict_target(env, _target(env), ISSUE)
    fc = read_forecast(Bank(env.bank), ["portfolio"], issue_time=ISSUE).set_index("valid_time")
    ex = aggregat.explain(env, "portfolio", ISSUE)
    assert isinstance(ex, aggregat.Explanation)
    np.testing.assert_allclose(ex.p50.reindex(fc.index).to_numpy(), fc["p50_mw"].to_numpy(),
                               rtol=1e-6)
    assert {"temperature", "radiation", "calendar", "lags", "level", "base"} <= set(ex.wide())
    png = tmp_path / "explain.png"
    res = CliRunner().invoke(app, ["model", "explain", "--env", "test", "--config",
                                   str(tmp_path / "aggregat.toml"), "--target", "portfolio",
                                   "--issue-time", "2026-10-12T09:00Z", "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert "temperature" in res.output and png.read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(app, ["model", "explain", "--env", "test", "--config",
                                   str(tmp_path / "aggregat.toml"), "--target", "portfolio",
                                   "--issue-time", "2026-10-01T09:00Z"])
    assert "no explained forecast" in str(res.exception)  # one line, exit 2 from `aggregat`


# --------------------------------------------------------------------- portfolio hierarchy
def _portfolio_env(env):
    """Two sites' loads ``a`` and ``b`` under ``total``, which has no load of its own."""
    bank = Bank(env.bank)
    load = pd.read_parquet(bank.store.local_path(bank.files("load")[0]))
    frames = [load]
    for f in bank.files("load")[1:]:
        frames.append(pd.read_parquet(bank.store.local_path(f)))
    load = pd.concat(frames)
    rng = np.random.default_rng(5)
    a = load["load_mw"].to_numpy() * 0.6 + rng.normal(0, 4, len(load))
    write_load(bank, pd.DataFrame({"target_id": "a", "time": load["time"], "load_mw": a}))
    write_load(bank, pd.DataFrame({"target_id": "b", "time": load["time"],
                                   "load_mw": load["load_mw"].to_numpy() - a}))
    cols = ["t2m_c", "ssrd_wm2"]
    return _with(env, targets=[TargetSettings(id="total", weather_cols=cols),
                               TargetSettings(id="a", parent="total", weather_cols=cols),
                               TargetSettings(id="b", parent="total", weather_cols=cols)])


def test_a_parent_without_load_is_the_sum_of_its_children(env):
    penv = _portfolio_env(env)
    targets = {t.id: t for t in resolve_targets(penv, Bank(penv.bank))}
    assert targets["total"].leaves == ("a", "b") and targets["a"].parent == "total"
    got = pipeline.target_load(Bank(penv.bank), targets["total"]).set_index("time")["load_mw"]
    want = pipeline.target_load(Bank(penv.bank), Target("portfolio")).set_index("time")
    np.testing.assert_allclose(got.reindex(want.index).to_numpy(), want["load_mw"].to_numpy())
    bad = _with(env, targets=[TargetSettings(id="a", parent="nope")])
    with pytest.raises(ConfigError, match="parent 'nope' is not a configured target"):
        resolve_targets(bad, Bank(env.bank))


def test_portfolio_forecasts_are_reconciled_and_still_explained(env):
    import aggregat
    from aggregat.forecast.portfolio import SPEC_FILE

    penv = _portfolio_env(env)
    results = pipeline.train_targets(penv, workers=1)
    assert all(r.status == "trained" for r in results)
    spec = json.loads(Registry(penv.registry).store.read_bytes(
        SPEC_FILE.format(horizon="day-ahead")))
    assert spec["method"] in ("bottom_up", "ols", "mint_shrink") and spec["rows"] > 0
    assert spec["nodes"] == ["total", "a", "b"]
    pipeline.predict_targets(penv, ISSUE, workers=1)
    fc = {t: read_forecast(Bank(penv.bank), [t], issue_time=ISSUE).set_index("valid_time")
          for t in ("total", "a", "b")}
    np.testing.assert_allclose(fc["total"]["p50_mw"], fc["a"]["p50_mw"] + fc["b"]["p50_mw"])
    assert (fc["a"]["reconciliation"] == spec["method"]).all()
    for t in ("total", "a", "b"):
        assert (fc[t]["p10_mw"] <= fc[t]["p50_mw"]).all()
        ex = aggregat.explain(penv, t, ISSUE)
        np.testing.assert_allclose(ex.p50.reindex(fc[t].index), fc[t]["p50_mw"], rtol=1e-6)
    # Predicting one target again reconciles the issue again: still coherent, still explained.
    pipeline.predict_targets(penv, ISSUE, only=["a"], workers=1)
    again = {t: read_forecast(Bank(penv.bank), [t], issue_time=ISSUE).set_index("valid_time")
             for t in ("total", "a", "b")}
    np.testing.assert_allclose(again["total"]["p50_mw"],
                               again["a"]["p50_mw"] + again["b"]["p50_mw"])
    ex = aggregat.explain(penv, "b", ISSUE)
    np.testing.assert_allclose(ex.p50.reindex(again["b"].index), again["b"]["p50_mw"],
                               rtol=1e-6)
