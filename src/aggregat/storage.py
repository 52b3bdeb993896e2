"""Atomic file storage on a local folder or any fsspec URL (``s3://``, ``gs://``, ``memory://``).

The datalake, the bank and the model registry all go through :class:`Store`, so each one is a
local folder by default and object storage when configured. Writes are atomic: a local file is
written under a temporary name in the same folder and renamed; on object storage a single PUT is
already atomic (readers see the old object or the new one, never half of it).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

TMP_PREFIX = ".tmp-"


class Store:
    """Files under one root URL; every path argument is relative to that root."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = root.rstrip("/") if root != "/" else root
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def full(self, rel: str = "") -> str:
        """Path of ``rel`` as the filesystem sees it (local path or bucket/key)."""
        return f"{self.root}/{rel}".rstrip("/") if rel else self.root

    def uri(self, rel: str = "") -> str:
        """URL of ``rel`` (local path for a local store), for messages and DuckDB."""
        return f"{self.url}/{rel}".rstrip("/") if rel else self.url

    def local_path(self, rel: str = "") -> Path:
        """Local path of ``rel``; only for local stores."""
        if not self.is_local:
            raise ValueError(f"{self.url} is not a local folder")
        return Path(self.full(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.full(rel))

    def size(self, rel: str) -> int:
        return int(self.fs.size(self.full(rel)))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.full(rel))

    def open(self, rel: str, mode: str = "rb") -> IO[bytes]:
        return self.fs.open(self.full(rel), mode)

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under ``rel``; temporary files are hidden; [] if absent."""
        try:
            entries = self.fs.ls(self.full(rel), detail=False)
        except FileNotFoundError:
            return []
        names = sorted({e.rstrip("/").rsplit("/", 1)[-1] for e in entries})
        return [n for n in names if not n.startswith(TMP_PREFIX)]

    def glob(self, pattern: str) -> list[str]:
        """Relative paths matching ``pattern`` (relative to the root)."""
        prefix = self.root.rstrip("/") + "/"
        return sorted(p[len(prefix):] if p.startswith(prefix) else p
                      for p in self.fs.glob(self.full(pattern)))

    def makedirs(self, rel: str) -> None:
        self.fs.makedirs(self.full(rel), exist_ok=True)

    def remove(self, rel: str, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.full(rel), recursive=recursive)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` at ``rel`` atomically."""
        with self.atomic_writer(rel) as fh:
            fh.write(data)

    @contextlib.contextmanager
    def atomic_writer(self, rel: str) -> Iterator[IO[bytes]]:
        """Open ``rel`` for writing; it appears under its name only if the block succeeds."""
        target = self.full(rel)
        if self.is_local:
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            tmp = os.path.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}-{os.path.basename(target)}")
            try:
                with open(tmp, "wb") as fh:
                    yield fh
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
                raise
        else:
            # One PUT of the whole object: atomic on object stores.
            import io

            buf = io.BytesIO()
            yield buf
            self.fs.pipe_file(target, buf.getvalue())

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` (replacing it)."""
        if self.is_local:
            os.makedirs(os.path.dirname(self.full(dst)), exist_ok=True)
            os.replace(self.full(src), self.full(dst))
        else:
            self.fs.mv(self.full(src), self.full(dst))

    def clean_tmp(self, rel: str = "") -> int:
        """Remove temporary files left by a killed writer under ``rel``; returns how many."""
        if not self.is_local:
            return 0
        count = 0
        base = Path(self.full(rel))
        if not base.exists():
            return 0
        for tmp in base.rglob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                count += 1
        return count
