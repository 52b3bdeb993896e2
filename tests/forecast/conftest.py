"""Synthetic inputs for the forecasting tests (generated here, no external data files)."""

from __future__ import annotations

import pandas as pd
import pytest

from aggregat.forecast.core.features import FeatureConfig
from aggregat.forecast.core.models import ModelConfig
from aggregat.forecast.synthetic import synthetic_load_weather


@pytest.fixture(scope="session")
def synth() -> pd.DataFrame:
    """60 days of hourly synthetic load and weather in Europe/Paris."""
    return synthetic_load_weather(start="2026-03-01", days=60, freq="1h", seed=1)


@pytest.fixture(scope="session")
def load(synth) -> pd.Series:
    return pd.Series(synth["load_mw"].to_numpy(), index=pd.DatetimeIndex(synth["time"]))


@pytest.fixture(scope="session")
def weather(synth) -> pd.DataFrame:
    return synth[["time", "t2m_c", "ssrd_wm2", "holiday"]].rename(columns={"time": "valid_time"})


@pytest.fixture(scope="session")
def fcfg() -> FeatureConfig:
    return FeatureConfig(tz="Europe/Paris", issue_hour=10, holidays="FR",
                         weather_cols=("t2m_c", "ssrd_wm2"), known_cols=("holiday",))


@pytest.fixture(scope="session")
def small_cfg(fcfg) -> ModelConfig:
    """A quick model: few rounds, small leaves, so tests stay fast."""
    return ModelConfig(features=fcfg, min_train_days=14, calibration_days=7, max_rounds=150,
                       learning_rate=0.2, quantile_learning_rate=0.3,
                       min_data_in_leaf=10, num_leaves=15, n_jobs=1)
