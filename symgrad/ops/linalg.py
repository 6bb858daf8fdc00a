"""Linear algebra: numpy's ``matmul`` (its vector, matrix and batched forms)."""

from __future__ import annotations

import numpy as np

from .. import expr as tensors
from ..nodes import TensorOp, info, shape_of
from ..shapes import ShapeError, broadcast_shapes, format_shape
from .record import public
from .shape import BroadcastTo, PermuteDims, Reshape, ensure_shape, sum_to_shape

__all__ = ["MatMul", "swap_last"]


class MatMul(TensorOp):
    """numpy's ``matmul``: 1-D operands are vectors, leading axes are batch axes."""

    op_name = "matmul"
    operands = (0, 1)
    fresh_result = True

    @classmethod
    def infer(cls, a, b):
        (sa, da), (sb, db) = info(a), info(b)
        if not sa or not sb:
            raise ShapeError(f"matmul: operands must have at least 1 dim, got shapes "
                             f"{format_shape(sa)} and {format_shape(sb)}")
        a2 = sa if len(sa) > 1 else (1,) + sa
        b2 = sb if len(sb) > 1 else sb + (1,)
        if a2[-1] != b2[-2]:
            raise ShapeError(
                f"matmul: operands of shape {format_shape(sa)} and {format_shape(sb)} do not "
                f"align ({a2[-1]} != {b2[-2]})")
        batch = broadcast_shapes(a2[:-2], b2[:-2], op="matmul")
        out = batch + (a2[-2],) * (len(sa) > 1) + (b2[-1],) * (len(sb) > 1)
        dtypes = [d for d in (da, db) if d is not None]
        return out, (np.result_type(*dtypes) if dtypes else None)

    def vjp(self, g):
        a, b = self.args
        sa, sb = shape_of(a), shape_of(b)
        # promote vectors to matrices, use the matrix rule, then undo the promotion
        a2 = a if len(sa) > 1 else Reshape(a, (1,) + sa)
        b2 = b if len(sb) > 1 else Reshape(b, sb + (1,))
        out2 = MatMul(a2, b2)
        if shape_of(g) == out2.shape:
            g2 = g
        elif shape_of(g) == ():  # a scalar adjoint broadcasts (a number cannot be reshaped)
            g2 = BroadcastTo(g, out2.shape, self.dtype)
        else:
            g2 = Reshape(ensure_shape(g, self.shape), out2.shape)
        ga = sum_to_shape(MatMul(g2, swap_last(b2)), out2.shape[:-1] + (shape_of(a2)[-1],),
                          shape_of(a2))
        gb = sum_to_shape(MatMul(swap_last(a2), g2), out2.shape[:-2] + shape_of(b2)[-2:],
                          shape_of(b2))
        if len(sa) == 1:
            ga = Reshape(ensure_shape(ga, shape_of(a2)), sa)
        if len(sb) == 1:
            gb = Reshape(ensure_shape(gb, shape_of(b2)), sb)
        return [ga, gb]

    def print_numpy(self, p, ops):
        a, b = self.args
        if len(shape_of(a)) <= 2 and len(shape_of(b)) <= 2:
            return f"{p.atom(ops[0])}.dot({ops[1]})"
        return f"np.matmul({ops[0]}, {ops[1]})"

    def print_array_api(self, p, ops):
        return f"xp.matmul({ops[0]}, {ops[1]})"

    def formula(self, ops):
        return f"({ops[0]} @ {ops[1]})"

    def latex_form(self, ops):
        # a visible operator: juxtaposition would read as an elementwise product
        return rf"{ops[0]} \mathbin{{@}} {ops[1]}"


def swap_last(x):
    """Transpose of the last two axes."""
    nd = len(shape_of(x))
    perm = list(range(nd))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return PermuteDims(x, perm)


@public("structural", node=MatMul, numpy="np.matmul", operators=("__matmul__", "__rmatmul__"),
        reference=np.matmul)
def matmul(a, b):
    """Matrix product with numpy's rules (``a @ b``).

    Parameters
    ----------
    a, b : Tensor or array_like
        Operands of at least one dimension: a 1-D operand is a vector, leading axes are
        batch axes and broadcast.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If an operand is 0-d, the contracted lengths differ or the batch axes do not
        broadcast.
    """
    ta, tb = tensors.as_tensor(a), tensors.as_tensor(b)
    node = MatMul(ta.expr, tb.expr)
    return tensors.Tensor(node, node.shape, node.dtype)
