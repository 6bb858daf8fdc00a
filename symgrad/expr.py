"""Build stage: the expression type users hold, and every public operation.

Users never hold a bare SymPy tree. They hold a :class:`Tensor`: numpy's operators and
methods (``@``, ``.T``, ``[...]``, ``.sum()``, ``.shape``, ``.dtype``) over a SymPy tree
(``.expr``). Shapes are checked here, when the expression is built: a mismatch raises
:class:`~symgrad.shapes.ShapeError` naming the op, the operands and their shapes.

Elementwise math is ordinary SymPy arithmetic on real leaves; everything else is a node
from :mod:`symgrad.ops.structural`. :data:`PUBLIC_OPS` lists every operation a user can call; the test
suite has one spec row per entry and fails when one is missing.
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

from .ops import elementwise as F
from .ops import structural as O
from .nodes import CONSTANT_VALUES, TensorOp, TensorSymbol, info
from .shapes import ShapeError, as_shape, broadcast_shapes, format_shape, normalize_axes

__all__ = [
    "Tensor", "input", "param", "constant", "as_tensor", "PUBLIC_OPS",
    "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "square",
    "sign", "softplus", "log_sigmoid", "maximum", "minimum", "where", "clip",
    "sum", "mean", "max", "transpose", "reshape", "matmul", "broadcast_to", "one_hot",
    "softmax", "log_softmax", "logsumexp", "softmax_cross_entropy",
    "sigmoid_cross_entropy", "l2_loss", "norm", "stop_gradient", "custom_gradient",
]

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
    __array_ufunc__ = None  # numpy defers to our reflected operators: ndarray @ Tensor works

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

    # -- arithmetic ------------------------------------------------------------------------
    def __add__(self, o): return _binary("add", sympy.Add, self, o)
    def __radd__(self, o): return _binary("add", sympy.Add, o, self)
    def __sub__(self, o): return _binary("subtract", _sub, self, o)
    def __rsub__(self, o): return _binary("subtract", _sub, o, self)
    def __mul__(self, o): return _binary("multiply", sympy.Mul, self, o)
    def __rmul__(self, o): return _binary("multiply", sympy.Mul, o, self)
    def __truediv__(self, o): return _binary("divide", _div, self, o)
    def __rtruediv__(self, o): return _binary("divide", _div, o, self)
    def __pow__(self, o): return _binary("power", sympy.Pow, self, o)
    def __rpow__(self, o): return _binary("power", sympy.Pow, o, self)
    def __neg__(self): return _unary("negative", lambda a: -a, self)
    def __pos__(self): return self
    def __abs__(self): return abs(self)
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)

    # comparisons give boolean tensors, usable in sg.where
    def __gt__(self, o): return _compare(">", sympy.StrictGreaterThan, self, o)
    def __ge__(self, o): return _compare(">=", sympy.GreaterThan, self, o)
    def __lt__(self, o): return _compare("<", sympy.StrictLessThan, self, o)
    def __le__(self, o): return _compare("<=", sympy.LessThan, self, o)

    # -- numpy methods ---------------------------------------------------------------------
    @property
    def T(self) -> "Tensor":
        return transpose(self)

    def transpose(self, *axes) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def sum(self, axis=None, keepdims=False) -> "Tensor":
        return sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False) -> "Tensor":
        return mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False) -> "Tensor":
        return max(self, axis, keepdims)

    def __getitem__(self, index) -> "Tensor":
        idx = O.encode_index(index, self.shape)
        return _structural(O.Index, self, idx)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d Tensor")
        return self.shape[0]


def _sub(a, b):
    return a - b


def _div(a, b):
    return a / b


# ---------------------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------------------


def _leaf(name, shape, dtype, role, tag="") -> Tensor:
    if not isinstance(name, str):
        raise TypeError(f"a {role} name must be a str, got {type(name).__name__}")
    shape = as_shape(shape, where=f"{role} {name!r}")
    dtype = np.dtype(dtype)
    sym = TensorSymbol(name, shape, dtype.name, role, tag)
    return Tensor(sym, shape, dtype)


def input(name: str, shape=(), dtype="float64") -> Tensor:
    """A tensor fed at call time. ``shape`` entries are ints or str names of symbolic dims."""
    return _leaf(name, shape, dtype, "input")


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
    t = _leaf(name, shape, dtype, "param")
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
    return _leaf(name, arr.shape, arr.dtype, "constant", tag=digest)


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


def _result_dtype(tensors, float_result=False):
    dtypes = [t.dtype for t in tensors if t.dtype is not None]
    if not dtypes:
        return None
    dtype = np.result_type(*dtypes)
    if dtype == np.bool_:
        dtype = np.dtype(np.int64)
    if float_result and dtype.kind in "biu":
        dtype = np.dtype(np.float64)
    return dtype


def _wrap(expr, shape, dtype, depth, tree=1) -> Tensor:
    """Wrap a freshly built SymPy node, repairing shapes that SymPy's evaluation collapsed
    (``x - x`` is ``0``) and let-binding trees that grow too deep."""
    if info(expr)[0] != tuple(shape):
        expr = O.BroadcastTo(expr, shape, dtype)
        depth, tree = 0, 1
    if depth > MAX_ELEMENTWISE_DEPTH or tree > MAX_ELEMENTWISE_TREE:
        expr, depth, tree = O.Let(expr), 0, 1
    return Tensor(expr, shape, dtype, depth, tree=tree)


def _elementwise(op: str, fn, *operands, float_result=True, dtype=None) -> Tensor:
    ts = [as_tensor(o) for o in operands]
    shape = broadcast_shapes(*(t.shape for t in ts), op=op)
    if dtype is None:
        dtype = _result_dtype(ts, float_result)
    expr = fn(*(t.expr for t in ts))
    depth = 1 + builtins.max((t.depth for t in ts), default=0)
    return _wrap(expr, shape, dtype, depth, 1 + builtins.sum(t.tree for t in ts))


def _unary(op, fn, x, float_result=True):
    return _elementwise(op, fn, x, float_result=float_result)


def _binary(op, fn, a, b):
    ta, tb = as_tensor(a), as_tensor(b)
    float_result = op == "divide" or (op == "power" and tb.dtype is None
                                      and not isinstance(tb.expr, sympy.Integer))
    return _elementwise(op, fn, ta, tb, float_result=float_result)


def _compare(op, fn, a, b):
    return _elementwise(f"compare {op}", fn, a, b, dtype=np.dtype(bool))


def _structural(cls, x, *static) -> Tensor:
    node = cls(as_tensor(x).expr, *static)
    return Tensor(node, node.shape, node.dtype, 0)


# ---------------------------------------------------------------------------------------
# Elementwise operations
# ---------------------------------------------------------------------------------------


def exp(x) -> Tensor:
    """Elementwise e**x."""
    return _unary("exp", sympy.exp, x)


def log(x) -> Tensor:
    """Elementwise natural logarithm."""
    return _unary("log", sympy.log, x)


def sqrt(x) -> Tensor:
    """Elementwise square root."""
    return _unary("sqrt", sympy.sqrt, x)


def sin(x) -> Tensor:
    """Elementwise sine."""
    return _unary("sin", sympy.sin, x)


def cos(x) -> Tensor:
    """Elementwise cosine."""
    return _unary("cos", sympy.cos, x)


def tanh(x) -> Tensor:
    """Elementwise hyperbolic tangent."""
    return _unary("tanh", sympy.tanh, x)


def sigmoid(x) -> Tensor:
    """Elementwise logistic sigmoid 1/(1+exp(-x)), computed without overflow."""
    return _unary("sigmoid", F.sigmoid, x)


def relu(x) -> Tensor:
    """Elementwise max(x, 0); its derivative at 0 is 0 (PyTorch's convention)."""
    return _unary("relu", F.relu, x)


def abs(x) -> Tensor:
    """Elementwise absolute value; its derivative at 0 is 0."""
    return _unary("abs", sympy.Abs, x, float_result=False)


def square(x) -> Tensor:
    """Elementwise x**2."""
    return _unary("square", lambda a: a**2, x, float_result=False)


def sign(x) -> Tensor:
    """Elementwise sign (-1, 0 or 1); its derivative is 0."""
    return _unary("sign", sympy.sign, x, float_result=False)


def softplus(x) -> Tensor:
    """Elementwise log(1 + exp(x)), computed stably as logaddexp(0, x)."""
    return _unary("softplus", F.softplus, x)


def log_sigmoid(x) -> Tensor:
    """Elementwise log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    return -softplus(-as_tensor(x))


def maximum(a, b) -> Tensor:
    """Elementwise maximum (numpy's ``maximum``); ties split the gradient in half."""
    return _elementwise("maximum", F.maximum, a, b, float_result=False)


def minimum(a, b) -> Tensor:
    """Elementwise minimum (numpy's ``minimum``); ties split the gradient in half."""
    return _elementwise("minimum", F.minimum, a, b, float_result=False)


def clip(x, lo, hi) -> Tensor:
    """Elementwise clip to [lo, hi] (constant bounds); gradient 1 inside, 0 outside."""
    lo, hi = float(lo), float(hi)
    return _unary("clip", lambda a: F.clip(a, lo, hi), x, float_result=False)


def where(cond, a, b) -> Tensor:
    """Elementwise choice: ``a`` where ``cond`` holds, else ``b`` (numpy's ``where``)."""
    tc = as_tensor(cond)
    if tc.dtype != np.dtype(bool):
        raise TypeError(f"where: the condition must be boolean (a comparison such as x > 0), "
                        f"got dtype {tc.dtype}")
    ta, tb = as_tensor(a), as_tensor(b)
    shape = broadcast_shapes(tc.shape, ta.shape, tb.shape, op="where")
    dtype = _result_dtype([ta, tb])
    depth = 1 + builtins.max(tc.depth, ta.depth, tb.depth)
    return _wrap(F.where(tc.expr, ta.expr, tb.expr), shape, dtype, depth,
                 1 + tc.tree + ta.tree + tb.tree)


def stop_gradient(x) -> Tensor:
    """Identity forward; no gradient flows through it."""
    return _unary("stop_gradient", F.stop_gradient, x, float_result=False)


# ---------------------------------------------------------------------------------------
# Structural operations
# ---------------------------------------------------------------------------------------


def matmul(a, b) -> Tensor:
    """numpy's ``matmul`` (``a @ b``), including vector and batched cases."""
    ta, tb = as_tensor(a), as_tensor(b)
    node = O.MatMul(ta.expr, tb.expr)
    return Tensor(node, node.shape, node.dtype)


def _reduce(cls, x, axis, keepdims):
    t = as_tensor(x)
    axes = normalize_axes(axis, t.ndim, cls.op_name)
    if not axes and not keepdims:
        return t
    return _structural(cls, t, axes, keepdims)


def sum(x, axis=None, keepdims=False) -> Tensor:
    """Sum over ``axis`` (None: all axes), numpy's ``sum``."""
    return _reduce(O.ReduceSum, x, axis, keepdims)


def mean(x, axis=None, keepdims=False) -> Tensor:
    """Mean over ``axis`` (None: all axes), numpy's ``mean``."""
    t = as_tensor(x)
    axes = normalize_axes(axis, t.ndim, "mean")
    count = sympy.Integer(1)
    for a in axes:
        count = count * t.shape[a]
    return sum(t, axes, keepdims) / Tensor(count, (), None)


def max(x, axis=None, keepdims=False) -> Tensor:
    """Max over ``axis``; ties send the whole gradient to the first maximal element."""
    return _reduce(O.ReduceMax, x, axis, keepdims)


def logsumexp(x, axis=None, keepdims=False) -> Tensor:
    """log(sum(exp(x))) over ``axis``, shifted by the max (never overflows)."""
    return _reduce(O.LogSumExp, x, axis, keepdims)


def transpose(x, axes=None) -> Tensor:
    """numpy's ``transpose``: reverse the axes, or permute them by ``axes``."""
    t = as_tensor(x)
    perm = tuple(reversed(range(t.ndim))) if axes is None else tuple(
        a % t.ndim if isinstance(a, int) and -t.ndim <= a < t.ndim else a for a in axes)
    if perm == tuple(range(t.ndim)):
        return t
    return _structural(O.PermuteDims, t, perm)


def reshape(x, shape) -> Tensor:
    """numpy's ``reshape``; one entry may be -1."""
    t = as_tensor(x)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if builtins.sum(1 for d in shape if isinstance(d, int) and d == -1) > 1:
        raise ShapeError("reshape: only one dimension can be -1")
    if any(isinstance(d, int) and d == -1 for d in shape):
        known = sympy.Integer(1)
        for d in shape:
            if not (isinstance(d, int) and d == -1):
                known = known * as_shape((d,))[0]
        rest = sympy.cancel(t.size / known) if not isinstance(t.size, int) else t.size / known
        if not (getattr(rest, "is_integer", False) or float(rest).is_integer()):
            raise ShapeError(f"reshape: cannot reshape an operand of shape "
                             f"{format_shape(t.shape)} into {shape}")
        rest = int(rest) if not isinstance(rest, sympy.Expr) or rest.is_Number else rest
        shape = tuple(rest if (isinstance(d, int) and d == -1) else d for d in shape)
    shape = as_shape(shape, where="reshape")
    if shape == t.shape:
        return t
    return _structural(O.Reshape, t, shape)


def broadcast_to(x, shape) -> Tensor:
    """numpy's ``broadcast_to``."""
    t = as_tensor(x)
    shape = as_shape(shape, where="broadcast_to")
    node = O.BroadcastTo(t.expr, shape, t.dtype)
    return Tensor(node, node.shape, node.dtype)


def one_hot(labels, depth: int, dtype="float32") -> Tensor:
    """One-hot encode integer ``labels`` along a new last axis of length ``depth``."""
    t = as_tensor(labels)
    return _structural(O.OneHot, t, int(depth), np.dtype(dtype))


# ---------------------------------------------------------------------------------------
# Losses and normalizations (compositions of the above, in their stable forms)
# ---------------------------------------------------------------------------------------


def log_softmax(x, axis=-1) -> Tensor:
    """x - logsumexp(x, axis, keepdims=True): stable for any magnitude of x."""
    t = as_tensor(x)
    return t - logsumexp(t, axis, keepdims=True)


def softmax(x, axis=-1) -> Tensor:
    """exp(log_softmax(x)): shifted by the max, never overflows."""
    return exp(log_softmax(x, axis))


def softmax_cross_entropy(logits, onehot, axis=-1) -> Tensor:
    """Per-example -sum(onehot * log_softmax(logits)) over ``axis`` (TensorFlow's
    ``softmax_cross_entropy_with_logits``); its gradient is softmax - onehot."""
    z, y = as_tensor(logits), as_tensor(onehot)
    broadcast_shapes(z.shape, y.shape, op="softmax_cross_entropy")  # errors name this op
    return -sum(y * log_softmax(z, axis), axis)


def sigmoid_cross_entropy(logits, labels) -> Tensor:
    """Elementwise binary cross-entropy with logits: softplus(x) - x*z, stable for any x."""
    x, z = as_tensor(logits), as_tensor(labels)
    broadcast_shapes(x.shape, z.shape, op="sigmoid_cross_entropy")  # errors name this op
    return softplus(x) - x * z


def l2_loss(x) -> Tensor:
    """sum(x**2) / 2, as TensorFlow's ``l2_loss``."""
    return sum(square(x)) / 2


def norm(x, axis=None, keepdims=False) -> Tensor:
    """The L2 norm sqrt(sum(x**2)) over ``axis``, scaled against underflow and overflow;
    its gradient x / norm is 0 where the norm is 0 (PyTorch's choice)."""
    t = as_tensor(x)
    if not normalize_axes(axis, t.ndim, "norm") and not keepdims:
        return abs(t)  # the norm of single numbers
    return _reduce(O.Norm, t, axis, keepdims)


# ---------------------------------------------------------------------------------------
# User-defined gradients
# ---------------------------------------------------------------------------------------


def custom_gradient(fn: Callable) -> Callable:
    """Decorator: ``fn(*tensors)`` returns ``(y, grad_fn)``; ``grad_fn(dy)`` returns the
    adjoint of each tensor argument (one Tensor, or a list/tuple of them, None for none).

    Example (the straight-through estimator of W2.4)::

        @sg.custom_gradient
        def ste_sign(x):
            def grad(dy):
                return dy * sg.where(sg.abs(x) <= 1, 1.0, 0.0)
            return sg.sign(x), grad
    """

    @functools.wraps(fn)
    def wrapper(*args):
        ts = [as_tensor(a) for a in args]
        y, grad_fn = fn(*ts)
        y = as_tensor(y)
        dy = _leaf(f"d_{fn.__name__}", y.shape, y.dtype or "float64", "cotangent")
        grads = grad_fn(dy)
        if not isinstance(grads, (list, tuple)):
            grads = [grads]
        if len(grads) != len(ts):
            raise ValueError(f"custom_gradient {fn.__name__}: grad_fn returned {len(grads)} "
                             f"gradients for {len(ts)} inputs")
        vjps = []
        for i, (t, g) in enumerate(zip(ts, grads)):
            if g is None:
                vjps.append(sympy.S.Zero)
                continue
            g = as_tensor(g)
            try:
                broadcast_shapes(g.shape, t.shape, op="custom_gradient")
            except ShapeError:
                raise ShapeError(f"custom_gradient {fn.__name__}: gradient {i} has shape "
                                 f"{format_shape(g.shape)}, input {i} has shape "
                                 f"{format_shape(t.shape)}") from None
            vjps.append(g.expr)
        node = O.CustomGradient(y.expr, [t.expr for t in ts], vjps, dy.expr)
        return Tensor(node, y.shape, y.dtype)

    return wrapper


#: every public operation, by name; the test suite needs one spec row for each
PUBLIC_OPS = (
    "add", "subtract", "multiply", "divide", "power", "negative", "matmul",
    "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "square", "sign",
    "softplus", "log_sigmoid", "maximum", "minimum", "where", "clip",
    "sum", "mean", "max", "transpose", "reshape", "index", "broadcast_to", "one_hot",
    "softmax", "log_softmax", "logsumexp", "softmax_cross_entropy", "sigmoid_cross_entropy",
    "l2_loss", "norm", "stop_gradient", "custom_gradient",
)
