"""Joining and splitting: numpy's ``concatenate`` (one node, of any number of operands) and
what is written with it (``stack``, ``vstack``, ``hstack``, ``column_stack``, ``append``), and
``split`` / ``array_split`` (slices, returned as a list)."""

from __future__ import annotations

import numpy as np
from sympy import Integer, Tuple

from .. import expr as tensors
from ..nodes import TensorOp, info, shape_of
from ..shapes import ShapeError, format_shape
from .record import public
from .shape import (Index, SliceSpec, _axis, _concrete, atleast_1d, atleast_2d, ensure_shape,
                    expand_dims, index, ravel, reshape)

__all__ = ["Concatenate"]


class Concatenate(TensorOp):
    """numpy's ``concatenate`` of the operands ``args[1:]`` along axis ``args[0]``; the
    adjoint of each operand is its slice of the cotangent."""

    op_name = "concatenate"
    fresh_result = True
    numpy_calls = ("np.concatenate",)

    @property
    def operands(self):  # every arg after the axis
        return tuple(range(1, len(self.args)))

    def __new__(cls, axis, *xs):
        return TensorOp.__new__(cls, Integer(axis), *xs)

    @classmethod
    def infer(cls, axis, *xs):
        axis = int(axis)
        infos = [info(x) for x in xs]
        first = infos[0][0]
        if not 0 <= axis < len(first):
            raise ShapeError(f"concatenate: axis {axis} is out of bounds for operands of "
                             f"shape {format_shape(first)}")
        length = 0
        for k, (s, _) in enumerate(infos):
            if len(s) != len(first) or any(s[i] != first[i] for i in range(len(s))
                                           if i != axis):
                raise ShapeError(f"concatenate: operand {k} of shape {format_shape(s)} does "
                                 f"not match operand 0 of shape {format_shape(first)} except "
                                 f"along axis {axis}")
            length = length + s[axis]
        dtypes = [d for _, d in infos if d is not None]
        dtype = np.result_type(*dtypes) if dtypes else None
        shape = tuple(length if i == axis else d for i, d in enumerate(first))
        return shape, dtype

    def vjp(self, g):
        axis = int(self.args[0])
        g = ensure_shape(g, self.shape)
        out, start = [], 0
        for x in self.args[1:]:
            n = shape_of(x)[axis]
            if not isinstance(n, int):
                raise ShapeError(f"concatenate: the gradient needs the length of axis {axis}, "
                                 f"symbolic in an operand of shape {format_shape(shape_of(x))}")
            key = [SliceSpec(None, None, None)] * axis + [SliceSpec(start, start + n, None)]
            out.append(Index(g, Tuple(*key)))
            start += n
        return out

    def print_numpy(self, p, ops):
        return f"np.concatenate(({', '.join(ops)},), axis={int(self.args[0])})"

    def formula(self, ops):
        return f"concatenate([{', '.join(ops)}], axis={int(self.args[0])})"


def _tensors(arrays, op: str) -> list:
    if isinstance(arrays, (tensors.Tensor, np.ndarray)):
        raise TypeError(f"{op}: pass a sequence of arrays (a list or a tuple), not one array")
    ts = [tensors.as_tensor(a) for a in arrays]
    if not ts:
        raise ValueError(f"{op}: need at least one array")
    return ts


@public("structural", node=Concatenate, numpy="np.concatenate", reference=np.concatenate)
def concatenate(arrays, axis=0):
    """Join tensors along an existing axis (numpy's ``concatenate``); each operand's
    gradient is its slice of the result's.

    Parameters
    ----------
    arrays : sequence of Tensor or array_like
        Operands of one shape except along ``axis``.
    axis : int or None
        The axis; None: the operands are flattened first.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If the shapes differ elsewhere than along ``axis``, or an operand is 0-d.
    """
    ts = _tensors(arrays, "concatenate")
    if axis is None:
        ts, axis = [ravel(t) for t in ts], 0
    bad = [k for k, t in enumerate(ts) if t.ndim == 0]
    if bad:
        raise ShapeError(f"concatenate: operand {bad[0]} is 0-d; zero-dimensional arrays "
                         f"cannot be concatenated")
    axis = _axis(axis, ts[0].ndim, "concatenate")
    if len(ts) == 1:
        return ts[0]
    node = Concatenate(axis, *[t.expr for t in ts])
    return tensors.Tensor(node, node.shape, node.dtype)


@public("composite", numpy="np.stack", reference=np.stack)
def stack(arrays, axis=0):
    """Join tensors of one shape along a new axis (numpy's ``stack``).

    Parameters
    ----------
    arrays : sequence of Tensor or array_like
        Operands of one shape.
    axis : int
        The new axis's position in the result.

    Returns
    -------
    Tensor

    Raises
    ------
    ShapeError
        If the shapes differ.
    """
    ts = _tensors(arrays, "stack")
    for k, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ShapeError(f"stack: operand {k} of shape {format_shape(t.shape)} differs "
                             f"from operand 0 of shape {format_shape(ts[0].shape)}")
    axis = _axis(axis, ts[0].ndim + 1, "stack")
    return concatenate([expand_dims(t, axis) for t in ts], axis)


def _listed(x):
    return x if isinstance(x, list) else [x]


@public("composite", numpy="np.vstack", reference=np.vstack)
def vstack(tup):
    """Stack tensors row-wise: along axis 0 after :func:`atleast_2d` (numpy's ``vstack``).

    Parameters
    ----------
    tup : sequence of Tensor or array_like

    Returns
    -------
    Tensor
    """
    return concatenate(_listed(atleast_2d(*_tensors(tup, "vstack"))), 0)


@public("composite", numpy="np.hstack", reference=np.hstack)
def hstack(tup):
    """Stack tensors column-wise: along axis 1, or axis 0 for 1-D operands (numpy's
    ``hstack``).

    Parameters
    ----------
    tup : sequence of Tensor or array_like

    Returns
    -------
    Tensor
    """
    ts = _listed(atleast_1d(*_tensors(tup, "hstack")))
    return concatenate(ts, 0 if ts[0].ndim == 1 else 1)


@public("composite", numpy="np.column_stack", reference=np.column_stack)
def column_stack(tup):
    """Stack 1-D tensors as columns of a 2-D one (2-D operands as they are) along axis 1
    (numpy's ``column_stack``).

    Parameters
    ----------
    tup : sequence of Tensor or array_like

    Returns
    -------
    Tensor
    """
    ts = _tensors(tup, "column_stack")
    ts = [reshape(t, (t.size, 1)) if t.ndim < 2 else t for t in ts]
    return concatenate(ts, 1)


@public("composite", numpy="np.append", reference=np.append)
def append(arr, values, axis=None):
    """``values`` appended to the end of ``arr`` (numpy's ``append``).

    Parameters
    ----------
    arr, values : Tensor or array_like
        The operands.
    axis : int, optional
        The axis; by default both are flattened and the result is 1-D.

    Returns
    -------
    Tensor
    """
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], 0)
    return concatenate([arr, values], axis)


def _pieces(t, bounds, axis):
    out = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        out.append(index(t, (slice(None),) * axis + (slice(start, stop),)))
    return out


def _split(ary, indices_or_sections, axis, op, equal):
    t = tensors.as_tensor(ary)
    axis = _axis(axis, t.ndim, op)
    n = _concrete(t, axis, op)
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError(f"{op}: the number of sections must be larger than 0")
        if equal and n % sections:
            raise ValueError(f"{op}: an axis of length {n} does not split into {sections} "
                             f"equal sections (sg.array_split allows unequal ones)")
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        bounds = list(np.cumsum([0] + sizes))
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    # numpy's slices: clipped to the axis, and negative positions count from the end
    return _pieces(t, [int(b) for b in bounds], axis)


@public("composite", numpy="np.split", reference=np.split)
def split(ary, indices_or_sections, axis=0):
    """Split into a list of tensors along ``axis`` (numpy's ``split``): slices of ``ary``.

    Parameters
    ----------
    ary : Tensor or array_like
        The operand.
    indices_or_sections : int or sequence of int
        A number of equal sections, or the positions to split at.
    axis : int
        The axis.

    Returns
    -------
    list of Tensor

    Raises
    ------
    ValueError
        If a number of sections does not divide the axis.
    """
    return _split(ary, indices_or_sections, axis, "split", equal=True)


@public("composite", numpy="np.array_split", reference=np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    """Split into a list of tensors along ``axis``, the first sections one longer when the
    number does not divide the axis (numpy's ``array_split``).

    Parameters
    ----------
    ary : Tensor or array_like
        The operand.
    indices_or_sections : int or sequence of int
        A number of sections, or the positions to split at.
    axis : int
        The axis.

    Returns
    -------
    list of Tensor
    """
    return _split(ary, indices_or_sections, axis, "array_split", equal=False)


# --- more block ---
# vsplit, hsplit and dsplit: numpy's split along a fixed axis, with numpy's checks of ndim


def _split_at(ary, indices_or_sections, axis: int, op: str, min_ndim: int):
    t = tensors.as_tensor(ary)
    if t.ndim < min_ndim:
        raise ShapeError(f"{op}: only works on operands of {min_ndim} or more dimensions, "
                         f"got shape {format_shape(t.shape)}")
    return _split(t, indices_or_sections, axis, op, equal=True)


@public("composite", numpy="np.vsplit", reference=np.vsplit)
def vsplit(ary, indices_or_sections):
    """Split along the first axis (numpy's ``vsplit``: :func:`split` with ``axis=0``, for
    operands of two or more dimensions).

    Parameters
    ----------
    ary : Tensor or array_like
        The operand, of at least 2 dimensions.
    indices_or_sections : int or sequence of int
        A number of equal sections, or the positions to split at.

    Returns
    -------
    list of Tensor

    Raises
    ------
    ShapeError
        If ``ary`` has fewer than 2 dimensions.
    ValueError
        If a number of sections does not divide the axis.
    """
    return _split_at(ary, indices_or_sections, 0, "vsplit", 2)


@public("composite", numpy="np.hsplit", reference=np.hsplit)
def hsplit(ary, indices_or_sections):
    """Split along the second axis, or the only axis of a 1-D operand (numpy's
    ``hsplit``).

    Parameters
    ----------
    ary : Tensor or array_like
        The operand, of at least 1 dimension.
    indices_or_sections : int or sequence of int
        A number of equal sections, or the positions to split at.

    Returns
    -------
    list of Tensor

    Raises
    ------
    ShapeError
        If ``ary`` is 0-d.
    ValueError
        If a number of sections does not divide the axis.
    """
    t = tensors.as_tensor(ary)
    return _split_at(t, indices_or_sections, 1 if t.ndim > 1 else 0, "hsplit", 1)


@public("composite", numpy="np.dsplit", reference=np.dsplit)
def dsplit(ary, indices_or_sections):
    """Split along the third axis (numpy's ``dsplit``, for operands of three or more
    dimensions).

    Parameters
    ----------
    ary : Tensor or array_like
        The operand, of at least 3 dimensions.
    indices_or_sections : int or sequence of int
        A number of equal sections, or the positions to split at.

    Returns
    -------
    list of Tensor

    Raises
    ------
    ShapeError
        If ``ary`` has fewer than 3 dimensions.
    ValueError
        If a number of sections does not divide the axis.
    """
    return _split_at(ary, indices_or_sections, 2, "dsplit", 3)

# --- end of more block ---
