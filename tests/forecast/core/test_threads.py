import threading

from threadpoolctl import threadpool_info, threadpool_limits

from aggregat.forecast.core.threads import BLAS_THREADS, one_blas_thread


def blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def set_blas_threads(n: int) -> None:
    """Set OpenBLAS's pool size from a thread that then ends: threadpoolctl lets only the thread
    that last set it (while it lives) size it again, and the tasks below run in other threads."""
    setter = threading.Thread(target=threadpool_limits, kwargs={"limits": n, "user_api": "blas"})
    setter.start()
    setter.join()


def test_overlapping_tasks_both_run_the_ridge_on_one_blas_thread():
    """Two tasks in the threads of one process (a Dask worker with --nthreads 2 and no nanny):
    the first to leave restores the process's thread count, which must not reach the other
    while it is inside."""
    before = blas_threads()
    set_blas_threads(4)
    inside = [threading.Event(), threading.Event()]
    leave = [threading.Event(), threading.Event()]
    seen: dict[int, set[int]] = {}

    @one_blas_thread
    def ridge(k: int) -> None:
        inside[k].set()
        leave[k].wait(30)
        seen[k] = blas_threads()

    try:
        tasks = [threading.Thread(target=ridge, args=(k,)) for k in (0, 1)]
        tasks[0].start()
        assert inside[0].wait(30)
        tasks[1].start()
        inside[1].wait(1)  # it waits for the first (it would be inside by now otherwise)
        leave[0].set()
        tasks[0].join(30)
        leave[1].set()
        tasks[1].join(30)
        assert seen == {0: {BLAS_THREADS}, 1: {BLAS_THREADS}}
        assert blas_threads() == {4}  # the process's own count, once both are out
    finally:
        set_blas_threads(max(before))
