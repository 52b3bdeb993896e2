"""Model registry of one environment: versioned models per target, a CURRENT pointer, metadata.

Layout (any :class:`~aggregat.storage.Store` URL, so a local folder or ``s3://``)::

    {registry}/{target}/{version}/model.pkl     the fitted model (pickle)
    {registry}/{target}/{version}/meta.json    trained_at, code version, data window, features,
                                               metrics, config, sha256 of model.pkl
    {registry}/{target}/CURRENT                the production version (one line, atomic write)

A version is ``YYYYMMDDTHHMMSSZ-<sha256[:8]>``: it sorts by training time and names its content.
``meta.json`` is written last, so a version without it (a writer killed half-way) is ignored.

The registry lives in the environment's storage (``env.registry``), never in the installed
package: deploying new code does not touch it, and a model trained before a reinstall is still
listed, loaded and used afterwards.

Pickle safety: unpickling runs code, so :class:`Registry` must only be pointed at the
environment's own registry (a location written by this environment's ``aggregat model train``);
never at a registry copied from an untrusted source. The sha256 recorded at save time is checked
before unpickling, which catches corruption and partial copies (not a deliberate forgery by
someone with write access to the storage, who could rewrite both files).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from datetime import timedelta
from typing import Any, NamedTuple

import pandas as pd

from aggregat.config import mask_json
from aggregat.errors import ModelError
from aggregat.storage import Store
from aggregat.timeutil import as_utc
from aggregat.version import code_version

MODEL_FILE = "model.pkl"
META_FILE = "meta.json"
CURRENT_FILE = "CURRENT"
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+@-]{0,127}$")


class LoadedModel(NamedTuple):
    """A model read from the registry with its metadata (unpacks as ``model, meta``)."""

    model: Any
    meta: dict


def _check(name: str, what: str) -> str:
    if not isinstance(name, str) or not _SAFE.match(name) or ".." in name:
        raise ModelError(f"registry: {what} {name!r} is not a safe name (letters, digits, "
                         "'_', '.', ':', '+', '@', '-')")
    return name


def _json_default(obj: Any) -> Any:
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    if isinstance(obj, (pd.Timedelta, timedelta)):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


# Modules that moved since models were pickled: registries outlive code versions.
_MOVED = {f"aggregat.forecast.{m}": f"aggregat.forecast.core.{m}"
          for m in ("features", "models", "linear", "metrics", "backtest", "validation",
                    "calendar", "blend")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return super().find_class(_MOVED.get(module, module), name)


class Registry:
    """Versioned models per target in one storage location (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store = Store(url)

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    # ----------------------------------------------------------------------------- writing
    def save(self, target: str, model: Any, meta: dict | None = None,
             trained_at: pd.Timestamp | None = None) -> str:
        """Store ``model`` as a new version of ``target``; returns the version (not promoted)."""
        _check(target, "target")
        blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(blob).hexdigest()
        when = as_utc(trained_at if trained_at is not None
                      else (meta or {}).get("trained_at") or pd.Timestamp.now(tz="UTC"),
                      param="trained_at", error=ModelError)
        version = f"{when:%Y%m%dT%H%M%SZ}-{digest[:8]}"
        full = {**(meta or {}), "target": target, "version": version,
                "trained_at": when.isoformat(), "sha256": digest, "size": len(blob),
                "file": MODEL_FILE}
        full.setdefault("code_version", code_version())
        base = f"{target}/{version}"
        self.store.write_bytes(f"{base}/{MODEL_FILE}", blob)
        # meta.json last: its presence marks a complete version.
        self.store.write_bytes(f"{base}/{META_FILE}",
                               mask_json(full, indent=1, default=_json_default).encode())
        return version

    def promote(self, target: str, version: str) -> None:
        """Make ``version`` the production model of ``target`` (atomic pointer write)."""
        _check(target, "target")
        _check(version, "version")
        if not self.store.exists(f"{target}/{version}/{META_FILE}"):
            known = ", ".join(self.versions(target)[-5:]) or "none"
            raise ModelError(f"registry {self.url}: no version {version!r} of target {target!r} "
                             f"(latest: {known}); see `aggregat model list`")
        self.store.write_bytes(f"{target}/{CURRENT_FILE}", (version + "\n").encode())

    # ----------------------------------------------------------------------------- reading
    def targets(self) -> list[str]:
        """Targets with at least one complete version."""
        return [t for t in self.store.listdir() if self.versions(t)]

    def versions(self, target: str) -> list[str]:
        """Complete versions of ``target``, oldest first."""
        _check(target, "target")
        return [v for v in self.store.listdir(target)
                if v != CURRENT_FILE and self.store.exists(f"{target}/{v}/{META_FILE}")]

    def current(self, target: str) -> str | None:
        """The production version of ``target``, or None when none was promoted."""
        _check(target, "target")
        rel = f"{target}/{CURRENT_FILE}"
        if not self.store.exists(rel):
            return None
        version = self.store.read_bytes(rel).decode().strip()
        if not version:
            return None
        if not self.store.exists(f"{target}/{version}/{META_FILE}"):
            raise ModelError(f"registry: {self.store.uri(rel)} names version {version!r} which "
                             "is missing; promote another one with `aggregat model promote`")
        return version

    def meta(self, target: str, version: str | None = None) -> dict:
        """Metadata of ``version`` (default: the current one)."""
        version = self._resolve(target, version)
        rel = f"{target}/{version}/{META_FILE}"
        try:
            return json.loads(self.store.read_bytes(rel))
        except FileNotFoundError:
            raise ModelError(f"registry: {self.store.uri(rel)} is missing; see "
                             "`aggregat model list`") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"registry: {self.store.uri(rel)} is not valid JSON ({exc}); "
                             "promote another version or retrain") from None

    def load(self, target: str, version: str | None = None) -> LoadedModel:
        """The model and metadata of ``version`` (default: the current one), hash-checked."""
        version = self._resolve(target, version)
        meta = self.meta(target, version)
        rel = f"{target}/{version}/{meta.get('file', MODEL_FILE)}"
        try:
            blob = self.store.read_bytes(rel)
        except FileNotFoundError:
            raise ModelError(f"registry: model file {self.store.uri(rel)} is missing; "
                             "retrain or promote another version") from None
        digest = hashlib.sha256(blob).hexdigest()
        if digest != meta.get("sha256"):
            raise ModelError(f"registry: model file {self.store.uri(rel)} is corrupt (sha256 "
                             f"{digest[:12]} != recorded {str(meta.get('sha256'))[:12]}); "
                             "retrain or promote another version")
        try:
            model = _Unpickler(io.BytesIO(blob)).load()  # the env's own registry, hash-checked
        except Exception as exc:  # an old pickle the current code cannot rebuild
            raise ModelError(f"registry: model file {self.store.uri(rel)} cannot be loaded by "
                             f"this code version ({type(exc).__name__}: {exc}); retrain with "
                             "`aggregat model train --force`") from None
        return LoadedModel(model, meta)

    def list(self, target: str | None = None) -> list[dict]:
        """One row per version (all targets by default): target, version, current, trained_at,
        code_version, metrics, data window."""
        rows = []
        for t in [target] if target else self.targets():
            cur = self.current(t) if self.versions(t) else None
            for v in self.versions(t):
                meta = self.meta(t, v)
                rows.append({"target": t, "version": v, "current": v == cur,
                             "trained_at": meta.get("trained_at"),
                             "code_version": meta.get("code_version"),
                             "data_start": meta.get("data_start"),
                             "data_end": meta.get("data_end"),
                             "metrics": meta.get("metrics", {}),
                             "promoted": meta.get("promotion", {}).get("promoted"),
                             "promotion": meta.get("promotion", {})})
        return rows

    def age(self, target: str, now: pd.Timestamp | None = None) -> pd.Timedelta | None:
        """Time since the newest version of ``target`` was trained (promoted or not); None if
        there is none. A candidate kept out of production still counts: retraining it daily
        would not help."""
        versions = self.versions(target)
        if not versions:
            return None
        trained = pd.Timestamp(self.meta(target, versions[-1])["trained_at"])
        now = now if now is not None else pd.Timestamp.now(tz="UTC")
        return now - trained

    def _resolve(self, target: str, version: str | None) -> str:
        _check(target, "target")
        if version is not None:
            return _check(version, "version")
        cur = self.current(target)
        if cur is None:
            raise ModelError(f"registry {self.url}: target {target!r} has no current model; "
                             "run `aggregat model train` first")
        return cur
