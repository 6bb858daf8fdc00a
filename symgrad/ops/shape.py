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
from .static import flag, ints, shape_tuple, tuple_axes, tuple_shape

__all__ = ["ensure_shape", "sum_to_shape", "BroadcastTo", "PermuteDims", "Reshape",
           "SliceSpec", "encode_index", "Index", "IndexGrad", "OneHot", "Take", "TakeGrad",
           "Pad", "ArgSort", "Cast", "ArgPartition"]


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

    @property
    def spreads_a_scalar(self) -> bool:
        """A number (or a weak scalar such as 1/N) spread over the shape: it is written as a
        new array of the node's dtype (broadcasting a Python float would make it float64,
        and a float32 model's whole backward pass would run in float64)."""
        return is_tensor_free(self.args[0]) or dtype_of(self.args[0]) is None

    def print_numpy(self, p, ops):
        shape = p.shape_source(self.shape)
        if self.spreads_a_scalar:
            return f"np.full({shape}, {ops[0]}, dtype={p.dtype_source(self.dtype)})"
        return f"np.broadcast_to({ops[0]}, {shape})"

    def print_array_api(self, p, ops):
        shape = p.shape_source(self.shape)
        # only a number: xp.full takes a Python scalar, and a weak scalar computed there is
        # a 0-d array of the namespace (broadcasting it keeps its dtype)
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


def _positive_steps(index: Tuple, shape) -> tuple:
    """``(axes, index)``: the operand's axes to flip and an index of positive steps that,
    applied to the flipped operand, selects what ``index`` selects (PyTorch refuses
    negative steps, and the standard leaves them to the library). A negative step needs
    the axis' length, which is concrete: ``_index_shape`` refuses a partial slice of a
    symbolic dimension."""
    flips, out, axis = [], [], 0
    for item in index:
        if item == NEWAXIS:
            out.append(item)
            continue
        sl = item.as_slice() if isinstance(item, SliceSpec) else None
        if sl is not None and (sl.step or 1) < 0:
            n = int(shape[axis])
            picked = range(*sl.indices(n))
            if len(picked):  # x[a:b:-s] is flip(x)[n-1-a : n-b : s], both ends inclusive
                step = -sl.step if sl.step != -1 else None
                item = SliceSpec(n - 1 - picked[0], n - picked[-1], step)
            else:
                item = SliceSpec(0, 0, None)
            flips.append(axis)
        out.append(item)
        axis += 1
    return tuple(flips), Tuple(*out)


def _kept_axes(index: Tuple, result_shape) -> tuple:
    """The shape of ``x[index]`` (``result_shape``) without the axes its ``None`` items
    added."""
    out, k = [], 0
    for item in index:
        if item == NEWAXIS:
            k += 1
        elif isinstance(item, SliceSpec):
            out.append(result_shape[k])
            k += 1
    return tuple(out) + tuple(result_shape[k:])


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
        shape = shape_of(self.args[0])
        flips, index = _positive_steps(self.args[1], shape)
        x = f"xp.flip({ops[0]}, axis={flips})" if flips else p.atom(ops[0])
        return f"{x}[{_array_api_index(index, len(shape))}]"

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
        flips, index = _positive_steps(self.args[2], self.shape)
        g = ops[0]
        if NEWAXIS in index.args:  # the standard writes through no None: drop its axes
            kept = _kept_axes(index, shape_of(self.args[0]))
            g = f"xp.reshape({g}, {p.shape_source(kept)})"
            index = Tuple(*[item for item in index if item != NEWAXIS])
        index = _array_api_index(index, len(self.shape))
        out = (f"_scatter(xp, {g}, {p.shape_source(self.shape)}, {index}, "
               f"{p.dtype_source(self.dtype)}, _dev)")
        return f"xp.flip({out}, axis={flips})" if flips else out


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
    scatters back into zeros of ``x``'s shape. One integer array, alone or after full slices
    (``x[idx]``, ``x[:, idx]``), gathers along that axis as :func:`take` does.

    Parameters
    ----------
    x : Tensor
        The operand.
    key : int, slice, None, Ellipsis, an integer array or Tensor, or a tuple of them
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
    gathered = _integer_array_key(t, key)  # x[idx], x[:, idx]: a take
    if gathered is not None:
        return gathered
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


# ---------------------------------------------------------------------------------------
# Issue 12: numpy's shape operations. Views and rearrangements are written with the nodes
# above (reshape, transpose, basic indexing, broadcast_to); the nodes below are the ones
# that need a rule of their own: a gather by an integer array and its scatter-add adjoint,
# constant padding, argsort.
# ---------------------------------------------------------------------------------------


def _axis(axis, ndim: int, op: str) -> int:
    """One axis (negative counts from the end) as a non-negative int, checked."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ShapeError(f"{op}: axis {axis} is out of bounds for an operand of {ndim} dims")
    return int(axis) % ndim


def _concrete(t, axis: int, op: str) -> int:
    d = t.shape[axis]
    if not isinstance(d, int):
        raise ShapeError(f"{op}: axis {axis} of the operand of shape {format_shape(t.shape)} "
                         f"is symbolic; {op} needs its length")
    return d


class Take(TensorOp):
    """A gather by an integer array: numpy's ``take`` (``along`` false) or
    ``take_along_axis`` (``along`` true). The adjoint adds the cotangent back into zeros at
    the gathered positions (repeated indices add up): :class:`TakeGrad`."""

    op_name = "take"
    operands = (0, 1)
    fresh_result = True
    # the numpy forms, and what the adjoint's helper (_gather_grad) calls
    numpy_calls = ("np.take", "np.take_along_axis", "np.bincount")

    def __new__(cls, x, idx, axis, along):
        return TensorOp.__new__(cls, x, idx, Integer(axis), flag(along))

    @classmethod
    def infer(cls, x, idx, axis, along):
        (sx, dtype), (si, di) = info(x), info(idx)
        op = "take_along_axis" if along else "take"
        if di is None or di.kind not in "iu":
            raise ShapeError(f"{op}: indices must have an integer dtype, got {di}")
        axis = int(axis)
        if not 0 <= axis < len(sx):
            raise ShapeError(f"{op}: axis {axis} is out of bounds for an operand of shape "
                             f"{format_shape(sx)}")
        if not along:
            return tuple(sx[:axis]) + tuple(si) + tuple(sx[axis + 1:]), dtype
        if len(si) != len(sx) or any(i != axis and si[i] not in (1, sx[i])
                                     for i in range(len(sx))):
            raise ShapeError(f"take_along_axis: indices of shape {format_shape(si)} do not fit "
                             f"an operand of shape {format_shape(sx)} along axis {axis} (same "
                             f"number of dims, the others equal or 1)")
        return tuple(si[axis] if i == axis else sx[i] for i in range(len(sx))), dtype

    def vjp(self, g):
        x, idx, axis, along = self.args
        return [TakeGrad(ensure_shape(g, self.shape), idx, shape_of(x), int(axis),
                         bool(along), dtype_of(x) or "float64"), None]

    def print_numpy(self, p, ops):
        fn = "np.take_along_axis" if bool(self.args[3]) else "np.take"
        return f"{fn}({ops[0]}, {ops[1]}, axis={int(self.args[2])})"

    def print_array_api(self, p, ops):
        p.need_helper("take")
        fn = "_take_along_axis" if bool(self.args[3]) else "_take"
        return f"{fn}(xp, {ops[0]}, {ops[1]}, {int(self.args[2])})"

    def formula(self, ops):
        fn = "take_along_axis" if bool(self.args[3]) else "take"
        return f"{fn}({ops[0]}, {ops[1]}, axis={int(self.args[2])})"


class TakeGrad(TensorOp):
    """zeros(shape) with ``g`` added at the positions :class:`Take` gathered from."""

    op_name = "take_grad"
    operands = (0, 1)
    fresh_result = True

    def __new__(cls, g, idx, shape, axis, along, dtype):
        dtype = dtype.name if isinstance(dtype, Str) else str(np.dtype(dtype))
        return TensorOp.__new__(cls, g, idx, shape_tuple(shape), Integer(axis), flag(along),
                                Str(dtype))

    @classmethod
    def infer(cls, g, idx, shape, axis, along, dtype):
        return tuple_shape(shape), np.dtype(dtype.name)

    def vjp(self, g):
        _, idx, _, axis, along, _ = self.args
        return [Take(ensure_shape(g, self.shape), idx, int(axis), bool(along)), None]

    def print_numpy(self, p, ops):
        p.need_helper("gather_grad")
        return (f"_gather_grad({ops[0]}, {ops[1]}, {p.shape_source(self.shape)}, "
                f"{int(self.args[3])}, {bool(self.args[4])}, {p.dtype_source(self.dtype)})")

    def print_array_api(self, p, ops):
        p.need_helper("gather_grad")
        return (f"_gather_grad(xp, {ops[0]}, {ops[1]}, {p.shape_source(self.shape)}, "
                f"{int(self.args[3])}, {bool(self.args[4])}, {p.dtype_source(self.dtype)}, "
                f"_dev)")


class Pad(TensorOp):
    """numpy's ``pad`` in ``constant`` mode; the adjoint slices the padding off."""

    op_name = "pad"
    operands = (0,)
    fresh_result = True
    numpy_calls = ("np.pad",)

    def __new__(cls, x, widths, value):
        return TensorOp.__new__(cls, x, Tuple(*[ints(w) for w in widths]), sympy.sympify(value))

    @classmethod
    def infer(cls, x, widths, value):
        shape, dtype = info(x)
        out = []
        for d, (before, after) in zip(shape, widths):
            if (int(before) or int(after)) and not isinstance(d, int):
                raise ShapeError(f"pad: cannot pad the symbolic dimension {d} of an operand "
                                 f"of shape {format_shape(shape)}")
            out.append(d + int(before) + int(after) if isinstance(d, int) else d)
        return tuple(out), dtype

    def vjp(self, g):
        x, widths, _ = self.args
        key = Tuple(*[SliceSpec(int(b), int(b) + d, None) if isinstance(d, int)
                      else SliceSpec(None, None, None)
                      for d, (b, _a) in zip(shape_of(x), widths)])
        return [Index(ensure_shape(g, self.shape), key)]

    def print_numpy(self, p, ops):
        widths = tuple(tuple(int(v) for v in w) for w in self.args[1])
        return f"np.pad({ops[0]}, {widths}, constant_values={p.doprint(self.args[2])})"

    def print_array_api(self, p, ops):
        p.need_helper("pad")  # the standard has no pad: blocks of the value concatenated
        widths = tuple(tuple(int(v) for v in w) for w in self.args[1])
        return f"_pad(xp, {ops[0]}, {widths}, {p.doprint(self.args[2])})"

    def formula(self, ops):
        widths = tuple(tuple(int(v) for v in w) for w in self.args[1])
        return f"pad({ops[0]}, {widths}, {self.args[2]})"


class ArgSort(TensorOp):
    """numpy's ``argsort`` along one axis (stable). Integer-valued: no gradient."""

    op_name = "argsort"
    operands = (0,)
    fresh_result = True
    numpy_calls = ("np.argsort",)

    def __new__(cls, x, axis):
        return TensorOp.__new__(cls, x, Integer(axis))

    @classmethod
    def infer(cls, x, axis):
        shape, _ = info(x)
        return shape, np.dtype(np.intp)

    def vjp(self, g):
        return [None]

    def print_numpy(self, p, ops):
        return f"np.argsort({ops[0]}, axis={int(self.args[1])}, kind='stable')"

    def print_array_api(self, p, ops):
        return f"xp.argsort({ops[0]}, axis={int(self.args[1])}, stable=True)"


# -- views and rearrangements, written with reshape / transpose / indexing ---------------


@public("composite", numpy="np.moveaxis", reference=np.moveaxis)
def moveaxis(a, source, destination):
    """Move axes of ``a`` to new positions (numpy's ``moveaxis``); the others keep their
    order.

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    source, destination : int or sequence of int
        Original and new positions of the moved axes (negative count from the end).

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If the axes are out of range, repeated, or ``source`` and ``destination`` differ in
        length.
    """
    t = tensors.as_tensor(a)
    src = [source] if isinstance(source, (int, np.integer)) else list(source)
    dst = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    src = [_axis(s, t.ndim, "moveaxis") for s in src]
    dst = [_axis(d, t.ndim, "moveaxis") for d in dst]
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError(f"moveaxis: source {source} and destination {destination} must be "
                         f"as many distinct axes")
    order = [n for n in range(t.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(t, order)


@public("composite", numpy="np.swapaxes", methods=("swapaxes",), reference=np.swapaxes)
def swapaxes(a, axis1, axis2):
    """Interchange two axes (numpy's ``swapaxes``).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    axis1, axis2 : int
        The axes (negative count from the end).

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(a)
    i, j = _axis(axis1, t.ndim, "swapaxes"), _axis(axis2, t.ndim, "swapaxes")
    perm = list(range(t.ndim))
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(t, perm)


@public("composite", numpy="np.squeeze", methods=("squeeze",), reference=np.squeeze)
def squeeze(a, axis=None):
    """Remove axes of length one (numpy's ``squeeze``).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    axis : int or tuple of int, optional
        The axes to remove; by default, every axis of length 1.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If a selected axis does not have length 1.
    """
    t = tensors.as_tensor(a)
    if axis is None:
        axes = [i for i, d in enumerate(t.shape) if d == 1]
    else:
        axes = [_axis(ax, t.ndim, "squeeze")
                for ax in ((axis,) if isinstance(axis, (int, np.integer)) else axis)]
        bad = [ax for ax in axes if t.shape[ax] != 1]
        if bad:
            raise ShapeError(f"squeeze: cannot select axis {bad[0]}, of length "
                             f"{t.shape[bad[0]]} (not 1), of an operand of shape "
                             f"{format_shape(t.shape)}")
    return reshape(t, tuple(d for i, d in enumerate(t.shape) if i not in axes))


@public("composite", numpy="np.expand_dims", reference=np.expand_dims)
def expand_dims(a, axis):
    """Insert axes of length one at ``axis`` (numpy's ``expand_dims``).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    axis : int or tuple of int
        The positions of the new axes in the result (negative count from the end).

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(a)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim = t.ndim + len(axes)
    new = {_axis(ax, ndim, "expand_dims") for ax in axes}
    if len(new) != len(axes):
        raise ShapeError(f"expand_dims: repeated axis in {axis}")
    rest = iter(t.shape)
    return reshape(t, tuple(1 if i in new else next(rest) for i in range(ndim)))


@public("composite", numpy="np.ravel", methods=("ravel", "flatten"), reference=np.ravel)
def ravel(a):
    """The elements of ``a`` as a 1-D tensor, in C order (numpy's ``ravel``).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.

    Returns
    -------
    Tensor
        Of shape ``(a.size,)``.
    """
    t = tensors.as_tensor(a)
    return t if t.ndim == 1 else reshape(t, (t.size,))


def _atleast(n: int, arys, name: str, pad):
    out = []
    for a in arys:
        t = tensors.as_tensor(a)
        out.append(t if t.ndim >= n else reshape(t, pad(t.shape)))
    return out[0] if len(out) == 1 else out


@public("composite", numpy="np.atleast_1d", reference=np.atleast_1d)
def atleast_1d(*arys):
    """Each operand with at least one dimension (numpy's ``atleast_1d``).

    Parameters
    ----------
    *arys : Tensor or array_like
        The operands.

    Returns
    -------
    Tensor or list of Tensor
        One Tensor for one operand, a list otherwise.
    """
    return _atleast(1, arys, "atleast_1d", lambda s: (1,))


@public("composite", numpy="np.atleast_2d", reference=np.atleast_2d)
def atleast_2d(*arys):
    """Each operand with at least two dimensions (numpy's ``atleast_2d``: ``(n,)`` becomes
    ``(1, n)``).

    Parameters
    ----------
    *arys : Tensor or array_like
        The operands.

    Returns
    -------
    Tensor or list of Tensor
        One Tensor for one operand, a list otherwise.
    """
    return _atleast(2, arys, "atleast_2d", lambda s: (1,) * (2 - len(s)) + tuple(s))


@public("composite", numpy="np.atleast_3d", reference=np.atleast_3d)
def atleast_3d(*arys):
    """Each operand with at least three dimensions (numpy's ``atleast_3d``: ``(n,)``
    becomes ``(1, n, 1)`` and ``(m, n)`` becomes ``(m, n, 1)``).

    Parameters
    ----------
    *arys : Tensor or array_like
        The operands.

    Returns
    -------
    Tensor or list of Tensor
        One Tensor for one operand, a list otherwise.
    """
    def pad(s):
        return {0: (1, 1, 1), 1: (1,) + tuple(s) + (1,), 2: tuple(s) + (1,)}[len(s)]
    return _atleast(3, arys, "atleast_3d", pad)


@public("composite", numpy="np.flip", reference=np.flip)
def flip(m, axis=None):
    """Reverse the order of the elements along ``axis`` (numpy's ``flip``).

    Parameters
    ----------
    m : Tensor or array_like
        The operand.
    axis : int or tuple of int, optional
        The axes to reverse; by default, all of them.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(m)
    if axis is None:
        axes = set(range(t.ndim))
    else:
        axes = {_axis(ax, t.ndim, "flip")
                for ax in ((axis,) if isinstance(axis, (int, np.integer)) else axis)}
    if not axes:
        return t
    return index(t, tuple(slice(None, None, -1) if i in axes else slice(None)
                          for i in range(t.ndim)))


@public("composite", numpy="np.flipud", reference=np.flipud)
def flipud(m):
    """Reverse the order of the rows, axis 0 (numpy's ``flipud``).

    Parameters
    ----------
    m : Tensor or array_like
        An operand of at least one dimension.

    Returns
    -------
    Tensor
    """
    return flip(m, 0)


@public("composite", numpy="np.fliplr", reference=np.fliplr)
def fliplr(m):
    """Reverse the order of the columns, axis 1 (numpy's ``fliplr``).

    Parameters
    ----------
    m : Tensor or array_like
        An operand of at least two dimensions.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(m)
    if t.ndim < 2:
        raise ShapeError(f"fliplr: the operand must have at least 2 dims, got shape "
                         f"{format_shape(t.shape)}")
    return flip(t, 1)


@public("composite", numpy="np.rot90", reference=np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``axes``, from the first towards
    the second (numpy's ``rot90``).

    Parameters
    ----------
    m : Tensor or array_like
        An operand of at least two dimensions.
    k : int
        The number of rotations.
    axes : pair of int
        The plane.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(m)
    if len(axes) != 2:
        raise ShapeError("rot90: axes must name two axes")
    a0, a1 = (_axis(ax, t.ndim, "rot90") for ax in axes)
    if a0 == a1:
        raise ShapeError(f"rot90: the axes {tuple(axes)} must differ")
    k = int(k) % 4
    if k == 0:
        return t
    if k == 2:
        return flip(flip(t, a0), a1)
    perm = list(range(t.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return transpose(flip(t, a1), perm)
    return flip(transpose(t, perm), a1)


# -- gathers ------------------------------------------------------------------------------


def _indices(indices, op: str):
    """The index operand as a Tensor of an integer dtype; constants checked here."""
    if isinstance(indices, tensors.Tensor):
        t = indices
    else:
        arr = np.asarray(indices)
        if arr.dtype.kind not in "iu" and arr.size:
            raise IndexError(f"{op}: indices must be integers, got an array of dtype "
                             f"{arr.dtype}")
        t = tensors.constant(arr.astype(np.intp))
    if t.dtype is None or t.dtype.kind not in "iu":
        raise IndexError(f"{op}: indices must have an integer dtype, got {t.dtype}")
    return t


def _check_bounds(indices, n, axis, shape, op):
    if isinstance(indices, tensors.Tensor) or not isinstance(n, int):
        return  # an input: numpy raises when the function runs
    arr = np.asarray(indices)
    if arr.size and (arr.min() < -n or arr.max() >= n):
        bad = arr[(arr < -n) | (arr >= n)].flat[0]
        raise IndexError(f"{op}: index {bad} is out of bounds for axis {axis} with size {n} "
                         f"(operand shape {format_shape(shape)})")


@public("structural", node=Take, numpy="np.take", methods=("take",), reference=np.take)
def take(a, indices, axis=None):
    """Elements of ``a`` at integer ``indices`` along ``axis`` (numpy's ``take``); the
    gradient adds back into zeros at those positions (repeated indices add up).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    indices : Tensor or array_like of int
        The positions (negative count from the end); a Tensor input is fed at call time.
    axis : int, optional
        The axis to take along; by default, over the flattened operand.

    Returns
    -------
    Tensor
        Of shape ``a.shape[:axis] + indices.shape + a.shape[axis+1:]``.

    Raises
    ------
    IndexError
        For non-integer indices, or constant indices out of bounds.
    """
    t = tensors.as_tensor(a)
    if axis is None:
        t, axis = ravel(t), 0
    axis = _axis(axis, t.ndim, "take")
    _check_bounds(indices, t.shape[axis], axis, t.shape, "take")
    idx = _indices(indices, "take")
    return tensors.Tensor(*_node(Take(t.expr, idx.expr, axis, False)))


def _node(node):
    return node, node.shape, node.dtype


@public("structural", node=Take, numpy="np.take_along_axis", reference=np.take_along_axis,
        name="take_along_axis")
def take_along_axis(arr, indices, axis):
    """Elements of ``arr`` at ``indices`` along ``axis``, matched position by position in
    the other axes (numpy's ``take_along_axis``; with ``argsort`` it sorts). The gradient
    adds back into zeros at those positions.

    Parameters
    ----------
    arr : Tensor or array_like
        The operand.
    indices : Tensor or array_like of int
        As many dims as ``arr``; along the other axes each length equals ``arr``'s or is 1.
    axis : int or None
        The axis; None: over the flattened operand (``indices`` then 1-D).

    Returns
    -------
    Tensor
        ``arr``'s shape with ``indices.shape[axis]`` along ``axis``.
    """
    t = tensors.as_tensor(arr)
    if axis is None:
        t, axis = ravel(t), 0
    axis = _axis(axis, t.ndim, "take_along_axis")
    _check_bounds(indices, t.shape[axis], axis, t.shape, "take_along_axis")
    idx = _indices(indices, "take_along_axis")
    return tensors.Tensor(*_node(Take(t.expr, idx.expr, axis, True)))


def _integer_array_key(t, key):
    """``x[key]`` for a key with one integer array (alone, or after full slices): the
    take along that axis; None for a basic key."""
    parts = key if isinstance(key, tuple) else (key,)

    def is_array(p):
        return isinstance(p, (tensors.Tensor, np.ndarray, list))

    arrays = [i for i, p in enumerate(parts) if is_array(p)]
    if not arrays:
        return None
    pos = arrays[0]
    ok = len(arrays) == 1 and all(
        isinstance(p, slice) and p == slice(None) for p in parts[:pos]) and all(
        (isinstance(p, slice) and p == slice(None)) or p is Ellipsis for p in parts[pos + 1:])
    if not ok:
        raise IndexError("index: an integer array index is supported alone or after full "
                         "slices (x[idx], x[:, idx]); use sg.take or sg.take_along_axis")
    p = parts[pos]
    dtype = p.dtype if isinstance(p, tensors.Tensor) else np.asarray(p).dtype
    if dtype is not None and dtype.kind == "b":
        raise IndexError("index: boolean masks are not supported (their result's shape "
                         "depends on the values); use sg.where")
    if pos >= t.ndim:
        raise IndexError(f"index: too many indices for an operand of shape "
                         f"{format_shape(t.shape)}")
    return take(t, p, axis=pos)


# -- sorting and reordering ----------------------------------------------------------------


@public("structural", node=ArgSort, numpy="np.argsort", reference=np.argsort)
def argsort(a, axis=-1):
    """The indices that sort ``a`` along ``axis`` (numpy's ``argsort``, stable). Integer
    valued: it has no gradient.

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    axis : int or None
        The axis; None: over the flattened operand.

    Returns
    -------
    Tensor
        Of dtype intp.
    """
    t = tensors.as_tensor(a)
    if axis is None:
        t, axis = ravel(t), 0
    return tensors.structural_node(ArgSort, t, _axis(axis, t.ndim, "argsort"))


@public("composite", numpy="np.sort", reference=np.sort)
def sort(a, axis=-1):
    """``a`` sorted along ``axis`` (numpy's ``sort``): a gather through ``argsort``, so the
    gradient goes back to where each sorted element came from (ties: stable order).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    axis : int or None
        The axis; None: over the flattened operand.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(a)
    if axis is None:
        t, axis = ravel(t), 0
    axis = _axis(axis, t.ndim, "sort")
    return take_along_axis(t, argsort(t, axis), axis)


def _roll_one(t, shift: int, axis: int):
    n = _concrete(t, axis, "roll")
    s = shift % n if n else 0
    if s == 0:
        return t
    from .join import concatenate

    def part(sl):
        return index(t, tuple(sl if i == axis else slice(None) for i in range(t.ndim)))
    return concatenate([part(slice(n - s, None)), part(slice(None, n - s))], axis)


@public("composite", numpy="np.roll", reference=np.roll)
def roll(a, shift, axis=None):
    """Shift elements cyclically along ``axis`` (numpy's ``roll``): the two slices,
    concatenated in the other order.

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    shift : int or tuple of int
        How far to shift (negative: backwards).
    axis : int or tuple of int, optional
        The axes; by default, the flattened operand is shifted and the shape restored.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(a)
    if axis is None:
        return reshape(_roll_one(ravel(t), int(np.sum(shift)), 0), t.shape)
    shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
    total = {}
    for s, ax in zip(shifts.ravel(), axes.ravel()):
        ax = _axis(int(ax), t.ndim, "roll")
        total[ax] = total.get(ax, 0) + int(s)
    for ax, s in total.items():
        t = _roll_one(t, s, ax)
    return t


@public("composite", numpy="np.repeat", methods=("repeat",), reference=np.repeat)
def repeat(a, repeats, axis=None):
    """Repeat each element ``repeats`` times along ``axis`` (numpy's ``repeat``).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    repeats : int or sequence of int
        The count, one for all or one per element along ``axis``.
    axis : int, optional
        The axis; by default, over the flattened operand (the result is 1-D).

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(a)
    if axis is None:
        t, axis = ravel(t), 0
    axis = _axis(axis, t.ndim, "repeat")
    reps = np.asarray(repeats)
    if reps.dtype.kind not in "iu" or (reps < 0).any():
        raise ValueError(f"repeat: repeats must be non-negative integers, got {repeats!r}")
    if reps.size == 1:  # the same count for all: a broadcast along a new axis
        r = int(reps.ravel()[0])
        s = t.shape
        inner = reshape(t, s[:axis + 1] + (1,) + s[axis + 1:])
        wide = broadcast_to(inner, s[:axis + 1] + (r,) + s[axis + 1:])
        return reshape(wide, s[:axis] + (s[axis] * r,) + s[axis + 1:])
    n = _concrete(t, axis, "repeat")
    if reps.shape != (n,):
        raise ShapeError(f"repeat: {reps.size} repeats for axis {axis} of length {n} "
                         f"(operand shape {format_shape(t.shape)})")
    return take(t, np.repeat(np.arange(n), reps), axis)


@public("composite", numpy="np.tile", reference=np.tile)
def tile(A, reps):
    """``A`` repeated ``reps`` times along each axis (numpy's ``tile``): a broadcast along
    interleaved new axes, reshaped.

    Parameters
    ----------
    A : Tensor or array_like
        The operand.
    reps : int or tuple of int
        The repetitions per axis (aligned from the end, as in numpy).

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(A)
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    d = builtins.max(len(reps), t.ndim)
    reps = (1,) * (d - len(reps)) + reps
    shape = (1,) * (d - t.ndim) + tuple(t.shape)
    inter = tuple(v for s in shape for v in (1, s))
    wide = tuple(v for r, s in zip(reps, shape) for v in (r, s))
    out = broadcast_to(reshape(t, inter), wide)
    return reshape(out, tuple(r * s for r, s in zip(reps, shape)))


@public("composite", numpy="np.diff", reference=np.diff)
def diff(a, n=1, axis=-1):
    """The ``n``-th discrete difference along ``axis`` (numpy's ``diff``).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    n : int
        How many times to take the difference.
    axis : int
        The axis.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(a)
    axis = _axis(axis, t.ndim, "diff")
    if int(n) < 0:
        raise ValueError(f"diff: order must be non-negative, got {n}")
    for _ in range(int(n)):
        def part(sl):
            return index(t, tuple(sl if i == axis else slice(None) for i in range(t.ndim)))
        t = part(slice(1, None)) - part(slice(None, -1))
    return t


# --- more block ---
# rollaxis, fftshift/ifftshift, gradient and linspace: composites of transpose, roll, slices
# and broadcasting (no node of their own, so their gradients are those of the parts)


@public("composite", numpy="np.rollaxis", reference=np.rollaxis)
def rollaxis(a, axis, start=0):
    """Roll ``axis`` backwards until it lies before position ``start`` (numpy's
    ``rollaxis``; :func:`moveaxis` says the same more plainly).

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    axis : int
        The axis to move (negative counts from the end).
    start : int
        The axis is moved to lie before the axis now at ``start`` (``0 <= start <=
        a.ndim`` after a negative one is counted from the end).

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If ``axis`` or ``start`` is out of range.
    """
    t = tensors.as_tensor(a)
    n = t.ndim
    axis = _axis(axis, n, "rollaxis")
    start = int(start) + n if int(start) < 0 else int(start)
    if not 0 <= start <= n:
        raise ShapeError(f"rollaxis: start must be in [{-n}, {n}] for an operand of shape "
                         f"{format_shape(t.shape)}, got {start - n if start < 0 else start}")
    if axis < start:  # numpy's rule: the axis is taken out before counting to start
        start -= 1
    if axis == start:
        return t
    order = [i for i in range(n) if i != axis]
    order.insert(start, axis)
    return transpose(t, order)


def _half_roll(x, axes, direction: int, op: str):
    """``x`` rolled by half the length of each of ``axes`` (all by default), forwards
    (``direction`` 1: fftshift) or back (-1: ifftshift; the two differ for odd lengths)."""
    t = tensors.as_tensor(x)
    if axes is None:
        axes = list(range(t.ndim))
    axes = [axes] if isinstance(axes, (int, np.integer)) else list(axes)
    axes = [_axis(ax, t.ndim, op) for ax in axes]
    if not axes:
        return t
    return roll(t, [direction * (_concrete(t, ax, op) // 2) for ax in axes], axes)


@public("composite", numpy="np.fft.fftshift", reference=np.fft.fftshift)
def fftshift(x, axes=None):
    """Move the zero-frequency term to the centre (numpy's ``fft.fftshift``): a roll by
    half the length of each axis, on real values.

    Parameters
    ----------
    x : Tensor or array_like
        The operand (real-valued: symgrad has no complex dtype).
    axes : int or sequence of int, optional
        The axes to shift; all of them by default.

    Returns
    -------
    Tensor
    """
    return _half_roll(x, axes, 1, "fftshift")


@public("composite", numpy="np.fft.ifftshift", reference=np.fft.ifftshift)
def ifftshift(x, axes=None):
    """The inverse of :func:`fftshift` (numpy's ``fft.ifftshift``): a roll back by half the
    length of each axis (they differ for odd lengths).

    Parameters
    ----------
    x : Tensor or array_like
        The operand (real-valued).
    axes : int or sequence of int, optional
        The axes to shift; all of them by default.

    Returns
    -------
    Tensor
    """
    return _half_roll(x, axes, -1, "ifftshift")


def _spacings(varargs, count: int) -> list:
    """np.gradient's sample distances: none (1), one for every axis, or one per axis; only
    scalars (coordinate arrays would make the differences non-uniform)."""
    if len(varargs) not in (0, 1, count):
        raise TypeError(f"gradient: give no spacing, one, or one per axis ({count}); got "
                        f"{len(varargs)}")
    out = []
    for h in varargs:
        if isinstance(h, tensors.Tensor) or np.ndim(h) != 0:
            raise TypeError("gradient: symgrad supports scalar sample distances only (a "
                            "uniform grid), not coordinate arrays")
        out.append(float(h))
    if not out:
        return [1.0] * count
    return out * count if len(out) == 1 else out


def _gradient_along(t, axis: int, h: float, edge_order: int):
    n = _concrete(t, axis, "gradient")
    if n < edge_order + 1:
        raise ValueError(f"gradient: axis {axis} of shape {format_shape(t.shape)} is too "
                         f"short; edge_order={edge_order} needs at least {edge_order + 1} "
                         f"elements")
    from .join import concatenate

    def part(start, stop=None):
        sl = slice(start, stop)
        return index(t, tuple(sl if i == axis else slice(None) for i in range(t.ndim)))
    if edge_order == 1:  # one-sided first differences at the ends
        first = (part(1, 2) - part(0, 1)) / h
        last = (part(-1) - part(-2, -1)) / h
    else:  # second-order one-sided differences, as numpy's edge_order=2
        first = (part(0, 1) * -1.5 + part(1, 2) * 2.0 - part(2, 3) * 0.5) / h
        last = (part(-3, -2) * 0.5 - part(-2, -1) * 2.0 + part(-1) * 1.5) / h
    pieces = [first]
    if n > 2:  # central differences inside
        pieces.append((part(2) - part(0, -2)) / (2.0 * h))
    return concatenate(pieces + [last], axis)


@public("composite", numpy="np.gradient", reference=np.gradient)
def gradient(f, *varargs, axis=None, edge_order=1):
    """The gradient of samples on a uniform grid (numpy's ``gradient``): central
    differences inside, one-sided differences at the ends.

    Parameters
    ----------
    f : Tensor or array_like
        The samples.
    *varargs : float
        The sample distance: none (1), one for every axis, or one per axis. Coordinate
        arrays are not supported.
    axis : int or tuple of int, optional
        The axes; all by default.
    edge_order : {1, 2}
        The order of the one-sided differences at the ends.

    Returns
    -------
    Tensor or tuple of Tensor
        One Tensor of ``f``'s shape per axis (a single one for a single axis).

    Raises
    ------
    ValueError
        If ``edge_order`` is not 1 or 2, or an axis is shorter than ``edge_order + 1``.
    TypeError
        For coordinate arrays, or a count of spacings that fits neither rule.
    """
    t = tensors.as_tensor(f)
    if edge_order not in (1, 2):
        raise ValueError(f"gradient: edge_order must be 1 or 2, got {edge_order!r}")
    if axis is None:
        axes = list(range(t.ndim))
    else:
        axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
        axes = [_axis(ax, t.ndim, "gradient") for ax in axes]
        if len(set(axes)) != len(axes):
            raise ShapeError(f"gradient: repeated axis in {axis}")
    steps = _spacings(varargs, len(axes))
    out = tuple(_gradient_along(t, ax, h, int(edge_order)) for ax, h in zip(axes, steps))
    return out[0] if len(out) == 1 else out


@public("composite", numpy="np.linspace", reference=np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``num`` evenly spaced samples from ``start`` to ``stop`` (numpy's ``linspace``):
    ``start + (stop - start) * grid`` with a constant grid, so the gradient flows to
    ``start`` and ``stop``.

    Parameters
    ----------
    start, stop : Tensor or array_like
        The ends (they broadcast; the samples run along a new axis).
    num : int
        The number of samples.
    endpoint : bool
        Whether ``stop`` is the last sample.
    retstep : bool
        Also return the step.
    dtype : None
        Must be None (the result has the operands' floating dtype).
    axis : int
        Where the new axis of the samples goes in the result.

    Returns
    -------
    Tensor, or (Tensor, Tensor) with ``retstep``
        Of shape ``(num,) + broadcast shape`` (the new axis moved to ``axis``).

    Raises
    ------
    ValueError
        If ``num`` is negative.
    TypeError
        If ``dtype`` is given.
    """
    if dtype is not None:
        raise TypeError(f"linspace: symgrad does not support dtype={dtype!r} (the result "
                        f"has the floating dtype of start and stop)")
    num = int(num)
    if num < 0:
        raise ValueError(f"linspace: the number of samples must be non-negative, got {num}")
    lo, hi = tensors.as_tensor(start), tensors.as_tensor(stop)
    shape = broadcast_shapes(lo.shape, hi.shape, op="linspace")
    dt = tensors.result_dtype([lo, hi], float_result=True) or np.dtype(np.float64)
    div = num - 1 if endpoint else num
    grid = np.arange(num, dtype=np.float64) / div if div > 0 else np.zeros(num)
    delta = hi - lo
    samples = lo + delta * tensors.constant(grid.reshape((num,) + (1,) * len(shape)).astype(dt))
    samples = moveaxis(samples, 0, axis) if samples.ndim > 1 and axis != 0 else samples
    if not retstep:
        return samples
    return samples, delta / float(div) if div > 0 else delta * float("nan")



class Cast(TensorOp):
    """numpy's ``astype``: the operand's values in another dtype. The gradient of a float
    result is cast back to the operand's float dtype; integer and bool ends have none."""

    op_name = "astype"
    operands = (0,)
    fresh_result = True

    def __new__(cls, x, dtype):
        # a rebuild (func(*args), as in xreplace) passes the dtype back as a sympy Str
        dtype = dtype.name if isinstance(dtype, Str) else str(np.dtype(dtype))
        return TensorOp.__new__(cls, x, Str(dtype))

    @classmethod
    def infer(cls, x, dtype):
        shape, _ = info(x)
        return shape, np.dtype(dtype.name)

    def vjp(self, g):
        source = dtype_of(self.args[0])
        if self.dtype.kind != "f" or source is None or source.kind != "f":
            return [None]
        g = ensure_shape(g, self.shape)
        return [g if dtype_of(g) == source else Cast(g, source)]

    def print_numpy(self, p, ops):
        return f"{p.atom(ops[0])}.astype({p.dtype_source(self.dtype)})"

    def print_array_api(self, p, ops):
        return f"xp.astype({ops[0]}, {p.dtype_source(self.dtype)})"


@public("structural", node=Cast, numpy="np.astype", methods=("astype",))
def astype(x, dtype):
    """The values of ``x`` in ``dtype`` (numpy's ``astype``, as the method ``x.astype``);
    the gradient is cast back to ``x``'s dtype.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    dtype : dtype or str
        A numeric or bool numpy dtype (``np.float32``, ``"float64"``, ``int``).

    Returns
    -------
    Tensor
        Of ``x``'s shape and ``dtype``; ``x`` itself when it has that dtype already.

    Raises
    ------
    TypeError
        For a dtype that is not a number or a bool (strings, objects, complex numbers).
    """
    t = tensors.as_tensor(x)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"astype: {dtype!r} is not a numpy dtype") from None
    if dt.kind not in "biuf":
        raise TypeError(f"astype: symgrad tensors hold numbers or bools, not dtype {dt} "
                        f"(operand of shape {format_shape(t.shape)}, dtype {t.dtype})")
    if t.dtype == dt:
        return t
    return tensors.structural_node(Cast, t, dt)


class ArgPartition(TensorOp):
    """numpy's ``argpartition`` along one axis. Integer-valued: no gradient."""

    #: its numpy form is not yet checked on the array API target (which has no partition)
    array_api = False

    op_name = "argpartition"
    operands = (0,)
    fresh_result = True
    numpy_calls = ("np.argpartition",)

    def __new__(cls, x, kth, axis):
        return TensorOp.__new__(cls, x, kth if isinstance(kth, Tuple) else ints(kth),
                                Integer(axis))

    @classmethod
    def infer(cls, x, kth, axis):
        shape, _ = info(x)
        return shape, np.dtype(np.intp)

    def vjp(self, g):
        return [None]

    def print_numpy(self, p, ops):
        return (f"np.argpartition({ops[0]}, {list(tuple_axes(self.args[1]))}, "
                f"axis={int(self.args[2])})")


def _kth(kth, t, axis: int, op: str) -> list:
    n = _concrete(t, axis, op)
    values = [kth] if isinstance(kth, (int, np.integer)) else list(kth)
    out = []
    for k in values:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"{op}: kth must be an int or a sequence of ints, got {kth!r}")
        if not -n <= int(k) < n:
            raise ValueError(f"{op}: kth {int(k)} is out of bounds for axis {axis} of length "
                             f"{n} (shape {format_shape(t.shape)})")
        out.append(int(k) % n)
    return out


@public("structural", node=ArgPartition, numpy="np.argpartition", reference=np.argpartition)
def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """Indices that partition ``a`` along ``axis`` (numpy's ``argpartition``): the element
    at each ``kth`` position is where a sort would put it, the smaller ones before it, the
    others after. Integer valued: it has no gradient.

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    kth : int or sequence of int
        The positions (negative count from the end).
    axis : int or None
        The axis; None: over the flattened operand.
    kind : {"introselect"}
        numpy's selection algorithm (the only one).
    order : None
        Must be None (no structured dtypes).

    Returns
    -------
    Tensor
        Of dtype intp: numpy's own indices (the generated code calls numpy).

    Raises
    ------
    ValueError
        If a ``kth`` is out of bounds, or ``kind`` or ``order`` is not numpy's default.
    """
    return _argpartition(a, kth, axis, kind, order, "argpartition")


def _argpartition(a, kth, axis, kind, order, op: str):
    if kind != "introselect" or order is not None:
        raise ValueError(f"{op}: symgrad supports kind='introselect' and order=None only, "
                         f"got kind={kind!r}, order={order!r}")
    t = tensors.as_tensor(a)
    if axis is None:
        t, axis = ravel(t), 0
    axis = _axis(axis, t.ndim, op)
    return tensors.structural_node(ArgPartition, t, _kth(kth, t, axis, op), axis)


@public("composite", numpy="np.partition", reference=np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """``a`` partitioned along ``axis`` (numpy's ``partition``): numpy's own arrangement
    (:func:`argpartition`, gathered); the gradient goes back through that permutation.

    Parameters
    ----------
    a : Tensor or array_like
        The operand.
    kth : int or sequence of int
        The positions whose elements end where a sort would put them.
    axis : int or None
        The axis; None: over the flattened operand.
    kind : {"introselect"}
        numpy's selection algorithm (the only one).
    order : None
        Must be None.

    Returns
    -------
    Tensor
        Of ``a``'s shape (1-D with ``axis=None``).

    Raises
    ------
    ValueError
        If a ``kth`` is out of bounds, or ``kind`` or ``order`` is not numpy's default.
    """
    t = tensors.as_tensor(a)
    if axis is None:
        t, axis = ravel(t), 0
    axis = _axis(axis, t.ndim, "partition")
    return take_along_axis(t, _argpartition(t, kth, axis, kind, order, "partition"), axis)

# --- end of more block ---


# -- diagonals and triangles ----------------------------------------------------------------


@public("composite", numpy="np.diagonal", reference=np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    """The diagonal of the planes of ``axis1`` and ``axis2``, along a new last axis
    (numpy's ``diagonal``): the two axes moved last, flattened and sliced with a step.

    Parameters
    ----------
    a : Tensor or array_like
        An operand of at least two dimensions.
    offset : int
        Above (positive) or below (negative) the main diagonal.
    axis1, axis2 : int
        The plane.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(a)
    if t.ndim < 2:
        raise ShapeError(f"diagonal: the operand must have at least 2 dims, got shape "
                         f"{format_shape(t.shape)}")
    i, j = _axis(axis1, t.ndim, "diagonal"), _axis(axis2, t.ndim, "diagonal")
    if i == j:
        raise ShapeError(f"diagonal: axis1 and axis2 cannot be the same ({i})")
    n, m = _concrete(t, i, "diagonal"), _concrete(t, j, "diagonal")
    rest = [k for k in range(t.ndim) if k not in (i, j)]
    flat = reshape(transpose(t, rest + [i, j]), tuple(t.shape[k] for k in rest) + (n * m,))
    k = int(offset)
    length = builtins.max(0, builtins.min(n, m - k) if k >= 0 else builtins.min(n + k, m))
    start = k if k >= 0 else -k * m
    sl = slice(start, start + (length - 1) * (m + 1) + 1, m + 1) if length else slice(0, 0)
    return index(flat, (Ellipsis, sl))


@public("composite", numpy="np.trace", reference=np.trace)
def trace(a, offset=0, axis1=0, axis2=1):
    """Sum along a diagonal (numpy's ``trace``).

    Parameters
    ----------
    a : Tensor or array_like
        An operand of at least two dimensions.
    offset : int
        The diagonal (see :func:`diagonal`).
    axis1, axis2 : int
        The plane.

    Returns
    -------
    Tensor
    """
    from .reductions import sum as _sum
    return _sum(diagonal(a, offset, axis1, axis2), -1)


@public("composite", numpy="np.diag", reference=np.diag)
def diag(v, k=0):
    """The ``k``-th diagonal of a 2-D ``v``, or a 2-D tensor with the 1-D ``v`` on its
    ``k``-th diagonal (numpy's ``diag``).

    Parameters
    ----------
    v : Tensor or array_like
        1-D or 2-D.
    k : int
        The diagonal: above (positive) or below (negative) the main one.

    Returns
    -------
    Tensor
    """
    t = tensors.as_tensor(v)
    k = int(k)
    if t.ndim == 2:
        return diagonal(t, k)
    if t.ndim != 1:
        raise ShapeError(f"diag: the operand must be 1-D or 2-D, got shape "
                         f"{format_shape(t.shape)}")
    length = _concrete(t, 0, "diag")
    n = length + builtins.abs(k)
    # v[i] at flat position start + i*(n+1) of the n*n result: each element followed by n
    # zeros, the whole shifted by ``start`` and cut (or padded) to n*n elements
    start = k if k >= 0 else -k * n
    rows = pad(reshape(t, (length, 1)), ((0, 0), (0, n)))
    flat = reshape(rows, (length * (n + 1),))
    total = start + length * (n + 1)
    flat = pad(flat, ((start, builtins.max(0, n * n - total)),))
    if total > n * n:
        flat = index(flat, slice(0, n * n))
    return reshape(flat, (n, n))


def _triangle(m, k, op, keep):
    from .elementwise import where
    t = tensors.as_tensor(m)
    if t.ndim == 1:
        # numpy reads a vector as the rows of a square matrix: (M,) gives (M, M)
        n = _concrete(t, 0, op)
        t = broadcast_to(t, (n, n))
    if t.ndim < 2:
        raise ShapeError(f"{op}: the operand must have at least 1 dim, got shape "
                         f"{format_shape(t.shape)}")
    rows, cols = _concrete(t, -2 % t.ndim, op), _concrete(t, -1 % t.ndim, op)
    mask = keep(np.ones((rows, cols), dtype=bool), int(k)).astype(bool)
    return where(tensors.constant(mask), t, 0)


@public("composite", numpy="np.tril", reference=np.tril)
def tril(m, k=0):
    """The lower triangle of the last two axes, zero above the ``k``-th diagonal (numpy's
    ``tril``).

    Parameters
    ----------
    m : Tensor or array_like
        The operand; a 1-D one of length ``M`` is read as ``M`` equal rows (numpy's
        ``(M, M)`` result).
    k : int
        The diagonal above which to zero.

    Returns
    -------
    Tensor
    """
    return _triangle(m, k, "tril", np.tril)


@public("composite", numpy="np.triu", reference=np.triu)
def triu(m, k=0):
    """The upper triangle of the last two axes, zero below the ``k``-th diagonal (numpy's
    ``triu``).

    Parameters
    ----------
    m : Tensor or array_like
        The operand; a 1-D one of length ``M`` is read as ``M`` equal rows (numpy's
        ``(M, M)`` result).
    k : int
        The diagonal below which to zero.

    Returns
    -------
    Tensor
    """
    return _triangle(m, k, "triu", np.triu)


# -- padding and selection -----------------------------------------------------------------


@public("structural", node=Pad, numpy="np.pad", reference=np.pad)
def pad(array, pad_width, mode="constant", constant_values=0):
    """Pad with a constant value (numpy's ``pad`` in ``constant`` mode); the gradient
    slices the padding off.

    Parameters
    ----------
    array : Tensor or array_like
        The operand.
    pad_width : int or sequence
        ``((before, after), ...)`` per axis; one pair, or one int, for all axes.
    mode : str
        Only ``"constant"``.
    constant_values : float
        The value of the padding.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        For another mode, or negative widths.
    """
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    t = tensors.as_tensor(array)
    widths = np.asarray(pad_width)
    if widths.dtype.kind not in "iu" or (widths < 0).any():
        raise ValueError(f"pad: pad_width must be non-negative integers, got {pad_width!r}")
    try:
        widths = np.broadcast_to(widths, (t.ndim, 2))
    except ValueError:
        raise ShapeError(f"pad: pad_width {pad_width!r} does not fit an operand of shape "
                         f"{format_shape(t.shape)}") from None
    if not widths.any():
        return t
    if not isinstance(constant_values, (int, float, np.integer, np.floating)):
        raise TypeError("pad: constant_values must be a number")
    return tensors.structural_node(Pad, t, [tuple(int(v) for v in w) for w in widths],
                                   float(constant_values))


@public("composite", numpy="np.select", reference=np.select)
def select(condlist, choicelist, default=0):
    """The element of the first choice whose condition holds, else ``default`` (numpy's
    ``select``): nested ``where``.

    Parameters
    ----------
    condlist : list of Tensor or array_like of bool
        The conditions.
    choicelist : list of Tensor or array_like
        One choice per condition.
    default : float or Tensor
        Where no condition holds.

    Returns
    -------
    Tensor
    """
    from .elementwise import where
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: {len(condlist)} conditions for {len(choicelist)} choices")
    out = tensors.as_tensor(default)
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = where(cond, choice, out)
    return out
