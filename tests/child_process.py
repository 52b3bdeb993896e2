"""The environment of the tests' child processes (``python -m aggregat.cli.main ...``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def child_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default ``os.environ``) plus a PYTHONPATH on the ``aggregat`` the tests import:
    a child started in another working directory would otherwise import whatever is installed
    (an editable install of another checkout, say) and silently test other code."""
    import aggregat

    base = dict(os.environ if base is None else base)
    src = str(Path(aggregat.__file__).resolve().parents[1])
    path = base.get("PYTHONPATH")
    return {**base, "PYTHONPATH": src + (os.pathsep + path if path else ""), **extra}
