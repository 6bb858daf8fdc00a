"""Nodes outside the families: the let-binding that bounds the depth of SymPy trees, and
values with a user-given gradient (``sg.custom_gradient``)."""

from __future__ import annotations

import functools
from typing import Callable

import sympy
from sympy import Tuple

from .. import expr as tensors
from ..nodes import TensorOp, info, is_tensor_free, shape_of
from ..shapes import ShapeError, broadcast_shapes, format_shape
from .record import public
from .shape import sum_to_shape

__all__ = ["Let", "CustomGradient"]


class Let(TensorOp):
    """Identity node that bounds the depth of SymPy trees (a let-binding)."""

    op_name = "let"
    operands = (0,)

    @classmethod
    def infer(cls, x):
        return info(x)

    def vjp(self, g):
        # the adjoint is let-bound too: along a deep chain it would otherwise grow by one
        # factor per link (and SymPy re-sorts the whole product each time)
        return [g if is_tensor_free(g) else Let(g)]

    def print_numpy(self, p, ops):
        return ops[0]

    def formula(self, ops):
        return ops[0]

    def latex_form(self, ops):
        return ops[0]


class CustomGradient(TensorOp):
    """A value with a user-given vector-Jacobian rule (``sg.custom_gradient``).

    args: ``(forward, inputs, vjps, dy)``: the forward expression, a Tuple of the inputs
    it is differentiated with respect to, a Tuple of one adjoint expression per input
    written in terms of the cotangent placeholder ``dy``.
    """

    op_name = "custom_gradient"
    value_args = (0,)

    @property
    def operands(self):  # the gradient flows to the inputs, not into the forward tree
        return tuple(range(4, 4 + len(self.args[1])))

    def __new__(cls, forward, inputs, vjps, dy, *repeated):
        # ``repeated``: the trailing copies of the inputs, passed back when SymPy rebuilds
        # the node as ``func(*args)`` (xreplace, subs); they are rebuilt from ``inputs``
        inputs = Tuple(*inputs)
        # repeat the inputs as trailing args so that operand positions index ``args``
        return TensorOp.__new__(cls, forward, inputs, Tuple(*vjps), dy, *inputs)

    @classmethod
    def infer(cls, forward, inputs, vjps, dy, *rest):
        return info(forward)

    def vjp(self, g):
        dy = self.args[3]
        out = []
        for v, x in zip(self.args[2], self.args[1]):
            # the user's adjoint may have the broadcast shape (dy * b for an input b of
            # shape (4,) under a (3, 4) output): sum it back to the input's shape
            v = v.xreplace({dy: g})
            out.append(sum_to_shape(v, shape_of(v), shape_of(x)))
        return out

    def print_numpy(self, p, ops):
        return ops[0]

    def formula(self, ops):
        return str(self.args[0])


@public("structural", node=CustomGradient)
def custom_gradient(fn: Callable) -> Callable:
    """Decorator: give a function of tensors its own vector-Jacobian rule.

    Parameters
    ----------
    fn : callable
        ``fn(*tensors)`` returns ``(y, grad_fn)``; ``grad_fn(dy)`` returns the adjoint of
        each tensor argument (one Tensor, or a list/tuple of them; None for none).

    Returns
    -------
    callable
        The function, whose value is ``y`` and whose gradient is ``grad_fn``'s.

    Raises
    ------
    ValueError
        If ``grad_fn`` returns a different number of gradients than ``fn`` has inputs.
    ShapeError
        If a gradient does not broadcast to its input's shape.

    Examples
    --------
    The straight-through estimator of W2.4::

        @sg.custom_gradient
        def ste_sign(x):
            def grad(dy):
                return dy * sg.where(sg.abs(x) <= 1, 1.0, 0.0)
            return sg.sign(x), grad
    """

    @functools.wraps(fn)
    def wrapper(*args):
        ts = [tensors.as_tensor(a) for a in args]
        y, grad_fn = fn(*ts)
        y = tensors.as_tensor(y)
        dy = tensors.leaf(f"d_{fn.__name__}", y.shape, y.dtype or "float64", "cotangent")
        grads = grad_fn(dy)
        if not isinstance(grads, (list, tuple)):
            grads = [grads]
        if len(grads) != len(ts):
            raise ValueError(f"custom_gradient {fn.__name__}: grad_fn returned {len(grads)} "
                             f"gradients for {len(ts)} inputs")
        vjps = [_user_adjoint(fn.__name__, i, t, g) for i, (t, g) in enumerate(zip(ts, grads))]
        node = CustomGradient(y.expr, [t.expr for t in ts], vjps, dy.expr)
        return tensors.Tensor(node, y.shape, y.dtype)

    return wrapper


def _user_adjoint(name: str, i: int, t, g):
    """The SymPy adjoint of input ``i`` from a user's gradient function (0 for None)."""
    if g is None:
        return sympy.S.Zero
    g = tensors.as_tensor(g)
    try:
        broadcast_shapes(g.shape, t.shape, op="custom_gradient")
    except ShapeError:
        raise ShapeError(f"custom_gradient {name}: gradient {i} has shape "
                         f"{format_shape(g.shape)}, input {i} has shape "
                         f"{format_shape(t.shape)}") from None
    return g.expr
