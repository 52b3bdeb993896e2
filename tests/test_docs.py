"""The documentation site builds with ``mkdocs build --strict`` (a broken link or anchor, a missing
page, a docstring mkdocstrings cannot render all fail), and its generated references cover every
setting and every command of the code it documents."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))


@pytest.mark.slow
def test_the_site_builds_strict_with_every_page(site):
    for page in ("index", "runbook", "operations", "api", "environments/embedded",
                 "environments/dev-prod", "reference/configuration", "reference/cli",
                 "reference/python-api"):
        assert (site / page / "index.html").is_file() or (site / f"{page}.html").is_file(), page
    api = _text(site / "reference/python-api/index.html")
    assert "check_alerts" in api and "Evaluate the health of" in api  # from the docstrings


@pytest.mark.slow
def test_the_configuration_reference_lists_every_setting(site):
    from aggregat.config import Environment

    text = _text(site / "reference/configuration/index.html")
    for name, field in Environment.model_fields.items():
        section = field.annotation
        if hasattr(section, "model_fields"):
            assert f"[env.NAME.{name}]" in text
            for setting in section.model_fields:
                assert re.search(rf"\b{setting}\b", text), f"{name}.{setting}"
    assert "runbook_url" in text and "digest" in text


@pytest.mark.slow
def test_the_cli_reference_lists_every_command_and_option(site):
    import typer.main

    from aggregat.cli.main import app

    text = _text(site / "reference/cli/index.html")

    def walk(group, path):
        for name, command in group.commands.items():
            assert f"{path} {name}" in text, f"{path} {name}"
            if hasattr(command, "commands"):
                walk(command, f"{path} {name}")
            else:
                for param in command.params:
                    for opt in param.opts:
                        assert opt in text or param.param_type_name == "argument", opt

    walk(typer.main.get_command(app), "aggregat")
