"""Structural (non-elementwise) operations: one class per op, registered in :data:`OPS`.

Every op keeps its three rules side by side (the contract of :class:`~symgrad.nodes.TensorOp`):

* ``infer(*args) -> (shape, dtype)`` — the shape rule; a mismatch raises ``ShapeError``
  naming the op, the operands and their shapes;
* ``vjp(self, g) -> list`` — vector-Jacobian product: one entry per operand position, a
  new expression built from symgrad nodes, or ``None`` for "no gradient". ``g`` has the
  node's full shape;
* ``print_numpy(self, p, ops) -> str`` — the numpy source for the node, given the printed
  operands ``ops`` and the printer ``p`` (which knows how to print shapes and dtypes).

Adding an op touches this file only. :func:`sum_to_shape` is the one place that undoes
numpy broadcasting; every rule that needs it calls it.
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy import Integer, Tuple
from sympy.core.symbol import Str

from ..nodes import TensorOp, dtype_of, info, is_tensor_free, shape_of
from ..shapes import (ShapeError, as_shape, broadcast_shapes, format_shape, normalize_axes,
                     reduced_shape, shape_size)

__all__ = ["OPS", "register", "sum_to_shape", "ensure_shape", "MatMul", "ReduceSum",
           "ReduceMax", "ArgmaxMask", "BroadcastTo", "PermuteDims", "Reshape", "Index",
           "IndexGrad", "SliceSpec", "OneHot", "LogSumExp", "Norm", "Let", "CustomGradient"]

#: every structural op by its user-facing name
OPS: dict[str, type] = {}


def register(cls):
    """Class decorator: add a structural op to :data:`OPS` (one place per op)."""
    if cls.op_name in OPS:
        raise ValueError(f"op {cls.op_name!r} registered twice")
    OPS[cls.op_name] = cls
    return cls


# ---------------------------------------------------------------------------------------
# Static-argument encoding (everything that defines a node lives in its args)
# ---------------------------------------------------------------------------------------


def _ints(values) -> Tuple:
    return Tuple(*[Integer(v) for v in values])


def _shape_tuple(shape) -> Tuple:
    return Tuple(*as_shape(shape))


def _shape(t: Tuple) -> tuple:
    return tuple(int(d) if d.is_Integer else d for d in t)


def _axes(t: Tuple) -> tuple:
    return tuple(int(a) for a in t)


def _flag(v) -> Integer:
    return Integer(1 if v else 0)


def _expand_reduced(g, in_shape, axes, keepdims):
    """Put back the reduced axes of an adjoint as size-1 axes, so it broadcasts to the input."""
    if keepdims or is_tensor_free(g) or shape_of(g) == ():
        return g  # a scalar adjoint broadcasts to the input as it is
    kshape = reduced_shape(in_shape, axes, keepdims=True)
    g = ensure_shape(g, reduced_shape(in_shape, axes, keepdims=False))
    return Reshape(g, kshape)


# ---------------------------------------------------------------------------------------
# Broadcasting helpers shared by every rule
# ---------------------------------------------------------------------------------------


def ensure_shape(expr, shape: tuple, dtype=None):
    """``expr`` with exactly ``shape`` (inserting an explicit broadcast when it is smaller)."""
    shape = tuple(shape)
    if shape_of(expr) == shape:
        return expr
    if dtype is None:
        dtype = dtype_of(expr)
    return BroadcastTo(expr, shape, dtype)


def sum_to_shape(expr, from_shape: tuple, to_shape: tuple):
    """Undo broadcasting: the adjoint of ``broadcast_to(y, from_shape)`` for ``y`` of ``to_shape``.

    ``expr`` is broadcastable to ``from_shape`` (it may lack axes along which it is
    constant); the result is broadcastable to ``to_shape``. Axes that ``expr`` lacks are
    summed by multiplying with their length instead of materializing them.
    """
    from_shape, to_shape = tuple(from_shape), tuple(to_shape)
    if from_shape == to_shape:
        return expr
    eshape = shape_of(expr)
    lead = len(from_shape) - len(to_shape)
    offset = len(from_shape) - len(eshape)
    keep_axes, drop_axes, scale = [], [], Integer(1)
    for i, dim in enumerate(from_shape):
        j = i - lead
        reduce_it = j < 0 or (to_shape[j] == 1 and dim != 1)
        if not reduce_it:
            continue
        k = i - offset
        if k >= 0 and eshape[k] != 1:
            (drop_axes if j < 0 else keep_axes).append(k)
        else:
            scale = scale * dim
    if keep_axes:
        expr = ReduceSum(expr, keep_axes, True)
    if drop_axes:
        expr = ReduceSum(expr, drop_axes, False)
    # leading size-1 axes that the target does not have
    eshape = shape_of(expr)
    if len(eshape) > len(to_shape):
        expr = Reshape(expr, eshape[len(eshape) - len(to_shape):])
    return expr * scale if scale != 1 else expr


# ---------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------


@register
class MatMul(TensorOp):
    """numpy's ``matmul``: 1-D operands are vectors, leading axes are batch axes."""

    op_name = "matmul"
    operands = (0, 1)

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

    def formula(self, ops):
        return f"({ops[0]} @ {ops[1]})"


def swap_last(x):
    """Transpose of the last two axes."""
    nd = len(shape_of(x))
    perm = list(range(nd))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return PermuteDims(x, perm)


# ---------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------


def _axis_source(p, axes, ndim):
    if len(axes) == ndim:
        return None
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


class _Reduction(TensorOp):
    operands = (0,)
    method = ""

    def __new__(cls, x, axes, keepdims=False):
        return TensorOp.__new__(cls, x, _ints(axes), _flag(keepdims))

    @classmethod
    def infer(cls, x, axes, keepdims):
        shape, dtype = info(x)
        axes = _axes(axes)
        for a in axes:
            if not 0 <= a < len(shape):
                raise ShapeError(f"{cls.op_name}: axis {a} out of range for shape "
                                 f"{format_shape(shape)}")
        return reduced_shape(shape, axes, bool(keepdims)), dtype

    @property
    def axes(self):
        return _axes(self.args[1])

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

    def formula(self, ops):
        extra = ""
        if len(self.axes) != len(shape_of(self.args[0])):
            extra += f", axis={self.axes[0] if len(self.axes) == 1 else self.axes}"
        if self.keepdims:
            extra += ", keepdims=True"
        return f"{self.op_name}({ops[0]}{extra})"


@register
class ReduceSum(_Reduction):
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


@register
class ReduceMax(_Reduction):
    """Max over axes; with ties the whole gradient goes to one element (the first)."""

    op_name = "max"
    method = "max"

    def vjp(self, g):
        x = self.args[0]
        gx = _expand_reduced(g, shape_of(x), self.axes, self.keepdims)
        return [ArgmaxMask(x, self.axes) * gx]


@register
class ArgmaxMask(TensorOp):
    """1 at the first maximum along ``axes`` (C order), 0 elsewhere. No gradient."""

    op_name = "argmax_mask"
    operands = (0,)

    def __new__(cls, x, axes):
        return TensorOp.__new__(cls, x, _ints(axes))

    @classmethod
    def infer(cls, x, axes):
        return info(x)

    def vjp(self, g):
        return [None]

    def print_numpy(self, p, ops):
        p.need_helper("argmax_mask")
        return f"_argmax_mask({ops[0]}, {tuple(_axes(self.args[1]))})"


@register
class LogSumExp(_Reduction):
    """log(sum(exp(x))) over axes, shifted by the max so that it never overflows."""

    op_name = "logsumexp"

    def vjp(self, g):
        from .elementwise import stop_gradient
        x = self.args[0]
        # d/dx logsumexp(x) = softmax(x) = exp(x - m) / sum(exp(x - m)), m the (constant)
        # max: exp(x - logsumexp(x)) would lose |x| * eps to the cancellation in x - lse
        # (4e-4 relative in float32 at |x| ~ 1e4); this form is exact to a few ulps
        e = sympy.exp(x - stop_gradient(ReduceMax(x, self.axes, True)))
        softmax = e / ReduceSum(e, self.axes, True)
        return [_expand_reduced(g, shape_of(x), self.axes, self.keepdims) * softmax]

    def print_numpy(self, p, ops):
        p.need_helper("logsumexp")
        return f"_logsumexp({ops[0]}, {tuple(self.axes)}, {self.keepdims})"


@register
class Norm(_Reduction):
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
        return [gx * x / where(sympy.StrictGreaterThan(y, 0), y, sympy.S.One)]

    def print_numpy(self, p, ops):
        p.need_helper("norm")
        axes = _axis_source(p, self.axes, len(shape_of(self.args[0])))
        axis = "None" if axes is None else str(tuple(self.axes))
        return f"_norm({ops[0]}, {axis}, {self.keepdims})"


# ---------------------------------------------------------------------------------------
# Shape manipulation
# ---------------------------------------------------------------------------------------


@register
class BroadcastTo(TensorOp):
    """numpy's ``broadcast_to``; its adjoint sums over the broadcast axes."""

    op_name = "broadcast_to"
    operands = (0,)

    def __new__(cls, x, shape, dtype=None):
        dtype = dtype if dtype is not None else dtype_of(sympy.sympify(x))
        return TensorOp.__new__(cls, x, _shape_tuple(shape), Str(str(dtype or "float64")))

    @classmethod
    def infer(cls, x, shape, dtype):
        shape = _shape(shape)
        sx = shape_of(x)
        if broadcast_shapes(sx, shape, op="broadcast_to") != shape:
            raise ShapeError(f"broadcast_to: cannot broadcast {format_shape(sx)} to "
                             f"{format_shape(shape)}")
        return shape, np.dtype(dtype.name)

    def vjp(self, g):
        return [sum_to_shape(g, self.shape, shape_of(self.args[0]))]

    def print_numpy(self, p, ops):
        shape = p.shape_source(self.shape)
        if is_tensor_free(self.args[0]):
            return f"np.full({shape}, {ops[0]}, dtype={p.dtype_source(self.dtype)})"
        return f"np.broadcast_to({ops[0]}, {shape})"

    def formula(self, ops):
        return f"broadcast_to({ops[0]}, {format_shape(self.shape)})"


@register
class PermuteDims(TensorOp):
    """numpy's ``transpose(axes)``; the adjoint applies the inverse permutation."""

    op_name = "transpose"
    operands = (0,)

    def __new__(cls, x, perm):
        return TensorOp.__new__(cls, x, _ints(perm))

    @classmethod
    def infer(cls, x, perm):
        shape, dtype = info(x)
        perm = _axes(perm)
        if sorted(perm) != list(range(len(shape))):
            raise ShapeError(f"transpose: axes {perm} are not a permutation of the "
                             f"{len(shape)} axes of an operand of shape {format_shape(shape)}")
        return tuple(shape[i] for i in perm), dtype

    @property
    def perm(self):
        return _axes(self.args[1])

    def vjp(self, g):
        inverse = [0] * len(self.perm)
        for i, a in enumerate(self.perm):
            inverse[a] = i
        return [PermuteDims(ensure_shape(g, self.shape), inverse)]

    def print_numpy(self, p, ops):
        if self.perm == tuple(reversed(range(len(self.perm)))):
            return f"{p.atom(ops[0])}.T"
        return f"{p.atom(ops[0])}.transpose({self.perm})"

    def formula(self, ops):
        if self.perm == tuple(reversed(range(len(self.perm)))):
            return f"{ops[0]}.T"
        return f"transpose({ops[0]}, {self.perm})"


@register
class Reshape(TensorOp):
    """numpy's ``reshape`` (the target shape is fully resolved when the node is built)."""

    op_name = "reshape"
    operands = (0,)

    def __new__(cls, x, shape):
        return TensorOp.__new__(cls, x, _shape_tuple(shape))

    @classmethod
    def infer(cls, x, shape):
        sx, dtype = info(x)
        shape = _shape(shape)
        if sympy.simplify(shape_size(sx) - shape_size(shape)) != 0:
            raise ShapeError(f"reshape: cannot reshape an operand of shape {format_shape(sx)} "
                             f"({shape_size(sx)} elements) into {format_shape(shape)}")
        return shape, dtype

    def vjp(self, g):
        return [Reshape(ensure_shape(g, self.shape), shape_of(self.args[0]))]

    def print_numpy(self, p, ops):
        if is_tensor_free(self.args[0]):  # a number (x - x is 0) has no .reshape
            return (f"np.full({p.shape_source(self.shape)}, {ops[0]}, "
                    f"dtype={p.dtype_source(self.dtype or p.float_dtype)})")
        return f"{p.atom(ops[0])}.reshape({p.shape_source(self.shape)})"

    def formula(self, ops):
        return f"reshape({ops[0]}, {format_shape(self.shape)})"


# ---------------------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------------------

NONE = Str("None")
NEWAXIS = Str("newaxis")


class SliceSpec(sympy.Basic):
    """A slice ``start:stop:step`` as a SymPy node (``None`` entries are :data:`NONE`)."""

    def __new__(cls, start, stop, step):
        enc = [NONE if v is None else Integer(v) for v in (start, stop, step)]
        return sympy.Basic.__new__(cls, *enc)

    def as_slice(self) -> slice:
        return slice(*[None if v == NONE else int(v) for v in self.args])

    def source(self) -> str:
        start, stop, step = ["" if v == NONE else str(int(v)) for v in self.args]
        return f"{start}:{stop}" + (f":{step}" if step else "")


def encode_index(index, shape, op="index") -> Tuple:
    """A user's basic index (ints, slices, None, Ellipsis) -> a SymPy Tuple, validated."""
    if not isinstance(index, tuple):
        index = (index,)
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise IndexError(f"{op}: an index can only have a single ellipsis")
    if n_real > len(shape):
        raise IndexError(f"{op}: too many indices ({n_real}) for an operand of shape "
                         f"{format_shape(shape)}")
    out, axis = [], 0
    for item in index:
        if item is Ellipsis:
            for _ in range(len(shape) - n_real):
                out.append(SliceSpec(None, None, None))
                axis += 1
        elif item is None:
            out.append(NEWAXIS)
        elif isinstance(item, slice):
            out.append(SliceSpec(item.start, item.stop, item.step))
            axis += 1
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            d = shape[axis]
            if isinstance(d, int) and not -d <= int(item) < d:
                raise IndexError(f"{op}: index {item} is out of bounds for axis {axis} with "
                                 f"size {d} (operand shape {format_shape(shape)})")
            out.append(Integer(int(item)))
            axis += 1
        else:
            raise IndexError(
                f"{op}: only basic indexing (ints, slices, None, ...) is supported, got "
                f"{type(item).__name__}; for a gather by labels multiply by sg.one_hot(...)")
    return Tuple(*out)


def _index_shape(shape, index: Tuple, op="index"):
    out, axis = [], 0
    for item in index:
        if item == NEWAXIS:
            out.append(1)
            continue
        d = shape[axis]
        axis += 1
        if isinstance(item, SliceSpec):
            sl = item.as_slice()
            if isinstance(d, int):
                out.append(len(range(*sl.indices(d))))
            elif sl.start is None and sl.stop is None and sl.step in (None, 1):
                out.append(d)
            else:
                raise ShapeError(f"{op}: a partial slice of the symbolic dimension {d} is not "
                                 f"supported")
    return tuple(out) + tuple(shape[axis:])


def _index_source(index: Tuple) -> str:
    parts = []
    for item in index:
        if item == NEWAXIS:
            parts.append("None")
        elif isinstance(item, SliceSpec):
            parts.append(item.source())
        else:
            parts.append(str(int(item)))
    if not parts:
        return "()"
    return ", ".join(parts)


@register
class Index(TensorOp):
    """Basic indexing ``x[idx]``; the adjoint scatters into zeros."""

    op_name = "index"
    operands = (0,)

    @classmethod
    def infer(cls, x, index):
        shape, dtype = info(x)
        return _index_shape(shape, index), dtype

    def vjp(self, g):
        x, index = self.args
        return [IndexGrad(ensure_shape(g, self.shape), shape_of(x), index, dtype_of(x))]

    def print_numpy(self, p, ops):
        return f"{p.atom(ops[0])}[{_index_source(self.args[1])}]"

    def formula(self, ops):
        return f"{ops[0]}[{_index_source(self.args[1])}]"


@register
class IndexGrad(TensorOp):
    """zeros(shape) with ``g`` written at ``index``: the adjoint of :class:`Index`."""

    op_name = "index_grad"
    operands = (0,)

    def __new__(cls, g, shape, index, dtype):
        return TensorOp.__new__(cls, g, _shape_tuple(shape), index, Str(str(dtype)))

    @classmethod
    def infer(cls, g, shape, index, dtype):
        return _shape(shape), np.dtype(dtype.name)

    def vjp(self, g):
        return [Index(ensure_shape(g, self.shape), self.args[2])]

    def print_numpy(self, p, ops):
        p.need_helper("scatter")
        return (f"_scatter({ops[0]}, {p.shape_source(self.shape)}, "
                f"np.s_[{_index_source(self.args[2])}], {p.dtype_source(self.dtype)})")


# ---------------------------------------------------------------------------------------
# Everything else
# ---------------------------------------------------------------------------------------


@register
class OneHot(TensorOp):
    """One-hot encoding of integer labels along a new last axis. No gradient."""

    op_name = "one_hot"
    operands = (0,)

    def __new__(cls, labels, depth, dtype):
        # a rebuild (func(*args), as in xreplace) passes the dtype back as a sympy Str
        dtype = dtype.name if isinstance(dtype, Str) else str(np.dtype(dtype))
        return TensorOp.__new__(cls, labels, Integer(depth), Str(dtype))

    @classmethod
    def infer(cls, labels, depth, dtype):
        shape, ldtype = info(labels)
        if ldtype is not None and ldtype.kind not in "iu":
            raise ShapeError(f"one_hot: labels must have an integer dtype, got {ldtype}")
        return shape + (int(depth),), np.dtype(dtype.name)

    def vjp(self, g):
        return [None]

    def print_numpy(self, p, ops):
        return (f"({p.atom(ops[0])}[..., None] == np.arange({int(self.args[1])}))"
                f".astype({p.dtype_source(self.dtype)})")


@register
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


@register
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
