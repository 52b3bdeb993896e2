"""Fixtures of the job tests: the simulated weather archive and the measured load (ops_world)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from ops_world import measured_load, simulate_archive


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """Simulated AROME runs of ops_world.DAYS; read-only (copy it before corrupting a file)."""
    return simulate_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="session")
def measured() -> pd.DataFrame:
    return measured_load()
