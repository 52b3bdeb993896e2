"""``env check`` on a good local environment and on broken ones; secrets never printed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aggregat.config import load_environment
from aggregat.energy.db import make_engine
from aggregat.energy.schema import create_default_tables
from aggregat.ops.envcheck import check_environment, probe_store, problems

SECRET = "Zq9-very-secret-pw"


def _config(tmp_path, root: str, extra: str = "") -> str:
    (tmp_path / "sites.csv").write_text("id,name,lat,lon\nparis,Paris,48.85,2.35\n"
                                        "lyon,Lyon,45.76,4.84\n")
    path = tmp_path / "aggregat.toml"
    path.write_text(f'[env.dev]\nroot = "{root}"\nsites = "sites.csv"\n{extra}')
    return str(path)


def test_good_local_environment(tmp_path):
    config = _config(tmp_path, str(tmp_path / "dev"), "[[env.dev.forecast.targets]]\n"
                     'id = "portfolio"\nsites = ["paris", "lyon"]\n')
    env = load_environment("dev", config)
    create_default_tables(make_engine(env.energy_db, env.energy), env.energy)
    checks = check_environment(env, offline=True)
    assert problems(checks) == [], [c.as_dict() for c in checks]
    names = {c.name: c for c in checks}
    assert names["Météo-France"].status == "skipped"
    assert "2 sites" in names["settings: sites and targets"].message
    # The probes cleaned up after themselves.
    for folder in ("datalake", "bank", "registry", "quarantine"):
        assert not [p for p in (tmp_path / "dev" / folder).iterdir()
                    if p.name.startswith(".aggregat-probe")]


def test_broken_environment_each_problem_named_and_masked(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the root folder should be")
    monkeypatch.setenv("AGGREGAT_DEV_DB_PASSWORD", SECRET)
    config = _config(
        tmp_path, str(blocker / "root"),
        'energy_db = "postgresql+pg8000://aggregat:${DB_PASSWORD}@127.0.0.1:1/energy"\n'
        'scheduler = "tcp://127.0.0.1:1"\n'
        "[env.dev.weather]\nmodels = [\"arome-0025\", \"gfs-025\"]\n"
        "[env.dev.forecast]\nschool_holidays = \"FR-Zone Q\"\n"
        "[[env.dev.forecast.targets]]\nid = \"portfolio\"\nsites = [\"paris\", \"marseille\"]\n")
    env = load_environment("dev", config)
    checks = check_environment(env, offline=True, timeout_s=2)
    bad = {c.name: c.message for c in problems(checks)}
    assert set(bad) == {"settings: weather models", "settings: sites and targets",
                        "settings: calendar", "storage: datalake", "storage: bank",
                        "storage: registry", "storage: quarantine", "energy DB",
                        "Dask scheduler"}
    assert "gfs-025" in bad["settings: weather models"]
    assert "marseille" in bad["settings: sites and targets"]
    assert "school_holidays" in bad["settings: calendar"] and "Zone Q" in bad["settings: calendar"]
    assert "not writable" in bad["storage: bank"]
    assert "unreachable" in bad["energy DB"] and "127.0.0.1" in bad["energy DB"]
    assert all(SECRET not in c.message for c in checks)

    # The CLI: exit code 1, one line per problem, the secret masked.
    out = subprocess.run(
        [sys.executable, "-m", "aggregat.cli.main", "env", "check", "--env", "dev", "--config",
         config, "--offline", "--timeout", "2"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "AGGREGAT_DEV_DB_PASSWORD": SECRET, "COLUMNS": "250"})
    assert out.returncode == 1, out.stderr
    assert "9 problem(s)" in out.stdout and "Traceback" not in out.stderr
    assert SECRET not in out.stdout + out.stderr
    assert "aggregat:***@" in out.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_read_only_folder_is_not_writable(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        status, message = probe_store(str(folder))
        assert status == "problem" and "not writable" in message
    finally:
        folder.chmod(0o700)


def test_memory_store_probe_and_missing_load_columns(tmp_path):
    assert probe_store("memory://envcheck-probe")[0] == "ok"
    config = _config(tmp_path, str(tmp_path / "dev"),
                     '[env.dev.energy]\nload_value_col = "mw"\n')
    env = load_environment("dev", config)
    engine = make_engine(env.energy_db, env.energy)
    with engine.begin() as conn:
        import sqlalchemy as sa

        conn.execute(sa.text("CREATE TABLE load_measurements (target_id TEXT, time_utc TEXT, "
                             "value_mw REAL, updated_at TEXT)"))
    bad = {c.name: c.message for c in problems(check_environment(env, offline=True))}
    assert list(bad) == ["energy DB"] and "['mw']" in bad["energy DB"]


def test_missing_sqlite_file_is_reported_not_created(tmp_path):
    config = _config(tmp_path, str(tmp_path / "dev"))
    env = load_environment("dev", config)
    bad = {c.name: c.message for c in problems(check_environment(env, offline=True))}
    assert "does not exist" in bad["energy DB"] and "init-db" in bad["energy DB"]
    assert not (tmp_path / "dev" / "energy.sqlite").exists()


@pytest.mark.postgres
def test_good_environment_on_postgresql(tmp_path, monkeypatch, pg_socket):
    """A real PostgreSQL (pgserver) with a password-protected role; the secret stays masked."""
    import uuid

    import sqlalchemy as sa

    role, db = f"ops_{uuid.uuid4().hex[:8]}", f"opsdb_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"postgresql+pg8000://postgres@/postgres?unix_sock={pg_socket}",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'"))
        conn.execute(sa.text(f"CREATE DATABASE {db} OWNER {role}"))
    try:
        monkeypatch.setenv("AGGREGAT_DEV_DB_PASSWORD", SECRET)
        config = _config(tmp_path, str(tmp_path / "dev"),
                         f'energy_db = "postgresql+pg8000://{role}:${{DB_PASSWORD}}@/{db}'
                         f'?unix_sock={pg_socket}"\n')
        env = load_environment("dev", config)
        before = {c.name: c for c in check_environment(env, offline=True)}
        assert before["energy DB"].status == "problem"
        assert "load_measurements" in before["energy DB"].message
        engine = make_engine(env.energy_db, env.energy)
        create_default_tables(engine, env.energy)
        engine.dispose()
        checks = check_environment(env, offline=True)
        assert problems(checks) == [], [c.as_dict() for c in checks]
        energy = next(c for c in checks if c.name == "energy DB")
        assert f"{role}:***@" in energy.message
        assert "forecast table load_forecasts" in energy.message
        assert all(SECRET not in c.message for c in [*checks, *before.values()])
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def test_base_url_and_scheduler_checks_on_loopback(tmp_path):
    """HEAD on a loopback HTTP server (any answer = reachable); TCP connect to a 'scheduler'."""
    import http.server
    import socket
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        status = 404

        def do_HEAD(self):  # noqa: N802
            self.send_response(Handler.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    listener = socket.create_server(("127.0.0.1", 0))
    free = socket.create_server(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/pnt"
        config = _config(tmp_path, str(tmp_path / "dev"),
                         f'scheduler = "tcp://127.0.0.1:{listener.getsockname()[1]}"\n'
                         f'[env.dev.weather]\nbase_url = "{base}"\n')
        env = load_environment("dev", config)
        checks = {c.name: c for c in check_environment(env, timeout_s=2)}
        assert checks["Météo-France"].status == "ok" and "HTTP 404" in checks[
            "Météo-France"].message
        assert checks["Dask scheduler"].status == "ok"
        Handler.status = 503
        checks = {c.name: c for c in check_environment(env, timeout_s=2)}
        assert checks["Météo-France"].status == "warning"
        env = env.model_copy(update={
            "weather": env.weather.model_copy(
                update={"base_url": f"http://127.0.0.1:{closed_port}/pnt"}),
            "scheduler": f"tcp://127.0.0.1:{closed_port}"})
        checks = {c.name: c for c in check_environment(env, timeout_s=2)}
        assert checks["Météo-France"].status == "problem"
        assert "unreachable" in checks["Météo-France"].message
        assert checks["Dask scheduler"].status == "problem"
    finally:
        server.shutdown()
        server.server_close()
        listener.close()
