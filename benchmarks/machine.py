"""The machine a benchmark run ran on, and its BLAS thread count.

:func:`machine_info` records what a reader needs to compare two reports (platform,
versions, CPUs, BLAS, load); :func:`limit_blas_threads` and :func:`blas_threads` set and
report the BLAS/OpenMP thread pools (one thread by default: BLAS threads spinning against
each other on a busy machine make small GEMMs slower and the timings unsteady).
"""

from __future__ import annotations

import os
import platform

from typing import Optional

import numpy as np

from . import THREAD_VARS


def _processor_name(default: str) -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else ``default``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def _blas_name() -> "str | None":
    """The name and version of the BLAS numpy was built with (None: unknown)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        return None


def machine_info() -> dict:
    """Platform, Python, numpy/sympy/symgrad versions, CPUs, BLAS, load.

    Returns
    -------
    dict
        ``platform``, ``python``, ``implementation``, ``numpy``, ``sympy``, ``symgrad``,
        ``cpu_count``, ``processor``, ``cpus_usable`` (where known), ``blas``,
        ``load_average_at_start`` (where known), ``thread_env`` and ``blas_threads``.
    """
    import sympy

    import symgrad
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "numpy": np.__version__,
            "sympy": sympy.__version__, "symgrad": symgrad.__version__,
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
        info["cpu_affinity"] = sorted(os.sched_getaffinity(0))
    info["processor"] = _processor_name(info["processor"])
    info["blas"] = _blas_name()
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    info["thread_env"] = {v: os.environ[v] for v in THREAD_VARS if v in os.environ}
    info["blas_threads"] = blas_threads()
    return info


_LIMITER = None


def limit_blas_threads(n: int) -> bool:
    """Limit this process's BLAS/OpenMP pools to ``n`` threads with threadpoolctl.

    threadpoolctl is an optional dependency. The environment variables, set by ``python -m
    benchmarks`` before numpy is imported, cover the case without it and reach the child
    processes.

    Parameters
    ----------
    n : int

    Returns
    -------
    bool
        True when the limit was applied.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    global _LIMITER
    _LIMITER = threadpool_limits(limits=n)  # kept: the limit lasts as long as the object
    return True


def pin_cpus(n: int) -> Optional[list]:
    """Let this process (and the processes it starts, which inherit it) run on ``n`` CPUs
    only, the last ``n`` of those it may use now.

    The BLAS variables and threadpoolctl do not reach XLA: JAX sizes its thread pool from
    the CPU affinity, and with one BLAS thread it still ran a W3 step on 1.3-1.6 cores of
    this 2-core machine, hand-written numpy on one. Pinning makes "one thread everywhere"
    true for every framework (the peers' harnesses pin with ``taskset`` for the same
    reason).

    Parameters
    ----------
    n : int

    Returns
    -------
    list of int or None
        The CPUs now allowed; None where the OS has no affinity call (the limit is then the
        thread variables' alone).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if n < len(allowed):
        os.sched_setaffinity(0, allowed[-n:])
    return sorted(os.sched_getaffinity(0))


def blas_threads() -> str:
    """How many threads BLAS uses in this process, and who said so.

    Returns
    -------
    str
        E.g. ``"1 (threadpoolctl)"`` or ``"1 (OPENBLAS_NUM_THREADS)"``.
    """
    try:
        from threadpoolctl import threadpool_info
        counts = sorted({p["num_threads"] for p in threadpool_info()
                         if p.get("user_api") == "blas"})
        if counts:
            return "/".join(map(str, counts)) + " (threadpoolctl)"
    except ImportError:
        pass
    for var in THREAD_VARS[:3]:
        if os.environ.get(var):
            return f"{os.environ[var]} ({var})"
    return "the BLAS default (not limited)"
