"""Fixtures of the bank tests."""

from __future__ import annotations

import pytest

from aggregat.bank import Bank


@pytest.fixture
def bank(tmp_path) -> Bank:
    return Bank(str(tmp_path / "bank"))
