"""The unit of parallel work: one chunk of messages of one GRIB file -> values at the locations.

Runs in a worker process (local pool or Dask). Headers are read without decoding; only the
messages asked for are decoded, and each decoded field is reduced at once to the locations, so a
worker holds one field at a time and returns a few kilobytes. A task may also carry the file's
expected size and hash: the worker verifies it (in parallel with the other chunks; the parent drops
every chunk of a file that fails). Everything proven wrong about a file (framing, hash, decoding,
grid header, values outside the catalogue's physical bounds) raises CorruptFileError.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import eccodes
import numpy as np

from aggregat.errors import CorruptFileError
from aggregat.weather import ccsds
from aggregat.weather.datalake import message_offsets, verify_file, walk_offsets
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

    path: str  # local path, or an fsspec URL (streamed into memory by the worker)
    locations: Locations
    method: str = "nearest"
    wanted: frozenset[str] | None = None  # aggregat parameter names; None: every message
    offsets: tuple[int, ...] | None = None  # byte offsets of the chunk's messages; None: all
    grid_name: str = "the grid"
    expect: tuple[int, str, str] | None = None  # (size, hash algorithm, hex digest) to verify
    storage_options: dict | None = None  # fsspec options (credentials) of a remote path
    padded: bool = False  # bytes between messages are skipped (a remote file's own walk)


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
    """True for an fsspec URL other than ``file://`` (read through a spool in memory)."""
    return "://" in path and not path.startswith("file://")


_BLOCK = 8 << 20  # bytes per read of a remote file
_AHEAD = 2  # blocks a transfer may hold beyond the message being read, before it waits


class _Spool:
    """A remote file read by a thread into memory, and read from there while it arrives.

    The transfer goes ``_BLOCK`` bytes at a time, and the first messages are decoded while the
    rest of the file arrives: a read of bytes not yet there waits for them (transfer overlapped
    with decoding, issue 15). Messages are read in order, so only the bytes from the message
    being read on are kept, and the transfer waits while it is ``_AHEAD`` blocks past them
    (memory per worker: a few blocks and one message; no temp file written and read back). The
    file is hashed on the way; :meth:`result` says whether it arrived whole and verified. Only
    the hash can prove the file corrupt here: a short read (the store said the size was right)
    is a transport failure, never the file's fault.
    """

    def __init__(self, path: str, expect: tuple[int, str, str] | None,
                 options: dict | None = None) -> None:
        from aggregat.storage import hashed_read_options
        from aggregat.weather.datalake import _hasher

        self.name = os.path.basename(path)
        options = options or {}
        if expect is not None:  # verified here against the manifest: no second check
            options = hashed_read_options(path, options)
        self._path, self._expect, self._options = path, expect, options
        self._digest = _hasher(expect[1]) if expect is not None else None  # before any byte
        self.size = expect[0] if expect is not None else None  # else the store's, at open
        self._blocks: collections.deque[tuple[int, bytes]] = collections.deque()  # (offset, data)
        self._arrived = 0  # bytes received
        self._pos = 0  # the reader's position
        self._floor = 0  # the message being read: the bytes before it are dropped
        self._dropped = 0  # bytes dropped from the start of the file
        self._want = 0  # the end of the bytes the reader waits for
        self._done = False
        self._stop = False
        self._drain = False  # the reader is done: hash the rest, keep nothing
        self._error: BaseException | None = None
        self._cond = threading.Condition()  # guards the blocks and the counters
        self._thread = threading.Thread(target=self._fetch, name=f"aggregat-spool {self.name}",
                                        daemon=True)
        self._thread.start()

    def _may_fetch(self) -> bool:
        return (self._stop or self._drain or self._arrived < self._want
                or self._arrived < self._floor + _AHEAD * _BLOCK)

    def _fetch(self) -> None:
        blocks = _stream(self._path, self._options, self._learn_size)
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(self._may_fetch)
                    if self._stop:
                        return
                block = next(blocks, None)
                if block is None:
                    break
                if self._digest is not None:
                    self._digest.update(block)
                with self._cond:
                    if not self._drain:
                        self._blocks.append((self._arrived, block))
                    self._arrived += len(block)
                    self._cond.notify_all()
            self._verify()
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._error = exc
        finally:
            # The connection, when stopped early; a failure to close it must not leave the
            # reader waiting, nor is it the file's business.
            with contextlib.suppress(Exception):
                blocks.close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _learn_size(self, size: int | None) -> None:
        with self._cond:
            if self.size is None:
                self.size = size
            self._cond.notify_all()

    def _verify(self) -> None:
        if self._expect is None:
            return
        if self._arrived != self._expect[0]:
            raise OSError(f"{self.name}: read {self._arrived} of {self._expect[0]} bytes from "
                          "the store (transfer cut short)")
        if self._digest.hexdigest() != self._expect[2]:
            raise CorruptFileError(f"{self.name}: {self._expect[1]} does not match the manifest "
                                   "(same size, content changed); the file is corrupt, fetch it "
                                   "again")

    def whole_size(self) -> int:
        """The file's size: the manifest's, else the store's (else what arrived in the end)."""
        with self._cond:
            self._cond.wait_for(lambda: self.size is not None or self._done)
            if self.size is None and self._error is not None:
                raise self._error
            return self.size if self.size is not None else self._arrived

    def offsets(self, padded: bool = False) -> Iterator[int]:
        """The offsets of the file's messages, as they arrive; a message is read once: the bytes
        before the next one are dropped when it is reached. ``padded``: as in walk_offsets."""
        for offset in walk_offsets(self, self.whole_size(), self.name, padded):
            with self._cond:
                while self._blocks and self._blocks[0][0] + len(self._blocks[0][1]) <= offset:
                    at, data = self._blocks.popleft()
                    self._dropped = at + len(data)
                self._floor = offset
                self._cond.notify_all()
            yield offset

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = offset if whence == 0 else self._pos + offset
        if pos < self._dropped:  # a bug of ours, not the file's
            raise ValueError(f"{self.name}: byte {pos} was already dropped")
        self._pos = pos
        return pos

    def read(self, n: int) -> bytes:
        """``n`` bytes at the position, once they arrived; fewer at the end of the file. A failed
        transfer raises its error here when the bytes asked for never came."""
        start, end = self._pos, self._pos + n
        with self._cond:
            self._want = end
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._arrived >= end or self._done)
            if self._arrived < end and self._error is not None:
                raise self._error
            end = min(end, self._arrived)
            parts = [data[max(0, start - at):end - at] for at, data in self._blocks
                     if at < end and at + len(data) > start]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos += len(data)
        return data

    def result(self) -> None:
        """Wait for the whole file; raise what its transfer or its verification found."""
        with self._cond:
            self._drain = True
            self._blocks.clear()
            self._cond.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the transfer (after the read under way) and drop what it kept."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()
        self._blocks.clear()

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stream(url: str, options: dict, on_size: Callable[[int | None], None]) -> Iterator[bytes]:
    """The bytes of a remote file, ``_BLOCK`` at a time, as they arrive; ``on_size`` is told the
    store's size of the file as soon as it is known.

    One streamed GET where the filesystem has one (``open_async``: s3fs), else ranged reads
    (gcsfs...): a ranged read per block costs a request each, and a read-ahead cache would fetch
    the whole file before the first block comes back.
    """
    from fsspec.asyn import AsyncFileSystem, sync
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(url, **options)
    streamed = None
    if isinstance(fs, AsyncFileSystem):
        try:
            streamed = sync(fs.loop, fs.open_async, path, "rb")
        except NotImplementedError:
            pass
    if streamed is None:
        with fs.open(path, "rb", block_size=_BLOCK, cache_type="none") as src:
            on_size(getattr(src, "size", None))
            while block := src.read(_BLOCK):
                yield block
        return
    try:
        while block := sync(fs.loop, _read_block, streamed, _BLOCK):
            on_size(getattr(streamed, "size", None))  # known once the GET answered
            yield block
    finally:
        sync(fs.loop, streamed.close)


async def _read_block(streamed, size: int) -> bytes:
    """``size`` bytes of a streamed file (fewer at its end): the stream gives what the socket
    had, often a few kilobytes; gathered here, in the filesystem's loop, not one call each."""
    parts, got = [], 0
    while got < size:
        part = await streamed.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _open(path: str, expect: tuple[int, str, str] | None = None):
    """A local file for reading, verified first when ``expect`` is given."""
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
    if is_remote(task.path):
        # A remote file comes whole (one task): its messages are decoded as they arrive.
        with _Spool(task.path, task.expect, task.storage_options) as spool:
            try:
                _walk_messages(task, result, spool, spool.offsets(task.padded), name)
            except Exception:
                # A failed transfer or hash explains a failed decoding: it is what is reported
                # (the quarantine rules see the same error as when files were verified first).
                spool.result()
                raise
            spool.result()  # no value counts before the whole file is verified
        return result
    with _open(task.path, task.expect) as fh:
        offsets = task.offsets if task.offsets is not None else message_offsets(fh, name)
        _walk_messages(task, result, fh, offsets, name)
    return result


def _walk_messages(task: Task, result: TaskResult, fh, offsets: Iterable[int], name: str) -> None:
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
