"""symgrad's benchmarks: ``python -m benchmarks`` (see :mod:`benchmarks.runner`).

``benchmarks.hand`` is the hand-written numpy floor; ``benchmarks.impl_*`` are the adapters
(one per framework) the runner times side by side.
"""

#: Environment variables that set the thread count of BLAS and OpenMP (``--threads``).
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
