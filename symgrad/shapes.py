"""Shapes: numpy's broadcasting and axis rules over dimensions that may be symbolic.

A shape is a tuple whose entries are Python ints or :class:`Dim` symbols (a named
dimension such as the batch size ``N``, bound from an input's shape at call time).
Everything here is pure bookkeeping; it builds no expression nodes. Errors are
raised as :class:`ShapeError` with a message that names the operation and the shapes.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import sympy

__all__ = [
    "Dim",
    "ShapeError",
    "broadcast_shapes",
    "normalize_axes",
    "reduced_shape",
    "shape_size",
    "format_shape",
    "as_shape",
]


class ShapeError(ValueError):
    """An operation was given operands whose shapes do not fit together."""


class Dim(sympy.Symbol):
    """A named, positive integer dimension (for example the batch size ``N``).

    Its value is taken from the inputs' shapes each time a compiled function runs.
    """

    def __new__(cls, name: str) -> "Dim":
        return super().__new__(cls, name, integer=True, positive=True)

    def __getnewargs_ex__(self):
        return ((self.name,), {})


def as_dim(d, where: str = "shape") -> "int | Dim":
    """Turn a user's dimension (an int, a str naming a symbolic dim, or a Dim) into ours.

    Parameters
    ----------
    d : int, str, Dim or sympy.Expr
        The dimension; a str names a symbolic dimension, an integer SymPy expression over
        dims (``N*784``) is kept as it is.
    where : str
        What the error message names as the source of the dimension.

    Returns
    -------
    int or Dim
        A non-negative int, or a symbolic dimension.

    Raises
    ------
    ShapeError
        For an empty name, a negative int, or anything that is not a dimension.
    """
    if isinstance(d, Dim):
        return d
    if isinstance(d, str):
        if not d:
            raise ShapeError(f"{where}: a symbolic dimension needs a non-empty name")
        return Dim(d)
    if isinstance(d, (sympy.Integer, int)) and not isinstance(d, bool):
        d = int(d)
        if d < 0:
            raise ShapeError(f"{where}: dimension {d} is negative")
        return d
    if isinstance(d, sympy.Expr) and d.is_integer and d.free_symbols:
        return d  # a product of symbolic dims, e.g. N*784 after a reshape
    raise ShapeError(f"{where}: {d!r} is not a dimension (use an int or a str name)")


def as_shape(shape, where: str = "shape") -> tuple:
    """Normalize a user's shape (int, tuple, list) into a tuple of ints and Dims.

    Parameters
    ----------
    shape : None, int, str, Dim or sequence of them
        ``None`` is a scalar's shape ``()``; a single dimension is a 1-d shape.
    where : str
        What the error message names as the source of the shape.

    Returns
    -------
    tuple
        One :func:`as_dim` result per dimension.

    Raises
    ------
    ShapeError
        When a dimension is not one (see :func:`as_dim`).
    """
    if shape is None:
        return ()
    if isinstance(shape, (int, str, Dim)) and not isinstance(shape, bool):
        shape = (shape,)
    return tuple(as_dim(d, where) for d in shape)


def format_shape(shape: Sequence) -> str:
    """Print a shape the way numpy does, with symbolic dims by name: ``(N, 784)``.

    Parameters
    ----------
    shape : sequence of int or Dim

    Returns
    -------
    str
        ``(3,)`` for one dimension, ``()`` for none.
    """
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _dims_equal(a, b) -> bool:
    return a == b or (sympy.sympify(a) - sympy.sympify(b)) == 0


def broadcast_shapes(*shapes: Sequence, op: str = "broadcast") -> tuple:
    """numpy's broadcasting rule; a symbolic dim only matches itself or 1.

    Parameters
    ----------
    *shapes : sequence of int or Dim
        The operands' shapes.
    op : str
        The operation the error message names.

    Returns
    -------
    tuple
        The broadcast shape.

    Raises
    ------
    ShapeError
        When two dimensions of an axis differ and neither is 1 (the message lists every
        shape and the axis).
    """
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(ndim):
        dim = 1
        for s in shapes:
            k = axis - (ndim - len(s))
            if k < 0:
                continue
            d = s[k]
            if d == 1 or _dims_equal(d, dim):
                continue
            if dim == 1:
                dim = d
                continue
            listed = ", ".join(format_shape(x) for x in shapes)
            raise ShapeError(
                f"{op}: operands of shapes {listed} cannot be broadcast together "
                f"(axis {axis - ndim}: {dim} vs {d})"
            )
        result.append(dim)
    return tuple(result)


def normalize_axes(axis, ndim: int, op: str) -> tuple:
    """Turn an axis argument into a sorted tuple of non-negative ints.

    Parameters
    ----------
    axis : None, int or sequence of int
        ``None`` means every axis; negative axes count from the end.
    ndim : int
        The operand's number of dimensions.
    op : str
        The operation the error message names.

    Returns
    -------
    tuple of int

    Raises
    ------
    ShapeError
        For an axis that is not an int, is out of range, or is repeated.
    """
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise ShapeError(f"{op}: axis {a!r} is not an int")
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for an operand of {ndim} dims")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def reduced_shape(shape: Sequence, axes: Iterable[int], keepdims: bool) -> tuple:
    """Shape after reducing over ``axes``.

    Parameters
    ----------
    shape : sequence of int or Dim
    axes : iterable of int
        Non-negative axes (see :func:`normalize_axes`).
    keepdims : bool
        Keep each reduced axis with length 1 instead of dropping it.

    Returns
    -------
    tuple
    """
    axes = set(axes)
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def shape_size(shape: Sequence):
    """Number of elements of an array of ``shape``.

    Parameters
    ----------
    shape : sequence of int or Dim

    Returns
    -------
    int or sympy.Expr
        An int, or a SymPy product when dims are symbolic.
    """
    size = sympy.Integer(1)
    for d in shape:
        size = size * d
    return int(size) if size.is_Integer else size
