"""Entry point: ``python -m benchmarks [--quick] [--json PATH] ...`` (``--help``)."""

import os
import sys

from . import THREAD_VARS


def _apply_threads(argv: list) -> None:
    """``--threads N`` must reach BLAS before numpy is imported: set the variables now.
    ``--quick`` without ``--threads`` means one thread: on a busy machine, BLAS threads
    spinning against each other make small GEMMs ten times slower and the run long."""
    value = "1" if "--quick" in argv else None
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
    if value is not None and value.isdigit() and int(value) > 0:
        for var in THREAD_VARS:
            os.environ[var] = value


_apply_threads(sys.argv[1:])

from .runner import main  # noqa: E402  (after the thread variables are set)

sys.exit(main())
