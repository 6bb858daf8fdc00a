"""Linear algebra: numpy's ``matmul`` (its vector, matrix and batched forms), ``dot``, ``inner``,
``outer``, ``vdot``, ``tensordot``, ``einsum``, ``kron`` and ``cross``."""

from __future__ import annotations

import numpy as np
import sympy
from sympy.core.symbol import Str

from .. import expr as tensors
from ..nodes import TensorOp, dtype_of, info, shape_of
from ..shapes import ShapeError, broadcast_shapes, format_shape
from .record import public
from .shape import BroadcastTo, PermuteDims, Reshape, ensure_shape, reshape, sum_to_shape
from .static import ints, tuple_axes

__all__ = ["MatMul", "TensorDot", "Einsum", "Cross", "swap_last"]


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


# ---------------------------------------------------------------------------------------
# tensordot, einsum, cross
# ---------------------------------------------------------------------------------------


def _product_dtype(*dtypes):
    dtypes = [d for d in dtypes if d is not None]
    return np.result_type(*dtypes) if dtypes else None


class TensorDot(TensorOp):
    """numpy's ``tensordot``: axes ``ca`` of ``a`` contracted with axes ``cb`` of ``b``
    (paired in order); the result has a's free axes, then b's."""

    op_name = "tensordot"
    operands = (0, 1)
    fresh_result = True
    numpy_calls = ("np.tensordot",)

    def __new__(cls, a, b, ca, cb):
        return TensorOp.__new__(cls, a, b, ints(ca), ints(cb))

    @classmethod
    def infer(cls, a, b, ca, cb):
        (sa, da), (sb, db) = info(a), info(b)
        ca, cb = tuple_axes(ca), tuple_axes(cb)
        if len(ca) != len(cb):
            raise ShapeError(f"tensordot: {len(ca)} axes of a paired with {len(cb)} of b")
        for i, j in zip(ca, cb):
            if not (0 <= i < len(sa) and 0 <= j < len(sb)) or sa[i] != sb[j]:
                raise ShapeError(f"tensordot: operands of shape {format_shape(sa)} and "
                                 f"{format_shape(sb)} do not align on axes {ca} and {cb}")
        shape = tuple(d for k, d in enumerate(sa) if k not in ca) + \
            tuple(d for k, d in enumerate(sb) if k not in cb)
        return shape, _product_dtype(da, db)

    def vjp(self, g):
        a, b = self.args[:2]
        ca, cb = list(tuple_axes(self.args[2])), list(tuple_axes(self.args[3]))
        na, nb = len(shape_of(a)), len(shape_of(b))
        fa = [k for k in range(na) if k not in ca]
        fb = [k for k in range(nb) if k not in cb]
        g = _typed_adjoint(g, self)
        # tensordot leaves the remaining axes of an operand in its own order: ga ends with
        # b's contracted axes in increasing order (each standing for its partner in a)
        ga = TensorDot(g, b, range(len(fa), len(fa) + len(fb)), fb)
        gb = TensorDot(a, g, fa, range(len(fa)))
        ga_axes = fa + [ca[cb.index(j)] for j in sorted(cb)]
        gb_axes = [cb[ca.index(i)] for i in sorted(ca)] + fb
        return [_permuted(ga, ga_axes), _permuted(gb, gb_axes)]

    def print_numpy(self, p, ops):
        ca, cb = list(tuple_axes(self.args[2])), list(tuple_axes(self.args[3]))
        return f"np.tensordot({ops[0]}, {ops[1]}, axes=({ca}, {cb}))"

    def formula(self, ops):
        ca, cb = tuple_axes(self.args[2]), tuple_axes(self.args[3])
        return f"tensordot({ops[0]}, {ops[1]}, axes=({ca}, {cb}))"


def _typed_adjoint(g, node):
    """The adjoint as an array of the node's shape and dtype: a weak Python number (the 1 of
    a scalar output) would make np.tensordot / np.einsum promote float32 to float64."""
    if dtype_of(g) is None and node.dtype is not None:
        return BroadcastTo(g, node.shape, node.dtype)
    return ensure_shape(g, node.shape)


def _permuted(x, axes):
    """``x`` whose axis k stands for axis ``axes[k]``, put in order."""
    perm = [int(i) for i in np.argsort(axes)]
    return x if perm == list(range(len(perm))) else PermuteDims(x, perm)


def _parse_subscripts(subscripts, shapes, op="einsum"):
    """``(inputs, output)`` of an explicit einsum spec, checked against the operands."""
    if not isinstance(subscripts, str) or subscripts.count("->") != 1 or "." in subscripts:
        raise ShapeError(f"{op}: subscripts must be a string with one explicit '->' and no "
                         f"ellipsis, got {subscripts!r}")
    ins, out = subscripts.replace(" ", "").split("->")
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ShapeError(f"{op}: {subscripts!r} names {len(ins)} operands, got {len(shapes)}")
    sizes = {}
    for k, (s, shape) in enumerate(zip(ins, shapes)):
        if (s and not s.isalpha()) or len(s) != len(shape):
            raise ShapeError(f"{op}: subscripts {s!r} do not fit operand {k} of shape "
                             f"{format_shape(shape)} (one letter per axis)")
        if len(set(s)) != len(s):
            raise ShapeError(f"{op}: subscripts {s!r} of operand {k} repeat a letter "
                             f"(diagonals are not supported)")
        for c, d in zip(s, shape):
            if sizes.setdefault(c, d) != d:
                raise ShapeError(f"{op}: letter {c!r} is {sizes[c]} long in one operand and "
                                 f"{d} in operand {k} of shape {format_shape(shape)}")
    if (out and not out.isalpha()) or len(set(out)) != len(out) or set(out) - set(sizes):
        raise ShapeError(f"{op}: output subscripts {out!r} must be distinct letters of the "
                         f"operands")
    return ins, out, sizes


class Einsum(TensorOp):
    """numpy's ``einsum`` with explicit output subscripts (args: the operands, then the
    subscripts as a Str). The gradient of an operand is an einsum of the adjoint with the
    other operands onto its letters; letters only it has come back by broadcasting."""

    op_name = "einsum"
    numpy_calls = ("np.einsum",)

    def __new__(cls, *args):
        *operands, spec = args  # the order of args, so that func(*args) rebuilds the node
        spec = spec.name if isinstance(spec, Str) else str(spec)
        return TensorOp.__new__(cls, *operands, Str(spec))

    @property
    def operands(self):
        return tuple(range(len(self.args) - 1))

    @property
    def fresh_result(self):
        # one operand and no sum ('ij->ji') is a view in numpy; two or more never are
        return len(self.args) > 2

    @property
    def subscripts(self) -> str:
        return self.args[-1].name

    @classmethod
    def infer(cls, *args):
        *operands, spec = args
        infos = [info(x) for x in operands]
        ins, out, sizes = _parse_subscripts(spec.name, [s for s, _ in infos])
        return tuple(sizes[c] for c in out), _product_dtype(*(d for _, d in infos))

    def vjp(self, g):
        *operands, _ = self.args
        ins, out, _ = _parse_subscripts(self.subscripts, [shape_of(x) for x in operands])
        g = _typed_adjoint(g, self)
        grads = []
        for i, x in enumerate(operands):
            others = [s for j, s in enumerate(ins) if j != i]
            have = set(out).union(*others)
            kept = "".join(c for c in ins[i] if c in have)
            gi = Einsum(g, *[o for j, o in enumerate(operands) if j != i],
                        f"{','.join([out] + others)}->{kept}")
            if kept != ins[i]:  # summed over letters only x has: constant along them
                xshape = shape_of(x)
                gi = Reshape(gi, tuple(d if c in have else 1 for c, d in zip(ins[i], xshape)))
                gi = BroadcastTo(gi, xshape, gi.dtype)
            grads.append(gi)
        return grads

    def print_numpy(self, p, ops):
        # ops: the printed operands (the value arguments; the subscripts are not one)
        optimize = ", optimize=True" if len(ops) > 2 else ""  # a contraction order for 3+
        return f"np.einsum({self.subscripts!r}, {', '.join(ops)}{optimize})"

    def print_array_api(self, p, ops):
        p.need_helper("einsum")  # the standard has no einsum: permute, reshape, matmul
        ins, out = self.subscripts.replace(" ", "").split("->")
        return f"_einsum(xp, {tuple(ins.split(','))!r}, {out!r}, {', '.join(ops)})"

    def formula(self, ops):
        return f"einsum({self.subscripts!r}, {', '.join(ops[:len(self.args) - 1])})"


class Cross(TensorOp):
    """numpy's ``cross`` of 3-vectors along the last axis, the other axes broadcasting;
    ``<g, a x b> = <b x g, a> = <g x a, b>`` gives the adjoints."""

    op_name = "cross"
    operands = (0, 1)
    fresh_result = True
    numpy_calls = ("np.cross",)

    @classmethod
    def infer(cls, a, b):
        (sa, da), (sb, db) = info(a), info(b)
        if not sa or not sb or sa[-1] != 3 or sb[-1] != 3:
            raise ShapeError(f"cross: operands of shape {format_shape(sa)} and "
                             f"{format_shape(sb)}: 3-vectors along the last axis only")
        return broadcast_shapes(sa, sb, op="cross"), _product_dtype(da, db)

    def vjp(self, g):
        a, b = self.args
        g = ensure_shape(g, self.shape)
        return [sum_to_shape(Cross(b, g), self.shape, shape_of(a)),
                sum_to_shape(Cross(g, a), self.shape, shape_of(b))]

    def print_numpy(self, p, ops):
        return f"np.cross({ops[0]}, {ops[1]})"

    def print_array_api(self, p, ops):
        p.need_helper("cross")  # the main namespace has no cross (linalg.cross is optional)
        return f"_cross(xp, {ops[0]}, {ops[1]})"


# ---------------------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------------------


def _pair(a, b):
    return tensors.as_tensor(a), tensors.as_tensor(b)


@public("composite", numpy="np.dot", reference=np.dot)
def dot(a, b):
    """numpy's ``dot`` for operands of at most 2 dims: a product with a 0-d operand, the
    inner product of vectors, a matrix product otherwise (``matmul``).

    Parameters
    ----------
    a, b : Tensor or array_like
        Operands of 0, 1 or 2 dims.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        For an operand of more than 2 dims (use ``tensordot`` or ``matmul``, whose batch
        rules differ), or when the contracted lengths differ.
    """
    ta, tb = _pair(a, b)
    if ta.ndim == 0 or tb.ndim == 0:
        return ta * tb
    if ta.ndim > 2 or tb.ndim > 2:
        raise ShapeError(f"dot: operands of shape {format_shape(ta.shape)} and "
                         f"{format_shape(tb.shape)}: only operands of at most 2 dims "
                         f"(use tensordot or matmul)")
    return matmul(ta, tb)


@public("structural", node=TensorDot, numpy="np.tensordot", reference=np.tensordot)
def tensordot(a, b, axes=2):
    """numpy's ``tensordot``: the sum of products over paired axes.

    Parameters
    ----------
    a, b : Tensor or array_like
        The operands.
    axes : int or pair of sequences of int
        An int ``n``: the last ``n`` axes of ``a`` with the first ``n`` of ``b``; a pair
        ``(axes_a, axes_b)``: those axes, paired in order (negatives count from the end).

    Returns
    -------
    Tensor
        a's free axes, then b's.

    Raises
    ------
    ShapeError
        When paired axes differ in length or are out of range.
    """
    ta, tb = _pair(a, b)
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        n = int(axes)
        if not 0 <= n <= min(ta.ndim, tb.ndim):
            raise ShapeError(f"tensordot: cannot contract {n} axes of operands of shape "
                             f"{format_shape(ta.shape)} and {format_shape(tb.shape)}")
        ca, cb = list(range(ta.ndim - n, ta.ndim)), list(range(n))
    else:
        try:
            xa, xb = axes
        except (TypeError, ValueError):
            raise ShapeError(f"tensordot: axes must be an int or a pair of sequences, got "
                             f"{axes!r}") from None
        ca = [xa] if isinstance(xa, (int, np.integer)) else list(xa)
        cb = [xb] if isinstance(xb, (int, np.integer)) else list(xb)
        if len(ca) != len(cb):
            raise ShapeError(f"tensordot: axes {axes!r} pair {len(ca)} axes with {len(cb)}")
        ca = [_one_axis(k, ta.ndim) for k in ca]
        cb = [_one_axis(k, tb.ndim) for k in cb]
        if len(set(ca)) != len(ca) or len(set(cb)) != len(cb):
            raise ShapeError(f"tensordot: repeated axis in {axes!r}")
    node = TensorDot(ta.expr, tb.expr, ca, cb)
    return tensors.Tensor(node, node.shape, node.dtype)


def _one_axis(k, ndim):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -ndim <= k < ndim:
        raise ShapeError(f"tensordot: axis {k!r} out of range for an operand of {ndim} dims")
    return int(k) % ndim


@public("composite", numpy="np.inner", reference=np.inner)
def inner(a, b):
    """numpy's ``inner``: the sum of products over the last axes (a product for a 0-d
    operand).

    Parameters
    ----------
    a, b : Tensor or array_like
        Operands whose last axes have the same length.

    Returns
    -------
    Tensor
        a's other axes, then b's.
    """
    ta, tb = _pair(a, b)
    if ta.ndim == 0 or tb.ndim == 0:
        return ta * tb
    return tensordot(ta, tb, ([-1], [-1]))


@public("composite", numpy="np.outer", reference=np.outer)
def outer(a, b):
    """numpy's ``outer``: ``a.ravel()[:, None] * b.ravel()[None, :]``.

    Parameters
    ----------
    a, b : Tensor or array_like
        The operands (flattened).

    Returns
    -------
    Tensor
        Of shape ``(a.size, b.size)``.
    """
    ta, tb = _pair(a, b)
    return reshape(ta, (-1, 1)) * reshape(tb, (1, -1))


@public("composite", numpy="np.vdot", reference=np.vdot)
def vdot(a, b):
    """numpy's ``vdot`` for real operands: the dot product of the flattened operands.

    Parameters
    ----------
    a, b : Tensor or array_like
        Operands with the same number of elements.

    Returns
    -------
    Tensor
        0-d.

    Raises
    ------
    ShapeError
        When the sizes differ.
    """
    from .reductions import sum
    ta, tb = _pair(a, b)
    na, nb = _size(ta.shape), _size(tb.shape)
    if na != nb:
        raise ShapeError(f"vdot: operands of shape {format_shape(ta.shape)} and "
                         f"{format_shape(tb.shape)} differ in size")
    if ta.shape != tb.shape:
        ta, tb = reshape(ta, (-1,)), reshape(tb, (-1,))
    return sum(ta * tb)


def _size(shape):
    n = sympy.Integer(1)
    for d in shape:
        n = n * d
    return n


@public("structural", node=Einsum, numpy="np.einsum", reference=np.einsum)
def einsum(subscripts, *operands):
    """numpy's ``einsum`` with explicit output subscripts, ``'ij,jk->ik'``.

    Parameters
    ----------
    subscripts : str
        One letter per axis of each operand, comma-separated, then ``'->'`` and the
        output's letters; no ellipsis, and no letter twice in one operand (diagonals).
    *operands : Tensor or array_like

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        When the subscripts do not fit the operands, or a letter has two lengths.
    """
    ts = [tensors.as_tensor(x) for x in operands]
    if not ts:
        raise ShapeError("einsum: needs at least one operand")
    node = Einsum(*(t.expr for t in ts), subscripts)
    return tensors.Tensor(node, node.shape, node.dtype)


@public("composite", numpy="np.kron", reference=np.kron)
def kron(a, b):
    """numpy's ``kron`` of two 2-d operands: ``y[i*p + k, j*q + l] = a[i, j] * b[k, l]``.

    Parameters
    ----------
    a : Tensor or array_like
        Of shape ``(m, n)``.
    b : Tensor or array_like
        Of shape ``(p, q)``.

    Returns
    -------
    Tensor
        Of shape ``(m*p, n*q)``.

    Raises
    ------
    ShapeError
        For operands not 2-d.
    """
    ta, tb = _pair(a, b)
    if ta.ndim != 2 or tb.ndim != 2:
        raise ShapeError(f"kron: operands of shape {format_shape(ta.shape)} and "
                         f"{format_shape(tb.shape)}: 2-d operands only")
    (m, n), (p, q) = ta.shape, tb.shape
    blocks = reshape(ta, (m, 1, n, 1)) * reshape(tb, (1, p, 1, q))
    return reshape(blocks, (m * p, n * q))


@public("structural", node=Cross, numpy="np.cross", reference=np.cross)
def cross(a, b):
    """numpy's ``cross`` of 3-vectors along the last axis; the other axes broadcast.

    Parameters
    ----------
    a, b : Tensor or array_like
        Operands whose last axis has length 3.

    Returns
    -------
    Tensor
        Of the broadcast shape.

    Raises
    ------
    ShapeError
        When a last axis is not 3 long or the other axes do not broadcast.
    """
    ta, tb = _pair(a, b)
    node = Cross(ta.expr, tb.expr)
    return tensors.Tensor(node, node.shape, node.dtype)
