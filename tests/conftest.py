"""Fixtures shared by every test package: a real PostgreSQL server (pgserver) per session."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa


@pytest.fixture(scope="session")
def pg_socket():
    """Unix socket path of a PostgreSQL 16 server started for this session.

    Its folder is NOT under pytest's tmp root: as root, pgserver runs the server as user
    ``pgserver`` and opens the folder's parents to it, but any pytest starting meanwhile resets
    ``/tmp/pytest-of-root`` to 0700 and the server can no longer reach its data.
    """
    pgserver = pytest.importorskip("pgserver")
    parent = Path(tempfile.mkdtemp(prefix="aggregat-test-pg-"))
    server = pgserver.get_server(parent / "data", cleanup_mode="delete")
    try:
        info = server.get_postmaster_info()
        yield f"{info.socket_dir}/.s.PGSQL.{info.port}"
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def pg_url(socket: str, database: str = "postgres") -> str:
    return f"postgresql+pg8000://postgres@/{database}?unix_sock={socket}"


@pytest.fixture
def pg_database(pg_socket):
    """URL of a fresh, empty PostgreSQL database (dropped at teardown)."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(pg_url(pg_socket), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield pg_url(pg_socket, name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()




@pytest.fixture
def pg_database_factory(pg_socket):
    """``make() -> URL`` of a fresh PostgreSQL database; all of them dropped at teardown."""
    admin = sa.create_engine(pg_url(pg_socket), isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def make() -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return pg_url(pg_socket, name)

    yield make
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
