"""symgrad: a symbolic differentiation compiler for numpy.

Write a loss in numpy terms; symgrad keeps it as a SymPy tree, derives the gradients
symbolically, and generates one fused, readable numpy module per function, cached on disk::

    import symgrad as sg
    x = sg.input("x", shape=("N", 3))
    w = sg.param("w", shape=(3,))
    loss = ((x @ w - 1.0) ** 2).mean()
    f = sg.compile([loss, *sg.grad(loss, [w])])
    print(f.source)

Pipeline, one folder a stage: ``expr`` and ``ops/`` (build: the Tensor and one record per
op) -> ``compiler/`` (diff: differentiate, optimize, printer and codegen: generate, verify)
-> ``runtime/`` (cache, trust, safety: load and run). ``api`` and ``train`` drive it.
``symgrad.tape`` is an independent tape-based autodiff, the comparison baseline.
"""

import sympy.tensor.tensor  # noqa: F401  SymPy imports it at the first Add of a process: pay it here

from ._version import __version__
from .api import CompiledFunction, ExpressionTooLarge, compile, grad
from .runtime.cache import CacheError, cache_dir
from .compiler.diff import GradientError
from .expr import (SharedParameterWarning, SymgradWarning, Tensor, as_tensor, constant, input,
                   param)
from .ops import FUNCTIONS, PUBLIC_OPS
from . import optim
from . import linalg  # sg.linalg.inv, ...: numpy's np.linalg names for the ops
from .compiler.printer import latex
from .train import TrainState, TrainStep, train_step
from .gradcheck import GradCheckReport, GradientCheckError, check_grad
from .shapes import Dim, ShapeError

# sg.exp, sg.sum, sg.matmul, ...: every public op, from its record (symgrad/ops/)
globals().update(FUNCTIONS)

__all__ = [
    "__version__", "Tensor", "input", "param", "constant", "as_tensor", "grad", "compile",
    "CompiledFunction", "latex", "Dim", "ShapeError", "GradientError", "CacheError",
    "ExpressionTooLarge", "cache_dir", "PUBLIC_OPS", "optim", "train_step", "TrainStep",
    "TrainState", "linalg", "check_grad", "GradCheckReport", "GradientCheckError",
    "SymgradWarning", "SharedParameterWarning", *FUNCTIONS,
]
