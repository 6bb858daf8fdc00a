"""Operations: one record per op, declared once in the module of its family.

* :mod:`.record`: what a record holds, how ops are declared, the tables derived from them;
* :mod:`.elementwise`: arithmetic and functions of scalars, lifted to tensors;
* :mod:`.reductions`: sum, mean, max, logsumexp, norm (numpy's vector and matrix norms);
* :mod:`.shape`: broadcast_to, transpose, reshape, indexing, one_hot (and
  :func:`~symgrad.ops.shape.sum_to_shape`, which undoes broadcasting for every rule);
* :mod:`.linalg`: matmul, dot, tensordot, einsum, ...;
* :mod:`.decompositions`: ``np.linalg``'s inv, solve, det, slogdet, cholesky, eigh, svd;
* :mod:`.nn`: softmax and the losses, written with the others;
* :mod:`.special`: let-bindings and ``custom_gradient``.

:data:`PUBLIC_OPS` lists every op; the test suite has one spec row for each and fails when
one is missing. See CONTRIBUTING.md for adding one.
"""

from . import elementwise, linalg, nn, reductions, shape, special  # noqa: F401 (declares)
from . import join  # noqa: F401 (declares concatenate, stack, split, ...)
from . import conv  # noqa: F401 (declares)
from . import decompositions  # noqa: F401 (declares np.linalg: inv, solve, det, ...)
from .elementwise import Maximum, Minimum, Relu, Sigmoid, Softplus, Step, StopGradient, Where
from .linalg import MatMul, swap_last
from .record import RECORDS, OpRecord, install_tensor_methods
from .reductions import ArgmaxMask, LogSumExp, Norm, Reduction, ReduceMax, ReduceSum
from .shape import (BroadcastTo, Index, IndexGrad, OneHot, PermuteDims, Reshape, SliceSpec,
                    encode_index, ensure_shape, sum_to_shape)
from .special import CustomGradient, Let

from ..expr import Tensor  # noqa: E402

install_tensor_methods(Tensor)

#: every public op, by name: the test suite needs one spec row for each
PUBLIC_OPS: tuple = tuple(RECORDS)

#: the public functions ``sg.<name>``, by name
FUNCTIONS: dict = {name: r.function for name, r in RECORDS.items() if r.exported}

__all__ = ["RECORDS", "OpRecord", "PUBLIC_OPS", "FUNCTIONS", "MatMul", "swap_last",
           "ReduceSum", "ReduceMax", "ArgmaxMask", "LogSumExp", "Norm", "Reduction",
           "BroadcastTo", "PermuteDims", "Reshape", "SliceSpec", "encode_index", "Index",
           "IndexGrad", "OneHot", "ensure_shape", "sum_to_shape", "Let", "CustomGradient",
           "Sigmoid", "Softplus", "Step", "Relu", "StopGradient", "Maximum", "Minimum",
           "Where"]
