"""The unit of parallel work: one chunk of messages of one GRIB file -> values at the locations.

Runs in a worker process (local pool or Dask). Headers are read without decoding; only the
messages asked for are decoded, and each decoded field is reduced at once to the locations, so a
worker holds one field at a time and returns a few kilobytes. A task may also carry the file's
expected size and hash: the worker verifies it (in parallel with the other chunks; the parent drops
every chunk of a file that fails). Everything proven wrong about a file (framing, hash, decoding,
grid header, values outside the catalogue's physical bounds) raises CorruptFileError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import eccodes
import numpy as np

from aggregat.errors import CorruptFileError
from aggregat.weather import ccsds
from aggregat.weather.datalake import message_offsets, verify_file
from aggregat.weather.grib import (
    MessageHeader,
    check_geometry,
    decode_raw,
    grid_fingerprint,
    grid_points,
    iter_messages,
    read_header,
    with_geometry,
)
from aggregat.weather.grib2_header import fast_header
from aggregat.weather.products import PHYSICAL_BOUNDS
from aggregat.weather.sampling import Sampler, build_points_sampler, build_sampler
from aggregat.weather.sites import Locations

# One sampler per (grid, locations, method) per process: computed once, reused for every field
# (for grids sampled from ecCodes' coordinates, the KD-tree is built once per distinct grid).
_SAMPLERS: dict[tuple, Sampler] = {}


@dataclass(frozen=True)
class Task:
    """Messages ``[first, first + count)`` of ``path`` (count None: to the end)."""

    path: str  # local path, or an fsspec URL (streamed to a local spool by the worker)
    locations: Locations
    method: str = "nearest"
    wanted: frozenset[str] | None = None  # aggregat parameter names; None: every message
    offsets: tuple[int, ...] | None = None  # byte offsets of the chunk's messages; None: all
    grid_name: str = "the grid"
    expect: tuple[int, str, str] | None = None  # (size, hash algorithm, hex digest) to verify
    storage_options: dict | None = None  # fsspec options (credentials) of a remote path


@dataclass
class Field:
    """One decoded message reduced to the locations."""

    header: MessageHeader
    values: np.ndarray  # float32, one per location


@dataclass
class TaskResult:
    path: str
    headers: list[MessageHeader] = field(default_factory=list)  # every message seen
    fields: list[Field] = field(default_factory=list)  # the decoded ones
    missing_at_locations: int = 0  # values that are NaN because of the bitmap
    skipped_grids: list[str] = field(default_factory=list)  # messages on grids without points


def _read_message(fh, offset: int, name: str) -> bytes:
    """The bytes of the message starting at ``offset`` (framing was checked by the planner)."""
    fh.seek(offset)
    head = fh.read(16)
    if head[:4] != b"GRIB" or len(head) < 16:
        raise CorruptFileError(f"{name}: no GRIB message at byte {offset}; re-fetch the file")
    length = int.from_bytes(head[8:16] if head[7] == 2 else head[4:7], "big")
    message = head + fh.read(length - 16)
    if len(message) != length:
        raise CorruptFileError(f"{name}: message at byte {offset} is truncated; re-fetch the file")
    return message


def is_remote(path: str) -> bool:
    """True for an fsspec URL other than ``file://`` (read through a local spool)."""
    return "://" in path and not path.startswith("file://")


_BLOCK = 8 << 20  # bytes per streamed read of a remote file


def _spool(path: str, expect: tuple[int, str, str] | None, options: dict | None = None):
    """A remote file streamed into an anonymous local temp file, hashed on the way.

    ecCodes reads through a file descriptor (an in-memory or fsspec file has none), and a local
    copy makes the chunks' seeks free; the temp file is unlinked at once, so it goes away when
    closed, even if the worker dies. Only the hash can prove the file corrupt here: a short read
    (the store said the size was right) is a transport failure, never the file's fault.
    """
    import tempfile

    import fsspec

    from aggregat.weather.datalake import _hasher

    name = os.path.basename(path)
    digest = _hasher(expect[1]) if expect is not None else None
    spool = tempfile.TemporaryFile(prefix="aggregat-spool-")  # noqa: SIM115 (returned open)
    try:
        size = 0
        with fsspec.open(path, "rb", **(options or {})) as src:
            while block := src.read(_BLOCK):
                spool.write(block)
                size += len(block)
                if digest is not None:
                    digest.update(block)
        if expect is not None:
            if size != expect[0]:
                raise OSError(f"{name}: read {size} of {expect[0]} bytes from the store "
                              "(transfer cut short)")
            if digest.hexdigest() != expect[2]:
                raise CorruptFileError(f"{name}: {expect[1]} does not match the manifest (same "
                                       "size, content changed); the file is corrupt, fetch it "
                                       "again")
        spool.seek(0)
        return spool
    except BaseException:
        spool.close()
        raise


def _open(path: str, expect: tuple[int, str, str] | None = None, options: dict | None = None):
    """The file for reading, with a descriptor; a remote one through a local spool (``options``:
    the fsspec options, credentials included, of its environment)."""
    if is_remote(path):
        return _spool(path, expect, options)
    if expect is not None:
        verify_file(path, expect, os.path.basename(path))
    return open(path, "rb")


def _sampler(header: MessageHeader, task: Task) -> Sampler:
    key = (header.geometry, task.locations.cache_key(), task.method)
    sampler = _SAMPLERS.get(key)
    if sampler is None:
        if len(_SAMPLERS) > 32:
            _SAMPLERS.clear()
        check_geometry(header.geometry, os.path.basename(task.path))  # before blaming a site
        sampler = build_sampler(header.geometry, task.locations, task.method, task.grid_name)
        _SAMPLERS[key] = sampler
    return sampler


def run_task(task: Task) -> TaskResult:
    """Read, select, decode and sample the messages of one task."""
    result = TaskResult(task.path)
    name = os.path.basename(task.path)
    with _open(task.path, task.expect, task.storage_options) as fh:
        # A remote file comes whole (one task): its messages are walked in the local spool.
        offsets = task.offsets if task.offsets is not None else message_offsets(fh, name)
        for index, offset in enumerate(offsets):
            message = _read_message(fh, offset, name)
            header = fast_header(message, task.path, index, offset)
            if header is not None:  # a catalogue field: identified without ecCodes
                result.headers.append(header)
                if task.wanted is not None and header.param not in task.wanted:
                    continue
                if _fast_decode(task, result, header, message):
                    continue
            try:
                handle = eccodes.codes_new_from_message(message)
            except eccodes.CodesInternalError as exc:
                raise CorruptFileError(f"{name}: message at byte {offset} is corrupt ({exc}); "
                                "re-fetch the file") from None
            try:
                if header is None:
                    _one(task, result, handle, index, offset)
                else:
                    _decode(task, result, handle, header)
            finally:
                eccodes.codes_release(handle)
    return result


def _one(task: Task, result: TaskResult, handle: int, index: int, offset: int = -1) -> None:
    header = read_header(handle, task.path, index, offset, geometry=False)
    result.headers.append(header)
    if task.wanted is not None and header.param not in task.wanted:
        return
    _decode(task, result, handle, with_geometry(handle, header))


def _fast_decode(task: Task, result: TaskResult, header: MessageHeader, message: bytes) -> bool:
    """CCSDS fields straight from libaec at the sampled points; False: use ecCodes."""
    if header.packing != "grid_ccsds" or header.geometry is None:
        return False
    sampler = _sampler(header, task)
    picked = ccsds.pick(message, sampler.idx, header.geometry.ni * header.geometry.nj)
    if picked is None:
        return False
    _keep(task, result, header, sampler.reduce(picked))
    return True


def _points_sampler(handle: int, header: MessageHeader, task: Task) -> tuple[Sampler | None, str]:
    """The sampler of a grid given by ecCodes' coordinates of its points, or (None, why not):
    ecCodes has none for spectral or unstructured grids, or a grid section that contradicts
    itself; the message is then reported as skipped."""
    try:
        key = (grid_fingerprint(handle), task.locations.cache_key(), task.method)
        sampler = _SAMPLERS.get(key)
        if sampler is None:
            lats, lons = grid_points(handle)
            if len(_SAMPLERS) > 32:
                _SAMPLERS.clear()
            sampler = build_points_sampler(lats, lons, task.locations, task.method,
                                           task.grid_name, header.grid_type)
            _SAMPLERS[key] = sampler
    except eccodes.CodesInternalError as exc:
        return None, str(exc)
    return sampler, ""


def _decode(task: Task, result: TaskResult, handle: int, header: MessageHeader) -> None:
    sampler = None
    if header.geometry is None:
        sampler, why = _points_sampler(handle, header, task)
        if sampler is None:
            result.skipped_grids.append(f"{header.label} ({header.grid_type} grid: {why})")
            return
    try:
        values = decode_raw(handle)
    except eccodes.CodesInternalError as exc:
        raise CorruptFileError(f"{os.path.basename(task.path)}: cannot decode {header.label} "
                               f"({exc}); the file is corrupt, re-fetch it") from None
    _keep(task, result, header, (sampler or _sampler(header, task)).sample(values))


def _keep(task: Task, result: TaskResult, header: MessageHeader, sampled: np.ndarray) -> None:
    """Add a sampled field, after checking it against the catalogue's physical bounds."""
    bounds = PHYSICAL_BOUNDS.get(header.param or "")
    if bounds is not None:
        scaled = sampled * header.unit_scale
        with np.errstate(invalid="ignore"):
            bad = (scaled < bounds[0]) | (scaled > bounds[1])
        if bad.any():
            k = int(np.argmax(bad))
            where = task.locations.ids[k] if k < len(task.locations.ids) else k
            raise CorruptFileError(
                f"{os.path.basename(task.path)}: {header.label} is {float(scaled[k]):.6g} at "
                f"{where}, outside its physical bounds {bounds[0]:g}..{bounds[1]:g}; the file is "
                "corrupt, re-fetch it")
    result.missing_at_locations += int(np.isnan(sampled).sum())
    result.fields.append(Field(header, sampled))


def warm_up(path: str) -> None:
    """Read one header in this process so that forked workers inherit ecCodes' loaded tables.

    ecCodes parses its definition files lazily, tens of milliseconds per concept on first use;
    done once in the parent, every forked worker starts warm. Not for a remote file: it would be
    downloaded once more only for this.
    """
    if is_remote(path):
        return
    try:
        with _open(path) as fh:
            for index, handle in iter_messages(fh, path):
                try:
                    read_header(handle, path, index)
                finally:
                    eccodes.codes_release(handle)
                return
    except Exception:  # noqa: BLE001 - a bad file is reported by its task, not here
        return
