"""Copy partitions between two environments' banks (history migration, DEV <-> PROD).

Uses the :class:`~aggregat.bank.Bank` API only. For each partition of the source:

1. read its part files and their sha256 and row counts (Parquet footers);
2. if the destination holds the same parts with the same sha256 -- or, when the bytes differ,
   the same content checksum (:meth:`Bank.checksum`: rows + order-independent content hash) --
   skip it (idempotent, and a copy killed half-way resumes where it stopped);
3. otherwise copy every part file byte for byte (each written atomically), remove parts the
   destination has but the source lacks (the destination partition becomes equal to the source),
   and verify the destination's parts, sha256 and row count against the source.

``since`` keeps partitions whose date key (``YYYY-MM-DD`` or ``YYYY-MM``) is on or after that day;
datasets without a date key are copied whole. The ledger and the energy-sync watermark describe one
environment's own runs and database, so they are not copied unless named explicitly.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aggregat.bank.store import SUFFIX, Bank
from aggregat.errors import AggregatError, BankError

# Environment-specific datasets: copied only when asked for by name.
NOT_COPIED_BY_DEFAULT = ("ledger", "sync_state")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


@dataclass
class PartitionCopy:
    """What happened to one partition."""

    dataset: str
    keys: dict[str, str]
    action: str  # new | replace | same | copied | replaced | failed
    rows: int = 0
    bytes: int = 0
    error: str | None = None

    @property
    def label(self) -> str:
        return "/".join([self.dataset, *(f"{k}={v}" for k, v in self.keys.items())])


@dataclass
class CopyReport:
    """Per-partition outcome of a copy (or of a dry run)."""

    source: str
    target: str
    dry_run: bool
    items: list[PartitionCopy] = field(default_factory=list)

    def count(self, *actions: str) -> int:
        return sum(1 for i in self.items if i.action in actions)

    @property
    def failed(self) -> list[PartitionCopy]:
        return [i for i in self.items if i.action == "failed"]

    @property
    def rows_copied(self) -> int:
        return sum(i.rows for i in self.items if i.action in ("copied", "replaced", "new",
                                                              "replace"))

    def summary(self) -> str:
        if self.dry_run:
            return (f"dry run {self.source} -> {self.target}: would copy {self.count('new')} new "
                    f"and replace {self.count('replace')} differing partitions "
                    f"({self.rows_copied:,} rows); {self.count('same')} already identical")
        return (f"copied {self.source} -> {self.target}: {self.count('copied')} new, "
                f"{self.count('replaced')} replaced ({self.rows_copied:,} rows, "
                f"{sum(i.bytes for i in self.items) / 1e6:.1f} MB), {self.count('same')} "
                f"already identical, {len(self.failed)} failed")

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "dry_run": self.dry_run,
                "items": [{"partition": i.label, "action": i.action, "rows": i.rows,
                           "bytes": i.bytes, "error": i.error} for i in self.items]}


def _keep(keys: dict[str, str], since: date | None) -> bool:
    if since is None:
        return True
    days = [v for v in keys.values() if _DAY.match(v)]
    if days:
        return days[0] >= since.isoformat()
    months = [v for v in keys.values() if _MONTH.match(v)]
    if months:  # a month partition overlapping `since` is kept whole
        return months[0] >= since.isoformat()[:7]
    return True


def _parts(bank: Bank, dataset: str, keys: dict[str, str]) -> list[str]:
    folder = bank.partition_dir(dataset, keys)
    return sorted(n for n in bank.store.listdir(folder) if n.endswith(SUFFIX))


def _blobs(bank: Bank, folder: str, names: Sequence[str]) -> dict[str, bytes]:
    return {name: bank.store.read_bytes(f"{folder}/{name}") for name in names}


def _digest(blobs: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}


def _rows(blobs: dict[str, bytes]) -> int:
    return sum(pq.ParquetFile(io.BytesIO(b)).metadata.num_rows for b in blobs.values())


def _content_checksum(bank: Bank, dataset: str, keys: dict[str, str]) -> dict[str, Any] | None:
    """The bank's content checksum, or None when a part is unreadable (then it gets replaced)."""
    try:
        return bank.checksum(dataset, keys)
    except BankError:
        return None


def copy_partition(src: Bank, dst: Bank, dataset: str, keys: dict[str, str],
                   dry_run: bool = False) -> PartitionCopy:
    """Copy one partition if the destination differs; verified by rows and checksums.

    Same part files with the same bytes (sha256) means identical; when the bytes differ (e.g.
    written by another library version) the content checksum of :meth:`Bank.checksum` decides.
    """
    folder = src.partition_dir(dataset, keys)
    names = _parts(src, dataset, keys)
    blobs = _blobs(src, folder, names)
    want, rows = _digest(blobs), _rows(blobs)
    have_names = _parts(dst, dataset, keys)
    if have_names == names and _digest(_blobs(dst, folder, names)) == want:
        return PartitionCopy(dataset, keys, "same", rows=rows)
    if have_names and src.checksum(dataset, keys) == _content_checksum(dst, dataset, keys):
        return PartitionCopy(dataset, keys, "same", rows=rows)
    if dry_run:
        return PartitionCopy(dataset, keys, "replace" if have_names else "new", rows=rows)
    for name, blob in blobs.items():
        dst.store.write_bytes(f"{folder}/{name}", blob)  # atomic per file
    for name in set(have_names) - set(names):
        dst.store.remove(f"{folder}/{name}")
    copied = sum(len(b) for b in blobs.values())
    got_names = _parts(dst, dataset, keys)
    got = _blobs(dst, folder, got_names)
    try:
        got_rows = _rows(got)
    except (pa.ArrowException, OSError):
        got_rows = -1  # unreadable: fails the check below
    if got_names != names or _digest(got) != want or got_rows != rows:
        return PartitionCopy(dataset, keys, "failed", rows=rows, bytes=copied,
                             error=f"verification failed: target holds "
                                   f"{'unreadable' if got_rows < 0 else got_rows} rows in "
                                   f"{len(got_names)} part(s) with other sha256, expected "
                                   f"{rows} rows in {len(names)}; rerun the copy")
    return PartitionCopy(dataset, keys, "replaced" if have_names else "copied", rows=rows,
                         bytes=copied)


def plan(src: Bank, datasets: Sequence[str] | None = None,
         since: date | None = None) -> list[tuple[str, dict[str, str]]]:
    """The (dataset, keys) pairs a copy would consider, in a stable order."""
    present = src.datasets()
    if datasets:
        unknown = [d for d in datasets if d not in present]
        if unknown:
            raise BankError(f"dataset(s) {unknown} not found in source bank {src.url} "
                            f"(datasets: {', '.join(present) or 'none'})")
        chosen = list(datasets)
    else:
        chosen = [d for d in present if d not in NOT_COPIED_BY_DEFAULT]
    out = []
    for dataset in chosen:
        parts = [k for k in src.partitions(dataset) if _keep(k, since)]
        parts.sort(key=lambda k: tuple(k.values()))
        out.extend((dataset, k) for k in parts)
    return out


def copy_bank(src: Bank, dst: Bank, datasets: Sequence[str] | None = None,
              since: date | None = None, dry_run: bool = False,
              on_partition: Callable[[PartitionCopy], None] | None = None) -> CopyReport:
    """Copy the chosen partitions from ``src`` to ``dst``; a failed partition does not stop others.

    Idempotent and resumable: identical partitions are skipped. The caller should hold the
    destination environment's run lock so no job writes the partitions being copied.
    """
    if src.store.uri() == dst.store.uri():
        raise BankError(f"source and target bank are the same ({src.url}); pick two environments")
    report = CopyReport(src.url, dst.url, dry_run)
    for dataset, keys in plan(src, datasets, since):
        try:
            item = copy_partition(src, dst, dataset, keys, dry_run=dry_run)
        except (AggregatError, OSError) as exc:
            item = PartitionCopy(dataset, keys, "failed", error=str(exc))
        report.items.append(item)
        if on_partition is not None:
            on_partition(item)
    return report
