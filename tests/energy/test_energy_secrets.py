"""A password made of URL delimiters, quotes and non-ASCII characters authenticates for real: a
PostgreSQL role (pgserver) that must log in with scram-sha-256, reached through ``${NAME}``."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from energy_helpers import T0

from aggregat.config import load_environment
from aggregat.energy.db import make_engine
from aggregat.energy.schema import create_default_tables, insert_measurements
from child_process import child_env

ODD = "p@ss/w:o#r%d'\"é€"


@pytest.fixture
def password_role(pg_socket):
    """(role, database) on the session's server; the role logs in with ODD, checked by the
    server (its own pg_hba line ahead of the trust lines the other tests use)."""
    role, db = f"sec_{uuid.uuid4().hex[:8]}", f"secdb_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"postgresql+pg8000://postgres@/postgres?unix_sock={pg_socket}",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        hba = Path(conn.exec_driver_sql("SHOW hba_file").scalar())
        literal = ODD.replace("'", "''")
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{literal}'")
        conn.exec_driver_sql(f"CREATE DATABASE {db} OWNER {role}")
    original = hba.read_text()
    try:
        hba.write_text(f"local all {role} scram-sha-256\n" + original)
    except PermissionError:
        pytest.skip("pg_hba.conf of the test server is not writable by this user")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT pg_reload_conf()")
        yield role, db
    finally:
        hba.write_text(original)
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT pg_reload_conf()")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


@pytest.mark.postgres
def test_odd_password_authenticates_through_the_config(tmp_path, monkeypatch, pg_socket,
                                                        password_role):
    role, db = password_role
    config = tmp_path / "aggregat.toml"
    config.write_text(f"""
default_env = "test"
[env.test]
root = "{tmp_path}/data"
energy_db = "postgresql+pg8000://{role}:${{DB_PASSWORD}}@/{db}?unix_sock={pg_socket}"
[env.test.energy]
retries = 0
""")
    # The server checks the password: a wrong one is refused.
    monkeypatch.setenv("AGGREGAT_TEST_DB_PASSWORD", ODD[:-1])
    wrong = make_engine(load_environment("test", config).energy_db)
    with pytest.raises(sa.exc.DBAPIError) as info:
        wrong.connect().close()
    wrong.dispose()
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("password authentication failed" in text for text in chain), chain

    monkeypatch.setenv("AGGREGAT_TEST_DB_PASSWORD", ODD)
    env = load_environment("test", config)
    engine = make_engine(env.energy_db, env.energy)
    create_default_tables(engine, env.energy)
    insert_measurements(engine, env.energy, pd.DataFrame({
        "target_id": "site", "time": pd.date_range(T0, periods=5, freq="h"), "load_mw": 1.5}))
    engine.dispose()

    done = subprocess.run([sys.executable, "-m", "aggregat.cli.main", "energy", "sync"],
                          env=child_env(AGGREGAT_CONFIG=str(config),
                                        AGGREGAT_TEST_DB_PASSWORD=ODD),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "5 rows read" in done.stdout
    assert ODD not in done.stdout + done.stderr
