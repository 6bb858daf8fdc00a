"""Build stage: the expression type users hold, its leaves, and the node builders.

Users never hold a bare SymPy tree. They hold a :class:`Tensor`: numpy's operators and
methods (``@``, ``.T``, ``[...]``, ``.sum()``, ``.shape``, ``.dtype``) over a SymPy tree
(``.expr``). Shapes are checked here, when the expression is built: a mismatch raises
:class:`~symgrad.shapes.ShapeError` naming the op, the operands and their shapes.

The operations themselves are declared in :mod:`symgrad.ops`, one record each; they build
their nodes with :func:`elementwise_node` and :func:`structural_node`, and the records give
:class:`Tensor` its operators and methods. This module imports no op.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import warnings
import weakref
from typing import Callable, Optional

import numpy as np
import sympy

from .nodes import CONSTANT_VALUES, TensorOp, TensorSymbol, info
from .shapes import as_shape, broadcast_shapes, format_shape

__all__ = ["Tensor", "input", "param", "constant", "as_tensor", "leaf", "elementwise_node",
           "structural_node", "result_dtype", "SymgradWarning", "SharedParameterWarning"]

#: elementwise nesting beyond which a subtree is let-bound (keeps SymPy's recursion shallow)
MAX_ELEMENTWISE_DEPTH = 48
#: nodes of an elementwise subtree written out (a value used twice counts twice) beyond which
#: it is let-bound: sympy.diff, xreplace and the printers walk trees, not DAGs, so a chain
#: that reuses its value (``y = sin(y)*0.5 + y``) would cost 2**depth
MAX_ELEMENTWISE_TREE = 256


def _dtype(d) -> Optional[np.dtype]:
    return None if d is None else np.dtype(d)


class Tensor:
    """A symbolic tensor: a SymPy expression with a shape and a dtype.

    Parameters are never passed directly; use :func:`input`, :func:`param`,
    :func:`constant` or the operations. ``expr`` is the SymPy tree underneath.
    A gradient returned by :func:`symgrad.grad` is a Tensor too; its tree is derived the
    first time it is needed (so a compile that hits the cache never differentiates).
    """

    __slots__ = ("_expr", "_thunk", "shape", "dtype", "depth", "recipe", "tree",
                 "__weakref__")

    # numpy's functions and ufuncs on a Tensor build symgrad ops (``np.tanh(x @ w)``,
    # ``np.sum(t, axis=0)``, ``ndarray + t``), found by the op records' numpy names; an
    # unsupported one raises a TypeError naming it (see :mod:`symgrad.numpy`)
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``np.<ufunc>(..., tensor, ...)``: the symgrad op whose record names the ufunc."""
        from .numpy import array_ufunc
        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """``np.<function>(tensor, ...)``: the symgrad op whose record names the function."""
        from .numpy import array_function
        return array_function(func, types, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        """Refuse conversion to an ndarray: a Tensor has no values until it is run.

        Without this, ``np.array([t1, t2])`` would silently build an object array of
        Tensors (numpy reads a Tensor as a sequence through ``len`` and ``[i]``).
        """
        raise TypeError(f"a symgrad Tensor (shape {format_shape(self.shape)}) cannot become a "
                        f"numpy array: it is symbolic, with no values until compiled and run. "
                        f"To join Tensors use sg.stack([t1, t2]) (or np.stack, which dispatches "
                        f"to it); to get values, sg.compile the expression and call it")

    def __init__(self, expr, shape, dtype, depth: int = 0, thunk: Callable = None,
                 recipe=None, tree: int = 1):
        self._expr = expr
        self._thunk = thunk
        self.shape = tuple(shape)
        self.dtype = _dtype(dtype)
        self.depth = depth
        self.tree = tree  # nodes written out: the cost of SymPy's tree walks (see _wrap)
        self.recipe = recipe

    # -- the tree ------------------------------------------------------------------------
    @property
    def expr(self):
        if self._expr is None:
            self._expr = self._thunk()
            self._thunk = None
        return self._expr

    @property
    def is_lazy(self) -> bool:
        return self._expr is None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self):
        from .shapes import shape_size
        return shape_size(self.shape)

    def __repr__(self) -> str:
        dtype = self.dtype if self.dtype is not None else "scalar"
        return f"Tensor({self}, shape={format_shape(self.shape)}, dtype={dtype})"

    def __str__(self) -> str:
        from .compiler.printer import formula
        return formula(self.expr)

    def __bool__(self):
        raise TypeError("the truth value of a symbolic Tensor is unknown until it is run; "
                        "use sg.where(cond, a, b) for a choice")

    __hash__ = object.__hash__

    # Arithmetic operators, ``@``, ``[...]`` and the methods ``.sum()``, ``.T``, ... come
    # from the op records (:mod:`symgrad.ops`); comparisons give boolean tensors, usable as
    # masks and in sg.where
    def __pos__(self): return self
    def __gt__(self, o): return _compare(">", sympy.StrictGreaterThan, self, o)
    def __ge__(self, o): return _compare(">=", sympy.GreaterThan, self, o)
    def __lt__(self, o): return _compare("<", sympy.StrictLessThan, self, o)
    def __le__(self, o): return _compare("<=", sympy.LessThan, self, o)
    # ``==`` stays identity (Tensors are dict keys): sg.equal(a, b) compares elementwise

    def __invert__(self):
        """``~m``: logical not of a boolean tensor (numpy's ``~`` on a bool array)."""
        if self.dtype != np.dtype(bool):
            raise TypeError(f"~: only a boolean tensor (a comparison) can be inverted, got "
                            f"dtype {self.dtype}")
        from .ops.elementwise import logical_not
        return logical_not(self)

    def __and__(self, o): return _logical("logical_and", self, o)
    def __rand__(self, o): return _logical("logical_and", o, self)
    def __or__(self, o): return _logical("logical_or", self, o)
    def __ror__(self, o): return _logical("logical_or", o, self)
    def __xor__(self, o): return _logical("logical_xor", self, o)
    def __rxor__(self, o): return _logical("logical_xor", o, self)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d Tensor")
        return self.shape[0]


# ---------------------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------------------


def leaf(name, shape, dtype, role, tag="") -> Tensor:
    """A new leaf Tensor (an input, a parameter, a constant, a cotangent placeholder)."""
    if not isinstance(name, str):
        raise TypeError(f"a {role} name must be a str, got {type(name).__name__}")
    shape = as_shape(shape, where=f"{role} {name!r}")
    dtype = np.dtype(dtype)
    sym = TensorSymbol(name, shape, dtype.name, role, tag)
    return Tensor(sym, shape, dtype)


def input(name: str, shape=(), dtype="float64") -> Tensor:
    """A tensor fed at call time. ``shape`` entries are ints or str names of symbolic dims."""
    return leaf(name, shape, dtype, "input")


class SymgradWarning(UserWarning):
    """Base class of the warnings symgrad itself issues about how it is used."""


class SharedParameterWarning(SymgradWarning):
    """Two ``sg.param`` calls made one parameter (same name, shape and dtype)."""


#: the Tensor last returned by sg.param for each leaf, weakly: a second call while it lives
#: warns at once (leaves are SymPy symbols, equal by their args: the two calls are one leaf)
_LIVE_PARAMS: dict = {}
#: every parameter leaf sg.param has made: only a repeat needs the search for live uses
_SEEN_PARAMS: set = set()
#: leaf -> the live structural nodes that read it when sg.param was called again for it
#: (weakly). A graph that reads the leaf through one of these *and* through a node made
#: after the repeat joins the two calls' uses in one model: ``train_step`` warns then.
#: A model rebuilt while the old one lives reuses the old (interned) nodes only: no warning.
_REPEATED_PARAMS: dict = {}


def _forget_param(sym, ref) -> None:
    if _LIVE_PARAMS.get(sym) is ref:
        del _LIVE_PARAMS[sym]


def _direct_readers(roots, wanted) -> dict:
    """``{leaf: [structural nodes or None]}``: for each leaf of ``wanted``, the nearest
    structural nodes (None: the top-level elementwise math) through which ``roots`` read it.
    Walked iteratively; each (subexpression, reader) pair once."""
    found = {}
    seen = set()
    stack = [(r, None) for r in roots]
    while stack:
        e, owner = stack.pop()
        key = (id(e), id(owner))
        if key in seen:
            continue
        seen.add(key)
        if isinstance(e, TensorSymbol):
            if e in wanted:
                found.setdefault(e, []).append(owner)
            continue
        if isinstance(e, TensorOp):
            stack.extend((a, e) for a in e.args)
        else:
            stack.extend((a, owner) for a in e.args)
    return found


def _repeat_warning(name, shape, dtype, where) -> str:
    return (f"sg.param({name!r}, {format_shape(shape)}, {dtype}) was called again while the "
            f"first one {where}: both calls are ONE tensor, trained once. Give each parameter "
            f"its own name, or pass shared=True (or reuse the Tensor) to share it on purpose")


def check_repeated_params(outputs) -> None:
    """Warn (:class:`SharedParameterWarning`) when ``outputs`` read a parameter through uses
    made before *and* after a repeated ``sg.param`` call for it (a ``dense()`` helper called
    twice with one name). Called by ``train_step``."""
    pending = {sym: uses for sym, uses in list(_REPEATED_PARAMS.items()) if len(uses)}
    if not pending:
        return
    roots = [o.expr if isinstance(o, Tensor) else o for o in outputs]
    for sym, readers in _direct_readers(roots, pending).items():
        old = pending[sym]
        # top-level elementwise uses (reader None) are neither: they are never interned
        if any(r is not None and r in old for r in readers) and \
                any(r is not None and r not in old for r in readers):
            warnings.warn(_repeat_warning(sym.name, sym.shape, sym.dtype_name,
                                          "was in use, and this model reads both"),
                          SharedParameterWarning, stacklevel=3)


def _live_readers(sym) -> list:
    """The live structural nodes that read ``sym`` directly (interned weakly in
    :mod:`symgrad.nodes`, so exactly the graphs someone still holds)."""
    from .nodes import _INTERNED
    nodes = list(_INTERNED.values())
    return [n for n in _direct_readers(nodes, {sym}).get(sym, ()) if n is not None]


def param(name: str, shape=(), dtype="float64", shared: bool = False) -> Tensor:
    """A trainable parameter (fed at call time like an input; ``train_step`` updates it).

    A parameter *is* its name, shape and dtype: two calls with the same three make one
    tensor, trained once. To share a weight on purpose, use the same Tensor twice, or pass
    ``shared=True`` to the later call. Otherwise a repeated call warns with
    :class:`SharedParameterWarning` when the first call's Tensor is still alive, and
    ``train_step`` warns when one model reads the parameter through uses made before and
    after the repeat (a ``dense()`` helper called twice with one name would silently train
    one weight). Building a model again, the old one alive or not, does not warn.

    Examples
    --------
    >>> import symgrad as sg
    >>> w = sg.param("w", (3, 3))
    >>> tied = sg.param("w", (3, 3), shared=True)   # the same weight, on purpose
    >>> tied.expr == w.expr
    True
    """
    t = leaf(name, shape, dtype, "param")
    sym = t.expr
    if not shared and sym in _SEEN_PARAMS:
        ref = _LIVE_PARAMS.get(sym)
        if ref is not None and ref() is not None:
            warnings.warn(_repeat_warning(name, t.shape, t.dtype.name, "is still alive"),
                          SharedParameterWarning, stacklevel=2)
        else:
            _REPEATED_PARAMS[sym] = weakref.WeakSet(_live_readers(sym))
    elif shared:
        _REPEATED_PARAMS.pop(sym, None)
    _SEEN_PARAMS.add(sym)
    _LIVE_PARAMS[sym] = weakref.ref(t, functools.partial(_forget_param, sym))
    return t


def constant(value, dtype=None, name: str = "const") -> Tensor:
    """A literal array, embedded in the generated module. Python numbers stay weak scalars."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and dtype is None:
        return as_tensor(value)
    arr = np.array(value, dtype=dtype)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"constant: cannot use a value of dtype {arr.dtype}")
    arr = np.array(arr, order="C")  # not ascontiguousarray: it makes a 0-d array 1-d
    arr.setflags(write=False)
    digest = hashlib.sha256(
        arr.dtype.str.encode() + str(arr.shape).encode() + arr.tobytes()).hexdigest()[:24]
    CONSTANT_VALUES[digest] = arr
    return leaf(name, arr.shape, arr.dtype, "constant", tag=digest)


def as_tensor(value) -> Tensor:
    """Python numbers become weak scalars; arrays become constants; Tensors pass through."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, bool):
        return Tensor(sympy.S.true if value else sympy.S.false, (), bool)
    if isinstance(value, (int, np.integer)):
        return Tensor(sympy.Integer(int(value)), (), None)
    if isinstance(value, (float, np.floating)):
        return Tensor(sympy.Float(float(value)), (), None)
    if isinstance(value, (np.ndarray, list, tuple)):
        return constant(value)
    raise TypeError(f"cannot use a {type(value).__name__} in a symgrad expression")


# ---------------------------------------------------------------------------------------
# Node construction
# ---------------------------------------------------------------------------------------


def result_dtype(tensors, float_result=False):
    """The dtype numpy gives an elementwise op of ``tensors`` (None: all weak scalars)."""
    dtypes = [t.dtype for t in tensors if t.dtype is not None]
    if not dtypes:
        return None
    dtype = np.result_type(*dtypes)
    if dtype == np.bool_:
        dtype = np.dtype(np.int64)
    weak_float = builtins.any(t.dtype is None and isinstance(t.expr, sympy.Float)
                              for t in tensors)
    if (float_result or weak_float) and dtype.kind in "biu":
        dtype = np.dtype(np.float64)  # as numpy: a bool or int array times 2.5 is float64
    return dtype


def _wrap(expr, shape, dtype, depth, tree=1) -> Tensor:
    """Wrap a freshly built SymPy node, repairing shapes that SymPy's evaluation collapsed
    (``x - x`` is ``0``) and let-binding trees that grow too deep."""
    if info(expr)[0] != tuple(shape):
        from .ops.shape import BroadcastTo  # the ops import this module
        if expr is sympy.S.true or expr is sympy.S.false:  # a folded comparison (x < x):
            expr = sympy.S.One if expr is sympy.S.true else sympy.S.Zero  # spread as 0/1
        expr = BroadcastTo(expr, shape, dtype)
        depth, tree = 0, 1
    if depth > MAX_ELEMENTWISE_DEPTH or tree > MAX_ELEMENTWISE_TREE:
        from .ops.special import Let
        expr, depth, tree = Let(expr), 0, 1
    return Tensor(expr, shape, dtype, depth, tree=tree)


def _is_truth(expr) -> bool:
    """A SymPy truth value (a comparison, a logical op), which arithmetic cannot take."""
    return isinstance(expr, sympy.logic.boolalg.Boolean) and not isinstance(expr, sympy.Expr)


def _operand(expr, truth: bool):
    """``expr`` as an operand: a truth value in arithmetic becomes a 0/1 mask (no gradient;
    numpy computes the bool array itself), a mask where a truth value is wanted (a where
    condition) becomes the truth value again."""
    from .ops.elementwise import Mask  # the ops import this module
    if truth:
        return expr.args[0] if isinstance(expr, Mask) else expr
    return Mask(expr) if _is_truth(expr) else expr


def elementwise_node(op: str, fn, *operands, float_result=True, dtype=None,
                     truth_args=()) -> Tensor:
    """The Tensor of ``fn(*operand exprs)``, an elementwise op: the operands broadcast
    (an error names ``op``), the dtype is numpy's (a float when ``float_result``).
    Operands at the positions ``truth_args`` are truth values (where's condition, the
    logical ops' operands); a comparison elsewhere is a 0/1 mask (``(x > 0) * x``)."""
    ts = [as_tensor(o) for o in operands]
    shape = broadcast_shapes(*(t.shape for t in ts), op=op)
    if dtype is None:
        dtype = result_dtype(ts, float_result)
    expr = fn(*(_operand(t.expr, i in truth_args) for i, t in enumerate(ts)))
    depth = 1 + builtins.max((t.depth for t in ts), default=0)
    return _wrap(expr, shape, dtype, depth, 1 + builtins.sum(t.tree for t in ts))


def _compare(op, fn, a, b):
    return elementwise_node(f"compare {op}", fn, a, b, dtype=np.dtype(bool))


def _logical(name, a, b):
    """``a & b``, ``a | b``, ``a ^ b`` of boolean tensors (numpy's, on bool arrays)."""
    ta, tb = as_tensor(a), as_tensor(b)
    if ta.dtype != np.dtype(bool) or tb.dtype != np.dtype(bool):
        raise TypeError(f"{name}: &, | and ^ take boolean tensors (comparisons), got dtypes "
                        f"{ta.dtype} and {tb.dtype}")
    from .ops import elementwise
    return getattr(elementwise, name)(ta, tb)


def structural_node(cls, x, *static) -> Tensor:
    """The Tensor of the structural node ``cls(x, *static)``."""
    node = cls(as_tensor(x).expr, *static)
    return Tensor(node, node.shape, node.dtype, 0)
