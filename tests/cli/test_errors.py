"""Library errors name parameters; the CLI prints them with its flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aggregat.cli.common import error_line
from aggregat.errors import ConfigError, InputError
from aggregat.forecast import pipeline
from aggregat.forecast.core.backtest import expand_paths
from aggregat.weather.sites import load_locations, load_sites
from child_process import child_env


@pytest.mark.parametrize("call, param", [
    (lambda tmp: pipeline.parse_age("soon"), "if_older"),
    (lambda tmp: pipeline.check_horizon("weekly"), "horizon"),
    (lambda tmp: expand_paths([str(tmp / "nope.csv")]), "csv"),
    (lambda tmp: load_sites(tmp / "nope.csv"), "sites"),
    (lambda tmp: load_locations(None), "sites"),
])
def test_library_message_names_the_parameter(tmp_path, call, param):
    with pytest.raises((ConfigError, InputError)) as info:
        call(tmp_path)
    assert param in str(info.value) and " --" not in str(info.value)
    assert info.value.params == (param,)


def test_cli_shows_flags_but_not_inside_paths_or_settings():
    exc = InputError("file /data/sites/sites.csv (site list) does not exist: set `sites` in "
                     "aggregat.toml or pass sites", param="sites")
    assert error_line(exc) == ("file /data/sites/sites.csv (site list) does not exist: set "
                               "`sites` in aggregat.toml or pass --sites")
    assert error_line(ConfigError("if_older '3x': use 7d", param="if_older")) == \
        "--if-older '3x': use 7d"
    assert error_line(ConfigError("horizon 'x'")) == "horizon 'x'"  # no param: left as is


def test_cli_prints_the_flag(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "aggregat.cli.main", "model", "backtest",
                           "--csv", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120, env=child_env(),
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"--csv {tmp_path / 'missing.csv'}: file not found" in proc.stderr
