"""deploy/ files parse and only call CLI commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

import typer
import yaml

from aggregat.cli.main import app
from aggregat.config import secret_var

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
        for doc in yaml.safe_load_all(text) if path.suffix in (".yml", ".yaml") else []:
            for args in _find(doc, "args"):
                found.add(tuple(a for a in args[:2] if not a.startswith("-")))
    return found


def _find(tree, key):
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k == key and isinstance(v, list):
                yield v
            else:
                yield from _find(v, key)
    elif isinstance(tree, list):
        for v in tree:
            yield from _find(v, key)


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
