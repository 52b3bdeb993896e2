"""Copy partitions between two environments' banks (history migration, DEV <-> PROD).

Uses the :class:`~aggregat.bank.Bank` API only. For each partition of the source:

1. compute its checksum (rows + content hash, :meth:`Bank.checksum`);
2. if the destination holds the same partition with the same checksum, skip it (idempotent,
   and a copy killed half-way resumes where it stopped);
3. otherwise copy every part file byte for byte (each written atomically), remove parts the
   destination has but the source lacks (the destination partition becomes equal to the source),
   and verify the destination's row count and checksum against the source.

``since`` keeps partitions whose date key (``YYYY-MM-DD`` or ``YYYY-MM``) is on or after that day;
datasets without a date key are copied whole. The ledger and the energy-sync watermark describe one
environment's own runs and database, so they are not copied unless named explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

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


def _checksum(bank: Bank, dataset: str, keys: dict[str, str]) -> dict[str, Any] | None:
    if not _parts(bank, dataset, keys):
        return None
    return bank.checksum(dataset, keys)


def copy_partition(src: Bank, dst: Bank, dataset: str, keys: dict[str, str],
                   dry_run: bool = False) -> PartitionCopy:
    """Copy one partition if the destination differs; verified by rows and checksum."""
    want = src.checksum(dataset, keys)
    have = _checksum(dst, dataset, keys)
    if have is not None and have["sha256"] == want["sha256"] and have["rows"] == want["rows"]:
        return PartitionCopy(dataset, keys, "same", rows=want["rows"])
    if dry_run:
        return PartitionCopy(dataset, keys, "new" if have is None else "replace",
                             rows=want["rows"])
    folder = src.partition_dir(dataset, keys)
    names = _parts(src, dataset, keys)
    copied = 0
    for name in names:
        data = src.store.read_bytes(f"{folder}/{name}")
        dst.store.write_bytes(f"{folder}/{name}", data)  # atomic per file
        copied += len(data)
    for name in set(_parts(dst, dataset, keys)) - set(names):
        dst.store.remove(f"{folder}/{name}")
    got = _checksum(dst, dataset, keys)
    if got is None or got["rows"] != want["rows"] or got["sha256"] != want["sha256"]:
        got_rows = got["rows"] if got else 0
        return PartitionCopy(dataset, keys, "failed", rows=want["rows"], bytes=copied,
                             error=f"verification failed: {got_rows} rows / checksum "
                                   f"{(got or {}).get('sha256', '-')[:12]} in target, expected "
                                   f"{want['rows']} / {want['sha256'][:12]}")
    return PartitionCopy(dataset, keys, "copied" if have is None else "replaced",
                         rows=want["rows"], bytes=copied)


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
