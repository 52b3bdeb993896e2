"""Environments, secrets from environment variables only, masking."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import quote, quote_plus

import pytest

from aggregat.config import load_environment, mask
from aggregat.errors import ConfigError
from child_process import child_env

TOML = """
default_env = "dev"

[defaults]
sites = "sites.csv"

[env.dev]
root = "data-dev"
energy_db = "postgresql+pg8000://aggregat:${ENERGY_DB_PASSWORD}@db.example:5432/energy"

[env.dev.weather]
models = ["arome-0025"]

[env.prod]
root = "s3://aggregat-prod"
energy_db = "postgresql+pg8000://aggregat:${ENERGY_DB_PASSWORD}@db.prod:5432/energy"
"""


@pytest.fixture()
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "aggregat.toml"
    path.write_text(TOML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGGREGAT_ENV", raising=False)
    monkeypatch.delenv("AGGREGAT_CONFIG", raising=False)
    return path


def test_embedded_default_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGGREGAT_HOME", raising=False)
    monkeypatch.delenv("AGGREGAT_ENV", raising=False)
    monkeypatch.delenv("AGGREGAT_CONFIG", raising=False)
    env = load_environment()
    assert env.name == "local"
    assert env.bank == str(tmp_path / "aggregat-data" / "bank")
    assert env.energy_db.startswith("sqlite:///")


def test_sections_defaults_and_secrets(config_file, monkeypatch):
    monkeypatch.setenv("AGGREGAT_DEV_ENERGY_DB_PASSWORD", "s3cr3t-pw")
    env = load_environment()
    assert env.name == "dev"
    assert env.sites == str(config_file.parent / "sites.csv")  # relative to the file
    assert env.weather.models == ["arome-0025"]
    assert "s3cr3t-pw" in env.energy_db
    assert "s3cr3t-pw" not in json.dumps(env.masked_dump())
    assert mask(f"could not connect with {env.energy_db}").count("***") == 1


def test_missing_secret_names_the_variable(config_file, monkeypatch):
    monkeypatch.delenv("AGGREGAT_PROD_ENERGY_DB_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="AGGREGAT_PROD_ENERGY_DB_PASSWORD"):
        load_environment("prod")


def test_literal_password_in_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aggregat.toml").write_text(
        '[env.dev]\nenergy_db = "postgresql+pg8000://u:hunter2@h/db"\n')
    with pytest.raises(ConfigError, match="literal password") as info:
        load_environment("dev")
    assert "hunter2" not in str(info.value)


def test_unknown_environment_and_setting(config_file):
    with pytest.raises(ConfigError, match=r"'qa' is not defined .*dev, prod"):
        load_environment("qa")
    config_file.write_text('[env.dev]\nweather = { modles = ["x"] }\n')
    with pytest.raises(ConfigError, match=r"\[env\.dev\.weather\] modles: unknown setting"):
        load_environment("dev")


def test_env_show_masks_secrets_in_a_real_process(config_file):
    env = child_env({"AGGREGAT_DEV_ENERGY_DB_PASSWORD": "pw-that-must-not-leak",
                     "PATH": "/usr/bin:/bin"})
    proc = subprocess.run([sys.executable, "-m", "aggregat.cli.main", "env", "show", "--json"],
                          capture_output=True, text=True, env=env, cwd=config_file.parent)
    assert proc.returncode == 0, proc.stderr
    assert "pw-that-must-not-leak" not in proc.stdout + proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["energy_db"] == "postgresql+pg8000://aggregat:***@db.example:5432/energy"


def test_bad_toml_is_one_line(config_file):
    config_file.write_text("[env.dev\n")
    proc = subprocess.run([sys.executable, "-m", "aggregat.cli.main", "env", "show"],
                          capture_output=True, text=True, cwd=config_file.parent,
                          env=child_env())
    assert proc.returncode == 2
    assert "not valid TOML" in proc.stderr and "Traceback" not in proc.stderr


ODD = "p@ss/w:o#r%d'\"é€"


def test_userinfo_placeholders_are_percent_encoded_elsewhere_raw(tmp_path, monkeypatch):
    from sqlalchemy.engine import make_url

    monkeypatch.chdir(tmp_path)
    (tmp_path / "aggregat.toml").write_text(
        '[env.dev]\nroot = "data"\n'
        'energy_db = "postgresql+pg8000://${DB_USER}:${DB_PASSWORD}@db.example:5432/energy"\n'
        'scheduler = "tcp://${SCHED_HOST}:8786"\n')
    monkeypatch.setenv("AGGREGAT_DEV_DB_USER", "agg@reg:at")
    monkeypatch.setenv("AGGREGAT_DEV_DB_PASSWORD", ODD)
    monkeypatch.setenv("AGGREGAT_DEV_SCHED_HOST", "dask:x")
    env = load_environment("dev")
    url = make_url(env.energy_db)
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "agg@reg:at", ODD, "db.example", 5432, "energy")
    assert quote(ODD, safe="") in env.energy_db
    assert env.scheduler == "tcp://dask:x:8786"  # outside a URL's userinfo: raw


@pytest.mark.parametrize("secret", [ODD, "two words+more@x"])
@pytest.mark.parametrize("encode", [
    str, lambda v: quote(v, safe=""), quote, quote_plus, lambda v: json.dumps(v)[1:-1],
], ids=["raw", "quote-all", "quote", "quote_plus", "json"])
def test_mask_hides_every_form_of_a_registered_secret(secret, encode):
    from aggregat.config import register_secret

    register_secret(secret)
    assert mask(f"failed with {encode(secret)} on host") == "failed with *** on host"


def test_mask_url_password_containing_at_signs():
    # Not registered: the URL pattern alone hides it, up to the last @ before the host.
    text = "connect postgresql://bob:Zz@9@x:k@db.example:5432/energy failed (bob@work)"
    assert mask(text) == "connect postgresql://bob:***@db.example:5432/energy failed (bob@work)"


def test_the_default_open_data_address_is_the_current_one(tmp_path, monkeypatch):
    """Météo-France moved the bucket in May 2026; a fresh install must fetch from the new one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGGREGAT_CONFIG", raising=False)
    monkeypatch.delenv("AGGREGAT_ENV", raising=False)
    env = load_environment()
    assert env.weather.base_url == "https://meteofrance-pnt.s3.rbx.io.cloud.ovh.net/pnt"


def test_env_show_on_a_fresh_install_prints_the_current_open_data_address(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "aggregat.cli.main", "env", "show"],
                          capture_output=True, text=True, cwd=tmp_path, env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert "base_url = https://meteofrance-pnt.s3.rbx.io.cloud.ovh.net/pnt" in proc.stdout
    assert "object.data.gouv.fr" not in proc.stdout


SOURCES = """
[env.dev.weather]
sources = ["open-data", "portail"]

[env.dev.weather.source.open-data]
kind = "open-data"
base_url = "https://meteofrance-pnt.s3.rbx.io.cloud.ovh.net/pnt"

[env.dev.weather.source.portail]
kind = "meteofrance-api"
base_url = "https://public-api.meteofrance.fr/previnum"
api_key = "${MF_API_KEY}"
"""


def test_sources_are_read_in_order_and_the_key_is_masked(config_file, monkeypatch):
    from aggregat.weather.sources import MeteoFranceApiSource, OpenDataSource, configured_sources

    config_file.write_text(TOML.replace('[env.dev.weather]\nmodels = ["arome-0025"]\n', "")
                           + SOURCES)
    monkeypatch.setenv("AGGREGAT_DEV_ENERGY_DB_PASSWORD", "pw")
    monkeypatch.setenv("AGGREGAT_PROD_ENERGY_DB_PASSWORD", "pw")
    monkeypatch.setenv("AGGREGAT_DEV_MF_API_KEY", "k3y/with:odd@chars%")
    env = load_environment("dev")
    assert env.weather.base_url is None  # the sources say where
    sources = configured_sources(env)
    assert [type(s) for s in sources] == [OpenDataSource, MeteoFranceApiSource]
    assert [s.name for s in sources] == ["open-data", "portail"]
    assert env.masked_dump()["weather"]["source"]["portail"]["api_key"] == "***"
    assert "k3y" not in json.dumps(env.masked_dump())
    # Without sources: one open-data source at base_url (the current address by default).
    assert [(s.name, s.base_url) for s in configured_sources(load_environment("prod"))] == [
        ("open-data", "https://meteofrance-pnt.s3.rbx.io.cloud.ovh.net/pnt")]


@pytest.mark.parametrize(("weather", "words"), [
    ('base_url = "https://x.example/pnt"\n', ["base_url", "sources", "not both"]),
    ('sources = ["portail", "nope"]\n', ["sources", "'nope'", "[weather.source.nope]"]),
])
def test_sources_that_contradict_or_are_undefined_are_one_error(config_file, monkeypatch,
                                                               weather, words):
    text = SOURCES.replace('sources = ["open-data", "portail"]\n',
                           'sources = ["open-data", "portail"]\n' + weather)
    if "nope" in weather:
        text = text.replace('sources = ["open-data", "portail"]\n', "")
    config_file.write_text(TOML.replace('[env.dev.weather]\nmodels = ["arome-0025"]\n', "")
                           + text)
    monkeypatch.setenv("AGGREGAT_DEV_ENERGY_DB_PASSWORD", "pw")
    monkeypatch.setenv("AGGREGAT_DEV_MF_API_KEY", "key")
    with pytest.raises(ConfigError) as info:
        load_environment("dev")
    assert "[env.dev.weather] sources" in str(info.value)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(("source", "words"), [
    ('kind = "meteofrance-api"\nbase_url = "https://a.example"\napi_key = "literal-key"\n',
     ["api_key", "never written in the file", "AGGREGAT_DEV_NAME"]),
    ('kind = "open-data"\nbase_url = "https://a.example"\napi_key = "${K}"\n',
     ["api_key", "only a meteofrance-api source"]),
    ('kind = "meteofrance-api"\nbase_url = "https://a.example"\n', ["needs api_key"]),
    ('kind = "meteofrance-api"\nbase_url = "https://a.example"\nclient_id = "${K}"\n',
     ["client_secret"]),
    ('kind = "ftp"\nbase_url = "https://a.example"\n', ["kind", "open-data"]),
])
def test_bad_source_settings_are_one_error(config_file, monkeypatch, source, words):
    config_file.write_text(TOML.replace('[env.dev.weather]\nmodels = ["arome-0025"]\n', "")
                           + '[env.dev.weather]\nsources = ["s"]\n[env.dev.weather.source.s]\n'
                           + source)
    monkeypatch.setenv("AGGREGAT_DEV_ENERGY_DB_PASSWORD", "pw")
    monkeypatch.setenv("AGGREGAT_DEV_K", "key")
    with pytest.raises(ConfigError) as info:
        load_environment("dev")
    for word in words:
        assert word in str(info.value), str(info.value)
    assert "literal-key" not in str(info.value)


def test_bigquery_settings_are_checked_at_load(config_file):
    config_file.write_text('[env.dev]\nroot = "d"\n[env.dev.energy]\nsource = "bigquery"\n'
                           'bigquery_load_table = "proj.energy.load`; DROP"\n')
    with pytest.raises(ConfigError, match=r"\[env\.dev\.energy\] bigquery_load_table = .*"
                                          r"project\.dataset\.table"):
        load_environment("dev")
    config_file.write_text('[env.dev]\nroot = "d"\n[env.dev.energy]\npublish_to = "bq"\n')
    with pytest.raises(ConfigError, match=r"\[env\.dev\.energy\] publish_to = 'bq'"):
        load_environment("dev")
    config_file.write_text('[env.dev]\nroot = "d"\n[env.dev.energy]\nsource = "bigquery"\n'
                           'publish_to = "bigquery"\n'
                           'bigquery_forecast_table = "my-proj.energy.forecasts"\n')
    energy = load_environment("dev").energy
    assert (energy.source, energy.bigquery_forecast_table) == ("bigquery",
                                                               "my-proj.energy.forecasts")


@pytest.mark.parametrize("bad", ["a/b", "../up", "x@intraday", ".hidden", ""])
def test_an_unsafe_target_id_is_refused_at_load(tmp_path, bad):
    """A target id names bank partitions and registry folders."""
    path = tmp_path / "aggregat.toml"
    path.write_text(f'[env.x.forecast]\n[[env.x.forecast.targets]]\nid = "{bad}"\n')
    with pytest.raises(ConfigError, match=r"targets\[0\]\.id"):
        load_environment("x", path)
