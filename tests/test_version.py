"""One code version: models in the registry and ledger rows record the same one."""

from __future__ import annotations

import pandas as pd
import pytest

import aggregat
from aggregat.bank import Bank
from aggregat.forecast.registry import Registry
from aggregat.ops.ledger import Ledger


def _recorded(tmp_path) -> tuple[str, str]:
    """(code version of a model saved in the registry, of a ledger row) written now."""
    reg = Registry(str(tmp_path / "registry"))
    version = reg.save("paris", {"tag": "a"}, {}, trained_at=pd.Timestamp("2026-11-01T03:00Z"))
    ledger = Ledger(Bank(str(tmp_path / "bank")), job="daily")
    with ledger.step("extract", "arome-0025/2026-11-28T00") as st:
        st.rows = 1
    entry = Ledger(Bank(str(tmp_path / "bank"))).last("extract", "arome-0025/2026-11-28T00")
    return reg.load("paris", version).meta["code_version"], entry.code_version


def test_models_and_ledger_record_the_same_version(tmp_path, monkeypatch):
    monkeypatch.delenv("AGGREGAT_CODE_VERSION", raising=False)
    model, row = _recorded(tmp_path)
    assert model == row
    assert model.startswith(aggregat.__version__)


def test_build_time_version_is_recorded_by_both(tmp_path, monkeypatch):
    # What the Docker image sets (no .git inside it).
    monkeypatch.setenv("AGGREGAT_CODE_VERSION", "0.1.0+gdeadbeef")
    assert _recorded(tmp_path) == ("0.1.0+gdeadbeef", "0.1.0+gdeadbeef")


@pytest.mark.parametrize("sha", ["1a2b3c4d", None])
def test_checkout_commit_else_package_version(monkeypatch, sha):
    from aggregat import version

    monkeypatch.delenv("AGGREGAT_CODE_VERSION", raising=False)
    monkeypatch.setattr(version, "checkout_commit", lambda: sha)
    expected = f"{aggregat.__version__}+g{sha}" if sha else aggregat.__version__
    assert version.code_version() == expected


def test_dockerfile_sets_the_build_time_version():
    from pathlib import Path

    dockerfile = (Path(__file__).parents[1] / "deploy" / "Dockerfile").read_text()
    assert "AGGREGAT_CODE_VERSION=" in dockerfile
