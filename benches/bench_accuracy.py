"""Accuracy lab: P50 MAE on the two reference sets (issue 18's protocol) over several tree seeds.

The CLI's `aggregat model backtest` runs (docs/forecasting.md, "On the reference inputs") give
every score; this replica gives P50's MAE only, in a fraction of the time, so an idea can be
measured over seeds (a seed moves MAE by ~1 %): the features are built once per set and cached,
then the weekly retrains of the protocol run with the P10/P90 fits cut to one round (P50 does not
depend on them). On the code of 2026-12-07 it gave exactly the CLI's P50 MAE.
Needs ../shared/data (not in the repository, so not a test). One line per run, then the means:

    python benches/bench_accuracy.py [--sets 307,vic] [--seeds 0,1,2] [--members level,...]
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aggregat.forecast.core import backtest as bt
from aggregat.forecast.core import models
from aggregat.forecast.core.features import (
    FeatureConfig,
    build_features,
    prepare_load,
    prepare_weather,
)
from aggregat.forecast.core.models import (
    ModelConfig,
    fit_frame,
    persistence_errors,
    predict_frame,
    training_issues,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "loads"
SETS = {  # the reference inputs of ../shared/data/README.md
    "vic": dict(paths=["vic_elec/vic_elec.csv"], time_col="Time", load_col="Demand",
                weather=["Temperature"], known=["Holiday"], holidays="AU-VIC",
                tz="Australia/Melbourne", weeks=8),
    "307": dict(paths=["openstef_307/307-train-data.csv", "openstef_307/307-test-data.csv"],
                time_col="", load_col="load",
                weather="temp,radiation,windspeed,windspeed_100m,clouds,humidity,pressure,rain"
                .split(","), known=[], holidays="NL", tz="Europe/Amsterdam", weeks=4),
}


def features(name: str, cache: Path) -> tuple:
    """(load, feature rows, test issues, weekly cutoffs) of a set, cached in ``cache``."""
    s = SETS[name]
    path = cache / f"features_{name}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    fc = feature_config(name)
    load, weather = bt.read_csv_inputs([str(DATA / p) for p in s["paths"]], s["time_col"],
                                       s["load_col"], s["weather"], s["known"])
    for c in s["weather"] + s["known"]:  # as the CLI's import stores them
        weather[c] = weather[c].astype(np.float32).astype(float)
    S = prepare_load(load)
    res = S.index[1] - S.index[0]
    w = prepare_weather(weather, [*fc.weather_cols, *fc.known_cols], res)
    tests = bt.test_issues(bt.test_days(S, fc.tz, s["weeks"]), fc)
    step = pd.Timedelta(days=7)
    cutoffs = [tests[0] + k * step for k in range(int((tests[-1] - tests[0]) / step) + 1)]
    obs = S.dropna()
    issues = pd.DatetimeIndex(sorted(set().union(
        *[training_issues(obs, fc, c, res) for c in cutoffs], tests)))
    out = (S, build_features(S, w, issues, fc, res), tests, cutoffs)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def feature_config(name: str) -> FeatureConfig:
    s = SETS[name]
    return FeatureConfig(tz=s["tz"], issue_hour=10, holidays=s["holidays"],
                         weather_cols=tuple(s["weather"]), known_cols=tuple(s["known"]))


def p50_mae(name: str, cfg: ModelConfig, data: tuple) -> float:
    """The protocol's weekly retrains, P50 only: MAE over the test weeks."""
    S, feats, tests, cutoffs = data
    res = S.index[1] - S.index[0]
    valid = pd.DatetimeIndex(feats["valid_time"])
    actual = S.reindex(valid).to_numpy(dtype=float)
    err = []
    for cutoff in cutoffs:
        block = tests[(tests >= cutoff) & (tests < cutoff + pd.Timedelta(days=7))]
        train = ((valid + res) <= cutoff) & (feats["issue_time"] < cutoff).to_numpy()
        m = fit_frame(feats.loc[train], actual[train], cfg, res,
                      persistence_errors(S[S.index + res <= cutoff]))
        rows = feats["issue_time"].isin(block).to_numpy()
        p = predict_frame(m, feats.loc[rows])["p50_mw"].to_numpy()
        err.append((p - actual[rows])[np.isfinite(actual[rows])])
    return float(np.mean(np.abs(np.concatenate(err))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="307,vic")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--members", default="", help="p50_members, comma-separated (default: the "
                    "code's)")
    ap.add_argument("--cache", default="/tmp/aggregat-bench-accuracy")
    a = ap.parse_args()
    original = models._TrainSet.fit_cal

    def p50_only(self, q, target):  # P10/P90: one round (P50 does not depend on them)
        if q != 0.5:
            return 1, np.zeros(int(self.cal.sum())), None
        return original(self, q, target)

    models._TrainSet.fit_cal = p50_only
    extra = {"p50_members": tuple(a.members.split(","))} if a.members else {}
    for name in a.sets.split(","):
        data = features(name, Path(a.cache))
        maes = []
        for seed in [int(x) for x in a.seeds.split(",")]:
            t = time.perf_counter()
            cfg = ModelConfig(features=feature_config(name), seed=seed, **extra)
            maes.append(p50_mae(name, cfg, data))
            print(json.dumps({"set": name, "seed": seed, "p50_mae": round(maes[-1], 4),
                              "seconds": round(time.perf_counter() - t, 1)}), flush=True)
        print(f"{name}: P50 MAE mean {np.mean(maes):.4f} over seeds {a.seeds}")


if __name__ == "__main__":
    main()
