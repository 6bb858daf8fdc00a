"""How structural nodes keep their static arguments (axes, shapes, flags) in their SymPy
args, so that ``func(*args)`` rebuilds a node faithfully and the cache key sees them."""

from __future__ import annotations

from sympy import Integer, Tuple

from ..shapes import as_shape


def ints(values) -> Tuple:
    """A Tuple of SymPy Integers (axes, a permutation)."""
    return Tuple(*[Integer(v) for v in values])


def shape_tuple(shape) -> Tuple:
    """A shape as a SymPy Tuple (Integers and Dims)."""
    return Tuple(*as_shape(shape))


def tuple_shape(t: Tuple) -> tuple:
    """A stored shape back as a tuple of ints and Dims."""
    return tuple(int(d) if d.is_Integer else d for d in t)


def tuple_axes(t: Tuple) -> tuple:
    """Stored axes back as a tuple of ints."""
    return tuple(int(a) for a in t)


def flag(v) -> Integer:
    """A bool as a SymPy Integer (0 or 1)."""
    return Integer(1 if v else 0)

