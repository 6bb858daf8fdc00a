"""Entry point: ``python -m benchmarks [--full] [--json PATH] ...`` (``--help``).

The default is the quick run; ``--full`` is the whole sweep. BLAS runs on one thread unless
``--threads N``: the variables must be set here, before anything imports numpy (OpenBLAS
reads them once, when it loads), so that this process and its children get them even
without threadpoolctl. The process (and its children) is also pinned to that many CPUs, which
is what limits XLA's threads (:func:`benchmarks.machine.pin_cpus`).
"""

import os
import sys

from . import THREAD_VARS


def _apply_threads(argv: list) -> None:
    """Set the thread variables of BLAS/OpenMP to ``--threads N`` (default 1): on a busy
    machine, BLAS threads spinning against each other make small GEMMs ten times slower
    and the timings unsteady."""
    value = "1"
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
    if value.isdigit() and int(value) > 0:
        for var in THREAD_VARS:
            os.environ[var] = value
        from .machine import pin_cpus  # (numpy loads here, after the variables are set)
        pin_cpus(int(value))  # XLA's threads follow the CPUs it may use, not the variables


_apply_threads(sys.argv[1:])

from .cli import main  # noqa: E402  (after the thread variables are set)

sys.exit(main())
