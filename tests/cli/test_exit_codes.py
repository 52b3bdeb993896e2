"""Every exit code of the real ``aggregat`` command, run in a child process.

0 success, 2 bad input or configuration (one line on stderr, never "internal error"), 3 partial
run; and user text in an error line keeps its brackets (``[env.prod]`` is not rich markup).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest

from aggregat.weather.loopback import serve_folder
from aggregat.weather.products import get_product
from child_process import child_env

PRODUCT = get_product("arome-0025")
RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)


def aggregat(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = child_env(AGGREGAT_HOME=str(cwd / "home"), COLUMNS="200")
    for var in ("AGGREGAT_ENV", "AGGREGAT_CONFIG", "AGGREGAT_DEBUG"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line on stderr, checked to be a user error and not a crash."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    return lines[0]


def write_config(tmp_path: Path, body: str, top: str = 'default_env = "t"\n') -> Path:
    path = tmp_path / "aggregat.toml"
    path.write_text(top + '[env.t]\nroot = "home"\n' + body)
    return path


# -- usage errors: 2 ------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "words"), [
    (["no-such-command"], ["no-such-command"]),
    (["weather", "fetch", "--bogus"], ["--bogus", "aggregat weather fetch --help"]),
    (["weather", "fetch"], ["--model"]),
    (["weather", "fetch", "-m", "arome-0025", "--run", "2026-11-28T00", "--workers", "x"],
     ["--workers", "integer"]),
    (["model", "list", "--env"], ["--env"]),
    ([*("weather", "fetch", "-m", "arome-0025", "--run", "2026-11-28T00"), "--retries", "-3"],
     ["--retries", "greater than or equal to 0"]),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, args, words):
    proc = aggregat(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    for word in words:
        assert word in line


class _OtherClickUsageError(Exception):
    """Shaped like a usage error of yet another bundled click (matched by duck typing)."""

    exit_code = 2

    def format_message(self) -> str:
        return "Got unexpected extra argument (x)"

    def show(self) -> None:
        pass


@pytest.mark.parametrize("make", [lambda: click.exceptions.NoSuchOption("--x"),
                                  lambda: _OtherClickUsageError()])
def test_usage_errors_of_any_click_are_one_line(monkeypatch, capsys, make):
    from aggregat.cli import main as cli

    def app(**_kw):
        raise make()

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "aggregat --help" in err and "internal error" not in err


def test_help_and_version_exit_0(tmp_path):
    assert aggregat(tmp_path, "--version").returncode == 0
    proc = aggregat(tmp_path, "weather", "fetch", "--help")
    assert proc.returncode == 0 and "--model" in proc.stdout


# -- configuration errors: 2, naming the file and the setting --------------------------------
@pytest.mark.parametrize(("toml", "words"), [
    ('default_env = "t"\n[env.t]\nroot = 42\n', ["[env.t] root", "string"]),
    ('default_env = "t"\n[defaults]\nroot = 42\n[env.t]\n', ["[env.t] root", "string"]),
    ('root = "data"\n', ["top-level", "root", "[env.NAME]"]),
    ("default_env = 3\n", ["default_env", "string"]),
    ("env = 3\n", ["env", "table"]),
    ('default_env = "t"\n[env]\nt = 5\n', ["[env] t", "table"]),
    ('default_env = "t"\ndefaults = "x"\n', ["defaults", "table"]),
])
def test_wrong_types_of_top_level_keys(tmp_path, toml, words):
    (tmp_path / "aggregat.toml").write_text(toml)
    proc = aggregat(tmp_path, "env", "show")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert "aggregat.toml" in line
    for word in words:
        assert word in line


@pytest.mark.parametrize(("body", "words"), [
    ("[env.t.weather]\ntimeout_s = 0\n", ["[env.t.weather] timeout_s", "greater than 0"]),
    ("[env.t.weather]\nretries = -3\n", ["[env.t.weather] retries",
                                         "greater than or equal to 0"]),
    ("[env.t.weather]\ndownload_workers = 0\n", ["[env.t.weather] download_workers"]),
    ('[env.t.weather]\nmethod = "cubic"\n', ["[env.t.weather] method", "nearest", "bilinear"]),
    ("[env.t.weather]\nruns = [0, 24]\n", ["[env.t.weather] runs", "23"]),
    ("[env.t.forecast]\nissue_hour_local = 25\n", ["[env.t.forecast] issue_hour_local", "23"]),
    ("[env.t.forecast]\npromotion_margin = 1.5\n", ["[env.t.forecast] promotion_margin", "1"]),
    ("[env.t.energy]\nretries = -1\n", ["[env.t.energy] retries"]),
    ("[env.t.jobs]\nstale_fail_h = 0\n", ["[env.t.jobs] stale_fail_h"]),
    ('[env.t.jobs]\ndaily_at = "25:00"\n', ["[env.t.jobs] daily_at", "HH:MM"]),
    ("workers = 0\n", ["[env.t] workers", "greater than or equal to 1"]),
    ("[env.t.weather]\ntimeout_s = \"fast\"\n", ["[env.t.weather] timeout_s", "number"]),
    ("[env.t.weather]\nno_such_setting = 1\n", ["[env.t.weather] no_such_setting"]),
    ('[[env.t.forecast.targets]]\nsites = ["a"]\n', ["[env.t.forecast] targets[0].id", "required"]),
])
def test_bad_setting_values_name_the_setting(tmp_path, body, words):
    write_config(tmp_path, body)
    proc = aggregat(tmp_path, "env", "show")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert "aggregat.toml" in line
    for word in words:
        assert word in line, line


def test_model_params_typo_is_a_config_error_at_load(tmp_path):
    write_config(tmp_path, "[env.t.forecast]\nmodel_params = { learnin_rate = 0.1 }\n")
    proc = aggregat(tmp_path, "env", "show")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    # The brackets survive printing: rich markup must not eat "[env.t.forecast]".
    assert "[env.t.forecast] model_params" in line
    assert "learnin_rate" in line and "learning_rate" in line


def test_good_model_params_load(tmp_path):
    write_config(tmp_path, '[env.t.forecast]\nmodel_params = { learning_rate = 0.1, '
                           'p50_members = ["level", "nowcast"] }\n')
    proc = aggregat(tmp_path, "env", "show")
    assert proc.returncode == 0, proc.stderr
    assert "learning_rate" in proc.stdout


def test_brackets_in_error_messages_survive_printing(tmp_path):
    (tmp_path / "aggregat.toml").write_text('[env.prod]\nroot = "s3://bucket"\n')
    proc = aggregat(tmp_path, "env", "show", "--env", "prod")
    assert proc.returncode == 2, proc.stderr
    assert "[env.prod] energy_db" in one_error_line(proc)


def test_brackets_in_printed_settings_survive(tmp_path):
    write_config(tmp_path, '[env.t.energy]\nforecast_table = "[forecast]"\n')
    proc = aggregat(tmp_path, "env", "show")
    assert proc.returncode == 0, proc.stderr
    assert "[forecast]" in proc.stdout


# -- weather fetch: 0, 3, and an unreachable host: 2 quickly --------------------------------
def _grib2() -> bytes:
    import eccodes as ec

    h = ec.codes_grib_new_from_samples("GRIB2")
    try:
        return ec.codes_get_message(h)
    finally:
        ec.codes_release(h)


def write_archive(root: Path, skip: int | None = None) -> None:
    """One tiny GRIB2 file per SP1 group of RUN, laid out as the open-data URLs."""
    data = _grib2()
    for i, group in enumerate(PRODUCT.groups):
        if i == skip:
            continue
        rel = PRODUCT.url("", RUN, "SP1", group).lstrip("/")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


FETCH = ("weather", "fetch", "--model", "arome-0025", "--run", "2026-11-28T00", "--packages",
         "SP1")


def test_fetch_complete_exits_0(tmp_path):
    write_archive(tmp_path / "archive")
    with serve_folder(tmp_path / "archive") as base:
        proc = aggregat(tmp_path, *FETCH, "--base-url", base)
    assert proc.returncode == 0, proc.stderr
    assert "complete" in proc.stdout


def test_fetch_partial_exits_3(tmp_path):
    write_archive(tmp_path / "archive", skip=2)
    with serve_folder(tmp_path / "archive") as base:
        proc = aggregat(tmp_path, *FETCH, "--base-url", base, "--retries", "0")
    assert proc.returncode == 3, proc.stderr
    # Warnings name each missing file on the way; the error line comes last.
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "partial" in last
    assert "internal error" not in proc.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("where", ["closed-port", "no-such-host"])
def test_fetch_from_an_unreachable_host_is_one_quick_error(tmp_path, where):
    # Default retries and backoff (5 retries, 0.5 s doubling): no retry storm per file.
    host = f"127.0.0.1:{closed_port()}" if where == "closed-port" else "no-such-host.invalid"
    t0 = time.monotonic()
    proc = aggregat(tmp_path, *FETCH, "--base-url", f"http://{host}/pnt")
    took = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert host in line and "partial" not in line
    assert "base_url" in line
    assert took < 15, took
