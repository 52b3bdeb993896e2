"""Fixtures of the production-stack tests: a real Dask cluster (scheduler and workers in their own
processes, talking TCP on 127.0.0.1), as production runs one (tests/prod/prod_cluster.py)."""

from __future__ import annotations

import pytest
from prod_cluster import start_dask_cluster


@pytest.fixture(scope="session")
def dask_cluster() -> str:
    """Address (``tcp://127.0.0.1:PORT``) of a 2-worker Dask cluster in separate processes."""
    address, stop = start_dask_cluster(2)
    try:
        yield address
    finally:
        stop()


@pytest.fixture(name="start_dask_cluster", scope="session")
def _start_dask_cluster():
    """:func:`start_dask_cluster`, for a test that needs its own cluster (a hook, variables)."""
    return start_dask_cluster
