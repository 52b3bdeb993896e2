"""Extract a run (or any GRIB files) at the sites and areas, in parallel, into the bank.

Flow: list the run's verified files in the datalake -> check each file's GRIB framing (a truncated
file is quarantined and named, the rest goes on) -> split files into chunks of messages -> decode
and sample the chunks on all cores or a Dask cluster -> de-accumulate and convert units -> validate
against the catalogue -> write the run's partition of ``weather_forecast`` atomically.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from aggregat.errors import AggregatError, GribError, InputError
from aggregat.parallel import default_workers, run_tasks
from aggregat.weather.assemble import assemble_run
from aggregat.weather.datalake import Datalake, message_offsets
from aggregat.weather.decode_task import Field, Task, TaskResult, run_task, warm_up
from aggregat.weather.products import DEFAULT_VARIABLES, Product, get_product, run_label
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


def plan_tasks(paths: Sequence[str], locations: Locations, *, method: str, wanted, workers: int,
               grid_name: str, bad: list[tuple[str, str]]) -> list[Task]:
    """Check framing and split files into chunks of messages; bad files go to ``bad``."""
    offsets: dict[str, list[int]] = {}
    for path in paths:
        if "://" in path:  # remote: one task per file, read whole by the worker
            offsets[path] = []
            continue
        try:
            offsets[path] = message_offsets(path)
        except GribError as exc:
            bad.append((path, str(exc)))
    total = sum(len(v) for v in offsets.values())
    per_chunk = max(1, -(-total // max(1, workers * _CHUNKS_PER_WORKER)))
    tasks = []
    for path, offs in offsets.items():
        if not offs:
            tasks.append(Task(path, locations, method, wanted, None, grid_name))
            continue
        for i in range(0, len(offs), per_chunk):
            tasks.append(Task(path, locations, method, wanted, tuple(offs[i:i + per_chunk]),
                              grid_name))
    return tasks


def execute(tasks: list[Task], *, workers: int | None, scheduler: str | None,
            bad: list[tuple[str, str]], on_done: Callable[[], None] | None = None
            ) -> list[TaskResult]:
    """Run the tasks; a failed chunk marks its whole file bad (its other chunks are dropped)."""
    results: list[TaskResult] = []
    for task, result, error in run_tasks(run_task, tasks, workers=workers, scheduler=scheduler):
        if error is not None:
            if isinstance(error, AggregatError) and not isinstance(error, GribError):
                raise error  # a configuration problem (a site outside the grid): stop everything
            message = str(error) if isinstance(error, GribError) else (
                f"{os.path.basename(task.path)}: {type(error).__name__}: {error}")
            if not any(p == task.path for p, _ in bad):
                bad.append((task.path, message))
        else:
            results.append(result)
        if on_done:
            on_done()
    bad_paths = {p for p, _ in bad}
    return [r for r in results if r.path not in bad_paths]


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
) -> ExtractReport:
    """Extract one run from the datalake into the bank's ``weather_forecast`` dataset."""
    from aggregat.bank import write_weather_run

    product = get_product(product) if isinstance(product, str) else product
    run = product.check_run(run)
    started = time.perf_counter()
    report = ExtractReport(product.id, run)
    rels = datalake.run_files(product, run, packages)
    if not rels:
        raise InputError(f"no files of {product.id} run {run_label(run)} in the datalake "
                         f"{datalake.store.url}: run `aggregat weather fetch --model {product.id} "
                         f"--run {run:%Y-%m-%dT%H}` first")
    present = set(rels)
    pkgs = list(packages) if packages else sorted({r.rsplit("/", 2)[-2] for r in rels})
    report.missing_files = [
        datalake.file_rel(product, run, pkg, group).rsplit("/", 1)[-1]
        for pkg, group in datalake.expected_files(product, run, pkgs)
        if datalake.file_rel(product, run, pkg, group) not in present]
    paths = [str(datalake.local_path(r)) if datalake.is_local else datalake.store.uri(r)
             for r in rels]
    rel_of = dict(zip(paths, rels, strict=True))
    report.files = len(paths)
    results = _extract(paths, locations, method=method, variables=variables, workers=workers,
                       scheduler=scheduler, grid_name=f"the {product.id} grid", report=report,
                       progress=progress)
    report.issues = validate_run(product, [rel_of[r.path] for r in results], results)
    fields = [f for r in results for f in r.fields]
    frame = assemble_run(fields, locations.ids, model=product.id, run_time=run,
                         available_at=run + timedelta(hours=product.availability_delay_h),
                         expected_steps=product.steps)
    report.rows = len(frame)
    if report.rows:
        report.partition = write_weather_run(bank, product.id, run, frame)
    if quarantine:
        for path, reason in report.bad_files:
            rel = rel_of.get(path)
            if rel is not None and datalake.exists(rel):
                report.quarantined.append(datalake.quarantine(rel, reason))
    report.seconds = time.perf_counter() - started
    return report


def _extract(paths: list[str], locations: Locations, *, method, variables, workers, scheduler,
             grid_name, report: ExtractReport, progress) -> list[TaskResult]:
    if len(locations) == 0:
        raise InputError("nothing to extract (no site or area list): set `sites` in "
                         "aggregat.toml or pass sites", param="sites")
    workers = workers or default_workers()
    wanted = frozenset(variables) if variables else None
    tasks = plan_tasks(paths, locations, method=method, wanted=wanted, workers=workers,
                       grid_name=grid_name, bad=report.bad_files)
    if tasks and scheduler is None:
        warm_up(tasks[0].path)
    tick = progress(len(tasks)) if progress else None
    results = execute(tasks, workers=workers, scheduler=scheduler, bad=report.bad_files,
                      on_done=tick)
    for r in results:
        report.messages += len(r.headers)
        report.decoded += len(r.fields)
        report.missing_values += r.missing_at_locations
        for skipped in r.skipped_grids:
            report.issues.append(f"{os.path.basename(r.path)}: {skipped} skipped, "
                                 "only regular lat/lon grids are supported")
    if report.missing_values:
        log.warning("%d extracted values are missing (outside the model domain, bitmap): "
                    "left as NaN", report.missing_values)
    for _path, error in report.bad_files:
        log.error("%s", error)
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
    """Extract any regular lat/lon GRIB1/GRIB2 files (any centre); one frame over all their runs."""
    report = ExtractReport("file", None, files=len(paths))
    started = time.perf_counter()
    missing = [p for p in paths if "://" not in p and not os.path.isfile(p)]
    if missing:
        raise InputError(f"GRIB file {missing[0]} does not exist")
    results = _extract(list(paths), locations, method=method, variables=variables,
                       workers=workers, scheduler=scheduler, grid_name="the file's grid",
                       report=report, progress=progress)
    by_run: dict[datetime, list[Field]] = {}
    for r in results:
        for f in r.fields:
            by_run.setdefault(f.header.run_time, []).append(f)
    frames = [assemble_run(fields, locations.ids, model="file", run_time=run, available_at=run)
              for run, fields in sorted(by_run.items())]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    report.rows = len(frame)
    report.seconds = time.perf_counter() - started
    return frame, report
