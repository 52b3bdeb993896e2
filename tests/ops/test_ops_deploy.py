"""deploy/ files parse, only call CLI commands and options that exist, and use only settings and
environment variables that exist; the compose energy DB's users pass the access review."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
import yaml

from aggregat.cli.main import app
from aggregat.config import load_environment, secret_var

SRC = Path(__file__).resolve().parents[2] / "src" / "aggregat"

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _commands() -> set[tuple[str, ...]]:
    root = typer.main.get_command(app)
    out: set[tuple[str, ...]] = set()

    def walk(cmd, path: tuple[str, ...]) -> None:
        out.add(path)
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))

    walk(root, ())
    return out


def _invocations() -> set[tuple[str, ...]]:
    found = set()
    for path in DEPLOY.iterdir():
        text = path.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for match in re.finditer(r"(?:^|[\s;(-])(?:aggregat|\$BIN) ([a-z][a-z-]+)"
                                 r"(?: ([a-z][a-z-]+))?", code):
            found.add(tuple(g for g in match.groups() if g))
        for argv in _argvs(path).get("aggregat", []):
            found.add(tuple(a for a in argv[:2] if not a.startswith("-")))
    return found


def _argvs(path: Path) -> dict[str, list[list[str]]]:
    """The argument lists of the containers of a YAML file, by program (aggregat or dask): a
    compose service's ``command`` after its ``entrypoint``, a Kubernetes container's ``args``
    after its ``command``; the image's entrypoint is aggregat."""
    out: dict[str, list[list[str]]] = {}
    if path.suffix not in (".yml", ".yaml"):
        return out
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict) and "services" in doc:  # docker compose
            pairs = [(s.get("entrypoint"), s.get("command")) for s in doc["services"].values()
                     if str(s.get("image", "")).startswith("aggregat")]
        else:
            pairs = [(c.get("command"), c.get("args")) for c in _containers(doc)]
        for program, argv in pairs:
            if isinstance(argv, list):
                out.setdefault((program or ["aggregat"])[0], []).append([str(a) for a in argv])
    return out


def _containers(tree):
    if isinstance(tree, dict):
        if "image" in tree and "name" in tree:
            yield tree
        for v in tree.values():
            yield from _containers(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _containers(v)


def _shell_calls() -> list[list[str]]:
    """Every ``aggregat ...`` / ``$BIN ...`` command line of the shell-like files, as tokens."""
    calls = []
    for path in DEPLOY.iterdir():
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            line = re.sub(r"\$\([^)]*\)", "VALUE", line)  # $(date ...) is a value, not options
            for match in re.finditer(r"(?:^|[\s;(\"'-])(?:aggregat|\$BIN) ([a-z][^;|&>)\n]*)",
                                     line):
                calls.append(match.group(1).replace('"', " ").split())
    return calls


def test_deploy_files_parse():
    ci = yaml.safe_load((DEPLOY / "gitlab-ci.yml").read_text())
    assert {"test", "build-image", "deploy-dev", "deploy-prod", "retrain-dev",
            "retrain-prod"} <= set(ci)
    assert "aggregat model train --env \"$CI_ENVIRONMENT_NAME\" --force" in \
        ci[".retrain"]["script"][0]
    jobs = list(yaml.safe_load_all((DEPLOY / "k8s-cronjob.yaml").read_text()))
    assert [j["metadata"]["name"] for j in jobs] == ["aggregat-daily", "aggregat-weekly",
                                                         "aggregat-intraday"]
    for job in jobs:
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and 'ENTRYPOINT ["aggregat"]' in dockerfile
    # The Secret's variable names follow the config's convention.
    assert secret_var("prod", "ENERGY_DB_PASSWORD") in (DEPLOY / "k8s-cronjob.yaml").read_text()


def test_deploy_files_call_existing_commands():
    known = _commands()
    calls = {c for c in _invocations() if c}
    assert ("model", "train") in calls and ("health",) in {c[:1] for c in calls}
    missing = []
    for call in sorted(calls):
        if call in known or (call[:1] in known and call[0] in ("health", "schedule")):
            continue  # a top-level command followed by an argument
        missing.append(call)
    assert missing == []
    assert {("run", "daily"), ("run", "weekly"), ("run", "intraday")} <= calls


def _options_of(argv: list[str]) -> tuple[set[str], list[str]]:
    """The options ``aggregat argv`` accepts (root, groups and the command) and those it uses."""
    cmd = typer.main.get_command(app)
    known = {o for p in cmd.params for o in p.opts}
    for word in argv:
        if word.startswith("-") or word not in getattr(cmd, "commands", {}):  # typer's own click
            break
        cmd = cmd.commands[word]
        known |= {o for p in cmd.params for o in p.opts + p.secondary_opts}
    used = [w.split("=", 1)[0] for w in argv if w.startswith("-")]
    return known, used


def test_deploy_files_use_existing_options():
    calls = _shell_calls() + [argv for path in DEPLOY.iterdir()
                              for argv in _argvs(path).get("aggregat", [])]
    assert ["schedule", "--env", "prod"] in calls
    unknown = []
    for argv in calls:
        known, used = _options_of(argv)
        unknown += [f"aggregat {' '.join(argv)}: {o}" for o in used if o not in known]
    assert unknown == []


def test_dask_commands_and_options_exist():
    from distributed.cli import dask_scheduler, dask_worker

    clis = {"scheduler": dask_scheduler.main, "worker": dask_worker.main}
    argvs = [argv for path in DEPLOY.iterdir() for argv in _argvs(path).get("dask", [])]
    assert sorted(a[0] for a in argvs) == ["scheduler", "scheduler", "worker", "worker"]
    for sub, *rest in argvs:
        known = {o for p in clis[sub].params for o in p.opts + p.secondary_opts}
        assert [o for o in rest if o.startswith("-") and o not in known] == [], (sub, rest)


def test_compose_and_dask_cluster_start_what_the_jobs_need():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    assert {"aggregat", "dask-scheduler", "dask-worker", "energy-db", "object-store",
            "object-store-init"} <= set(compose)
    assert compose["dask-worker"]["deploy"]["replicas"] == 2
    assert compose["aggregat"]["command"][0] == "schedule"
    assert compose["energy-db"]["image"].startswith("postgres:")
    assert compose["object-store"]["image"].startswith("minio/")
    [cluster] = yaml.safe_load_all((DEPLOY / "k8s-daskcluster.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    assert cluster["spec"]["worker"]["replicas"] == 2
    ports = {p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"]}
    assert 8786 in ports
    # The example config points at the compose services by their names.
    example = (DEPLOY / "aggregat.example.toml").read_text()
    assert "tcp://dask-scheduler:8786" in example and "@energy-db:5432/" in example
    assert "http://object-store:9000" in example
    # Every extra the recipes use is installed by the image.
    assert '".[s3,gcs]"' in (DEPLOY / "Dockerfile").read_text()


def _example_env(monkeypatch):
    names = set(re.findall(r"\$\{([A-Z0-9_]+)\}", (DEPLOY / "aggregat.example.toml").read_text()))
    for name in names:
        monkeypatch.setenv(secret_var("prod", name), f"value-of-{name}")
    return names


def test_example_config_loads_and_deploy_env_vars_exist(monkeypatch):
    names = _example_env(monkeypatch)
    env = load_environment("prod", DEPLOY / "aggregat.example.toml")  # every setting exists
    assert env.scheduler and env.storage_options["key"] == "value-of-S3_KEY"
    assert env.energy_url("sync") != env.energy_url("publish")
    # Variables the deploy files set or mention: the code reads them, or they are the example
    # config's secrets (AGGREGAT_PROD_<NAME>), or the dashboard token.
    read_by_code = set()
    for path in SRC.rglob("*.py"):
        read_by_code |= set(re.findall(r"[\"'](AGGREGAT_[A-Z_]+)[\"']", path.read_text()))
    allowed = read_by_code | {secret_var(e, n) for e in ("dev", "prod")
                              for n in (*names, "DASHBOARD_TOKEN")}
    # The GitLab template's own pipeline variables (a file variable, the scheduled job's name).
    allowed |= {"AGGREGAT_CONFIG_FILE", "AGGREGAT_JOB"}
    used = set()
    for path in DEPLOY.iterdir():
        used |= set(re.findall(r"\b(AGGREGAT_[A-Z0-9_]*[A-Z0-9])\b", path.read_text()))
    assert used - allowed == set()


@pytest.mark.postgres
def test_compose_energy_db_users_pass_the_access_review(tmp_path, pg_database_factory,
                                                         monkeypatch):
    """energy-db-init.sh's SQL on a real PostgreSQL: the example's users pass the review."""
    from aggregat.api import check_access
    from aggregat.energy.schema import forecast_table, load_table

    script = (DEPLOY / "energy-db-init.sh").read_text()
    sql = script.split("<<'SQL'\n", 1)[1].split("\nSQL\n", 1)[0]
    sql = sql.replace(":'sync_pw'", "'x'").replace(":'publish_pw'", "'y'")
    url = pg_database_factory()
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for role in ("aggregat_sync", "aggregat_publish"):  # the roles are per server
            conn.execute(sa.text(f"DROP OWNED BY {role}") if conn.execute(sa.text(
                "SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar() else
                sa.text("SELECT 1"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        conn.exec_driver_sql(sql)
        # The tables are aggregat's default schema.
        settings = load_environment("local").energy
        for table in (load_table(settings), forecast_table(settings)):
            have = [c["name"] for c in sa.inspect(conn).get_columns(table.name)]
            assert have == [c.name for c in table.columns]
    engine.dispose()
    _example_env(monkeypatch)
    text = (DEPLOY / "aggregat.example.toml").read_text()
    parsed = sa.engine.make_url(url)
    where = f"@/{parsed.database}?unix_sock={parsed.query['unix_sock']}"
    text = text.replace("@energy-db:5432/energy", where).replace("s3://aggregat-prod",
                                                                 str(tmp_path / "prod"))
    text = text[:text.index("storage_options")] + text[text.index("[env.prod.energy]"):]
    config = tmp_path / "aggregat.toml"
    config.write_text(text)
    report = check_access("prod", config=config)
    assert report.ok, [f.line() for f in report.violations]
    assert {f.check for f in report.findings} >= {"energy DB: sync user",
                                                  "energy DB: publish user"}
