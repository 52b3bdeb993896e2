"""Fixtures of the energy-DB tests: ``energy_url`` is parametrised over SQLite and the session's
PostgreSQL (``pg_database`` in tests/conftest.py), so every test runs on both."""

from __future__ import annotations

import pytest

from aggregat.config import EnergySettings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def energy_url(request, tmp_path):
    """An empty energy DB: a SQLite file, or a database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/energy.sqlite"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def settings() -> EnergySettings:
    """Default mapping, fast retries (tests never wait on backoff)."""
    return EnergySettings(retries=1, retry_backoff_s=0.01, timeout_s=5)


@pytest.fixture
def engine(energy_url, settings):
    from aggregat.energy.db import make_engine

    eng = make_engine(energy_url, settings)
    yield eng
    eng.dispose()


@pytest.fixture
def bank(tmp_path):
    from aggregat.bank import Bank

    return Bank(str(tmp_path / "bank"))
