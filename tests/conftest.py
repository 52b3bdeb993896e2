"""Fixtures shared by every test package: a real PostgreSQL server (pgserver) per session."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def s3_server():
    """Endpoint URL of a real S3 API server (moto in server mode) on loopback, for this session.

    The product reaches it only through the standard variables (``AWS_ENDPOINT_URL``, credentials,
    region), set for the session, so child processes (Dask workers, CLI runs) see it too. Tests
    create their own buckets (``s3_bucket``)."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _S3_VARS}
    os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


_S3_VARS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_bucket(s3_server):
    """Name of a fresh, empty bucket on the session's S3 server."""
    import boto3

    name = "t-" + uuid.uuid4().hex[:12]
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True)
def _forget_secrets():
    """Each test masks only the secrets it loaded: the registry is per process, and a short
    secret of one test ("key") would mask words in the next test's messages."""
    from aggregat import config

    saved = set(config._SECRETS)
    yield
    config._SECRETS.clear()
    config._SECRETS.update(saved)
