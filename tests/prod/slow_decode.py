"""Dask worker preload of the kill test: each extract task first drops a file named after its
worker's pid in ``$AGGREGAT_TEST_DECODE_MARKS``, then sleeps ``$AGGREGAT_TEST_DECODE_SLEEP_S``,
so the test knows which process is busy decoding and kills it mid-task."""

import os
import time
from pathlib import Path

import aggregat.weather.decode_task as decode_task

# distributed imports a preload then reloads it in the same namespace (utils.import_file): wrap
# the original, never the previous wrapper (which would call itself, 0.3 s a level, for ever).
_run_task = getattr(decode_task.run_task, "__wrapped__", decode_task.run_task)


def run_task(task):
    Path(os.environ["AGGREGAT_TEST_DECODE_MARKS"], str(os.getpid())).touch()
    time.sleep(float(os.environ.get("AGGREGAT_TEST_DECODE_SLEEP_S", "0")))
    return _run_task(task)


run_task.__wrapped__ = _run_task
decode_task.run_task = run_task  # tasks name it by module and name: the worker runs this one
