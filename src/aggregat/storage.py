"""Atomic file storage on a local folder or any fsspec URL (``s3://``, ``gs://``, ``memory://``).

The datalake, the bank and the model registry all go through :class:`Store`, so each one is a
local folder by default and object storage when configured. Writes are atomic: a local file is
written under a temporary name in the same folder and renamed; on object storage a single PUT is
already atomic (readers see the old object or the new one, never half of it).

Credentials: :func:`register_storage_options` ties fsspec options (keys, endpoint) to a URL
prefix; every Store under it opens with them. Loading an environment registers its
``storage_options`` for its root, datalake, bank, registry and quarantine, so two environments
in one process (``bank copy``) each use their own credentials. Forked workers inherit them.

A temporary name starts with ``.tmp-`` (listings hide it) and ends with ``.tmp``, never with the
final suffix, so a plain glob such as DuckDB's ``read_parquet('bank/**/*.parquet')`` skips it. It
carries the writer's host and pid: a writer sweeps the stale ones left in its folder by killed
writers (dead pid on this host, or older than :data:`STALE_TMP_S`) before writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

TMP_PREFIX = ".tmp-"
TMP_SUFFIX = ".tmp"  # not ".parquet": dataset globs must not match a half-written file
# A temp file this old is a leftover whatever its pid says (pid reuse, another host, old names).
STALE_TMP_S = 3600.0
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TMP_NAME = re.compile(r"^\.tmp-([0-9a-f]{6})-(\d+)-[0-9a-f]{12}-")


# URL prefix -> fsspec options of the stores under it (the environment's credentials).
_OPTIONS: dict[str, dict] = {}


def register_storage_options(url: str, options: dict) -> None:
    """Open every store under ``url`` with the fsspec ``options`` (credentials, endpoint)."""
    _OPTIONS[url.rstrip("/")] = dict(options)


def storage_options(url: str) -> dict:
    """The options registered for ``url``: those of its longest registered prefix, else {}."""
    url = url.rstrip("/")
    best = max((p for p in _OPTIONS if url == p or url.startswith(p + "/")), key=len, default=None)
    return dict(_OPTIONS[best]) if best is not None else {}


def hashed_read_options(url: str, options: dict) -> dict:
    """The fsspec ``options`` to read ``url`` whose bytes the reader hashes against a manifest.

    On S3, botocore's own check of responses (a CRC32 of each whole object) is then left off:
    the manifest's hash proves more, and the CRC cost 0.3 CPU s per 660 MB (docs/operations.md).
    An explicit ``config_kwargs`` setting of the options wins.
    """
    if not url.startswith(("s3://", "s3a://")):
        return options
    config = {"response_checksum_validation": "when_required", **options.get("config_kwargs", {})}
    return {**options, "config_kwargs": config}


def tmp_name(name: str) -> str:
    """Temporary name of a file being written as ``name`` by this process."""
    return f"{TMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}-{name}{TMP_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def is_stale_tmp(path: Path, now: float | None = None) -> bool:
    """True if the temp file ``path`` was left by a killed writer (safe to remove)."""
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_TMP_S:
        return True
    match = _TMP_NAME.match(path.name)
    return bool(match and match.group(1) == _HOST and not _pid_alive(int(match.group(2))))


def sweep_tmp(folder: str | Path) -> int:
    """Remove the stale temp files directly in ``folder``; returns how many."""
    count = 0
    now = time.time()
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            if entry.name.startswith(TMP_PREFIX) and is_stale_tmp(Path(entry.path), now):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(entry.path)
                    count += 1
    return count


def _or_error(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - handed back to the caller, as fsspec.cat does
        return exc


class Store:
    """Files under one root URL; every path argument is relative to that root."""

    def __init__(self, url: str, options: dict | None = None) -> None:
        """``options``: fsspec options (credentials); default: those registered for ``url``."""
        self.url = url.rstrip("/")
        self.options = storage_options(self.url) if options is None else dict(options)
        # Other processes (Dask workers, another job) write here too: a cached listing of an
        # object store would hide their files (a forecast "missing" right after it was written).
        fs_options = {"use_listings_cache": False, **self.options}
        self.fs, root = fsspec.core.url_to_fs(self.url, **fs_options)
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

    def read_many(self, rels: Sequence[str]) -> list[bytes | BaseException]:
        """The bytes of each file in ``rels`` (in order), or the exception reading it raised.

        On object storage fsspec fetches them concurrently, one GET each (a file opened for
        reading costs a HEAD and two ranged GETs, one after the other)."""
        paths = [self.full(r) for r in rels]
        if not paths or any(c in p for p in paths for c in "*?["):  # fsspec would glob those
            return [_or_error(self.fs.cat_file, p) for p in paths]
        got = self.fs.cat(paths, on_error="return")
        return [got.get(p, FileNotFoundError(p)) for p in paths]

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

    def find(self, rel: str = "") -> list[str]:
        """Relative paths of every file under ``rel`` (temporary files hidden), sorted; on
        object storage one flat listing, a request per 1,000 keys whatever the folders."""
        prefix = self.root.rstrip("/") + "/"
        try:
            found = self.fs.find(self.full(rel))
        except FileNotFoundError:
            return []
        rels = (p[len(prefix):] if p.startswith(prefix) else p for p in found)
        return sorted(r for r in rels if not r.rsplit("/", 1)[-1].startswith(TMP_PREFIX))

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
            sweep_tmp(parent)  # leftovers of killed writers of this folder
            tmp = os.path.join(parent, tmp_name(os.path.basename(target)))
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
        """Remove temporary files left by killed writers under ``rel``; returns how many.

        Only stale ones (see :func:`is_stale_tmp`): files of live writers are left alone.
        """
        if not self.is_local:
            return 0
        count = 0
        base = Path(self.full(rel))
        if not base.exists():
            return 0
        now = time.time()
        for tmp in base.rglob(f"{TMP_PREFIX}*"):
            if tmp.is_file() and is_stale_tmp(tmp, now):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    count += 1
        return count
