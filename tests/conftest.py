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
    from aggregat.weather import sources

    saved = set(config._SECRETS)
    yield
    config._SECRETS.clear()
    config._SECRETS.update(saved)
    sources.forget_sources()  # a source made again registers its secrets again


_ROOT = Path(__file__).resolve().parents[1]


def _bqemulator() -> Path | None:
    """The bqemulator command: $AGGREGAT_TEST_BQEMULATOR, the project's .venv-bqemulator
    (tests/tools/install_bqemulator.sh), else one on PATH."""
    for candidate in (os.environ.get("AGGREGAT_TEST_BQEMULATOR"),
                      str(_ROOT / ".venv-bqemulator" / "bin" / "bqemulator"),
                      shutil.which("bqemulator")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BIGQUERY_PROJECT = "aggregat-test"


@pytest.fixture(scope="session")
def bigquery_emulator():
    """``host:port`` of a BigQuery API emulator (bqemulator, DuckDB-backed) on loopback for this
    session, started as a subprocess. The product reaches it only through
    ``BIGQUERY_EMULATOR_HOST``, set for the session (child processes see it too)."""
    import subprocess
    import time
    import urllib.request

    pytest.importorskip("google.cloud.bigquery", reason="google-cloud-bigquery not installed "
                        "(pip install -c constraints.txt -e '.[dev]')")
    command = _bqemulator()
    if command is None:
        pytest.skip("BigQuery emulator not installed: run tests/tools/install_bqemulator.sh "
                    "(or set AGGREGAT_TEST_BQEMULATOR to a bqemulator command)")
    port = _free_port()
    env = dict(os.environ)
    home = command.parents[1] / "duckdb-home"  # DuckDB's spatial extension, offline
    if home.is_dir():
        env["HOME"] = str(home)
    log = tempfile.NamedTemporaryFile(prefix="aggregat-bqemulator-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [str(command), "start", "--rest-host", "127.0.0.1", "--rest-port", str(port),
         "--grpc-host", "127.0.0.1", "--grpc-port", str(_free_port()),
         "--project", BIGQUERY_PROJECT, "--log-level", "warning", "--ephemeral"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/bigquery/v2/projects/{BIGQUERY_PROJECT}/datasets"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bqemulator exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"bqemulator did not answer on {url} in 120 s; see {log.name}")
                time.sleep(0.3)
        saved = os.environ.get("BIGQUERY_EMULATOR_HOST")
        os.environ["BIGQUERY_EMULATOR_HOST"] = f"127.0.0.1:{port}"
        try:
            yield f"127.0.0.1:{port}"
        finally:
            if saved is None:
                os.environ.pop("BIGQUERY_EMULATOR_HOST", None)
            else:
                os.environ["BIGQUERY_EMULATOR_HOST"] = saved
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def bigquery_dataset(bigquery_emulator):
    """``project.dataset`` of a fresh, empty dataset on the session's BigQuery emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(project=BIGQUERY_PROJECT, credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": f"http://{bigquery_emulator}"})
    name = f"{BIGQUERY_PROJECT}.t_{uuid.uuid4().hex[:12]}"
    client.create_dataset(name)
    yield name
    client.delete_dataset(name, delete_contents=True, not_found_ok=True)
