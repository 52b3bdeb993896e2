"""The package version, and the code version every model and ledger row records.

``code_version()`` is the one answer for both: ``$AGGREGAT_CODE_VERSION`` when set (the Docker
image sets it at build time: it has no ``.git``), else the package version plus the commit of the
git checkout it runs from (``0.1.0+g1a2b3c4d``), else the package version alone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("aggregat")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

ENV_VAR = "AGGREGAT_CODE_VERSION"


def code_version() -> str:
    """What produced a model or a ledger row: see the module docstring."""
    built = os.environ.get(ENV_VAR, "").strip()
    if built:
        return built
    sha = checkout_commit()
    return f"{__version__}+g{sha}" if sha else __version__


@functools.cache
def checkout_commit() -> str | None:
    """Short commit of the git checkout this source tree is, or None (installed from a wheel)."""
    root = Path(__file__).resolve().parents[2]  # src/aggregat/version.py -> the checkout
    # Only our own checkout: a wheel installed inside some other repository must not take its sha.
    if not (root / ".git").exists() or not (root / "pyproject.toml").exists():
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=8", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return None
