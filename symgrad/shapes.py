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
    """Turn a user's dimension (an int, a str naming a symbolic dim, or a Dim) into ours."""
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
    """Normalize a user's shape (int, tuple, list) into a tuple of ints and Dims."""
    if shape is None:
        return ()
    if isinstance(shape, (int, str, Dim)) and not isinstance(shape, bool):
        shape = (shape,)
    return tuple(as_dim(d, where) for d in shape)


def format_shape(shape: Sequence) -> str:
    """Print a shape the way numpy does, with symbolic dims by name: ``(N, 784)``."""
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _dims_equal(a, b) -> bool:
    return a == b or (sympy.sympify(a) - sympy.sympify(b)) == 0


def broadcast_shapes(*shapes: Sequence, op: str = "broadcast") -> tuple:
    """numpy's broadcasting rule; a symbolic dim only matches itself or 1."""
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
    """Axis argument (None, int or tuple; negatives allowed) -> sorted tuple of ints."""
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
    """Shape after reducing over ``axes``."""
    axes = set(axes)
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def shape_size(shape: Sequence):
    """Number of elements (an int, or a SymPy product when dims are symbolic)."""
    size = sympy.Integer(1)
    for d in shape:
        size = size * d
    return int(size) if size.is_Integer else size
