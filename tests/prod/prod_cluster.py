"""A real Dask cluster for the production-shaped tests: a scheduler and workers in their own
processes, talking TCP on 127.0.0.1, as production runs one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from child_process import child_env


def start_dask_cluster(n_workers: int = 2, *, preload: str | None = None,
                       env: Mapping[str, str] | None = None, timeout_s: float = 90.0
                       ) -> tuple[str, Callable[[], None]]:
    """A scheduler and ``n_workers`` one-thread workers (each ``dask worker`` in its own process
    group), started with this process's environment (AWS_* included: start it after
    ``s3_server``) plus ``env``; returns ``(tcp address, stop)`` once all workers are connected.

    ``preload``: a module or .py file each worker process imports (a test hook)."""
    from distributed import Client

    folder = Path(tempfile.mkdtemp(prefix="aggregat-dask-"))
    info = folder / "scheduler.json"
    environ = child_env(**(env or {}))
    procs: list[subprocess.Popen] = []

    def spawn(*args: str) -> None:
        log = open(folder / f"{len(procs)}.log", "wb")  # noqa: SIM115 (closed with the process)
        procs.append(subprocess.Popen([sys.executable, "-m", *args], env=environ, cwd=folder,
                                      stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        log.close()

    def stop() -> None:
        for proc in procs:  # each process group: the nanny and the worker it started
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)

    try:
        spawn("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
              "--no-dashboard", "--scheduler-file", str(info))
        deadline = time.monotonic() + timeout_s
        while not info.exists():
            if procs[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Dask scheduler did not start: see {folder}/0.log")
            time.sleep(0.1)
        for _ in range(n_workers):
            spawn("distributed.cli.dask_worker", "--scheduler-file", str(info),
                  "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1",
                  "--no-dashboard", *(("--preload", preload) if preload else ()))
        with Client(scheduler_file=str(info), timeout="30s") as client:
            client.wait_for_workers(n_workers, timeout=max(1.0, deadline - time.monotonic()))
            address = client.scheduler.address
    except BaseException:
        stop()
        raise
    return address, stop


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # its own session: the group id is its pid
    except ProcessLookupError:
        pass
