"""Fixtures of the production-shaped tests: a real Dask cluster (scheduler + workers as separate
processes over TCP on loopback)."""

from __future__ import annotations

import pytest
from prod_cluster import start_dask_cluster


@pytest.fixture(scope="session")
def dask_cluster():
    """``tcp://127.0.0.1:PORT`` of a scheduler with 2 workers (separate processes)."""
    address, stop = start_dask_cluster(2)
    try:
        yield address
    finally:
        stop()
