"""What the cluster can lose, on a real Dask cluster (scheduler and workers in their own processes,
over TCP on 127.0.0.1): a task whose workers keep dying, a task that never ends, the scheduler
itself. Each ends in a ClusterError (exit 3) naming what was lost, never in a wait for ever."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import pytest

from aggregat.errors import ClusterError
from aggregat.parallel import run_tasks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fragile_cluster(start_dask_cluster):
    """One worker; the scheduler gives a task up at the first worker that dies running it."""
    address, stop = start_dask_cluster(
        1, env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    try:
        yield address
    finally:
        stop()


def test_a_task_whose_workers_die_is_a_cluster_error_of_that_task(fragile_cluster):
    [(task, result, error)] = list(run_tasks(os._exit, [1], scheduler=fragile_cluster))
    assert task == 1 and result is None
    assert isinstance(error, ClusterError) and error.exit_code == 3, repr(error)
    assert "died 1 times" in str(error) and fragile_cluster in str(error)
    # The nanny's new worker takes the next tasks.
    assert sorted(r for _, r, e in run_tasks(abs, [-2, -1], scheduler=fragile_cluster)) == [1, 2]


def test_tasks_carrying_big_inputs_run_without_a_large_graph_warning(fragile_cluster):
    # A weekly training's tasks carry each target's load and weather (megabytes each).
    big = [bytes(12 * 2**20), bytes(12 * 2**20)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = sorted(r for _, r, e in run_tasks(len, big, scheduler=fragile_cluster))
    assert got == [12 * 2**20] * 2


def test_a_task_that_never_ends_stops_the_wait_after_stall_s(fragile_cluster):
    with pytest.raises(ClusterError, match=r"no sleep task ended in 1 s \(1 of 1 still waiting"):
        list(run_tasks(time.sleep, [600], scheduler=fragile_cluster, stall_s=1))


def test_a_lost_scheduler_is_one_cluster_error(start_dask_cluster):
    from distributed import Client

    address, stop = start_dask_cluster(1)
    try:
        with Client(address) as client:
            scheduler_pid = client.run_on_scheduler(os.getpid)
        kill = threading.Timer(3, os.kill, (scheduler_pid, signal.SIGKILL))
        kill.start()
        try:
            with pytest.raises(ClusterError, match="lost the connection to the Dask cluster at"):
                list(run_tasks(time.sleep, [600], scheduler=address, stall_s=300))
        finally:
            kill.cancel()
    finally:
        stop()
