"""The run ledger: one record per (step, partition) in the bank dataset ``ledger``.

Each record holds the latest attempt of a step on a partition: status (running / ok / partial /
failed / skipped), attempts so far, start / end / duration, rows, code version, masked error and a
details JSON. Jobs use :meth:`Ledger.step` so a finished step is not redone unless forced::

    lock = RunLock.for_environment(env).acquire()
    ledger = Ledger(Bank(env.bank), job="daily", run_id=lock.run_id)
    with ledger.step("extract", "arome-0025/2026-11-28T00") as st:
        if st.skip:          # finished ok by an earlier run
            ...
        else:
            st.rows = extract(...)
    ledger.timing.print(console)

Storage: partition ``{step=…, month=YYYY-MM}`` (month of the first date in the partition name,
``nodate`` if it has none), one Parquet part rewritten whole (atomically) on every change. Writes
are not safe against two concurrent writers: the run lock (:mod:`aggregat.ops.lock`) guarantees
one run per environment, and ledger writes happen in the process that holds it. A record left
``running`` by another run (killed mid-step) reads as ``failed`` with ``stale=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa

from aggregat.bank.datasets import Column, Dataset, check_value, register_dataset
from aggregat.config import mask, mask_json
from aggregat.errors import BankError, PartialRunError
from aggregat.ops.timing import Timing
from aggregat.timeutil import as_utc
from aggregat.version import code_version

T = TypeVar("T")

DATASET = "ledger"
STATUSES = ("running", "ok", "partial", "failed", "skipped")
NODATE = "nodate"
_MONTH = re.compile(r"(\d{4})-(\d{2})")
MAX_ERROR_CHARS = 1000

LEDGER = Dataset(
    name=DATASET,
    keys=("step", "month"),
    columns=(
        Column("step", "str"),
        Column("partition", "str"),
        Column("status", "str"),
        Column("attempts", "int32"),
        Column("started_at", "ts"),
        Column("ended_at", "ts", nullable=True),
        Column("duration_s", "float64", nullable=True),
        Column("rows", "int64", nullable=True),
        Column("code_version", "str"),
        Column("error", "str", nullable=True),
        Column("details", "str"),
        Column("job", "str", nullable=True),
        Column("run_id", "str"),
        Column("host", "str"),
        Column("pid", "int64"),
    ),
    sort_by=("partition",),
    key_formats={"month": r"^(\d{4}-\d{2}|nodate)$"},
    doc="Run ledger: latest attempt of each (step, partition).",
)
register_dataset(LEDGER)
_FIELDS = tuple(LEDGER.schema.names)

def partition_month(partition: str) -> str:
    """The ledger partition holding ``partition``: its first ``YYYY-MM``, else ``nodate``."""
    match = _MONTH.search(partition)
    return f"{match.group(1)}-{match.group(2)}" if match else NODATE


def _now() -> datetime:
    return datetime.now(UTC)


def one_line_error(exc: BaseException | str) -> str:
    """A masked, single-line, bounded error text for the ledger."""
    text = exc if isinstance(exc, str) else (f"{type(exc).__name__}: {exc}" if str(exc)
                                             else type(exc).__name__)
    text = " ".join(mask(text).split())
    return text[:MAX_ERROR_CHARS]


@dataclass
class Entry:
    """One ledger record (the latest attempt of a step on a partition)."""

    step: str
    partition: str
    status: str
    attempts: int
    started_at: datetime
    ended_at: datetime | None = None
    duration_s: float | None = None
    rows: int | None = None
    code_version: str = ""
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    job: str | None = None
    run_id: str = ""
    host: str = ""
    pid: int = 0
    stale: bool = False  # a "running" record of a run that is gone, reported as failed

    @property
    def done(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("started_at", "ended_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


@dataclass
class StepRun:
    """What the body of :meth:`Ledger.step` sees and sets."""

    entry: Entry | None
    skip: bool = False  # finished ok earlier: the body should do nothing
    status: str = "ok"  # set "partial" or "skipped" to record that instead of ok
    rows: int | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def mark_skipped(self, reason: str) -> None:
        """Record the step as ``skipped`` (nothing to do), with the reason in details."""
        self.status = "skipped"
        self.details["reason"] = reason


def _record(entry: Entry) -> dict[str, Any]:
    """The stored row of ``entry``: every text masked here, whatever step wrote it."""
    rec = {k: mask(v) if isinstance(v, str) else v for k in _FIELDS
           for v in [getattr(entry, k)]}
    rec["details"] = mask_json(entry.details, default=str, sort_keys=True)
    return rec


def _ts(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime()


def _opt(value: Any) -> Any:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


class Ledger:
    """Read and write the ledger of one environment's bank.

    ``run_id`` identifies the current run (use the lock's ``run_id``); ``running`` records of any
    other run id are stale. Records are cached per (step, month) after the first read: create one
    Ledger per run, after taking the run lock.
    """

    def __init__(self, bank, job: str | None = None, run_id: str | None = None) -> None:
        self.bank = bank
        self.job = job
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.timing = Timing()
        self._cache: dict[tuple[str, str], dict[str, Entry]] = {}
        self._recs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # serialised rows
        self._mutex = threading.RLock()  # steps may run in threads of the same process
        self._host = socket.gethostname()

    # -- storage ---------------------------------------------------------------------------
    def _bucket(self, step: str, month: str) -> dict[str, Entry]:
        key = (step, month)
        if key not in self._cache:
            entries: dict[str, Entry] = {}
            try:
                frame = self.bank.read_partition(DATASET, {"step": step, "month": month})
            except BankError:
                if self.bank.store.exists(self.bank.part_path(DATASET, {"step": step,
                                                                        "month": month})):
                    raise  # present but unreadable: say so rather than start over silently
                frame = None
            if frame is not None:
                for rec in frame.to_dict("records"):
                    entry = self._from_record(rec)
                    entries[entry.partition] = entry
            self._cache[key] = entries
        return self._cache[key]

    def _from_record(self, rec: dict[str, Any]) -> Entry:
        try:
            details = json.loads(rec.get("details") or "{}")
        except ValueError:
            details = {"raw": rec.get("details")}
        return Entry(
            step=rec["step"], partition=rec["partition"], status=rec["status"],
            attempts=int(rec["attempts"]), started_at=_ts(rec["started_at"]),
            ended_at=_ts(rec.get("ended_at")), duration_s=_opt(rec.get("duration_s")),
            rows=None if _opt(rec.get("rows")) is None else int(rec["rows"]),
            code_version=rec.get("code_version") or "", error=_opt(rec.get("error")),
            details=details, job=_opt(rec.get("job")), run_id=rec.get("run_id") or "",
            host=rec.get("host") or "", pid=int(_opt(rec.get("pid")) or 0),
        )

    def _save(self, entry: Entry) -> None:
        month = partition_month(entry.partition)
        with self._mutex:
            bucket = self._bucket(entry.step, month)
            bucket[entry.partition] = entry
            recs = self._recs.setdefault((entry.step, month), {})
            for e in bucket.values():
                if e.partition == entry.partition or e.partition not in recs:
                    recs[e.partition] = _record(e)
            rows = [recs[p] for p in bucket]
            # Straight to Arrow: a pandas round trip costs more than the Parquet write.
            frame = pa.Table.from_pylist(rows, schema=LEDGER.schema)
            self.bank.write_partition(DATASET, {"step": entry.step, "month": month}, frame)

    def _view(self, entry: Entry | None) -> Entry | None:
        """The entry as this run should see it: another run's ``running`` record is stale."""
        if entry is None or entry.status != "running" or entry.run_id == self.run_id:
            return entry
        return replace(entry, status="failed", stale=True,
                       error=entry.error or f"stale: run {entry.run_id} (pid {entry.pid} on "
                       f"{entry.host}) ended while this step was running")

    # -- writes ----------------------------------------------------------------------------
    def start(self, step: str, partition: str, details: dict[str, Any] | None = None) -> Entry:
        """Record that ``step`` starts on ``partition``; returns the running entry."""
        check_value(DATASET, "step", step)
        if not partition:
            raise BankError(f"ledger: step {step!r} needs a non-empty partition name")
        with self._mutex:
            previous = self._bucket(step, partition_month(partition)).get(partition)
            entry = Entry(
                step=step, partition=partition, status="running",
                attempts=(previous.attempts if previous else 0) + 1, started_at=_now(),
                code_version=code_version(), details=dict(details or {}), job=self.job,
                run_id=self.run_id, host=self._host, pid=os.getpid(),
            )
            self._save(entry)
        return entry

    def finish(self, entry: Entry, status: str, rows: int | None = None,
               error: BaseException | str | None = None,
               details: dict[str, Any] | None = None) -> Entry:
        """Record the end of a started step; ``error`` is masked and cut to one line."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"ledger status must be one of {STATUSES[1:]}, got {status!r}")
        ended = _now()
        done = replace(entry, status=status, ended_at=ended, rows=rows,
                       duration_s=round((ended - entry.started_at).total_seconds(), 3),
                       error=None if error is None else one_line_error(error),
                       details={**entry.details, **(details or {})})
        self._save(done)
        self.timing.add(done.step, done.partition, done.duration_s or 0.0, status, rows)
        return done

    @contextlib.contextmanager
    def step(self, step: str, partition: str, force: bool = False) -> Iterator[StepRun]:
        """Run the body as ``step`` on ``partition``, recording it in the ledger.

        If the step already finished ok and ``force`` is false, the body gets ``skip=True`` and
        nothing is written. Otherwise the attempt is recorded (running -> ok / partial / skipped /
        failed); a :class:`PartialRunError` records ``partial``, any other exception ``failed``
        with its masked message, and the exception is re-raised.
        """
        if not force:
            previous = self.last(step, partition)
            if previous is not None and previous.done:
                self.timing.add(step, partition, 0.0, "done", previous.rows)
                yield StepRun(entry=previous, skip=True)
                return
        entry = self.start(step, partition)
        run = StepRun(entry=entry)
        try:
            yield run
        except PartialRunError as exc:
            self.finish(entry, "partial", rows=run.rows, error=exc, details=run.details)
            raise
        except BaseException as exc:
            error = "interrupted" if isinstance(exc, KeyboardInterrupt) else exc
            self.finish(entry, "failed", rows=run.rows, error=error, details=run.details)
            raise
        status = run.status if run.status in STATUSES and run.status != "running" else "ok"
        self.finish(entry, status, rows=run.rows, error=run.error, details=run.details)

    def call(self, step: str, partition: str, fn: Callable[[StepRun], T],
             force: bool = False) -> T | None:
        """``fn(run)`` inside :meth:`step`; None when the step was already done."""
        with self.step(step, partition, force=force) as run:
            if run.skip:
                return None
            return fn(run)

    # -- reads -----------------------------------------------------------------------------
    def last(self, step: str, partition: str) -> Entry | None:
        """The latest record of ``step`` on ``partition``, or None if it never ran."""
        check_value(DATASET, "step", step)
        with self._mutex:
            return self._view(self._bucket(step, partition_month(partition)).get(partition))

    def done(self, step: str, partition: str) -> bool:
        """True when ``step`` finished ok on ``partition``."""
        entry = self.last(step, partition)
        return entry is not None and entry.done

    def steps(self) -> list[str]:
        """Step names present in the ledger."""
        return sorted({p["step"] for p in self.bank.partitions(DATASET)})

    def entries(self, step: str | None = None, since: datetime | str | None = None,
                job: str | None = None) -> list[Entry]:
        """Records (of one step, started at or after ``since``), oldest first."""
        since_ts = None if since is None else as_utc(since, param="since", error=BankError)
        where = {"step": step} if step else None
        out: list[Entry] = []
        with self._mutex:
            for keys in self.bank.partitions(DATASET, where):
                # Every month is read: an old partition can hold a recent retry (backfill).
                for entry in self._bucket(keys["step"], keys["month"]).values():
                    if since_ts is not None and entry.started_at < since_ts:
                        continue
                    if job is not None and entry.job != job:
                        continue
                    out.append(self._view(entry))
        out.sort(key=lambda e: e.started_at)
        return out

    def failed_or_missing(self, step: str, partitions: Iterable[str]) -> list[str]:
        """The partitions (in the given order) where ``step`` has not finished ok."""
        return [p for p in partitions if not self.done(step, p)]

    def latest_by_step(self) -> dict[str, Entry]:
        """The most recently started record of each step."""
        out: dict[str, Entry] = {}
        for entry in self.entries():
            out[entry.step] = entry  # entries() is sorted by start
        return out

    def last_run(self, job: str) -> list[Entry]:
        """The records written by the most recent run of ``job`` (by start time)."""
        records = self.entries(job=job)
        if not records:
            return []
        run_id = records[-1].run_id
        return [e for e in records if e.run_id == run_id]

    def mark_stale(self) -> int:
        """Rewrite other runs' ``running`` records as failed; returns how many (call under lock)."""
        count = 0
        for entry in self.entries():
            if entry.stale:
                self._save(replace(entry, stale=False, ended_at=entry.ended_at or _now()))
                count += 1
        return count

