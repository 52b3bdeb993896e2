"""Extra features (bank datasets as known or lagged inputs): no look-ahead. A Tempo colour
announced at 10:40 cannot feed a 10:00 issue; national load enters only once published."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aggregat.bank import Bank
from aggregat.config import ExtraFeature, RteSettings
from aggregat.forecast.core.features import FeatureConfig, features
from aggregat.forecast.targets import Target, target_extras
from aggregat.rte.sync import RTE_CONSUMPTION, RTE_TEMPO, consumption_frame, tempo_frame

TZ = "Europe/Paris"
DAY = pd.Timestamp("2026-01-16")  # day D forecast; its Tempo colour is RED


def load_series(days=30):
    idx = pd.date_range("2025-12-20", periods=days * 48, freq="30min", tz="UTC")
    return pd.Series(100 + 10 * np.sin(np.arange(len(idx)) / 7), index=idx)


def bank_with_rte(tmp_path):
    bank = Bank(str(tmp_path / "bank"))
    now = pd.Timestamp.now(tz="UTC")
    colours = [{"jour": f"{d:%Y-%m-%d}", "couleur": "ROUGE" if d == DAY else "BLEU"}
               for d in pd.date_range("2025-12-20", "2026-01-20")]
    tempo = tempo_frame(colours, RteSettings(), TZ, now)
    bank.upsert("rte_tempo", {"month": "2026-01"}, tempo[tempo.time >= "2026-01-01"],
                on=["time"])
    bank.upsert("rte_tempo", {"month": "2025-12"}, tempo[tempo.time < "2026-01-01"],
                on=["time"])
    times = pd.date_range("2025-12-20", "2026-01-20", freq="15min", tz="UTC")
    rows = [{"date_heure": t.isoformat(), "consommation": 60000 + k, "prevision_j1": 1.0,
             "prevision_j": 2.0} for k, t in enumerate(times)]
    cons = consumption_frame(rows, "eco2mix-national-tr", 1, RteSettings(), TZ, now)
    for month, group in cons.groupby(cons.time.dt.strftime("%Y-%m")):
        bank.upsert(RTE_CONSUMPTION.name, {"month": month}, group, on=["time"])
    assert RTE_TEMPO.name == "rte_tempo"
    return bank


def target():
    return Target(id="t", weather_cols=(), extra_features=(
        ExtraFeature(dataset="rte_tempo", column="tempo_level", kind="known"),
        ExtraFeature(dataset="rte_consumption", column="consumption_mw", kind="lagged",
                     name="national"),
        ExtraFeature(dataset="rte_consumption", column="forecast_d1_mw", kind="known")))


def feats_at(extras, hour_local: float):
    cfg = FeatureConfig(tz=TZ, issue_hour=hour_local, extra_known=target().extra_known,
                        extra_lagged=target().extra_lagged)
    issue = (DAY - pd.Timedelta(days=1) + pd.Timedelta(hours=hour_local)).tz_localize(TZ)
    return issue.tz_convert("UTC"), features(load_series(), None, issue, cfg, extras=extras)


def test_tempo_announced_at_1040_cannot_feed_a_1000_issue(tmp_path):
    bank = bank_with_rte(tmp_path)
    t = target()
    extras = target_extras(bank, t, pd.Timestamp("2026-01-01", tz="UTC"),
                           pd.Timestamp("2026-01-20", tz="UTC"))
    _, at10 = feats_at(extras, 10.0)
    _, at11 = feats_at(extras, 11.0)
    local = pd.DatetimeIndex(at11["valid_time"]).tz_convert(TZ)
    tempo_day = np.asarray(local.hour >= 6)  # the Tempo day D runs from 06:00
    # announced 2026-01-15 10:40 Paris: unknown at 10:00, known (RED = 3) at 11:00
    assert at10["rte_tempo__tempo_level"][tempo_day].isna().all()
    assert (at11["rte_tempo__tempo_level"][tempo_day] == 3.0).all()
    # before 06:00 on D the Tempo day D-1 (BLUE, announced on D-2) holds, known at both
    assert (at10["rte_tempo__tempo_level"][~tempo_day] == 1.0).all()
    # RTE's D-1 forecast of D is published at 19:00 on D-1: never known at a 10:00 or 11:00
    # issue of a day-ahead forecast
    assert at11["rte_consumption__forecast_d1_mw"].isna().all()


def test_lagged_national_load_only_up_to_its_publication(tmp_path):
    bank = bank_with_rte(tmp_path)
    extras = target_extras(bank, target(), pd.Timestamp("2026-01-01", tz="UTC"),
                           pd.Timestamp("2026-01-20", tz="UTC"))
    issue, f = feats_at(extras, 10.0)
    # realised values are published 1 h after their time: the last known is 1 h before issue
    assert (f["national_last_age_h"] == 1.0).all()
    cons = extras[extras.feature == "national"].set_index("time")["value"]
    assert (f["national_last"] == cons[issue - pd.Timedelta(hours=1)]).all()
    # a lag reaching past the last published value is missing, never read ahead
    lag24 = f["national_lag_24h"].to_numpy()
    src = pd.DatetimeIndex(f["valid_time"]) - pd.Timedelta(hours=24)
    published = (src + pd.Timedelta(hours=1)) <= issue
    assert np.isnan(lag24[~published]).all()
    assert (lag24[published] == cons.reindex(src[published]).to_numpy()).all()
    # and the values after the issue change nothing
    later = extras.assign(value=np.where(extras["available_at"] > issue, -1e9,
                                         extras["value"]))
    _, g = feats_at(later, 10.0)
    pd.testing.assert_frame_equal(f, g)
