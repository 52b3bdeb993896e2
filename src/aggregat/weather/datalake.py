"""The datalake: raw Météo-France GRIB2 files, immutable, one folder per model and run.

Layout below the datalake URL (a local folder or any fsspec URL, through :class:`Store`)::

    {product.id}/{YYYY-MM-DD}T{HH}Z/{PKG}/{original Météo-France file name}
    {product.id}/{YYYY-MM-DD}T{HH}Z/manifest.json

Files the extractor proves corrupt move to the quarantine, ``{quarantine}/{same relative path}``
with a ``{name}.reason`` note beside them. The quarantine is the environment's ``quarantine``
setting (default ``{root}/quarantine``, shown by ``aggregat env show``); a Datalake built without
one (library use) quarantines under ``{datalake}/quarantine``.

The manifest of a run maps each file (path relative to the run folder, ``SP1/arome__...grib2``) to
``{"size", "hash": "xxh3_128:<hex>", "url", "fetched_at"}`` (older manifests: ``"sha256": hex``,
still verified); :meth:`Datalake.run_files` lists a file only when it is there with the size found
on disk, so a file copied in by hand or half-written is never mistaken for a verified one. The
extractor checks size and hash of every file before using its values
(:meth:`Datalake.run_listing`, :func:`verify_file`); :func:`file_digest` is the one place that
knows hash algorithms. :func:`check_grib_framing` is the cheap structural check (``GRIB`` ...
``7777`` for every message) shared by the fetcher and the extractor.

Framing is strict for the datalake and lenient for ``extract-file``: Météo-France packages are
exactly a sequence of messages, so in our own downloads a byte between messages is corruption (a
proxy's error page appended, a bad resume) and the file is fetched again. Files users bring may be
padded between messages (MARS pads ECMWF/ERA5 messages to fixed blocks) or carry a bulletin header
before one; ecCodes skips such bytes, so ``padded=True`` does too. Either way a message is
measured by its own length and must end with ``7777`` there: truncation is always an error.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import xxhash

from aggregat.config import mask_json
from aggregat.errors import CorruptFileError, GribError
from aggregat.storage import Store
from aggregat.weather.products import RUN_FOLDER_FORMAT, Product, get_product, run_folder

MANIFEST = "manifest.json"
QUARANTINE = "quarantine"

_SECTION0 = 16  # GRIB2 section 0 is 16 bytes; GRIB1's is 8, so 16 covers both


def check_grib_framing(source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes],
                       name: str | None = None, padded: bool = False) -> int:
    """Walk the messages of a GRIB file by their section-0 lengths; return how many there are.

    Every message must start with ``GRIB`` and end with ``7777`` exactly where its total length
    says (edition 1: 3-byte length at offset 4; edition 2: 8-byte length at offset 8), and the
    last one must end the file. Only headers are read, so a 500 MB file costs a few seeks.
    ``source`` is a path, bytes or a seekable binary file; ``name`` is used in messages.
    Raises :class:`GribError` naming the file, the message and the offset at fault.
    ``padded``: bytes before, between and after messages are skipped as ecCodes does (files
    users bring); the datalake's own files stay strict (see the module's docstring).
    (The ECMWF "large GRIB1" length extension, messages > 8 MiB in edition 1, is not supported.)
    """
    return len(message_offsets(source, name, padded))


def message_offsets(source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes],
                    name: str | None = None, padded: bool = False) -> list[int]:
    """Byte offset of every message, after the checks of :func:`check_grib_framing`.

    The extractor splits big files into chunks of messages at these offsets.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return _walk(io.BytesIO(bytes(source)), len(source), name or "GRIB data", padded)
    if hasattr(source, "read"):
        fh = source  # type: ignore[assignment]
        size = fh.seek(0, io.SEEK_END)
        fh.seek(0)
        return _walk(fh, size, name or getattr(fh, "name", "GRIB data"), padded)
    path = Path(source)  # type: ignore[arg-type]
    label = name or str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            return _walk(fh, size, label, padded)
    except FileNotFoundError:
        raise GribError(f"{label}: file not found") from None


_SCAN = 1 << 16  # bytes read at a time while looking for the next message in padding


def _next_grib(fh: IO[bytes], offset: int, size: int) -> int:
    """Offset of the next ``GRIB`` at or after ``offset``, or ``size`` if there is none."""
    while offset < size:
        fh.seek(offset)
        block = fh.read(_SCAN + 3)  # 3 more: a marker across two blocks is found
        found = block.find(b"GRIB")
        if found >= 0:
            return offset + found
        offset += _SCAN
    return size


def _walk(fh: IO[bytes], size: int, label: str, padded: bool = False) -> list[int]:
    return list(walk_offsets(fh, size, label, padded))


def walk_offsets(fh: IO[bytes], size: int, label: str, padded: bool = False) -> Iterator[int]:
    """:func:`message_offsets` one message at a time: a file still arriving (a remote one) is
    walked, and its messages decoded, as its bytes come; ``size`` is its whole size."""
    if size == 0:
        raise CorruptFileError(f"{label}: empty file, not GRIB; fetch it again")
    offset = count = 0
    while offset < size:
        fh.seek(offset)
        head = fh.read(_SECTION0)
        if padded and head[:4] != b"GRIB":
            offset = _next_grib(fh, offset, size)
            if offset >= size:
                break
            fh.seek(offset)
            head = fh.read(_SECTION0)
        where = f"{label}: message {count + 1} at byte {offset}"
        if head[:4] != b"GRIB":
            what = "does not start with GRIB" if count == 0 else "trailing bytes are not GRIB"
            raise CorruptFileError(f"{where}: {what} (corrupt file); fetch it again")
        edition = head[7] if len(head) > 7 else None
        if edition == 1:
            length = int.from_bytes(head[4:7], "big")
        elif edition == 2 and len(head) >= 16:
            length = int.from_bytes(head[8:16], "big")
        else:
            raise CorruptFileError(f"{where}: truncated header or unknown GRIB edition {edition}")
        if length < 12:
            raise CorruptFileError(f"{where}: impossible message length {length} (corrupt file)")
        end = offset + length
        if end > size:
            raise CorruptFileError(
                f"{where}: truncated ({size - offset} of {length} bytes); fetch it again"
            )
        fh.seek(end - 4)
        if fh.read(4) != b"7777":
            raise CorruptFileError(f"{where}: does not end with 7777 (corrupt file); "
                                   "fetch it again")
        yield offset
        offset = end
        count += 1
    if not count:
        raise CorruptFileError(f"{label}: no GRIB message in {size} bytes (not a GRIB file)")


# xxh3: fast enough not to slow extraction; no security boundary here, the manifest is ours.
HASH = "xxh3_128"
_BLOCK = 8 << 20  # bytes read per hashing step


def _hasher(algorithm: str) -> Any:
    """A fresh hash object for ``algorithm`` (``xxh3_128``, or a hashlib name such as sha256)."""
    if algorithm == HASH:
        return xxhash.xxh3_128()
    try:
        return hashlib.new(algorithm)
    except ValueError:  # not the file's fault: it is left in place, the manifest is to redo
        raise GribError(f"the manifest names an unknown hash algorithm {algorithm!r}; fetch the "
                        "run again to rewrite it") from None


def _digest(source: str | os.PathLike[str] | bytes | IO[bytes], algorithm: str) -> tuple[int, str]:
    """(bytes read, hex digest) of a path, bytes or binary file object, streamed in big blocks."""
    digest = _hasher(algorithm)
    if isinstance(source, bytes | bytearray | memoryview):
        digest.update(source)
        return len(source), digest.hexdigest()
    if not hasattr(source, "read"):
        with open(source, "rb") as fh:  # type: ignore[arg-type]
            return _digest(fh, algorithm)
    size = 0
    if hasattr(source, "readinto"):  # one buffer reused: no fresh 8 MiB allocation per block
        buf = memoryview(bytearray(_BLOCK))
        while n := source.readinto(buf):
            size += n
            digest.update(buf[:n])
    else:
        while block := source.read(_BLOCK):
            size += len(block)
            digest.update(block)
    return size, digest.hexdigest()


def file_digest(source: str | os.PathLike[str] | bytes | IO[bytes], algorithm: str = HASH) -> str:
    """Hex digest of a datalake file (path, bytes or binary file object) with ``algorithm``."""
    return _digest(source, algorithm)[1]


def manifest_digest(entry: dict[str, Any]) -> tuple[str, str] | None:
    """(algorithm, hex digest) a manifest entry records, None if it records none.

    ``"hash": "xxh3_128:hex"`` is what fetch writes; the ``"sha256": hex`` of older manifests
    still verifies (more slowly).
    """
    tagged = entry.get("hash")
    if isinstance(tagged, str) and ":" in tagged:
        algorithm, digest = tagged.split(":", 1)
        return algorithm, digest
    digest = entry.get("sha256")
    return ("sha256", digest) if isinstance(digest, str) and digest else None


def verify_file(source: str | os.PathLike[str] | bytes, expect: tuple[int, str, str],
                name: str) -> None:
    """Raise CorruptFileError unless ``source`` has the (size, algorithm, hex digest) expected."""
    size, algorithm, digest = expect
    try:
        found, got = _digest(source, algorithm)
    except GribError as exc:
        raise GribError(f"{name}: {exc}") from None
    if found != size:
        raise CorruptFileError(f"{name}: {found} bytes, the manifest says {size}; the file is "
                               "corrupt, fetch it again")
    if got != digest:
        raise CorruptFileError(f"{name}: {algorithm} does not match the manifest (same size, "
                               "content changed); the file is corrupt, fetch it again")


def _as_product(product: str | Product) -> Product:
    return get_product(product) if isinstance(product, str) else product


class Datalake:
    """Raw GRIB files by product and run, on a local folder or any fsspec URL."""

    def __init__(self, url: str, quarantine: str | None = None) -> None:
        self.store = Store(url)
        self.url = self.store.url
        # The environment's ``quarantine`` setting; a library caller gets one inside the datalake.
        self.quarantine_store = Store(quarantine or self.store.uri(QUARANTINE))

    def __repr__(self) -> str:
        return f"Datalake({self.url!r})"

    @property
    def is_local(self) -> bool:
        return self.store.is_local

    # -- paths ---------------------------------------------------------------------------------
    def run_prefix(self, product: str | Product, run: datetime) -> str:
        """``arome-0025/2026-11-28T00Z``."""
        return _as_product(product).run_prefix(run)

    def file_rel(self, product: str | Product, run: datetime, package: str,
                 group: tuple[int, int]) -> str:
        """Path of one Météo-France file relative to the datalake root."""
        return _as_product(product).datalake_rel(run, package, group)

    def expected_files(self, product: str | Product, run: datetime,
                       packages: Iterable[str] | None = None) -> list[tuple[str, tuple[int, int]]]:
        """(package, group) of every file a complete run holds, in catalogue order."""
        product = _as_product(product)
        pkgs = [product.check_package(p) for p in (packages or product.default_packages)]
        return [(p, g) for p in pkgs for g in product.groups]

    def local_path(self, rel: str = "") -> Path:
        """Local path of ``rel`` (local datalakes only)."""
        return self.store.local_path(rel)

    def open(self, rel: str) -> IO[bytes]:
        """Open ``rel`` for binary reading (works on any store)."""
        return self.store.open(rel, "rb")

    def exists(self, rel: str) -> bool:
        return self.store.exists(rel)

    # -- manifest ------------------------------------------------------------------------------
    def manifest_rel(self, product: str | Product, run: datetime) -> str:
        return f"{self.run_prefix(product, run)}/{MANIFEST}"

    def read_manifest(self, product: str | Product, run: datetime) -> dict[str, Any]:
        """The run's manifest: ``{"product", "run", "files": {"SP1/name.grib2": {...}}}``."""
        product = _as_product(product)
        rel = self.manifest_rel(product, run)
        empty: dict[str, Any] = {"product": product.id, "run": run_folder(run), "files": {}}
        if not self.store.exists(rel):
            return empty
        try:
            data = json.loads(self.store.read_bytes(rel))
        except (ValueError, UnicodeDecodeError):
            # A torn manifest cannot happen with atomic writes; if edited by hand, start again:
            # files then count as unverified and are fetched again, never trusted blindly.
            return empty
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            return empty
        return data

    def write_manifest(self, product: str | Product, run: datetime,
                       manifest: dict[str, Any]) -> None:
        """Replace the run's manifest atomically."""
        body = mask_json(manifest, indent=1, sort_keys=True).encode()  # URLs may hold a token
        self.store.write_bytes(self.manifest_rel(product, run), body)

    def manifest_key(self, product: str | Product, run: datetime, rel: str) -> str:
        """Key of ``rel`` in the run's manifest (its path below the run folder)."""
        prefix = self.run_prefix(product, run) + "/"
        return rel[len(prefix):] if rel.startswith(prefix) else rel

    # -- content -------------------------------------------------------------------------------
    def is_verified(self, product: str | Product, run: datetime, rel: str,
                    manifest: dict[str, Any] | None = None, check_hash: bool = False) -> bool:
        """True if ``rel`` is present with the size (and optionally hash) its manifest records."""
        manifest = manifest if manifest is not None else self.read_manifest(product, run)
        entry = manifest["files"].get(self.manifest_key(product, run, rel))
        if not entry:
            return False
        try:
            if self.store.size(rel) != entry.get("size"):
                return False
        except FileNotFoundError:
            return False
        if check_hash:
            recorded = manifest_digest(entry)
            if recorded is None:
                return False
            try:
                return self.digest(rel, recorded[0]) == recorded[1]
            except GribError:  # an algorithm we do not know: fetch the file again
                return False
        return True

    def digest(self, rel: str, algorithm: str = HASH) -> str:
        """Hex digest of a datalake file (streamed)."""
        if self.is_local:
            return file_digest(self.local_path(rel), algorithm)
        with self.open(rel) as fh:
            return file_digest(fh, algorithm)

    def run_files(self, product: str | Product, run: datetime,
                  packages: Sequence[str] | None = None) -> list[str]:
        """Relative paths of the run's verified files (in the manifest, size matching), sorted.

        ``packages`` limits the result to those packages; None: every package in the manifest.
        """
        product = _as_product(product)
        manifest = self.read_manifest(product, run)
        wanted = {product.check_package(p) for p in packages} if packages else None
        prefix = self.run_prefix(product, run)
        out = []
        for key in sorted(manifest["files"]):
            if wanted is not None and key.split("/", 1)[0] not in wanted:
                continue
            rel = f"{prefix}/{key}"
            if self.is_verified(product, run, rel, manifest):
                out.append(rel)
        return out

    def run_listing(self, product: str | Product, run: datetime,
                    packages: Sequence[str] | None = None) -> list[tuple[str, dict | None]]:
        """Every GRIB file of the run on disk, with its manifest entry (None: not in the manifest).

        Unlike :meth:`run_files`, nothing is dropped: the extractor verifies each file (size and
        hash) and quarantines those that fail, and decodes unlisted ones as unverified.
        """
        product = _as_product(product)
        files = self.read_manifest(product, run)["files"]
        wanted = [product.check_package(p) for p in packages] if packages else None
        prefix = self.run_prefix(product, run)
        out = []
        for package in sorted(self.store.listdir(prefix)):
            if package == MANIFEST or (wanted is not None and package not in wanted):
                continue
            for name in sorted(self.store.listdir(f"{prefix}/{package}")):
                if name.endswith((".grib2", ".grib", ".grb2", ".grb")):  # not .part downloads
                    out.append((f"{prefix}/{package}/{name}", files.get(f"{package}/{name}")))
        return out

    def runs(self, product: str | Product) -> list[datetime]:
        """Runs that have a folder in the datalake, oldest first."""
        out = []
        for name in self.store.listdir(_as_product(product).id):
            try:
                out.append(datetime.strptime(name, RUN_FOLDER_FORMAT).replace(tzinfo=UTC))
            except ValueError:
                continue
        return sorted(out)

    def quarantined_listing(self, product: str | Product, run: datetime,
                            packages: Sequence[str] | None = None
                            ) -> list[tuple[str, dict[str, Any]]]:
        """The run's quarantined GRIB files that the manifest lists and whose place in the
        datalake is empty, with their manifest entries: the extractor tries them again."""
        product = _as_product(product)
        files = self.read_manifest(product, run)["files"]
        wanted = [product.check_package(p) for p in packages] if packages else None
        prefix = self.run_prefix(product, run)
        out = []
        for package in sorted(self.quarantine_store.listdir(prefix)):
            if wanted is not None and package not in wanted:
                continue
            for name in sorted(self.quarantine_store.listdir(f"{prefix}/{package}")):
                rel, entry = f"{prefix}/{package}/{name}", files.get(f"{package}/{name}")
                if entry and name.endswith((".grib2", ".grib", ".grb2", ".grb")) \
                        and not self.store.exists(rel):
                    out.append((rel, entry))
        return out

    def restore(self, rel: str) -> str:
        """Move a quarantined file back to ``rel`` (its bytes were proven good); returns its URI.

        Its ``.reason`` note goes with it."""
        source = self.quarantine_store
        if self.is_local and source.is_local:
            dst = self.local_path(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source.local_path(rel), dst)
        else:
            with source.open(rel, "rb") as src, self.store.atomic_writer(rel) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            source.remove(rel)
        source.remove(f"{rel}.reason")
        return self.store.uri(rel)

    def quarantine(self, rel: str, reason: str) -> str:
        """Move a bad file to ``{quarantine}/{rel}`` with a ``.reason`` note; return its new URI.

        The manifest is left alone: the file is simply no longer present, so the next fetch
        downloads it again and :meth:`run_files` no longer lists it.
        """
        target = self.quarantine_store
        if self.is_local and target.is_local:
            dst = target.local_path(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(self.local_path(rel), dst)  # a rename, or a copy across file systems
        else:
            with self.open(rel) as src, target.atomic_writer(rel) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            self.store.remove(rel)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        target.write_bytes(f"{rel}.reason", f"{stamp} {reason}\n".encode())
        return target.uri(rel)
