"""Thread counts of the numerical libraries under training and prediction, fixed in the code.

A model must have the same bits wherever it is trained: in the job's process, a forked pool
worker or a Dask worker (whose nanny sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS to 1). Thread counts change the order of floating-point sums, so they are set
rather than inherited: LightGBM gets ``num_threads`` (``ModelConfig.n_jobs``) with
``deterministic`` in its parameters, and the ridge's BLAS work runs under :data:`one_blas_thread`
(issue 15: its coefficients, so the models' content hashes, followed the BLAS thread count).
One thread is also the faster choice on a busy machine, where OpenBLAS threads spin-wait (eigh
11x slower).

OpenBLAS has one thread pool per process and threadpoolctl restores, on leaving, the size it
found on entering: two tasks in the threads of one process (a Dask worker with ``--nthreads 2``
and no nanny) would hand each other the process's size. So the ridge's BLAS sections take turns
within a process (they are a small part of a training).
"""

from __future__ import annotations

import os
import threading
from contextlib import ContextDecorator

from threadpoolctl import threadpool_limits

BLAS_THREADS = 1

_limit = threadpool_limits.wrap(limits=BLAS_THREADS, user_api="blas")
_turn = threading.RLock()  # reentrant: a decorated function may call another


def _new_turn() -> None:
    global _turn
    _turn = threading.RLock()  # a forked child starts with no thread inside


os.register_at_fork(after_in_child=_new_turn)


# Hand-written: threadpoolctl's limiters are per thread; this one adds the turns.
class _OneBlasThread(ContextDecorator):
    def __enter__(self) -> _OneBlasThread:
        _turn.acquire()
        try:
            _limit.__enter__()
        except BaseException:
            _turn.release()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        try:
            _limit.__exit__(*exc)
        finally:
            _turn.release()
        return False


# A decorator, or a context manager (``with one_blas_thread:``).
one_blas_thread = _OneBlasThread()
