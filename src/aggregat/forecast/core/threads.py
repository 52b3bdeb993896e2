"""Thread counts of the numerical libraries under training and prediction, fixed in the code.

A model must have the same bits wherever it is trained: in the job's process, a forked pool
worker or a Dask worker (whose nanny sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS to 1). Thread counts change the order of floating-point sums, so they are set
rather than inherited: LightGBM gets ``num_threads`` (``ModelConfig.n_jobs``) with
``deterministic`` in its parameters, and the ridge's BLAS work runs under :data:`one_blas_thread`
(issue 15: its coefficients, so the models' content hashes, followed the BLAS thread count).
One thread is also the faster choice on a busy machine, where OpenBLAS threads spin-wait (eigh
11x slower).

OpenBLAS has one thread pool per process, and threadpoolctl lets one Python thread at a time set
its size: tasks that overlap in several threads of one process (a Dask worker with
``--nthreads 2`` and ``--no-nanny``) need OPENBLAS_NUM_THREADS=1 in its environment, as the
nanny sets by default (docs/operations.md, "Dask").
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

BLAS_THREADS = 1

# A decorator, or a context manager (``with one_blas_thread:``); nests within one thread.
one_blas_thread = threadpool_limits.wrap(limits=BLAS_THREADS, user_api="blas")
