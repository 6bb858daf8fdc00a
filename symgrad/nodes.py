"""The SymPy layer: tensor leaves, the base of structural nodes, and shape/dtype inference.

Promises:

* A :class:`TensorSymbol` is a *real* SymPy ``Symbol`` whose hashable content includes its
  shape, dtype and role, so ``==``, ``hash``, ``srepr``, ``xreplace``, ``cse``, pickling
  and the cache key all tell ``x`` of shape (3,) from ``x`` of shape (4,).
* A :class:`TensorOp` is the base of every non-elementwise node (matmul, reductions,
  reshape, ...). Everything that defines it lives in its ``args``; its shape and dtype
  are derived from the args when it is built (``func(*args)`` rebuilds it faithfully).
* :func:`info` gives the shape and dtype of any expression, walking elementwise regions
  iteratively (no recursion limit) and caching what it has seen.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Optional

import numpy as np
import sympy
from sympy.core.symbol import Str

from .graph import post_order, rebuild
from .shapes import Dim, ShapeError, as_shape, broadcast_shapes, format_shape

__all__ = [
    "TensorSymbol",
    "TensorOp",
    "info",
    "shape_of",
    "dtype_of",
    "is_tensor_free",
    "subexpressions",
    "xreplace_dag",
    "ROLES",
]

#: The roles a leaf can have. ``temp`` and ``hyper`` are used by the compiler only.
ROLES = ("input", "param", "constant", "cotangent", "placeholder", "temp", "hyper", "state")


# ---------------------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------------------


class TensorSymbol(sympy.Symbol):
    """A named tensor leaf: an input fed at call time, a parameter, a constant, ...

    ``shape`` is a SymPy ``Tuple`` of Integers and :class:`Dim` symbols, ``dtype`` a numpy
    dtype name (``""`` for a weak Python scalar such as a learning rate), ``role`` one of
    :data:`ROLES`. For constants, ``tag`` holds a digest of the value (the value itself is
    kept in :data:`CONSTANT_VALUES`), so two different constants never compare equal.
    """

    __slots__ = ("shape_tuple", "dtype_name", "role", "tag", "_content")

    def __new__(cls, name: str, shape=(), dtype: str = "float64", role: str = "input",
                tag: str = "") -> "TensorSymbol":
        if role not in ROLES:
            raise ValueError(f"unknown leaf role {role!r}")
        obj = sympy.Symbol.__xnew__(cls, name, real=True)
        obj.shape_tuple = sympy.Tuple(*as_shape(shape, where=f"leaf {name!r}"))
        obj.dtype_name = str(dtype)
        obj.role = role
        obj.tag = tag
        return obj

    def __getnewargs_ex__(self):
        return ((self.name, tuple(self.shape_tuple), self.dtype_name, self.role, self.tag), {})

    def __getstate__(self):
        return None

    def _hashable_content(self):
        # built once: ``==`` between leaves calls this on every comparison, and building
        # the Str objects each time was most of the cost of rendering a large module
        try:
            return self._content
        except AttributeError:
            self._content = sympy.Symbol._hashable_content(self) + (
                self.shape_tuple, Str(self.dtype_name), Str(self.role), Str(self.tag))
            return self._content

    def _sympyrepr(self, printer):
        shape = printer._print(self.shape_tuple)
        tag = f", tag={self.tag!r}" if self.tag else ""
        return (f"TensorSymbol({self.name!r}, shape={shape}, dtype={self.dtype_name!r}, "
                f"role={self.role!r}{tag})")

    @property
    def shape(self) -> tuple:
        """The shape: ints where known, :class:`~symgrad.shapes.Dim` where symbolic."""
        return tuple(int(d) if d.is_Integer else d for d in self.shape_tuple)

    @property
    def dtype(self) -> Optional[np.dtype]:
        """The numpy dtype, or None for a weak (Python) scalar."""
        return np.dtype(self.dtype_name) if self.dtype_name else None


#: Values of constants by digest; constant leaves carry only the digest in their args.
CONSTANT_VALUES: dict[str, np.ndarray] = {}


# ---------------------------------------------------------------------------------------
# Structural nodes
# ---------------------------------------------------------------------------------------


class TensorOp(sympy.Expr):
    """Base class of structural (non-elementwise) nodes.

    Subclasses define:

    * ``operands``: the positions in ``args`` that hold tensor operands (the rest are static
      attributes such as axes or shapes, stored as SymPy Tuples/Integers);
    * ``infer(*args) -> (shape, dtype)``: the shape rule, raising :class:`ShapeError`;
    * ``vjp(self, g) -> list``: one entry per operand position, an adjoint expression or
      ``None`` for "no gradient", given the adjoint ``g`` of this node's full shape;
    * ``print_numpy(self, printer, ops) -> str``: numpy source, given the printed operands;
    * optionally ``print_array_api(self, printer, ops) -> str``: the array API standard's
      source (``xp.<name>``), where the numpy form is not standard
      (:mod:`symgrad.compiler.array_api` translates the others name by name).
    """

    is_real = True
    is_commutative = True
    # a tensor, never a number; and Expr.is_number would recurse through the args, past
    # the Let nodes that bound the depth of deep chains (RecursionError)
    is_number = False
    __slots__ = ("shape", "dtype", "__weakref__")
    operands: tuple = (0,)
    #: the user-facing name, used in error messages and the registry
    op_name = "op"

    def __new__(cls, *args):
        args = tuple(sympy.sympify(a) for a in args)
        # deduplicated at construction: equal nodes are one object, so comparing two trees
        # stops at their structural nodes (``is``). Otherwise a model built twice compares
        # its chains node by node through every let-binding, once per path: exponential.
        key = (cls, args)
        twin = _INTERNED.get(key)
        if twin is not None:
            return twin
        obj = sympy.Expr.__new__(cls, *args)
        obj.shape, obj.dtype = cls.infer(*args)
        _INTERNED[key] = obj
        return obj

    @classmethod
    def infer(cls, *args):  # pragma: no cover - every subclass overrides it
        """The shape rule: ``(shape, dtype)`` of the node built from ``args``.

        Parameters
        ----------
        *args : sympy.Basic
            The node's args (operands and static attributes).

        Returns
        -------
        tuple
            ``(shape, dtype)``.

        Raises
        ------
        ShapeError
            When the operands do not fit the op (the message names op, operand and shape).
        """
        raise NotImplementedError

    def vjp(self, g):  # pragma: no cover - every subclass overrides it
        """The vector-Jacobian product: the adjoint of each operand given this node's.

        Parameters
        ----------
        g : sympy.Expr
            The adjoint of this node, of its full shape.

        Returns
        -------
        list
            One entry per operand position: an adjoint expression, or ``None`` for none.
        """
        raise NotImplementedError(f"{self.op_name} has no vector-Jacobian rule")

    def operand_exprs(self) -> list:
        """The tensor operands, in the order of ``operands`` (static attributes left out)."""
        return [self.args[i] for i in self.operands]

    def consumes_raw(self, arg) -> bool:
        """Whether this op prints a better form from an operand's expression than its value.

        Parameters
        ----------
        arg : sympy.Expr
            One of the operand expressions.

        Returns
        -------
        bool
            True when the code generator should leave ``arg`` unevaluated and let this op
            print it (the base class: never).
        """
        return False

    def _eval_derivative(self, s):
        raise TypeError(
            f"sympy.diff cannot see through symgrad's {self.op_name!r}; use symgrad.grad")

    def _sympystr(self, printer):
        from sympy.printing.precedence import PRECEDENCE
        # a sum or product operand needs parentheses before x[...], x.T or "@"
        return self.formula([printer.parenthesize(a, PRECEDENCE["Pow"])
                             for a in self.operand_exprs()])

    def formula(self, ops: list) -> str:
        """A readable formula, given the printed operands (overridden for nicer forms).

        Parameters
        ----------
        ops : list of str
            The printed operands.

        Returns
        -------
        str
            ``op_name(op1, ..., attr1, ...)`` unless a subclass prints it better.
        """
        extra = [str(a) for i, a in enumerate(self.args) if i not in self.operands]
        return f"{self.op_name}({', '.join(list(ops) + extra)})"


#: every live structural node by (class, args); see TensorOp.__new__
_INTERNED: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
# emptied before the interpreter tears modules down: a removal callback then would hash
# SymPy numbers after their imports are gone (noise on stderr at exit)
atexit.register(_INTERNED.clear)


# ---------------------------------------------------------------------------------------
# Shape and dtype inference
# ---------------------------------------------------------------------------------------

_INFO_CACHE: dict = {}
_INFO_CACHE_LIMIT = 200_000

BOOL = np.dtype(bool)


def _combine_dtypes(dtypes: list) -> Optional[np.dtype]:
    concrete = [d for d in dtypes if d is not None]
    if not concrete:
        return None
    return np.result_type(*concrete)


def _leaf_info(expr):
    if isinstance(expr, TensorSymbol):
        return expr.shape, expr.dtype
    if isinstance(expr, TensorOp):
        return expr.shape, expr.dtype
    if isinstance(expr, (sympy.Number, sympy.NumberSymbol, Dim)) or expr.is_Atom:
        return (), None
    return None


def _node_info(expr, child_infos: list):
    """Info of an elementwise node from its children's infos."""
    shapes = [s for s, _ in child_infos]
    name = type(expr).__name__
    try:
        shape = broadcast_shapes(*shapes, op=name)
    except ShapeError as err:
        raise ShapeError(f"{err} in {expr}") from None
    if isinstance(expr, (sympy.core.relational.Relational,
                         sympy.logic.boolalg.BooleanFunction)) or getattr(
                             expr, "returns_bool", False):
        return shape, BOOL
    dtypes = [d for _, d in child_infos]
    if getattr(expr, "dtype_from", None) is not None:  # e.g. where(c, a, b): not from c
        dtypes = [dtypes[i] for i in expr.dtype_from]
    dtype = _combine_dtypes(dtypes)
    if dtype is not None and dtype.kind in "biu" and expr.is_Function:
        dtype = np.result_type(dtype, np.float64)  # exp(int) is a float, as in numpy
    if dtype == BOOL and not isinstance(expr, sympy.Function):
        dtype = np.dtype(np.int64)  # arithmetic on masks, as numpy would do
    return shape, dtype


def info(expr) -> tuple:
    """Shape and dtype of any symgrad/SymPy expression (cached per expression).

    Parameters
    ----------
    expr : sympy.Basic
        A leaf, a structural node or an elementwise expression over them.

    Returns
    -------
    tuple
        ``(shape, dtype)``; dtype ``None`` means a weak (Python) scalar.

    Raises
    ------
    ShapeError
        When the operands of an elementwise node cannot be broadcast together.
    """
    hit = _leaf_info(expr)
    if hit is not None:
        return hit
    hit = _INFO_CACHE.get(expr)
    if hit is not None:
        return hit
    if len(_INFO_CACHE) > _INFO_CACHE_LIMIT:
        _INFO_CACHE.clear()
    return rebuild(expr, _new_info, leaf=_known_info)


def _known_info(expr):
    """Info of a leaf or of a node seen before; ``None`` for a node to work out."""
    return _leaf_info(expr) or _INFO_CACHE.get(expr)


def _new_info(expr, child_infos: tuple):
    found = _INFO_CACHE[expr] = _node_info(expr, child_infos)
    return found


def shape_of(expr) -> tuple:
    """The shape of ``expr`` (see :func:`info`).

    Parameters
    ----------
    expr : sympy.Basic

    Returns
    -------
    tuple
    """
    return info(expr)[0]


def dtype_of(expr) -> Optional[np.dtype]:
    """The dtype of ``expr``, None for a weak scalar (see :func:`info`).

    Parameters
    ----------
    expr : sympy.Basic

    Returns
    -------
    numpy.dtype or None
    """
    return info(expr)[1]


def is_tensor_free(expr) -> bool:
    """Whether ``expr`` holds no tensor leaf and no structural node (a number or a dim).

    An iterative walk that stops at the first tensor (SymPy's ``preorder_traversal`` is a
    recursive generator, one frame per level, and walks a shared subtree once per use).

    Parameters
    ----------
    expr : sympy.Basic

    Returns
    -------
    bool
    """
    seen, stack = set(), [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, (TensorSymbol, TensorOp)):
            return False
        if e in seen:
            continue
        seen.add(e)
        stack.extend(getattr(e, "args", ()))
    return True


def subexpressions(exprs) -> list:
    """Every distinct subexpression of ``exprs``, each once (iterative).

    A region is a DAG: SymPy's ``preorder_traversal``, ``has``, ``replace`` and ``xreplace``
    walk a shared subtree once per use, exponential in the depth of a chain such as
    ``y = sin(y)*0.5 + y``. Walks over whole programs go through here instead.

    Parameters
    ----------
    exprs : iterable of sympy.Basic

    Returns
    -------
    list
        Each subexpression after its own subexpressions.
    """
    return list(post_order(exprs))


def xreplace_dag(expr, rule: dict):
    """``expr.xreplace(rule)``, rebuilding each distinct subexpression once (iterative).

    Parameters
    ----------
    expr : sympy.Basic
    rule : dict
        Subexpression to replacement; a replaced subexpression is not entered.

    Returns
    -------
    sympy.Basic
        ``expr`` itself when nothing changed.
    """
    if not rule:
        return expr

    def rebuilt(e, args):
        changed = any(new is not old for new, old in zip(args, e.args))
        return e.func(*args) if changed else e

    return rebuild(expr, rebuilt, leaf=rule.get)


def describe(expr) -> str:
    """Shape and dtype of ``expr`` for a message: ``(N, 784) float64`` or ``() scalar``.

    Parameters
    ----------
    expr : sympy.Basic

    Returns
    -------
    str
    """
    shape, dtype = info(expr)
    return f"{format_shape(shape)} {dtype if dtype is not None else 'scalar'}"
