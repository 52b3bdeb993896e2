"""Run independent tasks on all local cores (a process pool) or on a Dask distributed cluster.

The same picklable function and tasks run either way; results come back as they complete so a
progress bar can follow and one failed task does not stop the others. Local worker processes die
with the process that started them, even when it is killed with SIGKILL (see
:func:`_die_with_parent`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from aggregat.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Initializer of local workers: exit when ``parent`` dies, however it dies.

    A SIGKILLed parent runs no cleanup, and its pool workers, holding their own ends of the task
    pipes, would wait forever. On Linux the kernel sends them SIGKILL (PR_SET_PDEATHSIG);
    elsewhere a thread polls the parent pid. Workers must be started by a thread that lives as
    long as the pool (the death signal follows the creating thread): run_tasks does so.
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):  # no usable libc: the watch thread below
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                         name="watch-parent").start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)  # nothing to flush: results go to a parent that is gone


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_tasks(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Yield ``(task, result, error)`` for each task as it completes.

    ``scheduler``: a Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``;
    otherwise ``workers`` local processes (default: all cores; 1 runs in this process).
    """
    tasks = list(tasks)
    if not tasks:
        return
    if scheduler is not None:
        yield from _run_dask(fn, tasks, scheduler)
        return
    workers = min(workers or default_workers(), len(tasks))
    if workers <= 1:
        for task in tasks:
            try:
                yield task, fn(task), None
            except Exception as exc:  # reported per task by the caller
                yield task, None, exc
        return
    # fork: workers start in milliseconds and inherit imported modules (ecCodes, numpy).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, task): task for task in tasks}
        for future in as_completed(futures):
            exc = future.exception()
            yield futures[future], (None if exc else future.result()), exc


def _run_dask(fn: Callable[[T], R], tasks: list[T], scheduler: Any):
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:  # pragma: no cover - distributed is a declared dependency
        raise ConfigError("scheduler is set but dask.distributed is not installed") from None
    own = isinstance(scheduler, str)
    try:
        client = Client(scheduler, timeout="10s") if own else scheduler
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask cluster at {scheduler} ({exc}); check "
                          "`scheduler` in aggregat.toml or the scheduler argument",
                          param="scheduler") from None
    try:
        futures = client.map(fn, tasks, pure=False)
        index = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for future in dask_completed(futures):
            exc = future.exception()
            yield index[future.key], (None if exc else future.result()), exc
    finally:
        if own:
            client.close()
