"""symgrad: a symbolic differentiation compiler for numpy.

Write a loss in numpy terms; symgrad keeps it as a SymPy tree, derives the gradients
symbolically, and generates one fused, readable numpy module per function, cached on disk::

    import symgrad as sg
    x = sg.input("x", shape=("N", 3))
    w = sg.param("w", shape=(3,))
    loss = ((x @ w - 1.0) ** 2).mean()
    f = sg.compile([loss, *sg.grad(loss, [w])])
    print(f.source)

Pipeline (one stage per module): expr (build) -> diff (differentiate) -> optimize ->
codegen (generate) -> cache (load/run). ``symgrad.tape`` is an independent tape-based
autodiff, the comparison baseline.
"""

import sympy.tensor.tensor  # noqa: F401  SymPy imports it at the first Add of a process: pay it here

from ._version import __version__
from .api import CompiledFunction, ExpressionTooLarge, compile, grad
from .runtime.cache import CacheError, cache_dir
from .compiler.diff import GradientError
from .expr import (PUBLIC_OPS, Tensor, abs, as_tensor, broadcast_to, clip, constant, cos,
                   custom_gradient, exp, input, l2_loss, log, log_sigmoid, log_softmax,
                   logsumexp, matmul, max, maximum, mean, minimum, norm, one_hot, param, relu,
                   reshape, sigmoid, sigmoid_cross_entropy, sign, sin, softmax,
                   softmax_cross_entropy, softplus, sqrt, square, stop_gradient, sum, tanh,
                   transpose, where)
from . import optim
from .compiler.printer import latex
from .train import TrainState, TrainStep, train_step
from .expr import SharedParameterWarning, SymgradWarning
from .gradcheck import GradCheckReport, GradientCheckError, check_grad
from .shapes import Dim, ShapeError

__all__ = [
    "__version__", "Tensor", "input", "param", "constant", "as_tensor", "grad", "compile",
    "CompiledFunction", "latex", "Dim", "ShapeError", "GradientError", "CacheError",
    "ExpressionTooLarge", "cache_dir", "PUBLIC_OPS", "optim", "train_step", "TrainStep",
    "TrainState", "check_grad", "GradCheckReport", "GradientCheckError", "SymgradWarning",
    "SharedParameterWarning",
    "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "square", "sign",
    "softplus", "log_sigmoid", "maximum", "minimum", "where", "clip", "sum", "mean", "max",
    "transpose", "reshape", "matmul", "broadcast_to", "one_hot", "softmax", "log_softmax",
    "logsumexp", "softmax_cross_entropy", "sigmoid_cross_entropy", "l2_loss", "norm",
    "stop_gradient", "custom_gradient",
]
