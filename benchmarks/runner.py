"""The former home of the benchmark runner, kept for code that imports from it.

The runner is split by concern (see :mod:`benchmarks`); ``tests/test_readme.py`` still
reads the command line's defaults through ``benchmarks.runner.parser`` and
``benchmarks.runner.catalogue``. New code imports from the modules themselves.
"""

from .cli import main, parser
from .workloads import catalogue

__all__ = ["catalogue", "main", "parser"]
