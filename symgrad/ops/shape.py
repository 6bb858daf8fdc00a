"""Shape ops: broadcast_to, transpose, reshape, indexing, one_hot; and the one place that
undoes numpy broadcasting (:func:`sum_to_shape`), which every gradient rule calls."""

from __future__ import annotations

import builtins

import numpy as np
import sympy
from sympy import Integer, Tuple
from sympy.core.symbol import Str

from .. import expr as tensors
from ..nodes import TensorOp, dtype_of, info, is_tensor_free, shape_of
from ..shapes import ShapeError, as_shape, broadcast_shapes, format_shape, shape_size
from .record import public
from .static import ints, shape_tuple, tuple_axes, tuple_shape

__all__ = ["ensure_shape", "sum_to_shape", "BroadcastTo", "PermuteDims", "Reshape",
           "SliceSpec", "encode_index", "Index", "IndexGrad", "OneHot"]


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
    from .reductions import ReduceSum  # a reduction's own rule needs this module first
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
# Broadcasting, permuting and reshaping
# ---------------------------------------------------------------------------------------


class BroadcastTo(TensorOp):
    """numpy's ``broadcast_to``; its adjoint sums over the broadcast axes."""

    op_name = "broadcast_to"
    operands = (0,)

    def __new__(cls, x, shape, dtype=None):
        dtype = dtype if dtype is not None else dtype_of(sympy.sympify(x))
        return TensorOp.__new__(cls, x, shape_tuple(shape), Str(str(dtype or "float64")))

    @classmethod
    def infer(cls, x, shape, dtype):
        shape = tuple_shape(shape)
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

    def print_array_api(self, p, ops):
        shape = p.shape_source(self.shape)
        if is_tensor_free(self.args[0]):
            return p.full_source(shape, ops[0], p.dtype_source(self.dtype))
        return f"xp.broadcast_to({ops[0]}, {shape})"

    def formula(self, ops):
        return f"broadcast_to({ops[0]}, {format_shape(self.shape)})"


class PermuteDims(TensorOp):
    """numpy's ``transpose(axes)``; the adjoint applies the inverse permutation."""

    op_name = "transpose"
    operands = (0,)

    def __new__(cls, x, perm):
        return TensorOp.__new__(cls, x, ints(perm))

    @classmethod
    def infer(cls, x, perm):
        shape, dtype = info(x)
        perm = tuple_axes(perm)
        if sorted(perm) != list(range(len(shape))):
            raise ShapeError(f"transpose: axes {perm} are not a permutation of the "
                             f"{len(shape)} axes of an operand of shape {format_shape(shape)}")
        return tuple(shape[i] for i in perm), dtype

    @property
    def perm(self):
        return tuple_axes(self.args[1])

    def vjp(self, g):
        inverse = [0] * len(self.perm)
        for i, a in enumerate(self.perm):
            inverse[a] = i
        return [PermuteDims(ensure_shape(g, self.shape), inverse)]

    def print_numpy(self, p, ops):
        if self.perm == tuple(reversed(range(len(self.perm)))):
            return f"{p.atom(ops[0])}.T"
        return f"{p.atom(ops[0])}.transpose({self.perm})"

    def print_array_api(self, p, ops):
        return f"xp.permute_dims({ops[0]}, {self.perm})"

    def formula(self, ops):
        if self.perm == tuple(reversed(range(len(self.perm)))):
            return f"{ops[0]}.T"
        return f"transpose({ops[0]}, {self.perm})"

    def latex_form(self, ops):
        return f"{{{ops[0]}}}^{{T}}"


class Reshape(TensorOp):
    """numpy's ``reshape`` (the target shape is fully resolved when the node is built)."""

    op_name = "reshape"
    operands = (0,)

    def __new__(cls, x, shape):
        return TensorOp.__new__(cls, x, shape_tuple(shape))

    @classmethod
    def infer(cls, x, shape):
        sx, dtype = info(x)
        shape = tuple_shape(shape)
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

    def print_array_api(self, p, ops):
        shape = p.shape_source(self.shape)
        if is_tensor_free(self.args[0]):
            return p.full_source(shape, ops[0], p.dtype_source(self.dtype or p.float_dtype))
        return f"xp.reshape({ops[0]}, {shape})"

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


def _array_api_index(index: Tuple, ndim: int) -> str:
    """The index as a tuple literal (``slice(...)`` for slices), with a trailing ``...``
    when it names fewer axes than the operand has: the standard leaves that case
    unspecified, numpy fills in ``:``."""
    parts, named = [], 0
    for item in index:
        if item == NEWAXIS:
            parts.append("None")
            continue
        named += 1
        if isinstance(item, SliceSpec):
            s = item.as_slice()
            parts.append(f"slice({s.start}, {s.stop}, {s.step})")
        else:
            parts.append(str(int(item)))
    if named < ndim or not parts:
        parts.append("...")
    return f"({', '.join(parts)},)"


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

    def print_array_api(self, p, ops):
        return f"{p.atom(ops[0])}[{_array_api_index(self.args[1], len(shape_of(self.args[0])))}]"

    def formula(self, ops):
        return f"{ops[0]}[{_index_source(self.args[1])}]"


class IndexGrad(TensorOp):
    """zeros(shape) with ``g`` written at ``index``: the adjoint of :class:`Index`."""

    op_name = "index_grad"
    operands = (0,)
    fresh_result = True

    def __new__(cls, g, shape, index, dtype):
        return TensorOp.__new__(cls, g, shape_tuple(shape), index, Str(str(dtype)))

    @classmethod
    def infer(cls, g, shape, index, dtype):
        return tuple_shape(shape), np.dtype(dtype.name)

    def vjp(self, g):
        return [Index(ensure_shape(g, self.shape), self.args[2])]

    def print_numpy(self, p, ops):
        p.need_helper("scatter")
        return (f"_scatter({ops[0]}, {p.shape_source(self.shape)}, "
                f"np.s_[{_index_source(self.args[2])}], {p.dtype_source(self.dtype)})")

    def print_array_api(self, p, ops):
        p.need_helper("scatter")
        index = _array_api_index(self.args[2], len(self.shape))
        return (f"_scatter(xp, {ops[0]}, {p.shape_source(self.shape)}, {index}, "
                f"{p.dtype_source(self.dtype)}, _dev)")


# ---------------------------------------------------------------------------------------
# One-hot encoding
# ---------------------------------------------------------------------------------------


class OneHot(TensorOp):
    """One-hot encoding of integer labels along a new last axis. No gradient."""

    op_name = "one_hot"
    operands = (0,)
    fresh_result = True

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

    def print_array_api(self, p, ops):
        return (f"xp.astype(xp.expand_dims({ops[0]}, axis=-1) == "
                f"xp.arange({int(self.args[1])}, device=_dev), {p.dtype_source(self.dtype)})")


# ---------------------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------------------


def _transpose_method(self, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return transpose(self, axes or None)


@public("structural", node=PermuteDims, numpy="np.transpose",
        methods=(("transpose", _transpose_method),
                 ("T", property(lambda self: transpose(self), doc="The axes reversed."))),
        reference=np.transpose)
def transpose(x, axes=None):
    """Permute the axes (numpy's ``transpose``); by default, reverse them.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    axes : sequence of int, optional
        A permutation of ``range(x.ndim)`` (negative entries count from the end).

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If ``axes`` is not a permutation of the axes.
    """
    t = tensors.as_tensor(x)
    perm = tuple(reversed(range(t.ndim))) if axes is None else tuple(
        a % t.ndim if isinstance(a, int) and -t.ndim <= a < t.ndim else a for a in axes)
    if perm == tuple(range(t.ndim)):
        return t
    return tensors.structural_node(PermuteDims, t, perm)


def _reshape_method(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return reshape(self, shape)


@public("structural", node=Reshape, numpy="np.reshape", methods=(("reshape", _reshape_method),),
        reference=np.reshape)
def reshape(x, shape):
    """Give ``x`` a new shape with the same number of elements (numpy's ``reshape``).

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    shape : int or tuple of int and str
        The new shape; one entry may be -1 (inferred), str entries are symbolic dims.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If the sizes differ, or more than one entry is -1.
    """
    t = tensors.as_tensor(x)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if builtins.sum(1 for d in shape if isinstance(d, int) and d == -1) > 1:
        raise ShapeError("reshape: only one dimension can be -1")
    if any(isinstance(d, int) and d == -1 for d in shape):
        shape = _infer_minus_one(t, shape)
    shape = as_shape(shape, where="reshape")
    if shape == t.shape:
        return t
    return tensors.structural_node(Reshape, t, shape)


def _infer_minus_one(t, shape) -> tuple:
    """``shape`` with its -1 entry replaced by the length that keeps ``t``'s size."""
    known = sympy.Integer(1)
    for d in shape:
        if not (isinstance(d, int) and d == -1):
            known = known * as_shape((d,))[0]
    rest = sympy.cancel(t.size / known) if not isinstance(t.size, int) else t.size / known
    if not (getattr(rest, "is_integer", False) or float(rest).is_integer()):
        raise ShapeError(f"reshape: cannot reshape an operand of shape "
                         f"{format_shape(t.shape)} into {shape}")
    rest = int(rest) if not isinstance(rest, sympy.Expr) or rest.is_Number else rest
    return tuple(rest if (isinstance(d, int) and d == -1) else d for d in shape)


@public("structural", node=BroadcastTo, numpy="np.broadcast_to", reference=np.broadcast_to)
def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` (numpy's ``broadcast_to``); its gradient sums back.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    shape : tuple of int and str
        The target shape.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If ``x`` does not broadcast to ``shape``.
    """
    t = tensors.as_tensor(x)
    shape = as_shape(shape, where="broadcast_to")
    node = BroadcastTo(t.expr, shape, t.dtype)
    return tensors.Tensor(node, node.shape, node.dtype)


@public("structural", node=Index, operators=("__getitem__",), exported=False)
def index(x, key):
    """``x[key]``: numpy's basic indexing (integers, slices, None, Ellipsis); the gradient
    scatters back into zeros of ``x``'s shape.

    Parameters
    ----------
    x : Tensor
        The operand.
    key : int, slice, None, Ellipsis or a tuple of them
        The index.

    Returns
    -------
    Tensor

    Raises
    ------
    IndexError
        For an index out of bounds, or one that is not basic.
    """
    t = tensors.as_tensor(x)
    return tensors.structural_node(Index, t, encode_index(key, t.shape))


@public("structural", node=OneHot)
def one_hot(labels, depth: int, dtype="float32"):
    """One-hot encode integer ``labels`` along a new last axis of length ``depth``.

    It has no gradient.

    Parameters
    ----------
    labels : Tensor or array_like of int
        Class indices in ``[0, depth)``.
    depth : int
        The number of classes.
    dtype : dtype
        The result's dtype.

    Returns
    -------
    Tensor
        Of shape ``labels.shape + (depth,)``.
    """
    t = tensors.as_tensor(labels)
    return tensors.structural_node(OneHot, t, int(depth), np.dtype(dtype))
