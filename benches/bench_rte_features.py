"""The measured effect of RTE features on the demo's data: one backtest with and one without.

SYNTHETIC: the national consumption here is NOT RTE data. It is simulated from the demo's own
"true" temperatures (France-wide heating of ~2.4 GW/°C below 15 °C, daily and weekly shapes,
AR(1) noise) and written to the bank dataset ``rte_consumption`` exactly as ``rte sync`` writes
it (each realised value known one hour after its time), with Tempo days derived from it (the 22
coldest winter days RED, the next 43 WHITE). The number says what the feature plumbing does on
this world; it is not a claim about real RTE data. No tuning: default settings, one run each.

    python benches/bench_rte_features.py [--history-days 240] [--test-weeks 6]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import aggregat


def synthetic_rte(env, history_start: pd.Timestamp, end: pd.Timestamp) -> None:
    from aggregat.bank import Bank
    from aggregat.config import RteSettings
    from aggregat.demo.run import SIM_SEED  # noqa: F401  (the demo's world, same seed)
    from aggregat.demo.truth import truth_weather
    from aggregat.rte.sync import consumption_frame, tempo_frame
    from aggregat.weather.sites import load_locations

    locations = load_locations(env.sites)
    t2m = truth_weather(locations, history_start - pd.Timedelta(days=2), end)["t2m"].mean(axis=1)
    rng = np.random.default_rng(17)
    local = t2m.index.tz_convert("Europe/Paris")
    daily = 1 + 0.12 * np.sin(2 * np.pi * (local.hour.to_numpy() - 7) / 24)
    weekly = np.where(local.day_of_week.to_numpy() >= 5, 0.9, 1.0)
    heating = 2400 * np.clip(15 - t2m.ewm(halflife=24).mean().to_numpy(), 0, None)
    noise = np.cumsum(rng.normal(0, 150, len(t2m))) * 0.05
    national = (48000 * daily * weekly + heating + noise).round()
    now = pd.Timestamp.now(tz="UTC")
    rows = [{"date_heure": t.isoformat(), "consommation": v, "prevision_j1": None,
             "prevision_j": None} for t, v in zip(t2m.index, national, strict=True)]
    cons = consumption_frame(rows, "synthetic-demo", 1, RteSettings(), "Europe/Paris", now)
    bank = Bank(env.bank)
    for month, group in cons.groupby(cons["time"].dt.strftime("%Y-%m")):
        bank.upsert("rte_consumption", {"month": month}, group, on=["time"])
    day_mean = pd.Series(national, index=local).resample("D").mean()
    order = day_mean.rank(ascending=False, method="first")
    colours = np.where(order <= 22, "ROUGE", np.where(order <= 65, "BLANC", "BLEU"))
    tempo = tempo_frame([{"jour": f"{d:%Y-%m-%d}", "couleur": c}
                         for d, c in zip(day_mean.index, colours, strict=True)],
                        RteSettings(), "Europe/Paris", now)
    for month, group in tempo.groupby(tempo["time"].dt.strftime("%Y-%m")):
        bank.upsert("rte_tempo", {"month": month}, group, on=["time"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history-days", type=int, default=240)
    parser.add_argument("--test-weeks", type=int, default=6)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="aggregat-bench-rte-"))
    (home / "aggregat.toml").write_text(f"""
[env.bench]
root = "{home / 'data'}"
[[env.bench.forecast.targets]]
id = "portfolio"
extra_features = [
  {{dataset = "rte_consumption", column = "consumption_mw", kind = "lagged", name = "national"}},
  {{dataset = "rte_tempo", column = "tempo_level", kind = "known", name = "tempo"}},
]
""")
    env = aggregat.open_env("bench", home / "aggregat.toml")
    demo = aggregat.run_demo(env, days=2, history_days=args.history_days, log=lambda _m: None)
    load = aggregat.load(demo.env, "portfolio")
    synthetic_rte(demo.env, load["time"].min(), load["time"].max() + pd.Timedelta(days=3))
    results = {}
    for with_extras in (False, True):
        report = aggregat.backtest_env(demo.env, "portfolio", test_weeks=args.test_weeks,
                                       extra_features=with_extras)[0]
        results[with_extras] = report.metrics
        print(f"extra features {'on ' if with_extras else 'off'}: MAE {report.metrics['mae']:.4f}"
              f" MW, pinball {report.metrics['pinball']:.4f}, "
              f"inputs {report.report['inputs'].get('extra_lagged')}"
              f"{report.report['inputs'].get('extra_known')}")
    ratio = results[True]["mae"] / results[False]["mae"]
    print(f"MAE with / without synthetic RTE features: {ratio:.3f} "
          f"({args.test_weeks} test weeks, {args.history_days} days of history; SYNTHETIC)")


if __name__ == "__main__":
    main()
