"""``env check --access``: a least-privilege world passes; each seeded violation is found with
its line and fix. Real PostgreSQL roles (pgserver) and a real S3 API enforcing IAM policies (a
dedicated moto server with authentication on)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa

from aggregat.api import check_access
from aggregat.config import load_environment
from aggregat.energy.db import make_engine
from aggregat.energy.schema import create_default_tables

pytestmark = pytest.mark.postgres

PASSWORDS = {"dev": {"SYNC_PASSWORD": "dev-sync-Pw1", "PUB_PASSWORD": "dev-pub-Pw2"},
             "prod": {"SYNC_PASSWORD": "prod-sync-Pw3", "PUB_PASSWORD": "prod-pub-Pw4"}}


def _sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def _as(url: str, user: str, secret: str) -> str:
    """``url`` (postgres@/db?unix_sock=...) as ``user`` with a ${secret} placeholder."""
    return url.replace("postgres@", f"{user}:${{{secret}}}@", 1)


@pytest.fixture
def world(tmp_path, pg_database_factory, monkeypatch):
    """dev and prod, each its own database, sync user (SELECT on the load table) and publish
    user (SELECT, INSERT, DELETE on the forecast table), CONNECT for their own users only."""
    tag = uuid.uuid4().hex[:6]
    users, admin = {}, {}
    sections = []
    for env in ("dev", "prod"):
        url = pg_database_factory()
        admin[env] = url
        db = sa.engine.make_url(url).database
        sync, pub = f"agg_sync_{env}_{tag}", f"agg_pub_{env}_{tag}"
        users[env] = {"sync": sync, "publish": pub}
        engine = make_engine(url)
        create_default_tables(engine, load_environment("local").energy)
        engine.dispose()
        _sql(url, f"CREATE ROLE {sync} LOGIN PASSWORD 'x'", f"CREATE ROLE {pub} LOGIN PASSWORD 'x'",
             f'REVOKE CONNECT ON DATABASE "{db}" FROM PUBLIC',
             f'GRANT CONNECT ON DATABASE "{db}" TO {sync}, {pub}',
             f"GRANT SELECT ON load_measurements TO {sync}",
             f"GRANT SELECT, INSERT, DELETE ON load_forecasts TO {pub}")
        for name, value in PASSWORDS[env].items():
            monkeypatch.setenv(f"AGGREGAT_{env.upper()}_{name}", value)
        sections.append(f'[env.{env}]\nroot = "{tmp_path / env}"\n'
                        f'energy_db = "{_as(url, pub, "PUB_PASSWORD")}"\n'
                        f'[env.{env}.energy]\nsync_db = "{_as(url, sync, "SYNC_PASSWORD")}"\n')
    config = tmp_path / "aggregat.toml"
    config.write_text("\n".join(sections))
    return {"config": str(config), "admin": admin, "users": users, "tag": tag}


def _lines(report) -> list[str]:
    return [f.line() for f in report.violations]


def test_least_privilege_world_passes(world):
    report = check_access(config=world["config"])
    assert report.ok, _lines(report)
    assert report.envs == ["dev", "prod"] and report.exit_code == 0
    checks = {(f.env, f.check) for f in report.findings if f.status == "ok"}
    assert {("prod", "energy DB: sync user"), ("prod", "energy DB: publish user"),
            ("dev", "secrets"), ("prod", "dashboard")} <= checks
    assert report.summary().startswith("access ok: dev, prod")


def _seed(world, what: str, monkeypatch) -> str:
    """Break one rule in prod; returns the line the review must print."""
    u = world["users"]["prod"]
    sync, pub, dev_pub = u["sync"], u["publish"], world["users"]["dev"]["publish"]
    prod = world["admin"]["prod"]
    db = sa.engine.make_url(prod).database
    if what == "sync can insert":
        _sql(prod, f"GRANT INSERT ON load_measurements TO {sync}")
        return (f'prod: sync user "{sync}" can INSERT table public.load_measurements — '
                f"REVOKE INSERT ON public.load_measurements FROM {sync}")
    if what == "sync writes all":
        _sql(prod, f"GRANT pg_write_all_data TO {sync}")
        return f'prod: sync user "{sync}" is a member of role "pg_write_all_data"'
    if what == "publish writes the load table":
        _sql(prod, f"GRANT UPDATE ON load_measurements TO {pub}")
        return (f'prod: publish user "{pub}" can UPDATE table public.load_measurements — '
                f"REVOKE UPDATE ON public.load_measurements FROM {pub}")
    if what == "publish creates in schema":
        _sql(prod, f"GRANT CREATE ON SCHEMA public TO {pub}")
        return (f'prod: publish user "{pub}" can CREATE in schema public — '
                f"REVOKE CREATE ON SCHEMA public FROM {pub}")
    if what == "publish superuser":
        _sql(prod, f"ALTER ROLE {pub} SUPERUSER")
        return f'prod: publish user "{pub}" is superuser — ALTER ROLE {pub} NOSUPERUSER'
    if what == "publish createrole":
        _sql(prod, f"ALTER ROLE {pub} CREATEROLE")
        return (f'prod: publish user "{pub}" can create roles (CREATEROLE) — '
                f"ALTER ROLE {pub} NOCREATEROLE")
    if what == "dev writes prod":
        _sql(prod, f'GRANT CONNECT ON DATABASE "{db}" TO {dev_pub}',
             f"GRANT INSERT ON load_forecasts TO {dev_pub}")
        return (f'prod: dev\'s user "{dev_pub}" can INSERT table public.load_forecasts — '
                f"REVOKE INSERT ON public.load_forecasts FROM {dev_pub}")
    if what == "shared secret":
        monkeypatch.setenv("AGGREGAT_PROD_PUB_PASSWORD", PASSWORDS["dev"]["PUB_PASSWORD"])
        return ("dev: secret AGGREGAT_DEV_PUB_PASSWORD has the same value as "
                "AGGREGAT_PROD_PUB_PASSWORD — give dev and prod different credentials")
    if what == "actions without token":
        with open(world["config"], "a") as fh:
            fh.write("[env.prod.dashboard]\nactions = true\n")
        monkeypatch.delenv("AGGREGAT_PROD_DASHBOARD_TOKEN", raising=False)
        return ("prod: dashboard actions are on but AGGREGAT_PROD_DASHBOARD_TOKEN is not set — "
                "export AGGREGAT_PROD_DASHBOARD_TOKEN")
    raise AssertionError(what)


@pytest.mark.parametrize("what", [
    "sync can insert", "sync writes all", "publish writes the load table",
    "publish creates in schema", "publish superuser", "publish createrole", "dev writes prod",
    "shared secret", "actions without token"])
def test_each_violation_is_found_with_its_fix(world, what, monkeypatch):
    expected = _seed(world, what, monkeypatch)
    report = check_access(config=world["config"])
    assert report.exit_code == 1
    assert any(line.startswith(expected) for line in _lines(report)), _lines(report)
    for line in _lines(report):  # secrets never printed
        assert not any(pw in line for env in PASSWORDS.values() for pw in env.values())


def test_one_environment_and_the_dashboard_token(world, monkeypatch):
    with open(world["config"], "a") as fh:
        fh.write("[env.prod.dashboard]\nactions = true\n")
    monkeypatch.setenv("AGGREGAT_PROD_DASHBOARD_TOKEN", "a-long-random-dashboard-token")
    report = check_access("prod", config=world["config"])
    assert report.ok, _lines(report)
    assert report.envs == ["prod"] and {f.env for f in report.findings} == {"dev", "prod"}
    # The token is a secret too: the same token in dev is a shared secret.
    monkeypatch.setenv("AGGREGAT_DEV_DASHBOARD_TOKEN", "a-long-random-dashboard-token")
    assert "AGGREGAT_DEV_DASHBOARD_TOKEN has the same value as AGGREGAT_PROD_DASHBOARD_TOKEN" \
        in " ".join(_lines(check_access("prod", config=world["config"])))


def test_sync_and_publish_sharing_one_user(world):
    text = open(world["config"]).read()
    # prod without sync_db: sync reads as the publish user, which can write.
    text = text.replace(text[text.index("[env.prod.energy]"):], "")
    with open(world["config"], "w") as fh:
        fh.write(text)
    lines = _lines(check_access("prod", config=world["config"]))
    assert any("sync and publish share the energy-DB user" in line for line in lines), lines


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", "env", "check", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_cli_prints_one_line_per_violation_and_exits_1(world, monkeypatch):
    clean = _cli("--access", "--config", world["config"])
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "access ok: dev, prod" in clean.stdout
    expected = _seed(world, "publish creates in schema", monkeypatch)
    out = _cli("--access", "--config", world["config"])
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.splitlines()[0].startswith(f"violation: {expected}")
    assert "1 access violation(s) in dev, prod" in out.stdout
    as_json = json.loads(_cli("--access", "--json", "--config", world["config"]).stdout)
    assert [f["check"] for f in as_json["findings"] if f["status"] == "violation"] == \
        ["energy DB: publish user"]


def test_sqlite_says_what_it_cannot_check(tmp_path):
    config = tmp_path / "aggregat.toml"
    config.write_text(f'[env.dev]\nroot = "{tmp_path}/dev"\n')
    env = load_environment("dev", config)
    engine = make_engine(env.energy_db, env.energy)
    create_default_tables(engine, env.energy)
    engine.dispose()
    report = check_access(config=str(config))
    assert report.ok
    [note] = [f for f in report.findings if f.check == "energy DB"]
    assert note.status == "unchecked" and "has no users or grants" in note.message
    os.chmod(tmp_path / "dev" / "energy.sqlite", 0o666)
    assert any("is world-writable — chmod o-w" in line
               for line in _lines(check_access(config=str(config))))


# -- object storage: two buckets, each writable only with its own environment's keys -----------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def iam_s3():
    """A moto server that authenticates (INITIAL_NO_AUTH_ACTION_COUNT: the set-up calls run
    before it starts to), with buckets agg-dev and agg-prod and one IAM user each, allowed only
    on its own bucket. Yields (endpoint, {env: (key id, secret)})."""
    pytest.importorskip("moto.server")
    import boto3

    port = _free_port()
    setup_calls = 8  # 2 buckets + 2 users + 2 policies + 2 access keys, below
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(setup_calls)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        kw = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "setup",
              "aws_secret_access_key": "setup"}
        s3, iam = boto3.client("s3", **kw), boto3.client("iam", **kw)
        keys = {}
        for env in ("dev", "prod"):
            s3.create_bucket(Bucket=f"agg-{env}")
        for env in ("dev", "prod"):
            iam.create_user(UserName=env)
            iam.put_user_policy(UserName=env, PolicyName="own-bucket", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::agg-{env}", f"arn:aws:s3:::agg-{env}/*"]}]}))
        for env in ("dev", "prod"):
            key = iam.create_access_key(UserName=env)["AccessKey"]
            keys[env] = (key["AccessKeyId"], key["SecretAccessKey"])
        yield url, keys
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _s3_config(tmp_path, endpoint: str) -> str:
    sections = []
    for env in ("dev", "prod"):
        sections.append(
            f'[env.{env}]\nroot = "s3://agg-{env}"\n'
            f'energy_db = "sqlite:///{tmp_path}/{env}.sqlite"\n'
            f'storage_options = {{key = "${{S3_KEY}}", secret = "${{S3_SECRET}}", '
            f'client_kwargs = {{endpoint_url = "{endpoint}"}}}}\n')
    config = tmp_path / "aggregat.toml"
    config.write_text("\n".join(sections))
    return str(config)


def test_storage_credentials_per_environment(tmp_path, iam_s3, monkeypatch):
    endpoint, keys = iam_s3
    for env, (key, secret) in keys.items():
        monkeypatch.setenv(f"AGGREGAT_{env.upper()}_S3_KEY", key)
        monkeypatch.setenv(f"AGGREGAT_{env.upper()}_S3_SECRET", secret)
    config = _s3_config(tmp_path, endpoint)
    report = check_access(config=config)
    assert report.ok, _lines(report)
    denied = [f.message for f in report.findings if f.check == "storage" and f.status == "ok"]
    assert "dev's credentials cannot write root s3://agg-prod" in denied
    assert "prod's credentials cannot write root s3://agg-dev" in denied
    # Every store of the environment opens with its own keys: prod writes its bucket.
    from aggregat.bank import Bank

    prod = load_environment("prod", config)
    Bank(prod.bank).store.write_bytes("probe.txt", b"x")
    assert Bank(prod.bank).store.read_bytes("probe.txt") == b"x"

    # dev given prod's keys: they write prod's bucket, and the secrets are shared.
    monkeypatch.setenv("AGGREGAT_DEV_S3_KEY", keys["prod"][0])
    monkeypatch.setenv("AGGREGAT_DEV_S3_SECRET", keys["prod"][1])
    lines = _lines(check_access(config=config))
    assert any(line.startswith("prod: dev's credentials (its storage_options) can write prod's "
                               "root s3://agg-prod — give dev credentials limited to its own "
                               "bucket") for line in lines), lines
    assert "dev: secret AGGREGAT_DEV_S3_SECRET has the same value as AGGREGAT_PROD_S3_SECRET" \
        in " ".join(lines)
    assert not any(keys["prod"][1] in line for line in lines)


def test_literal_storage_credential_is_refused(tmp_path):
    config = tmp_path / "aggregat.toml"
    config.write_text('[env.dev]\nroot = "s3://b"\nenergy_db = "sqlite:///x.sqlite"\n'
                      'storage_options = {key = "AKIAEXAMPLE", secret = "${S3_SECRET}"}\n')
    from aggregat.errors import ConfigError

    with pytest.raises(ConfigError, match=r"storage_options.key holds a literal credential"):
        load_environment("dev", config)


def test_storage_options_follow_the_url_to_stores_and_dask_tasks():
    from aggregat.storage import Store, register_storage_options
    from aggregat.weather.extract import ExtractReport, plan_tasks

    register_storage_options("memory://agg-t1", {"skip_instance_cache": True})
    register_storage_options("memory://agg-t1/bank", {"skip_instance_cache": False})
    assert Store("memory://agg-t1/datalake").options == {"skip_instance_cache": True}
    assert Store("memory://agg-t1/bank/load").options == {"skip_instance_cache": False}
    assert Store("memory://agg-t10").options == {}  # a sibling name is not under the prefix
    # A remote file's extraction task carries them to a Dask worker, which loaded no config.
    [task] = plan_tasks(["memory://agg-t1/datalake/f.grib2"], None, method="nearest",
                        wanted=None, workers=1, grid_name=None,
                        report=ExtractReport.__new__(ExtractReport))
    assert task.storage_options == {"skip_instance_cache": True}
