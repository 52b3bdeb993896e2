"""A password of any characters never leaks: every command that prints or stores an error runs in
a real process against an energy DB that refuses the connection, then stdout, stderr, the logs and
every file under the environment (bytes, and decoded Parquet) are searched for any piece of the
secret, raw or encoded."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import pandas as pd
import pyarrow.parquet as pq
import pytest
from ops_world import child_env, make_env

from aggregat.bank import Bank, write_forecast
from aggregat.config import load_environment
from aggregat.ops.jobs import _issue_part, issue_time_of
from aggregat.ops.ledger import Ledger

# Every character a URL or a quoted string treats specially, and non-ASCII ones.
SECRET = "Xq7@Kz/w:J#v%Q'\"é€Yb"
DAY = date(2026, 11, 27)


def encoded_forms(secret: str) -> set[str]:
    """The secret as it can be written: raw, URL-quoted (as urllib and SQLAlchemy do), JSON."""
    return {secret, quote(secret, safe=""), quote(secret), quote(secret, safe=" +"),
            quote_plus(secret), json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1]}


def leaks(text: str, secret: str = SECRET, width: int = 8) -> list[str]:
    """Pieces (``width`` characters) of any form of ``secret`` found in ``text``."""
    found = set()
    for form in encoded_forms(secret):
        for i in range(len(form) - width + 1):
            if form[i:i + width] in text:
                found.add(form[i:i + width])
    return sorted(found)


def _file_text(path: Path) -> str:
    text = path.read_bytes().decode("utf-8", "replace")
    if path.suffix == ".parquet":  # compressed: search the decoded values too
        text += json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
    return text


def _world(tmp_path: Path) -> Path:
    # Nothing listens on port 1: the energy DB and the weather server refuse connections.
    return make_env(tmp_path, "http://127.0.0.1:1/pnt", measured=None, energy_db=(
        "postgresql+pg8000://aggregat:${ENERGY_DB_PASSWORD}@127.0.0.1:1/energy"))


@pytest.mark.slow
def test_odd_password_never_printed_logged_or_stored(tmp_path, monkeypatch):
    config = _world(tmp_path)
    monkeypatch.setenv("AGGREGAT_TEST_ENERGY_DB_PASSWORD", SECRET)
    env = load_environment("test", config)
    # A forecast predicted yesterday and never published: the daily job publishes it (and fails).
    issue = issue_time_of(env, DAY - timedelta(days=1))
    bank = Bank(env.bank)
    write_forecast(bank, pd.DataFrame({
        "target_id": "portfolio", "issue_time": issue,
        "valid_time": pd.date_range(issue + pd.Timedelta(hours=14), periods=24, freq="h"),
        "p10_mw": 9.0, "p50_mw": 10.0, "p90_mw": 11.0, "model_version": "v1",
        "is_baseline": False}))
    ledger = Ledger(bank, job="daily")
    with ledger.step("predict", _issue_part(issue)) as st:
        st.rows = 48

    child = child_env(AGGREGAT_CONFIG=str(config), AGGREGAT_TEST_ENERGY_DB_PASSWORD=SECRET)
    child.pop("AGGREGAT_ENV", None)
    commands = [
        ("env", "show"), ("env", "show", "--json"),
        ("env", "check", "--offline"), ("--log-json", "env", "check", "--offline", "--json"),
        ("energy", "sync"), ("--log-json", "energy", "sync"),
        ("energy", "publish", "--issue-time", f"{issue:%Y-%m-%dT%H:%MZ}"),
        ("run", "daily", "--date", str(DAY)),
        ("--log-json", "run", "daily", "--date", str(DAY), "--force"),
        ("health",), ("health", "--json"),
    ]
    outputs = []
    for args in commands:
        done = subprocess.run([sys.executable, "-m", "aggregat.cli.main", *args], env=child,
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        outputs.append((args, done))

    # The failures happened, and were reported (else the search below proves nothing).
    by_args = {args: done for args, done in outputs}
    assert by_args[("energy", "sync")].returncode == 2
    assert "127.0.0.1" in by_args[("energy", "sync")].stderr
    entries = {e.step: e for e in Ledger(bank).entries()}
    assert entries["sync"].status == entries["publish"].status == "failed"
    assert "127.0.0.1" in entries["sync"].error and "127.0.0.1" in entries["publish"].error
    assert "aggregat:***@127.0.0.1:1" in by_args[("env", "show")].stdout

    for args, done in outputs:
        assert not leaks(done.stdout), (args, leaks(done.stdout), done.stdout)
        assert not leaks(done.stderr), (args, leaks(done.stderr), done.stderr)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        found = leaks(_file_text(path))
        assert not found, (path, found)
