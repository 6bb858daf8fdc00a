"""Helpers shared by the example scripts: one BLAS thread, plotting without a screen,
showing generated code.

Thread limits are set by the scripts' entry points only (``if __name__ == "__main__"``,
before numpy is imported), never by symgrad itself: a library must not change the threads
of the program that imports it.
"""

from __future__ import annotations

import os
import sys

#: The variables BLAS and OpenMP builds read once, when numpy loads them.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_STATE = {"how": None, "limiter": None}


def limit_blas_threads(n: int = 1) -> str:
    """Run BLAS on ``n`` threads unless the user set one of :data:`THREAD_VARS`.

    With threadpoolctl installed (``pip install threadpoolctl``) the limit is applied to the
    loaded BLAS; otherwise the variables are set, which works only before numpy is imported
    (call this first thing in a script). Returns how the thread count was decided.
    """
    for var in THREAD_VARS:
        if os.environ.get(var):
            _STATE["how"] = f"{os.environ[var]} (your {var})"
            return _STATE["how"]
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if "numpy" in sys.modules:
            _STATE["how"] = "not limited (numpy was loaded first; install threadpoolctl)"
            return _STATE["how"]
        for var in THREAD_VARS:
            os.environ[var] = str(n)
        _STATE["how"] = f"{n} (set by the script through {THREAD_VARS[0]} and friends)"
        return _STATE["how"]
    import numpy  # noqa: F401  (loads BLAS, so the limit has a library to act on)
    _STATE["limiter"] = threadpool_limits(limits=n, user_api="blas")  # kept alive: stays on
    _STATE["how"] = f"{n} (threadpoolctl)"
    return _STATE["how"]


def blas_threads() -> str:
    """One line for the scripts' output: how many BLAS threads, and who decided."""
    if _STATE["how"] is not None:
        how = _STATE["how"]
    else:  # imported (e.g. by the tests), not run as a script: report what is in force
        var = next((v for v in THREAD_VARS if os.environ.get(v)), None)
        how = f"{os.environ[var]} ({var})" if var else "the BLAS default (not limited)"
    return (f"BLAS threads: {how}; set OPENBLAS_NUM_THREADS=N (or OMP_NUM_THREADS) to "
            "choose another number")


def _pyplot():
    """matplotlib.pyplot with a file-only backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _function_body(source: str, name: str = "train_step", lines: int = 30) -> str:
    """The ``def name(...)`` block of a generated module (its first ``lines`` lines)."""
    text = source[source.index(f"def {name}("):]
    return "\n".join(text.splitlines()[:lines])
