"""A real Dask cluster for the production-shaped tests: a scheduler and workers as separate
processes over TCP on loopback."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from child_process import child_env


def start_dask_cluster(n_workers: int = 2,
                       timeout_s: float = 60.0) -> tuple[str, Callable[[], None]]:
    """Start ``dask scheduler`` and ``n_workers`` ``dask worker`` processes on 127.0.0.1.

    Returns ``(tcp://127.0.0.1:PORT, stop)``. The children get this process's environment (so
    start object-storage fixtures first: workers read them through AWS_ENDPOINT_URL & co.) and a
    PYTHONPATH on the ``aggregat`` under test.
    """
    folder = Path(tempfile.mkdtemp(prefix="aggregat-dask-"))
    file = folder / "scheduler.json"
    env = child_env()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env,
             "cwd": folder}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], **quiet)]

    def stop() -> None:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    try:
        deadline = time.monotonic() + timeout_s
        while not file.is_file():
            if procs[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Dask scheduler did not start")
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                    "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                                    "--local-directory", str(folder)], **quiet)
                  for _ in range(n_workers)]
        from distributed import Client

        with Client(address, timeout="20s") as client:
            client.wait_for_workers(n_workers, timeout=timeout_s)
    except BaseException:
        stop()
        raise
    return address, stop
