"""Extract a run (or any GRIB files) at the sites and areas, in parallel, into the bank.

Flow: list the run's files in the datalake -> check each file's size against the manifest and its
GRIB framing -> split files into chunks of messages, plus one task per file that verifies its hash
(in parallel with its chunks) -> decode and sample the chunks on all cores or a Dask cluster, each
value checked against the catalogue's physical bounds -> de-accumulate and convert units ->
validate against the catalogue -> write the run's partition of ``weather_forecast`` atomically,
keeping the stored values of the cells a bad or missing file would have provided.

A file proven corrupt (size, hash, framing, decoding, grid header, bounds) is named in the report
and quarantined with its reason; a failure that is not about the file (a bug, a store error, a
transfer cut short) is named but the file stays. A quarantined file that the run's manifest lists
and whose place is empty is tried again at each extraction: if it verifies and decodes, it goes
back to the datalake (``restored``), else it stays where it is. A file on disk that the manifest
does not list is decoded and reported as unverified.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from aggregat.errors import AggregatError, ClusterError, CorruptFileError, GribError, InputError
from aggregat.parallel import default_workers, run_tasks
from aggregat.storage import storage_options
from aggregat.weather.assemble import assemble_run
from aggregat.weather.datalake import Datalake, manifest_digest, message_offsets
from aggregat.weather.decode_task import Field, Task, TaskResult, run_task, warm_up
from aggregat.weather.products import (
    DEFAULT_VARIABLES,
    DERIVED_COLUMNS,
    Product,
    get_product,
    run_label,
)
from aggregat.weather.sites import Locations
from aggregat.weather.validate import validate_run

log = logging.getLogger(__name__)

# Chunks per worker: enough to balance uneven files, few enough to keep per-task overhead small.
_CHUNKS_PER_WORKER = 4


@dataclass
class ExtractReport:
    """What an extraction did; ``partial`` when a file was bad or values are missing."""

    model: str
    run_time: datetime | None
    files: int = 0
    messages: int = 0  # messages seen
    decoded: int = 0  # messages decoded
    rows: int = 0
    seconds: float = 0.0
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (file, error)
    missing_files: list[str] = field(default_factory=list)  # expected by the catalogue, absent
    quarantined: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)  # catalogue differences (warnings)
    missing_values: int = 0  # NaN values at locations because of bitmaps
    partition: str | None = None
    unverified: list[str] = field(default_factory=list)  # decoded without a manifest entry
    kept: list[tuple[str, int]] = field(default_factory=list)  # (bad/missing file, stored values)
    corrupt: set[str] = field(default_factory=set)  # bad files proven corrupt: quarantined
    restored: list[str] = field(default_factory=list)  # quarantined files that now read fine

    @property
    def partial(self) -> bool:
        return bool(self.bad_files or self.missing_files)

    def summary(self) -> str:
        run = f" run {run_label(self.run_time)}" if self.run_time else ""
        state = "PARTIAL" if self.partial else "ok"
        return (f"{self.model}{run}: {state}, {self.files} files, {self.decoded}/{self.messages} "
                f"messages decoded, {self.rows} rows in {self.seconds:.2f} s"
                + (f", {len(self.bad_files)} bad file(s)" if self.bad_files else "")
                + (f", {len(self.missing_files)} missing file(s)" if self.missing_files else ""))


def _fail(report: ExtractReport, path: str, exc: BaseException) -> None:
    """Record a bad file once; a CorruptFileError proves the file itself wrong (quarantine)."""
    known = [i for i, (p, _) in enumerate(report.bad_files) if p == path]
    if known and (path in report.corrupt or not isinstance(exc, CorruptFileError)):
        return
    if known:  # a proof about the file outranks an earlier failure of ours
        del report.bad_files[known[0]]
    message = str(exc) if isinstance(exc, GribError) else (
        f"{os.path.basename(path)}: {type(exc).__name__}: {exc} (not a fault of the file: "
        "left in place)")
    report.bad_files.append((path, message))
    if isinstance(exc, CorruptFileError):
        report.corrupt.add(path)


def plan_tasks(paths: Sequence[str], locations: Locations, *, method: str, wanted, workers: int,
               grid_name: str | None, report: ExtractReport,
               expect: dict[str, tuple[int, str, str]] | None = None,
               padded: bool = False) -> list[Task]:
    """Check framing and split files into chunks of messages; bad files go to the report.

    ``expect``: (size, hash algorithm, digest) per path; a file's first chunk verifies it before
    decoding (no task of its own: dispatching one per file cost more than the hash), a remote
    file is verified by its only task.
    ``grid_name`` None: each file's own grid is named in messages. ``padded``: bytes between
    messages are skipped (files users bring), else they make the file corrupt (the datalake's).
    """
    expect = expect or {}
    offsets: dict[str, list[int]] = {}
    for path in paths:
        if "://" in path:  # remote: one task per file, spooled and walked by the worker
            offsets[path] = []
            continue
        try:
            offsets[path] = message_offsets(path, padded=padded)
        except GribError as exc:
            _fail(report, path, exc)
    total = sum(len(v) for v in offsets.values())
    per_chunk = max(1, -(-total // max(1, workers * _CHUNKS_PER_WORKER)))
    tasks = []
    for path, offs in offsets.items():
        grid = grid_name or f"the grid of {os.path.basename(path)}"
        if not offs:
            # A Dask worker has not loaded the environment: the task carries its credentials.
            tasks.append(Task(path, locations, method, wanted, None, grid, expect.get(path),
                              storage_options(path) or None, padded))
            continue
        for i in range(0, len(offs), per_chunk):
            tasks.append(Task(path, locations, method, wanted, tuple(offs[i:i + per_chunk]),
                              grid, expect.get(path) if i == 0 else None))
    return tasks


def execute(tasks: list[Task], *, workers: int | None, scheduler: str | None,
            report: ExtractReport, on_done: Callable[[], None] | None = None,
            stall_s: float | None = None) -> list[TaskResult]:
    """Run the tasks; a failed chunk (or hash) marks its whole file bad, its chunks dropped (a
    chunk the Dask cluster lost too: the file is left in place, the run is partial)."""
    results: list[TaskResult] = []
    config: tuple[str, AggregatError] | None = None
    for task, result, error in run_tasks(run_task, tasks, workers=workers, scheduler=scheduler,
                                         stall_s=stall_s):
        if error is not None:
            # A setting's error (a site outside the grid) stops the run, unless the file is proven
            # corrupt meanwhile; any other (the file's, the cluster's, a bug) fails that file.
            file_or_cluster = isinstance(error, GribError | ClusterError)
            if isinstance(error, AggregatError) and not file_or_cluster:
                config = config or (task.path, error)
            else:
                _fail(report, task.path, error)
        else:
            results.append(result)
        if on_done:
            on_done()
    if config is not None and config[0] not in report.corrupt:
        raise config[1]
    bad_paths = {p for p, _ in report.bad_files}
    return [r for r in results if r.path not in bad_paths]


def _file_cells(product: Product, name: str, variables: Sequence[str]) -> set[tuple[str, int]]:
    """(column, step) cells a run's file provides (a de-accumulated value also needs the file
    of the step before, so the first step after the file's group counts too)."""
    parts = name.split("__")
    if len(parts) < 4 or parts[2] not in product.packages:
        return set()
    try:
        group = product.group_of(parts[3])
    except Exception:  # noqa: BLE001 - not a catalogue file name: nothing to keep
        return set()
    later = [s for s in product.steps if s > group[1]]
    cells: set[tuple[str, int]] = set()
    for param in product.parameters(parts[2]):
        if variables and param.name not in variables:
            continue
        steps = set(product.expected_steps(param, group))
        if param.accumulated_from_start and later:
            steps.add(later[0])
        columns = [param.column] + [c for c, needs in DERIVED_COLUMNS.items()
                                    if param.name in needs]
        cells |= {(c, s) for c in columns for s in steps}
    return cells


def extract_run(
    product: str | Product,
    run: datetime,
    *,
    datalake: Datalake,
    bank,
    locations: Locations,
    packages: Sequence[str] | None = None,
    variables: Sequence[str] = DEFAULT_VARIABLES,
    method: str = "nearest",
    workers: int | None = None,
    scheduler: str | None = None,
    quarantine: bool = True,
    progress: Callable[[int], Callable[[], None]] | None = None,
    stall_s: float | None = None,
) -> ExtractReport:
    """Extract one run from the datalake into the bank's ``weather_forecast`` dataset
    (``stall_s``: the longest wait for the next task on a Dask cluster)."""
    from aggregat.bank import merge_weather_run, write_weather_run

    product = get_product(product) if isinstance(product, str) else product
    run = product.check_run(run)
    started = time.perf_counter()
    report = ExtractReport(product.id, run)
    listing = datalake.run_listing(product, run, packages)
    if not listing:
        raise InputError(f"no files of {product.id} run {run_label(run)} in the datalake "
                         f"{datalake.store.url}: run `aggregat weather fetch --model {product.id} "
                         f"--run {run:%Y-%m-%dT%H}` first")
    # A quarantined file the manifest lists, whose place is empty, is tried again: one that
    # verifies and decodes now (quarantined by an error that was not its own) goes back.
    retried = datalake.quarantined_listing(product, run, packages)
    present = {rel for rel, _ in listing} | {rel for rel, _ in retried}
    pkgs = list(packages) if packages else sorted({r.rsplit("/", 2)[-2] for r in present})
    report.missing_files = [
        datalake.file_rel(product, run, pkg, group).rsplit("/", 1)[-1]
        for pkg, group in datalake.expected_files(product, run, pkgs)
        if datalake.file_rel(product, run, pkg, group) not in present]
    paths, rel_of, expect, in_quarantine = [], {}, {}, set()
    for rel, entry in listing + retried:
        store = datalake.store
        if (rel, entry) in retried:
            store = datalake.quarantine_store
            in_quarantine.add(rel)
        path = str(store.local_path(rel)) if store.is_local else store.uri(rel)
        rel_of[path] = rel
        digest = manifest_digest(entry) if entry else None
        if digest is None:  # copied in by hand: used, but said so
            report.unverified.append(rel.rsplit("/", 1)[-1])
        else:
            size = store.size(rel)  # a stat here; the hash is done by the workers
            if size != entry.get("size"):
                _fail(report, path, CorruptFileError(
                    f"{os.path.basename(path)}: {size} bytes, the manifest says "
                    f"{entry.get('size')}; the file is corrupt, fetch it again"))
                continue
            expect[path] = (size, *digest)
        paths.append(path)
    report.files = len(listing) + len(retried)
    for name in report.unverified:
        log.warning("%s is not in the run's manifest: extracted unverified", name)
    results = _extract(paths, locations, method=method, variables=variables, workers=workers,
                       scheduler=scheduler, grid_name=f"the {product.id} grid", report=report,
                       progress=progress, expect=expect, stall_s=stall_s)
    for _path, error in report.bad_files:  # extract-file prints them in its report (or error)
        log.error("%s", error)
    report.issues = validate_run(product, [rel_of[r.path] for r in results], results)
    fields = [f for r in results for f in r.fields]
    frame = assemble_run(fields, locations.ids, model=product.id, run_time=run,
                         available_at=run + timedelta(hours=product.availability_delay_h),
                         expected_steps=product.steps)
    # Cells of bad or missing files keep the values a previous extraction stored.
    lost = [os.path.basename(p) for p, _ in report.bad_files] + report.missing_files
    keep = {name: _file_cells(product, name, variables) for name in lost}
    if keep and any(keep.values()):
        report.partition, kept, report.rows = merge_weather_run(bank, product.id, run, frame,
                                                                keep)
        report.kept = [(name, n) for name, n in kept.items() if n]
    elif len(frame):
        report.partition = write_weather_run(bank, product.id, run, frame)
        report.rows = len(frame)
    bad = {p for p, _ in report.bad_files}
    for path, rel in rel_of.items():
        if rel in in_quarantine and path not in bad:
            report.restored.append(datalake.restore(rel))
            log.warning("%s read fine: restored from the quarantine", os.path.basename(rel))
    if quarantine:
        for path, reason in report.bad_files:
            rel = rel_of.get(path)
            if (path in report.corrupt and rel is not None and rel not in in_quarantine
                    and datalake.exists(rel)):
                report.quarantined.append(datalake.quarantine(rel, reason))
    report.seconds = time.perf_counter() - started
    return report


def _extract(paths: list[str], locations: Locations, *, method, variables, workers, scheduler,
             grid_name, report: ExtractReport, progress, expect=None,
             padded: bool = False, stall_s: float | None = None) -> list[TaskResult]:
    if len(locations) == 0:
        raise InputError("nothing to extract (no site or area list): set `sites` in "
                         "aggregat.toml or pass sites", param="sites")
    workers = workers or default_workers()
    wanted = frozenset(variables) if variables else None
    tasks = plan_tasks(paths, locations, method=method, wanted=wanted, workers=workers,
                       grid_name=grid_name, report=report, expect=expect, padded=padded)
    if tasks and scheduler is None:
        warm_up(tasks[0].path)
    tick = progress(len(tasks)) if progress else None
    results = execute(tasks, workers=workers, scheduler=scheduler, report=report, on_done=tick,
                      stall_s=stall_s)
    for r in results:
        report.messages += len(r.headers)
        report.decoded += len(r.fields)
        report.missing_values += r.missing_at_locations
        for skipped in r.skipped_grids:
            report.issues.append(f"{os.path.basename(r.path)}: {skipped} skipped, ecCodes "
                                 "gives no coordinates for its grid points")
    if report.missing_values:
        log.warning("%d extracted values are missing (outside the model domain, bitmap): "
                    "left as NaN", report.missing_values)
    return results


def extract_files(
    paths: Sequence[str],
    locations: Locations,
    *,
    variables: Sequence[str] | None = None,
    method: str = "nearest",
    workers: int | None = None,
    scheduler: str | None = None,
    progress=None,
) -> tuple[pd.DataFrame, ExtractReport]:
    """Extract GRIB1/GRIB2 files of any centre on any grid ecCodes gives coordinates for (regular,
    rotated, Lambert, Mercator, polar stereographic, Gaussian...); one frame over all their runs,
    with a ``member`` column when messages are ensemble members.

    Bytes between messages (MARS padding) are skipped; a truncated message is not. A file whose
    messages all lack grid coordinates (spectral, unstructured) and an input that gives no value
    at all are InputErrors (nothing to write); some bad files among good ones make the report
    partial.
    """
    report = ExtractReport("file", None, files=len(paths))
    started = time.perf_counter()
    missing = [p for p in paths if "://" not in p and not os.path.isfile(p)]
    if missing:
        raise InputError(f"GRIB file {missing[0]} does not exist")
    results = _extract(list(paths), locations, method=method, variables=variables,
                       workers=workers, scheduler=scheduler, grid_name=None,
                       report=report, progress=progress, padded=True)
    decoded = {r.path for r in results if r.fields}
    for r in results:
        if r.skipped_grids and r.path not in decoded:
            raise InputError(f"{r.path}: {r.skipped_grids[0]}: ecCodes gives no coordinates "
                             "for its grid points, so no site can be placed on it; regrid the "
                             "file to a lat/lon grid first")
    if not decoded:
        if report.bad_files:
            more = len(report.bad_files) - 1
            raise InputError(report.bad_files[0][1] + (f" (and {more} more bad file(s))"
                                                       if more else ""))
        raise InputError(f"no message of {', '.join(paths)} matches "
                         f"{', '.join(variables) if variables else 'the catalogue'}: nothing "
                         "extracted; check variables", param="variables")
    # Ensemble members are a key, like the run: one assembly each, so they never overwrite
    # each other (levels already differ by column name).
    by_run: dict[tuple[datetime, int], list[Field]] = {}
    for r in results:
        for f in r.fields:
            member = -1 if f.header.member is None else f.header.member
            by_run.setdefault((f.header.run_time, member), []).append(f)
    frames = []
    for (run, member), fields in sorted(by_run.items()):
        part = assemble_run(fields, locations.ids, model="file", run_time=run, available_at=run)
        part.insert(part.columns.get_loc("location") + 1, "member",
                    pd.array([None if member < 0 else member] * len(part), dtype="Int32"))
        frames.append(part)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "member" in frame.columns and frame["member"].isna().all():
        frame = frame.drop(columns="member")  # deterministic files: no member column
    report.rows = len(frame)
    report.seconds = time.perf_counter() - started
    return frame, report
