"""Reductions: sum, mean, max, logsumexp, the L2 norm, and the masks their rules need."""

from __future__ import annotations

import numpy as np
import sympy

from .. import expr as tensors
from ..nodes import TensorOp, info, is_tensor_free, shape_of
from ..shapes import ShapeError, format_shape, normalize_axes, reduced_shape
from .elementwise import StopGradient, Where, abs, square
from .record import public
from .shape import Reshape, ensure_shape, reshape
from .static import flag, ints, tuple_axes

__all__ = ["ReduceSum", "ReduceMax", "ArgmaxMask", "LogSumExp", "Norm", "Reduction"]


def _expand_reduced(g, in_shape, axes, keepdims):
    """Put back the reduced axes of an adjoint as size-1 axes, so it broadcasts to the input."""
    if keepdims or is_tensor_free(g) or shape_of(g) == ():
        return g  # a scalar adjoint broadcasts to the input as it is
    kshape = reduced_shape(in_shape, axes, keepdims=True)
    g = ensure_shape(g, reduced_shape(in_shape, axes, keepdims=False))
    return Reshape(g, kshape)


def _axis_source(p, axes, ndim):
    if len(axes) == ndim:
        return None
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


class Reduction(TensorOp):
    """Base of the reductions over ``axes`` (args: operand, axes, keepdims)."""

    operands = (0,)
    method = ""
    fresh_result = True

    def __new__(cls, x, axes, keepdims=False):
        return TensorOp.__new__(cls, x, ints(axes), flag(keepdims))

    @classmethod
    def infer(cls, x, axes, keepdims):
        shape, dtype = info(x)
        axes = tuple_axes(axes)
        for a in axes:
            if not 0 <= a < len(shape):
                raise ShapeError(f"{cls.op_name}: axis {a} out of range for shape "
                                 f"{format_shape(shape)}")
        return reduced_shape(shape, axes, bool(keepdims)), dtype

    @property
    def axes(self):
        return tuple_axes(self.args[1])

    @property
    def keepdims(self):
        return bool(self.args[2])

    def print_numpy(self, p, ops):
        axis = _axis_source(p, self.axes, len(shape_of(self.args[0])))
        kw = []
        if axis is not None:
            kw.append(f"axis={axis}")
        if self.keepdims:
            kw.append("keepdims=True")
        return f"{p.atom(ops[0])}.{self.method}({', '.join(kw)})"

    def print_array_api(self, p, ops):
        axis = _axis_source(p, self.axes, len(shape_of(self.args[0])))
        kw = [f"axis={axis}"] if axis is not None else []
        if self.keepdims:
            kw.append("keepdims=True")
        return f"xp.{self.method}({', '.join([ops[0]] + kw)})"

    def formula(self, ops):
        extra = ""
        if len(self.axes) != len(shape_of(self.args[0])):
            extra += f", axis={self.axes[0] if len(self.axes) == 1 else self.axes}"
        if self.keepdims:
            extra += ", keepdims=True"
        return f"{self.op_name}({ops[0]}{extra})"


class ReduceSum(Reduction):
    """Sum over axes; its adjoint broadcasts back."""

    op_name = "sum"
    method = "sum"

    def consumes_raw(self, arg) -> bool:
        # sum(u**2) over everything is a dot product: one BLAS call, 2-4x faster than
        # squaring then summing (measured on 8x1 to 128x256 float32)
        full = len(self.axes) == len(shape_of(self.args[0])) and not self.keepdims
        return full and arg.is_Pow and arg.exp == 2 and arg.base.is_Symbol

    def print_numpy(self, p, ops):
        (arg,) = getattr(p, "operand_exprs", None) or (None,)
        if arg is not None and self.consumes_raw(arg):
            name = p.doprint(arg.base)
            return f"np.vdot({name}, {name})"
        return super().print_numpy(p, ops)

    def vjp(self, g):
        x = self.args[0]
        return [_expand_reduced(g, shape_of(x), self.axes, self.keepdims)]


class ReduceMax(Reduction):
    """Max over axes; with ties the whole gradient goes to one element (the first)."""

    op_name = "max"
    method = "max"

    def vjp(self, g):
        x = self.args[0]
        gx = _expand_reduced(g, shape_of(x), self.axes, self.keepdims)
        return [ArgmaxMask(x, self.axes) * gx]


class ArgmaxMask(TensorOp):
    """1 at the first maximum along ``axes`` (C order), 0 elsewhere. No gradient."""

    op_name = "argmax_mask"
    operands = (0,)
    fresh_result = True

    def __new__(cls, x, axes):
        return TensorOp.__new__(cls, x, ints(axes))

    @classmethod
    def infer(cls, x, axes):
        return info(x)

    def vjp(self, g):
        return [None]

    def print_numpy(self, p, ops):
        p.need_helper("argmax_mask")
        return f"_argmax_mask({ops[0]}, {tuple(tuple_axes(self.args[1]))})"

    def print_array_api(self, p, ops):
        p.need_helper("argmax_mask")
        return f"_argmax_mask(xp, {ops[0]}, {tuple(tuple_axes(self.args[1]))})"


class LogSumExp(Reduction):
    """log(sum(exp(x))) over axes, shifted by the max so that it never overflows."""

    op_name = "logsumexp"

    def vjp(self, g):
        from .elementwise import stop_gradient
        x = self.args[0]
        # d/dx logsumexp(x) = softmax(x) = exp(x - m) / sum(exp(x - m)), m the (constant)
        # max: exp(x - logsumexp(x)) would lose |x| * eps to the cancellation in x - lse
        # (4e-4 relative in float32 at |x| ~ 1e4); this form is exact to a few ulps
        e = sympy.exp(x - StopGradient(ReduceMax(x, self.axes, True)))
        softmax = e / ReduceSum(e, self.axes, True)
        return [_expand_reduced(g, shape_of(x), self.axes, self.keepdims) * softmax]

    def print_numpy(self, p, ops):
        p.need_helper("logsumexp")
        return f"_logsumexp({ops[0]}, {tuple(self.axes)}, {self.keepdims})"

    def print_array_api(self, p, ops):
        p.need_helper("logsumexp")
        return f"_logsumexp(xp, {ops[0]}, {tuple(self.axes)}, {self.keepdims})"


class Norm(Reduction):
    """The L2 norm sqrt(sum(x**2)) over axes, as ``np.linalg.norm``, but scaled by max|x|
    where the squares would underflow or overflow: ``norm([3e-200, 4e-200])`` is 5e-200,
    not 0 (the helper ``_norm`` takes the plain sum of squares when it is safe).

    Its gradient is x / norm, taken as 0 where the norm is 0 (PyTorch's choice, and the
    tape's): the limit does not exist there, and 0 is what a subgradient method wants.
    x / norm never overflows (|x_i| <= norm), so it needs no scaling of its own.
    """

    op_name = "norm"

    @classmethod
    def infer(cls, x, axes, keepdims):
        shape, dtype = super().infer(x, axes, keepdims)
        if dtype is not None and dtype.kind not in "fc":
            dtype = np.dtype(np.float64)  # the norm of integers is a float, as numpy's
        return shape, dtype

    def vjp(self, g):
        from .elementwise import where
        x = self.args[0]
        shape = shape_of(x)
        gx = _expand_reduced(g, shape, self.axes, self.keepdims)
        y = _expand_reduced(self, shape, self.axes, self.keepdims)  # the norm, axes kept
        return [gx * x / Where(sympy.StrictGreaterThan(y, 0), y, sympy.S.One)]

    def print_numpy(self, p, ops):
        p.need_helper("norm")
        axes = _axis_source(p, self.axes, len(shape_of(self.args[0])))
        axis = "None" if axes is None else str(tuple(self.axes))
        return f"_norm({ops[0]}, {axis}, {self.keepdims})"

    def print_array_api(self, p, ops):
        p.need_helper("norm")
        axes = _axis_source(p, self.axes, len(shape_of(self.args[0])))
        axis = "None" if axes is None else str(tuple(self.axes))
        return f"_norm(xp, {ops[0]}, {axis}, {self.keepdims})"


class CumSum(TensorOp):
    """Cumulative sum along one axis; ``reverse`` sums from the end instead (the adjoint of
    a cumulative sum is the reversed cumulative sum of its adjoint)."""

    op_name = "cumsum"
    operands = (0,)
    fresh_result = True
    numpy_calls = ("np.cumsum", "np.flip")

    def __new__(cls, x, axis, reverse=False):
        return TensorOp.__new__(cls, x, sympy.Integer(axis), flag(reverse))

    @classmethod
    def infer(cls, x, axis, reverse):
        shape, dtype = info(x)
        if not 0 <= int(axis) < len(shape):
            raise ShapeError(f"cumsum: axis {int(axis)} out of range for shape "
                             f"{format_shape(shape)}")
        if dtype == np.dtype(bool):
            dtype = np.dtype(np.int64)  # numpy counts booleans
        return shape, dtype

    def vjp(self, g):
        x, axis, reverse = self.args
        return [CumSum(ensure_shape(g, self.shape), int(axis), not bool(reverse))]

    def print_numpy(self, p, ops):
        axis = int(self.args[1])
        if bool(self.args[2]):
            return f"np.flip(np.cumsum(np.flip({ops[0]}, {axis}), axis={axis}), {axis})"
        return f"np.cumsum({ops[0]}, axis={axis})"

    def print_array_api(self, p, ops):
        axis = int(self.args[1])
        if bool(self.args[2]):
            return (f"xp.flip(xp.cumulative_sum(xp.flip({ops[0]}, axis={axis}), axis={axis}), "
                    f"axis={axis})")
        return f"xp.cumulative_sum({ops[0]}, axis={axis})"

    def formula(self, ops):
        reverse = ", reverse" if bool(self.args[2]) else ""
        return f"cumsum({ops[0]}, axis={int(self.args[1])}{reverse})"


# ---------------------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------------------


def _reduce(cls, x, axis, keepdims):
    t = tensors.as_tensor(x)
    axes = normalize_axes(axis, t.ndim, cls.op_name)
    if not axes and not keepdims:
        return t
    return tensors.structural_node(cls, t, axes, keepdims)


@public("structural", node=ReduceSum, numpy="np.sum", methods=("sum",), reference=np.sum)
def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (numpy's ``sum``); its gradient broadcasts back.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int, tuple of int or None
        The axes to reduce (negative ones count from the end); None: all of them.
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor
    """
    return _reduce(ReduceSum, x, axis, keepdims)


@public("composite", numpy="np.mean", methods=("mean",), reference=np.mean)
def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (numpy's ``mean``).

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int, tuple of int or None
        The axes to reduce (negative ones count from the end); None: all of them.
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(x)
    axes = normalize_axes(axis, t.ndim, "mean")
    count = sympy.Integer(1)
    for a in axes:
        count = count * t.shape[a]
    return sum(t, axes, keepdims) / tensors.Tensor(count, (), None)


@public("structural", node=ReduceMax, numpy="np.max", methods=("max",), reference=np.max)
def max(x, axis=None, keepdims=False):
    """Maximum over ``axis`` (numpy's ``max``); at ties the whole gradient goes to the first
    maximal element in C order.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int, tuple of int or None
        The axes to reduce (negative ones count from the end); None: all of them.
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor
    """
    return _reduce(ReduceMax, x, axis, keepdims)


@public("structural", node=LogSumExp)
def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, shifted by the max so that it never overflows.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int, tuple of int or None
        The axes to reduce (negative ones count from the end); None: all of them.
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor
    """
    return _reduce(LogSumExp, x, axis, keepdims)


@public("structural", node=Norm, numpy="np.linalg.norm")
def norm(x, axis=None, keepdims=False):
    """The L2 norm ``sqrt(sum(x**2))`` over ``axis``, scaled against underflow and overflow.

    Its gradient ``x / norm`` is taken as 0 where the norm is 0 (PyTorch's choice).

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int, tuple of int or None
        The axes to reduce (negative ones count from the end); None: all of them.
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(x)
    if not normalize_axes(axis, t.ndim, "norm") and not keepdims:
        return abs(t)  # the norm of single numbers
    return _reduce(Norm, t, axis, keepdims)


@public("structural", node=CumSum, numpy="np.cumsum", methods=("cumsum",), reference=np.cumsum)
def cumsum(x, axis=None):
    """Cumulative sum along ``axis`` (numpy's ``cumsum``).

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int or None
        The axis to sum along (negative counts from the end); None: the flattened operand.

    Returns
    -------
    Tensor
        ``x``'s shape (1-D for ``axis=None``).
    """
    t = tensors.as_tensor(x)
    if axis is None:
        t, axis = (t if t.ndim == 1 else reshape(t, (-1,))), 0
    (axis,) = normalize_axes(axis, t.ndim, "cumsum")
    return tensors.structural_node(CumSum, t, axis)


@public("composite", reference=lambda x: np.sum(x * x) / 2)
def l2_loss(x):
    """``sum(x**2) / 2``, as TensorFlow's ``l2_loss``.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.

    Returns
    -------
    Tensor
        A 0-d tensor.
    """
    return sum(square(x)) / 2
