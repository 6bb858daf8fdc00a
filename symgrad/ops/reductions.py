"""Reductions: sum, mean, max, min, prod, var, std, logsumexp, the L2 norm, argmax, argmin,
cumulative sums and products, and the masks their rules need."""

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

__all__ = ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ArgmaxMask", "ArgMax", "ArgMin",
           "CumProd", "LogSumExp", "Norm", "Reduction"]


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
        if self._over_rows_of_a_matrix():
            # ones @ x: one BLAS call, 3-4x faster than x.sum(axis=0) on the batch sizes of
            # training (a bias gradient; measured 1x64 to 128x256 float32: 3.2 to 0.7 us,
            # 11.8 to 4.2 us). Like numpy's reduction of a C-ordered matrix, it adds the
            # rows one after another (BLAS may group a few): no pairwise summation either way
            p.need_helper("ones_for")
            return f"_ones_for({ops[0]}).dot({ops[0]})"
        return super().print_numpy(p, ops)

    def _over_rows_of_a_matrix(self) -> bool:
        """A sum over axis 0 of a float32/float64 matrix, to a vector."""
        shape, dtype = info(self.args[0])
        return (len(shape) == 2 and self.axes == (0,) and not self.keepdims
                and dtype is not None and np.dtype(dtype) in (np.float32, np.float64))

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


class ReduceMin(Reduction):
    """Min over axes; with ties the whole gradient goes to one element (the first), as max:
    the first minimum of ``x`` is the first maximum of ``-x`` (:class:`ArgmaxMask`)."""

    op_name = "min"
    method = "min"

    def vjp(self, g):
        x = self.args[0]
        gx = _expand_reduced(g, shape_of(x), self.axes, self.keepdims)
        return [ArgmaxMask(-x, self.axes) * gx]


class ReduceProd(Reduction):
    """Product over axes. Its gradient is the product of the other elements, exact with
    zeros: ``y / x`` away from zeros (``p`` the product of the nonzero elements, ``c`` the
    count of zeros of the slice), ``p`` at the zero of a slice with one zero, 0 elsewhere.
    ``p / x`` rounds once more than the product of the others, and overflows where ``p``
    does although the product of the others may not."""

    op_name = "prod"
    method = "prod"  # the array API form: xp.prod (Reduction.print_array_api)
    numpy_calls = ("np.prod",)

    def vjp(self, g):
        x = self.args[0]
        shape = shape_of(x)
        gx = _expand_reduced(g, shape, self.axes, self.keepdims)
        zero = sympy.Eq(x, 0)
        nonzero = Where(zero, sympy.S.One, x)
        p = ReduceProd(nonzero, self.axes, True)
        count = ReduceSum(Where(zero, sympy.S.One, sympy.S.Zero), self.axes, True)
        others = Where(sympy.Eq(count, 0), p / nonzero,
                       Where(zero, Where(sympy.Eq(count, 1), p, sympy.S.Zero), sympy.S.Zero))
        return [gx * others]

    def print_numpy(self, p, ops):
        axis = _axis_source(p, self.axes, len(shape_of(self.args[0])))
        kw = "" if axis is None else f", axis={axis}"
        if self.keepdims:
            kw += ", keepdims=True"
        return f"np.prod({ops[0]}{kw})"


class ArgReduce(TensorOp):
    """Base of argmax and argmin along one axis (``axes`` empty: the flattened operand):
    integer indices, no gradient."""

    operands = (0,)
    fresh_result = True
    function = ""

    def __new__(cls, x, axes, keepdims=False):
        return TensorOp.__new__(cls, x, ints(axes), flag(keepdims))

    @classmethod
    def infer(cls, x, axes, keepdims):
        shape, _ = info(x)
        axes = tuple_axes(axes)
        for a in axes:
            if not 0 <= a < len(shape):
                raise ShapeError(f"{cls.op_name}: axis {a} out of range for shape "
                                 f"{format_shape(shape)}")
        if not axes:  # the flattened operand
            out = (1,) * len(shape) if keepdims else ()
        else:
            out = reduced_shape(shape, axes, bool(keepdims))
        return out, np.dtype(np.intp)

    def vjp(self, g):
        return [None]

    def print_numpy(self, p, ops):
        axes = tuple_axes(self.args[1])
        axis = "None" if not axes else str(axes[0])
        keep = ", keepdims=True" if bool(self.args[2]) else ""
        return f"{self.function}({ops[0]}, axis={axis}{keep})"

    def formula(self, ops):
        axes = tuple_axes(self.args[1])
        extra = f", axis={axes[0]}" if axes else ""
        return f"{self.op_name}({ops[0]}{extra})"


class ArgMax(ArgReduce):
    """Index of the first maximum (numpy's ``argmax``)."""

    op_name = "argmax"
    function = "np.argmax"
    numpy_calls = ("np.argmax",)


class ArgMin(ArgReduce):
    """Index of the first minimum (numpy's ``argmin``)."""

    op_name = "argmin"
    function = "np.argmin"
    numpy_calls = ("np.argmin",)


class CumProd(TensorOp):
    """Cumulative product along one axis.

    Its gradient is exact with zeros (PyTorch's method): with ``k`` the first zero of a
    slice, ``dx_i = revcumsum(g * y)_i / x_i`` before ``k`` (every later output holds x_k =
    0), ``dx_k = prod(x[:k]) * sum_{j >= k} g_j prod(x[k+1:j+1])`` and 0 after ``k``
    (every product through them holds x_k). Written with symgrad nodes, so it
    differentiates again.
    """

    op_name = "cumprod"
    operands = (0,)
    fresh_result = True
    numpy_calls = ("np.cumprod",)

    def __new__(cls, x, axis):
        return TensorOp.__new__(cls, x, sympy.Integer(axis))

    @classmethod
    def infer(cls, x, axis):
        shape, dtype = info(x)
        if not 0 <= int(axis) < len(shape):
            raise ShapeError(f"cumprod: axis {int(axis)} out of range for shape "
                             f"{format_shape(shape)}")
        if dtype == np.dtype(bool):
            dtype = np.dtype(np.int64)
        return shape, dtype

    def vjp(self, g):
        x, axis = self.args[0], int(self.args[1])
        one, zero = sympy.S.One, sympy.S.Zero
        g = ensure_shape(g, self.shape)
        is_zero = sympy.Eq(x, 0)
        zeros_upto = CumSum(Where(is_zero, one, zero), axis)     # zeros at or before i
        zeros_before = zeros_upto - Where(is_zero, one, zero)    # zeros strictly before i
        before = sympy.Eq(zeros_upto, 0)                         # i before the first zero
        first = sympy.Eq(zeros_before, 0)                        # ... or at it (if x_i = 0)
        g_before = Where(before, CumSum(g * self, axis, True) / Where(before, x, one), zero)
        head = CumProd(Where(before, x, one), axis)              # prod(x[:k]) at k
        tail = CumProd(Where(first, one, x), axis)               # prod(x[k+1:j+1]) at j >= k
        total = ReduceSum(Where(before, zero, g * tail), (axis,), True)
        g_first = Where(is_zero, Where(first, head * total, zero), zero)
        return [g_before + g_first]

    def print_numpy(self, p, ops):
        return f"np.cumprod({ops[0]}, axis={int(self.args[1])})"

    def print_array_api(self, p, ops):
        return f"xp.cumulative_prod({ops[0]}, axis={int(self.args[1])})"

    def formula(self, ops):
        return f"cumprod({ops[0]}, axis={int(self.args[1])})"


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
def norm(x, ord=None, axis=None, keepdims=False):
    """numpy's ``linalg.norm``: a vector norm over one axis, a matrix norm over two.

    With ``ord=None`` it is the L2 norm ``sqrt(sum(x**2))`` over ``axis`` (any number of
    axes; all of them for None), scaled against underflow and overflow, its gradient
    ``x / norm`` taken as 0 where the norm is 0 (PyTorch's choice).

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    ord : {None, int, float, inf, -inf, 'fro', 'nuc'}
        Vector norms (one axis): None or 2 (L2), 1 (sum of ``|x|``), ``inf`` (max
        ``|x|``), ``-inf`` (min ``|x|``), any other real ``p >= 1``
        (``sum(|x|**p)**(1/p)``). Matrix norms (two axes): None or ``'fro'``
        (Frobenius), ``'nuc'`` (sum of singular values), 2 and -2 (largest and smallest
        singular value), 1 and -1 (max and min column sum of ``|x|``), ``inf`` and ``-inf``
        (max and min row sum). Without ``axis``, ``x`` must be 1-d or 2-d for an ``ord``.
    axis : int, pair of int or None
        The vector axis, or the matrix's (row, column) axes; None: all axes (``ord=None``)
        or those of a 1-d or 2-d ``x``.
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        For axes out of range or repeated, or an ``ord`` without ``axis`` on an operand
        of more than 2 dims.
    ValueError
        For an ``ord`` numpy does not define, or one symgrad does not differentiate
        (``0`` and ``0 < p < 1`` vector norms, whose gradient is not finite at 0).

    Notes
    -----
    The norms are written with other ops, which give their gradients: ``1``, ``inf`` and
    the row and column sums go through ``abs`` (gradient 0 at 0) and ``max``/``min``
    (the whole gradient to the first extremal entry at ties); ``'nuc'``, 2 and -2 go
    through :func:`symgrad.svd`'s singular values, ``gA = U diag(gs) Vh``, which assumes
    the singular values involved distinct and nonzero.
    """
    t = tensors.as_tensor(x)
    if isinstance(ord, (np.integer, np.floating)):  # np.inf is a float already
        ord = ord.item()
    if isinstance(axis, np.integer):
        axis = int(axis)
    if ord is None and (axis is None or isinstance(axis, int) or len(tuple(axis)) != 2):
        if not normalize_axes(axis, t.ndim, "norm") and not keepdims:
            return abs(t)  # the norm of single numbers
        return _reduce(Norm, t, axis, keepdims)
    axes = _norm_axes(t, ord, axis)
    if len(axes) == 1:
        return _vector_norm(t, ord, axes[0], keepdims)
    return _matrix_norm(t, ord, axes, keepdims)


def _norm_axes(t, ord, axis) -> tuple:
    """The one or two axes of a norm with an ``ord``, in the caller's order (row, column)."""
    if axis is None:
        if t.ndim not in (1, 2):
            raise ShapeError(f"norm: ord={ord!r} without axis needs a 1-d or 2-d operand, got "
                             f"shape {format_shape(t.shape)}")
        return tuple(range(t.ndim))
    given = (axis,) if isinstance(axis, int) else tuple(axis)
    if len(given) not in (1, 2):
        raise ShapeError(f"norm: ord={ord!r} needs one axis (a vector norm) or two (a matrix "
                         f"norm), got axis={axis!r}")
    normalize_axes(given, t.ndim, "norm")  # checks range and repeats
    return tuple(a % t.ndim for a in given)


def _vector_norm(t, ord, axis, keepdims):
    from .elementwise import power
    if ord is None or (not isinstance(ord, str) and ord == 2):
        return _reduce(Norm, t, axis, keepdims)
    if isinstance(ord, str) or isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise ValueError(f"norm: invalid ord={ord!r} for a vector norm (None, 1, 2, inf, -inf "
                         f"or a real p >= 1)")
    if ord == np.inf:
        return max(abs(t), axis, keepdims)
    if ord == -np.inf:
        return min(abs(t), axis, keepdims)
    if ord == 1:
        return sum(abs(t), axis, keepdims)
    if not ord > 1:
        raise ValueError(f"norm: ord={ord!r}: symgrad differentiates vector norms of p >= 1 "
                         f"(and inf, -inf) only; the gradient of p < 1 is not finite at 0")
    return power(sum(power(abs(t), float(ord)), axis, keepdims), 1.0 / float(ord))


def _matrix_norm(t, ord, axes, keepdims):
    from .shape import expand_dims, moveaxis, squeeze
    row, col = axes
    if ord is None or ord == "fro":
        return _reduce(Norm, t, axes, keepdims)
    if ord in ("nuc", 2, -2) and not isinstance(ord, bool):
        from .decompositions import svd
        s = svd(moveaxis(t, (row, col), (-2, -1)), compute_uv=False)
        out = {"nuc": sum, 2: max, -2: min}[ord](s, -1)
        return expand_dims(out, tuple(sorted(axes))) if keepdims else out
    if ord in (1, -1, np.inf, -np.inf) and not isinstance(ord, (bool, str)):
        # 1: the largest column sum (over the rows); inf: the largest row sum
        inner, outer = (row, col) if ord in (1, -1) else (col, row)
        pick = max if ord > 0 else min
        out = pick(sum(abs(t), inner, True), outer, True)
        return out if keepdims else squeeze(out, tuple(sorted(axes)))
    raise ValueError(f"norm: invalid ord={ord!r} for a matrix norm (None, 'fro', 'nuc', 2, -2, "
                     f"1, -1, inf, -inf)")


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


@public("structural", node=ReduceMin, numpy="np.min", methods=("min",), reference=np.min)
def min(x, axis=None, keepdims=False):
    """Minimum over ``axis`` (numpy's ``min``); at ties the whole gradient goes to the first
    minimal element in C order.

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
    return _reduce(ReduceMin, x, axis, keepdims)


@public("composite", numpy="np.amax", reference=np.amax)
def amax(x, axis=None, keepdims=False):
    """Maximum over ``axis``: numpy's ``amax``, an alias of :func:`max`.

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
    return max(x, axis, keepdims)


@public("composite", numpy="np.amin", reference=np.amin)
def amin(x, axis=None, keepdims=False):
    """Minimum over ``axis``: numpy's ``amin``, an alias of :func:`min`.

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
    return min(x, axis, keepdims)


@public("structural", node=ReduceProd, numpy="np.prod", methods=("prod",), reference=np.prod)
def prod(x, axis=None, keepdims=False):
    """Product over ``axis`` (numpy's ``prod``).

    Its gradient is the product of the other elements, exact with zeros: at the zero of a
    slice with one zero it is the product of the rest, and 0 everywhere in a slice with two.

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
    return _reduce(ReduceProd, x, axis, keepdims)


def _count(t, axes):
    count = sympy.Integer(1)
    for a in axes:
        count = count * t.shape[a]
    return count


@public("composite", numpy="np.var", methods=("var",), reference=np.var)
def var(x, axis=None, *, ddof=0, keepdims=False):
    """Variance over ``axis`` (numpy's ``var``), in the two-pass form
    ``sum((x - mean(x))**2) / (N - ddof)``: no cancellation, unlike ``E[x^2] - E[x]^2``.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int, tuple of int or None
        The axes to reduce (negative ones count from the end); None: all of them.
    ddof : int
        Delta degrees of freedom: the divisor is ``N - ddof``, ``N`` the number of
        elements reduced (1 for the unbiased estimate).
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        If ``N - ddof <= 0`` for a known ``N`` (numpy returns inf or nan there, with a
        warning).
    """
    t = tensors.as_tensor(x)
    axes = normalize_axes(axis, t.ndim, "var")
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)):
        raise TypeError(f"var: ddof must be an int, got {ddof!r}")
    divisor = _count(t, axes) - int(ddof)
    if divisor.is_number and divisor <= 0:
        raise ValueError(f"var: ddof={ddof} leaves no degrees of freedom for "
                         f"{_count(t, axes)} elements (operand of shape {t.shape}, axis={axis})")
    deviation = t - mean(t, axes, keepdims=True)
    return sum(square(deviation), axes, keepdims) / tensors.Tensor(divisor, (), None)


@public("composite", numpy="np.std", methods=("std",), reference=np.std)
def std(x, axis=None, *, ddof=0, keepdims=False):
    """Standard deviation over ``axis`` (numpy's ``std``): ``sqrt(var(x, axis, ddof))``.

    Where the variance is exactly 0 the gradient is 0 (PyTorch's ``std_backward`` masks
    it there; the derivative of the square root is infinite at 0).

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int, tuple of int or None
        The axes to reduce (negative ones count from the end); None: all of them.
    ddof : int
        Delta degrees of freedom: the divisor is ``N - ddof``.
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        If ``N - ddof <= 0`` for a known ``N``.
    """
    from .elementwise import sqrt, where
    v = var(x, axis, ddof=ddof, keepdims=keepdims)
    positive = v > 0
    # the double where: sqrt never sees 0, so its derivative never becomes inf * 0 = nan
    return where(positive, sqrt(where(positive, v, 1.0)), 0.0)


@public("composite", numpy="np.average", reference=np.average)
def average(x, axis=None, weights=None, *, keepdims=False):
    """Weighted average over ``axis`` (numpy's ``average``): ``sum(x * w) / sum(w)``.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int, tuple of int or None
        The axes to reduce (negative ones count from the end); None: all of them.
    weights : Tensor or array_like, optional
        Of ``x``'s shape, or 1-D of the length of ``x.shape[axis]`` when ``axis`` is one
        int; None: the plain mean. They get a gradient too.
    keepdims : bool
        Keep the reduced axes, with length 1.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If the weights' shape is neither.
    """
    t = tensors.as_tensor(x)
    if weights is None:
        return mean(t, axis, keepdims)
    w = tensors.as_tensor(weights)
    axes = normalize_axes(axis, t.ndim, "average")
    if w.shape != t.shape:
        if not (isinstance(axis, (int, np.integer)) and w.ndim == 1
                and w.shape[0] == t.shape[axes[0]]):
            raise ShapeError(f"average: weights of shape {format_shape(w.shape)} fit neither "
                             f"the operand's shape {format_shape(t.shape)} nor its axis {axis}")
        # along its axis; sum(w) then has length-1 axes that broadcast against sum(x * w)
        w = reshape(w, tuple(t.shape[a] if a == axes[0] else 1 for a in range(t.ndim)))
    return sum(t * w, axes, keepdims) / sum(w, axes, keepdims)


def _arg_reduce(cls, x, axis, keepdims):
    t = tensors.as_tensor(x)
    if axis is None:
        axes = ()
    elif isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ShapeError(f"{cls.op_name}: axis must be an int or None, got {axis!r}")
    else:
        axes = normalize_axes(int(axis), t.ndim, cls.op_name)
    if t.ndim == 0:
        raise ShapeError(f"{cls.op_name}: the operand is 0-d; give it at least one axis")
    return tensors.structural_node(cls, t, axes, keepdims)


@public("structural", node=ArgMax, numpy="np.argmax", methods=("argmax",), reference=np.argmax)
def argmax(x, axis=None, keepdims=False):
    """Index of the first maximum along ``axis`` (numpy's ``argmax``): an integer tensor,
    with no gradient.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int or None
        The axis (negative counts from the end); None: the flattened operand.
    keepdims : bool
        Keep the reduced axis (all axes for None), with length 1.

    Returns
    -------
    Tensor
        Of dtype intp.
    """
    return _arg_reduce(ArgMax, x, axis, keepdims)


@public("structural", node=ArgMin, numpy="np.argmin", methods=("argmin",), reference=np.argmin)
def argmin(x, axis=None, keepdims=False):
    """Index of the first minimum along ``axis`` (numpy's ``argmin``): an integer tensor,
    with no gradient.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int or None
        The axis (negative counts from the end); None: the flattened operand.
    keepdims : bool
        Keep the reduced axis (all axes for None), with length 1.

    Returns
    -------
    Tensor
        Of dtype intp.
    """
    return _arg_reduce(ArgMin, x, axis, keepdims)


@public("structural", node=CumProd, numpy="np.cumprod", methods=("cumprod",),
        reference=np.cumprod)
def cumprod(x, axis=None):
    """Cumulative product along ``axis`` (numpy's ``cumprod``); its gradient is exact with
    zeros.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axis : int or None
        The axis to multiply along (negative counts from the end); None: the flattened
        operand.

    Returns
    -------
    Tensor
        ``x``'s shape (1-D for ``axis=None``).
    """
    t = tensors.as_tensor(x)
    if axis is None:
        t, axis = (t if t.ndim == 1 else reshape(t, (-1,))), 0
    (axis,) = normalize_axes(axis, t.ndim, "cumprod")
    return tensors.structural_node(CumProd, t, axis)


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
