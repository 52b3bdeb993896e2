"""Run independent tasks on all local cores (a process pool) or on a Dask distributed cluster.

The same picklable function and tasks run either way; results come back as they complete so a
progress bar can follow and one failed task does not stop the others. Local worker processes die
with the process that started them, even when it is killed with SIGKILL (see
:func:`_die_with_parent`).

On Dask, a task whose worker dies is run again on another worker by the scheduler (up to its
``distributed.scheduler.allowed-failures`` deaths, then KilledWorker); every wait on the cluster
is bounded (``stall_s``), so a lost worker or scheduler ends in a :class:`ClusterError`, never a
hang.
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
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from aggregat.errors import ClusterError, ConfigError

T = TypeVar("T")
R = TypeVar("R")


_PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Longest wait for the next task to end on a Dask cluster (``scheduler_stall_s``): a training
# task of a big target takes minutes, a worker that hangs must not hold the job for ever.
DEFAULT_STALL_S = 3600.0


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
    stall_s: float | None = None,
) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Yield ``(task, result, error)`` for each task as it completes.

    ``scheduler``: a Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``;
    otherwise ``workers`` local processes (default: all cores; 1 runs in this process).
    On Dask, a task whose workers kept dying yields a :class:`ClusterError` as its error; a wait
    of more than ``stall_s`` seconds (default :data:`DEFAULT_STALL_S`) for the next task, or a
    lost scheduler, raises one.
    """
    tasks = list(tasks)
    if not tasks:
        return
    if scheduler is not None:
        yield from _run_dask(fn, tasks, scheduler, stall_s or DEFAULT_STALL_S)
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


def _run_dask(fn: Callable[[T], R], tasks: list[T], scheduler: Any, stall_s: float):
    try:
        import dask
        from distributed import Client, wait
    except ImportError:  # pragma: no cover - distributed is a declared dependency
        raise ConfigError("scheduler is set but dask.distributed is not installed") from None
    own = isinstance(scheduler, str)
    try:
        client = Client(scheduler, timeout="10s") if own else scheduler
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask cluster at {scheduler} ({exc}); check "
                          "`scheduler` in aggregat.toml or the scheduler argument",
                          param="scheduler") from None
    where = f"the Dask cluster at {scheduler if own else client.scheduler.address}"
    name = getattr(fn, "__name__", "task")
    try:
        # No retries=: it reruns tasks that raised (a corrupt file would be decoded 3 times); a
        # task whose worker died is rerun by the scheduler itself.
        # Tasks carry their inputs (a training its target's load and weather): the scheduler
        # holds them until a worker takes them. Scattered instead, they would die with the
        # worker holding them, and a task lost with its worker could not simply be rerun.
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "2GiB"}):
            futures = client.map(fn, tasks, pure=False)
        index = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        pending = set(futures)
        while pending:
            try:
                done, pending = wait(pending, timeout=stall_s, return_when="FIRST_COMPLETED")
            except TimeoutError:
                raise ClusterError(
                    f"{where}: no {name} task ended in {stall_s:g} s ({len(pending)} of "
                    f"{len(tasks)} still waiting); check its workers (logs, memory) or raise "
                    "`scheduler_stall_s`") from None
            except CancelledError:  # the client lost the scheduler and cancelled everything
                raise _lost(where) from None
            for future in done:
                yield index[future.key], *_outcome(future, stall_s, where, name)
    finally:
        if own:
            client.close()


def _outcome(future: Any, stall_s: float, where: str, name: str
             ) -> tuple[Any, BaseException | None]:
    """``(result, None)`` or ``(None, error)`` of a future that ended; a KilledWorker becomes a
    ClusterError of its task, a cancelled future (scheduler lost) one of the whole run."""
    from distributed import KilledWorker

    try:
        if future.status == "finished":
            return future.result(timeout=stall_s), None
        exc = future.exception(timeout=stall_s)
    except CancelledError:
        raise _lost(where) from None
    except TimeoutError:  # the result's worker died and its recomputation is stuck
        raise ClusterError(f"{where}: a {name} result did not arrive in {stall_s:g} s; check "
                           "its workers or raise `scheduler_stall_s`") from None
    except Exception as exc:  # fetching the result failed (it does not unpickle, say)
        return None, exc
    if isinstance(exc, KilledWorker):
        return None, ClusterError(
            f"{where}: the workers running this {name} task died {exc.allowed_failures + 1} "
            f"times (last {exc.last_worker.address}); the scheduler gave up on it: see the "
            "workers' logs (out of memory?) and run the job again")
    return None, exc


def _lost(where: str) -> ClusterError:
    return ClusterError(f"lost the connection to {where} (the scheduler stopped or the network "
                        "failed); check the scheduler and run the job again")
