"""A reverse-mode, tape-based automatic differentiator over numpy arrays (TensorFlow-style).

This module is the comparison baseline and an independent oracle for the symbolic compiler in
the rest of :mod:`symgrad`, so it shares no code with it: it imports only numpy and the
standard library, and states every vector-Jacobian product (VJP) itself.

How it works. Every operation computes its output value with numpy at once and, when a
:class:`GradientTape` is recording and one of the operands is watched, appends a node to the
tape: the output, the operands, a small named VJP function and the forward values the VJP
needs. :meth:`GradientTape.gradient` walks the recorded nodes iteratively in reverse order of
recording, visiting only nodes that lie on a path from a source to the target, and
accumulates adjoints with ``+=`` into fresh arrays (forward values are never mutated).

What it promises.

* numpy semantics for values: broadcasting, ``matmul`` (vectors, batches), reductions with
  ``axis`` (int, tuple or None, negative allowed) and ``keepdims``, numpy's dtype rules
  (NEP 50: a Python scalar takes the dtype of the array it meets).
* Gradients are plain ndarrays with the shape and dtype of their source; no rule upcasts
  (float32 in, float32 out), which is checked on every accumulation.
* TensorFlow's tape rules: Variables are watched when an op reads them, other tensors only
  through :meth:`GradientTape.watch`; a non-scalar target is differentiated as the sum of its
  elements; a non-persistent tape answers one ``gradient`` call.
* PyTorch's conventions at kinks: d relu(0) = 0, d|x|(0) = 0, d sign = 0, ``maximum`` and
  ``minimum`` split ties 1/2 to each operand, a ``max`` reduction sends the whole gradient to
  the first maximal element in C order.
* Stable forms: sigmoid, softplus, log-sigmoid, softmax, log-softmax, logsumexp and the
  cross-entropies neither overflow nor warn for inputs of magnitude 1e4.
* Shape errors raise ValueError naming the op and the operand shapes.

Gradients are first order only: the backward walk is not itself recorded.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

__all__ = [
    "Tensor", "Variable", "GradientTape", "TensorLike", "constant", "unbroadcast",
    "add", "subtract", "multiply", "divide", "power", "negative", "matmul",
    "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "square",
    "sign", "softplus", "log_sigmoid", "maximum", "minimum", "where",
    "sum", "mean", "max", "transpose", "reshape", "one_hot",
    "softmax", "log_softmax", "logsumexp", "softmax_cross_entropy",
    "sigmoid_cross_entropy", "l2_loss", "norm", "stop_gradient", "custom_gradient",
]


# --------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------

class Tensor:
    """An immutable value produced by an op (or wrapped by :func:`constant`).

    Parameters
    ----------
    value : array_like
        The value; stored as an ndarray (0-d for scalars).
    name : str, optional
        A label used in ``repr``.

    Notes
    -----
    Tensors support numpy's arithmetic operators in both orders with ndarrays and Python
    scalars (``__array_ufunc__ = None`` makes ndarray defer to the reflected operators).
    Comparisons return plain boolean ndarrays and are not recorded. ``==`` is identity, so
    tensors can be dictionary keys.
    """

    # ndarray's binary operators return NotImplemented for us, so Python calls ours.
    __array_ufunc__ = None

    def __init__(self, value: Any, name: Optional[str] = None) -> None:
        self._value = np.asarray(_value_of(value))
        self.name = name

    # -- value and metadata ------------------------------------------------------------------
    @property
    def value(self) -> np.ndarray:
        """The ndarray value (do not mutate it while a tape needs it)."""
        return self._value

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the value."""
        return self._value.shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the value."""
        return self._value.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions of the value."""
        return self._value.ndim

    @property
    def size(self) -> int:
        """The number of elements of the value."""
        return self._value.size

    def numpy(self) -> np.ndarray:
        """Return a copy of the value as an ndarray."""
        return self._value.copy()

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if copy:
            return np.array(self._value, dtype=dtype, copy=True)
        return np.asarray(self._value, dtype=dtype)

    def __repr__(self) -> str:
        label = f", name={self.name!r}" if self.name else ""
        return f"{type(self).__name__}({self._value!r}{label})"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator["Tensor"]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __float__(self) -> float:
        return float(self._value)

    def __int__(self) -> int:
        return int(self._value)

    # -- recorded arithmetic -----------------------------------------------------------------
    def __add__(self, other: TensorLike) -> Tensor:
        return add(self, other)

    def __radd__(self, other: TensorLike) -> Tensor:
        return add(other, self)

    def __sub__(self, other: TensorLike) -> Tensor:
        return subtract(self, other)

    def __rsub__(self, other: TensorLike) -> Tensor:
        return subtract(other, self)

    def __mul__(self, other: TensorLike) -> Tensor:
        return multiply(self, other)

    def __rmul__(self, other: TensorLike) -> Tensor:
        return multiply(other, self)

    def __truediv__(self, other: TensorLike) -> Tensor:
        return divide(self, other)

    def __rtruediv__(self, other: TensorLike) -> Tensor:
        return divide(other, self)

    def __pow__(self, other: TensorLike) -> Tensor:
        return power(self, other)

    def __rpow__(self, other: TensorLike) -> Tensor:
        return power(other, self)

    def __matmul__(self, other: TensorLike) -> Tensor:
        return matmul(self, other)

    def __rmatmul__(self, other: TensorLike) -> Tensor:
        return matmul(other, self)

    def __neg__(self) -> Tensor:
        return negative(self)

    def __abs__(self) -> Tensor:
        return abs(self)

    # -- comparisons: plain boolean arrays, never recorded ----------------------------------
    def __gt__(self, other: TensorLike) -> np.ndarray:
        return self._value > _value_of(other)

    def __lt__(self, other: TensorLike) -> np.ndarray:
        return self._value < _value_of(other)

    def __ge__(self, other: TensorLike) -> np.ndarray:
        return self._value >= _value_of(other)

    def __le__(self, other: TensorLike) -> np.ndarray:
        return self._value <= _value_of(other)

    # -- structural methods ------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Tensor:
        return _getitem(self, key)

    @property
    def T(self) -> Tensor:
        """The transpose (axes reversed)."""
        return transpose(self)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis``; see :func:`sum`."""
        return sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis``; see :func:`mean`."""
        return mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; see :func:`max`."""
        return max(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        """Reshape, accepting ``reshape(2, 3)`` or ``reshape((2, 3))`` like numpy."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def transpose(self, *axes: Any) -> Tensor:
        """Permute axes, accepting ``transpose(1, 0)``, ``transpose((1, 0))`` or no axes."""
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = axes[0] if axes[0] is None else tuple(axes[0])
        return transpose(self, axes if axes != () else None)


class Variable(Tensor):
    """A trainable, mutable tensor; tapes watch it when an op reads it.

    Parameters
    ----------
    initial_value : array_like
        The initial value; copied, so later assignments never touch the caller's array.
    name : str, optional
        A label (default ``"Variable"``).
    dtype : dtype, optional
        The dtype to store (default: numpy's choice for ``initial_value``).
    trainable : bool, default True
        Only trainable variables are watched automatically.

    Notes
    -----
    ``assign``, ``assign_add`` and ``assign_sub`` update the stored array in place, keeping
    its shape and dtype. Ops recorded on a tape refer to that array, so assign only after the
    gradients of that tape have been taken.
    """

    def __init__(self, initial_value: Any, name: Optional[str] = None, dtype: Any = None,
                 trainable: bool = True) -> None:
        super().__init__(np.array(_value_of(initial_value), dtype=dtype, copy=True),
                         name=name or "Variable")
        self.trainable = trainable

    def _update(self, op: str, value: Any, ufunc: Optional[np.ufunc]) -> "Variable":
        value = np.asarray(_value_of(value))
        try:
            np.broadcast_to(value, self.shape)
        except ValueError:
            raise ValueError(f"{op}: value of shape {value.shape} does not fit variable "
                             f"{self.name!r} of shape {self.shape}") from None
        if ufunc is None:
            np.copyto(self._value, value, casting="same_kind")
        else:
            ufunc(self._value, value, out=self._value, casting="same_kind")
        return self

    def assign(self, value: TensorLike) -> "Variable":
        """Overwrite the value in place; returns the variable."""
        return self._update("assign", value, None)

    def assign_add(self, delta: TensorLike) -> "Variable":
        """Add ``delta`` in place; returns the variable."""
        return self._update("assign_add", delta, np.add)

    def assign_sub(self, delta: TensorLike) -> "Variable":
        """Subtract ``delta`` in place; returns the variable."""
        return self._update("assign_sub", delta, np.subtract)


TensorLike = Union[Tensor, np.ndarray, np.generic, float, int, bool]


def constant(value: Any, dtype: Any = None, name: Optional[str] = None) -> Tensor:
    """Wrap a copy of ``value`` as an (unwatched) tensor.

    Parameters
    ----------
    value : array_like
        The value.
    dtype : dtype, optional
        The dtype to store.
    name : str, optional
        A label.

    Returns
    -------
    Tensor
    """
    return Tensor(np.array(_value_of(value), dtype=dtype, copy=True), name=name)


def _value_of(x: Any) -> Any:
    """The ndarray behind a tensor; anything else unchanged."""
    return x._value if isinstance(x, Tensor) else x


def _is_python_scalar(x: Any) -> bool:
    # numpy's float64 subclasses float, but numpy scalars are "strong" under NEP 50.
    return isinstance(x, (bool, int, float, complex)) and not isinstance(x, np.generic)


def _as_tensor(x: TensorLike) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _as_tensors(*operands: TensorLike) -> tuple[Tensor, ...]:
    """Convert operands to tensors, giving each Python scalar the dtype numpy 2 would.

    Under NEP 50 a Python scalar is "weak": ``float32_array * 2.0`` is float32. Wrapping the
    scalar in a 0-d float64 array would make it strong and upcast, so it is first converted
    to the dtype it would take against the other operands.
    """
    arrays = [np.asarray(_value_of(x)) for x in operands if not _is_python_scalar(x)]
    out = []
    for x in operands:
        if _is_python_scalar(x) and arrays:
            out.append(Tensor(np.asarray(x, dtype=np.result_type(*arrays, x))))
        else:
            out.append(_as_tensor(x))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Node:
    """One recorded op: ``vjp(adjoint_of_output, *saved)`` returns one gradient per input."""

    op: str
    output: Tensor
    inputs: tuple[Tensor, ...]
    vjp: Callable[..., Any]
    saved: tuple[Any, ...]


class _State(threading.local):
    """Per-thread recording state: the tapes inside a ``with`` block, and a global pause."""

    def __init__(self) -> None:
        self.tapes: list[GradientTape] = []
        self.paused = 0


_STATE = _State()


@contextlib.contextmanager
def _pause_all_tapes() -> Iterator[None]:
    _STATE.paused += 1
    try:
        yield
    finally:
        _STATE.paused -= 1


def _record(op: str, value: Any, inputs: Sequence[Tensor], vjp: Callable[..., Any],
            saved: tuple[Any, ...]) -> Tensor:
    """Wrap ``value`` as the output of ``op`` and record it on every tape that watches an input.

    ``saved`` holds what ``vjp`` needs besides the output adjoint (forward values, shapes).
    """
    out = Tensor(value)
    if _STATE.paused or not _STATE.tapes:
        return out
    node = None
    for tape in _STATE.tapes:
        if tape._paused:
            continue
        if tape._watch_accessed_variables:
            for t in inputs:
                if isinstance(t, Variable) and t.trainable:
                    tape._track(t)
        if builtins.any(id(t) in tape._tracked for t in inputs):
            if node is None:
                node = _Node(op, out, tuple(inputs), vjp, saved)
            tape._nodes.append(node)
            tape._track(out)
    return out


# --------------------------------------------------------------------------------------------
# The tape
# --------------------------------------------------------------------------------------------

class GradientTape:
    """Records ops on watched tensors so their gradients can be taken, like TensorFlow's.

    Parameters
    ----------
    persistent : bool, default False
        Allow several :meth:`gradient` calls; a non-persistent tape answers one.
    watch_accessed_variables : bool, default True
        Watch every trainable :class:`Variable` an op reads while recording.

    Examples
    --------
    >>> w = Variable(np.array([2.0, 3.0]))
    >>> with GradientTape() as t:
    ...     loss = sum(square(w))
    >>> t.gradient(loss, w)
    array([4., 6.])
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True) -> None:
        self.persistent = persistent
        self._watch_accessed_variables = watch_accessed_variables
        self._nodes: list[_Node] = []
        # id -> tensor; holding the tensor keeps its id from being reused while recorded.
        self._tracked: dict[int, Tensor] = {}
        self._paused = 0
        self._used = False

    def __enter__(self) -> "GradientTape":
        if self in _STATE.tapes:
            raise RuntimeError("GradientTape: this tape is already recording")
        _STATE.tapes.append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _STATE.tapes.remove(self)

    def _track(self, t: Tensor) -> None:
        self._tracked[id(t)] = t

    def watch(self, tensor: Any) -> None:
        """Watch a tensor, or every tensor in a (nested) list, tuple or dict.

        Parameters
        ----------
        tensor : Tensor or list or tuple or dict of Tensor
            What to watch. Plain ndarrays cannot be watched: wrap them with :func:`constant`.
        """
        for t in _flatten(tensor):
            if not isinstance(t, Tensor):
                raise TypeError(f"watch: expected a Tensor or Variable, got {type(t).__name__}; "
                                f"wrap arrays with tape.constant(...) first")
            self._track(t)

    def watched_variables(self) -> tuple[Variable, ...]:
        """The variables this tape watches, in the order they were first watched."""
        return tuple(t for t in self._tracked.values() if isinstance(t, Variable))

    @contextlib.contextmanager
    def stop_recording(self) -> Iterator[None]:
        """Context manager inside which ops are not recorded on this tape."""
        if self not in _STATE.tapes:
            raise RuntimeError("stop_recording: the tape is not recording "
                               "(call it inside the tape's `with` block)")
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def reset(self) -> None:
        """Forget everything recorded and watched so far."""
        self._nodes = []
        self._tracked = {}
        self._used = False

    def gradient(self, target: Any, sources: Any, output_gradients: Any = None,
                 unconnected_gradients: str = "zero") -> Any:
        """Gradients of ``target`` with respect to ``sources``.

        Parameters
        ----------
        target : Tensor or list of Tensor
            What to differentiate; gradients of several targets are summed. A non-scalar
            target counts as the sum of its elements unless ``output_gradients`` is given.
        sources : Tensor or (nested) list, tuple or dict of Tensor
            What to differentiate with respect to; the result has the same structure.
        output_gradients : array_like or list, optional
            The adjoint of each target (a list of the same length when ``target`` is a list,
            entries may be None); default all ones.
        unconnected_gradients : {"zero", "none"}
            What to return for a source the target does not depend on (or that is not
            watched): zeros of its shape and dtype, or None.

        Returns
        -------
        ndarray or None, in the structure of ``sources``
            Each gradient has its source's shape and dtype.

        Raises
        ------
        RuntimeError
            On a second call of a non-persistent tape.
        """
        if unconnected_gradients not in ("zero", "none"):
            raise ValueError(f"gradient: unconnected_gradients must be 'zero' or 'none', "
                             f"got {unconnected_gradients!r}")
        if self._used and not self.persistent:
            raise RuntimeError("GradientTape.gradient can only be called once on a "
                               "non-persistent tape; create it with "
                               "GradientTape(persistent=True) to take several gradients")
        flat_sources = _flatten(sources)
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(f"gradient: sources must be Tensors or Variables, "
                                f"got {type(s).__name__}")
        targets, seeds = self._seeds(target, output_gradients)
        self._used = True
        with _pause_all_tapes():
            adjoints = self._backward(targets, seeds, flat_sources)
        if not self.persistent:
            self._nodes, self._tracked = [], {}

        results: list[Optional[np.ndarray]] = []
        returned: set[int] = set()
        for s in flat_sources:
            g = adjoints.get(id(s))
            if g is None:
                g = np.zeros(s.shape, s.dtype) if unconnected_gradients == "zero" else None
            elif id(g) in returned:
                g = g.copy()  # the same source listed twice gets two independent arrays
            if g is not None:
                returned.add(id(g))
            results.append(g)
        return _pack(sources, iter(results))

    def _seeds(self, target: Any, output_gradients: Any
               ) -> tuple[list[Tensor], list[np.ndarray]]:
        """The targets as tensors, and a fresh adjoint array for each."""
        if isinstance(target, (list, tuple)):
            targets = [_as_tensor(t) for t in target]
            if output_gradients is None:
                given = [None] * len(targets)
            elif (not isinstance(output_gradients, (list, tuple))
                  or len(output_gradients) != len(targets)):
                raise ValueError(f"gradient: output_gradients must be a list with one entry "
                                 f"per target ({len(targets)})")
            else:
                given = list(output_gradients)
        else:
            targets, given = [_as_tensor(target)], [output_gradients]
        seeds = []
        for k, (t, og) in enumerate(zip(targets, given)):
            dtype = t.dtype if np.issubdtype(t.dtype, np.inexact) else np.float64
            if og is None:
                # TensorFlow's rule: a non-scalar target is the sum of its elements.
                seeds.append(np.ones(t.shape, dtype))
                continue
            og = np.asarray(_value_of(og))
            if og.shape != t.shape:
                raise ValueError(f"gradient: output_gradients[{k}] has shape {og.shape} but "
                                 f"its target has shape {t.shape}")
            seeds.append(np.array(og, dtype=dtype, copy=True))
        return targets, seeds

    def _backward(self, targets: list[Tensor], seeds: list[np.ndarray],
                  sources: list[Tensor]) -> dict[int, np.ndarray]:
        """Iterative reverse sweep; returns the adjoints of the sources keyed by ``id``."""
        # Forward pass over the record: which tensors depend on a watched source. Only those
        # ever receive an adjoint, so the reverse sweep visits exactly the nodes that lie on a
        # path from a source to a target.
        reach = {id(s) for s in sources if id(s) in self._tracked}
        for node in self._nodes:
            if builtins.any(id(t) in reach for t in node.inputs):
                reach.add(id(node.output))

        adjoints: dict[int, np.ndarray] = {}
        for t, seed in zip(targets, seeds):
            if id(t) in reach:
                _accumulate(adjoints, t, seed, "gradient")
        keep = {id(s) for s in sources}
        # Reverse order of recording is a reverse topological order, so a node's output
        # adjoint is complete when the node is reached.
        for node in reversed(self._nodes):
            key = id(node.output)
            # a source's adjoint is kept for the caller; others are dropped once used
            g = adjoints.get(key) if key in keep else adjoints.pop(key, None)
            if g is None:
                continue  # not on a path from a source to a target
            grads = node.vjp(g, *node.saved)
            if not isinstance(grads, tuple):
                grads = (grads,)
            for t, gi in zip(node.inputs, grads):
                if gi is not None and id(t) in reach:
                    _check_no_upcast(node, t, gi)
                    _accumulate(adjoints, t, gi, node.op)
        return adjoints


def _accumulate(adjoints: dict[int, np.ndarray], t: Tensor, g: Any, op: str) -> None:
    """``adjoints[t] += g``, the first contribution copied into a fresh array."""
    g = np.asarray(g)
    if g.shape != t.shape:
        raise ValueError(f"{op}: gradient of shape {g.shape} for an operand of shape {t.shape}")
    # A float32 operand of a float64 op (mixed inputs) gets its gradient in float32.
    dtype = t.dtype if np.issubdtype(t.dtype, np.inexact) else g.dtype
    current = adjoints.get(id(t))
    if current is None:
        adjoints[id(t)] = np.array(g, dtype=dtype, copy=True)
    else:
        current += g.astype(dtype, copy=False)


def _check_no_upcast(node: _Node, t: Tensor, g: np.ndarray) -> None:
    """Guard the dtype promise: a VJP may not widen past the dtypes of its op."""
    allowed = np.promote_types(node.output.dtype, t.dtype)
    if np.promote_types(allowed, g.dtype) != allowed:
        raise RuntimeError(f"internal error: the VJP of {node.op} returned {g.dtype} for an "
                           f"operand of dtype {t.dtype} (output {node.output.dtype})")


def _flatten(structure: Any) -> list[Any]:
    """Leaves of a nested list/tuple/dict, in order (dicts in insertion order)."""
    if isinstance(structure, dict):
        return [leaf for v in structure.values() for leaf in _flatten(v)]
    if isinstance(structure, (list, tuple)):
        return [leaf for v in structure for leaf in _flatten(v)]
    return [structure]


def _pack(structure: Any, leaves: Iterator[Any]) -> Any:
    """Rebuild ``structure`` with its leaves replaced, in :func:`_flatten`'s order."""
    if isinstance(structure, dict):
        return {k: _pack(v, leaves) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(_pack(v, leaves) for v in structure)
    return next(leaves)


# --------------------------------------------------------------------------------------------
# Helpers shared by the rules
# --------------------------------------------------------------------------------------------

def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes broadcasting added, so it takes ``shape``.

    The adjoint of ``broadcast_to(a, s)`` is a sum over the new leading axes and over the
    axes where ``a`` had length 1.

    Parameters
    ----------
    grad : ndarray
        A gradient of the broadcast shape.
    shape : tuple of int
        The operand's shape (which broadcasts to ``grad.shape``).

    Returns
    -------
    ndarray
        Of shape ``shape``, possibly ``grad`` itself.
    """
    grad = np.asarray(grad)
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    if lead > 0:
        grad = grad.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    # sigmoid(x) = 1/(1+exp(-x)) = exp(-log(1+exp(-x))); logaddexp never overflows.
    return np.exp(-np.logaddexp(0, -x))


def _normalize_axes(op: str, axis: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``axis`` (None, int or tuple, negatives allowed) as sorted non-negative axes."""
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got {axis!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of bounds for an operand of shape {shape}")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def _normalize_axis(op: str, axis: Any, shape: tuple[int, ...]) -> int:
    """A single axis (negatives allowed) as a non-negative int."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    return _normalize_axes(op, axis, shape)[0]


def _restore_axes(g: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Put back the reduced axes (as length 1) that ``keepdims=False`` dropped."""
    return g if keepdims else np.expand_dims(g, axes)


def _broadcast_shapes(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = ", ".join(str(s) for s in shapes[:-1]) + f" and {shapes[-1]}"
        raise ValueError(f"{op}: operands of shape {listed} do not broadcast") from None


# --------------------------------------------------------------------------------------------
# Elementwise unary ops: name -> (forward, vjp(g, x, y), doc)
# --------------------------------------------------------------------------------------------

def _relu_forward(x):
    return np.maximum(x, 0)


def _softplus_forward(x):
    return np.logaddexp(0, x)  # log(1 + e^x) without overflow


def _log_sigmoid_forward(x):
    return -np.logaddexp(0, -x)  # log sigmoid(x) = -softplus(-x)


def _negative_vjp(g, x, y):
    return -g


def _exp_vjp(g, x, y):
    return g * y  # d/dx exp(x) = exp(x)


def _log_vjp(g, x, y):
    return g / x  # d/dx log(x) = 1/x


def _sqrt_vjp(g, x, y):
    return g / (2 * y)  # d/dx sqrt(x) = 1/(2 sqrt(x))


def _sin_vjp(g, x, y):
    return g * np.cos(x)


def _cos_vjp(g, x, y):
    return -g * np.sin(x)


def _tanh_vjp(g, x, y):
    return g * (1 - y * y)  # d/dx tanh(x) = 1 - tanh(x)^2


def _sigmoid_vjp(g, x, y):
    return g * y * (1 - y)  # s' = s (1 - s)


def _relu_vjp(g, x, y):
    return g * (x > 0)  # PyTorch: d relu(0) = 0


def _abs_vjp(g, x, y):
    return g * np.sign(x)  # d|x| = sign(x), 0 at 0


def _square_vjp(g, x, y):
    return g * (2 * x)


def _sign_vjp(g, x, y):
    return np.zeros(np.shape(x), dtype=g.dtype)  # piecewise constant: d sign = 0


def _softplus_vjp(g, x, y):
    return g * _stable_sigmoid(x)  # d/dx log(1 + e^x) = sigmoid(x)


def _log_sigmoid_vjp(g, x, y):
    return g * _stable_sigmoid(-x)  # d/dx -log(1 + e^-x) = sigmoid(-x)


_UNARY: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[..., Any], str]] = {
    "negative": (np.negative, _negative_vjp, "Elementwise -x."),
    "exp": (np.exp, _exp_vjp, "Elementwise e**x."),
    "log": (np.log, _log_vjp, "Elementwise natural logarithm."),
    "sqrt": (np.sqrt, _sqrt_vjp, "Elementwise square root."),
    "sin": (np.sin, _sin_vjp, "Elementwise sine."),
    "cos": (np.cos, _cos_vjp, "Elementwise cosine."),
    "tanh": (np.tanh, _tanh_vjp, "Elementwise hyperbolic tangent."),
    "sigmoid": (_stable_sigmoid, _sigmoid_vjp,
                "Elementwise logistic 1/(1+exp(-x)), computed as exp(-logaddexp(0, -x))."),
    "relu": (_relu_forward, _relu_vjp, "Elementwise max(x, 0); d relu(0) = 0."),
    "abs": (np.abs, _abs_vjp, "Elementwise |x|; d|x|(0) = 0."),
    "square": (np.square, _square_vjp, "Elementwise x**2."),
    "sign": (np.sign, _sign_vjp, "Elementwise sign (-1, 0, 1); its gradient is 0."),
    "softplus": (_softplus_forward, _softplus_vjp,
                 "Elementwise log(1 + exp(x)), computed as logaddexp(0, x)."),
    "log_sigmoid": (_log_sigmoid_forward, _log_sigmoid_vjp,
                    "Elementwise log(sigmoid(x)) = -softplus(-x)."),
}


def _make_unary(name: str) -> Callable[[TensorLike], Tensor]:
    forward, vjp, doc = _UNARY[name]

    def op(x: TensorLike) -> Tensor:
        x = _as_tensor(x)
        y = forward(x.value)
        return _record(name, y, (x,), vjp, (x.value, y))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"{doc}\n\n    Parameters\n    ----------\n    x : TensorLike\n\n"
                  f"    Returns\n    -------\n    Tensor\n    ")
    return op


negative = _make_unary("negative")
exp = _make_unary("exp")
log = _make_unary("log")
sqrt = _make_unary("sqrt")
sin = _make_unary("sin")
cos = _make_unary("cos")
tanh = _make_unary("tanh")
sigmoid = _make_unary("sigmoid")
relu = _make_unary("relu")
abs = _make_unary("abs")
square = _make_unary("square")
sign = _make_unary("sign")
softplus = _make_unary("softplus")
log_sigmoid = _make_unary("log_sigmoid")


# --------------------------------------------------------------------------------------------
# Elementwise binary ops with broadcasting: name -> (forward, vjp(g, a, b, y), doc)
# --------------------------------------------------------------------------------------------

def _add_vjp(g, a, b, y):
    return unbroadcast(g, a.shape), unbroadcast(g, b.shape)


def _subtract_vjp(g, a, b, y):
    return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)


def _multiply_vjp(g, a, b, y):
    return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)


def _divide_vjp(g, a, b, y):
    # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -y/b
    return unbroadcast(g / b, a.shape), unbroadcast(-g * y / b, b.shape)


def _power_vjp(g, a, b, y):
    # d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log(a), taken as 0 where a <= 0 (the real
    # power is not differentiable in b there; PyTorch also gives 0 at a = 0).
    ga = g * b * a ** (b - 1)
    positive = a > 0
    log_a = np.log(np.where(positive, a, 1))
    gb = g * np.where(positive, y * log_a, 0)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _maximum_vjp(g, a, b, y):
    # PyTorch: at a tie each operand gets half the gradient.
    half = g * 0.5
    ga = g * (a > b) + half * (a == b)
    gb = g * (b > a) + half * (a == b)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _minimum_vjp(g, a, b, y):
    half = g * 0.5
    ga = g * (a < b) + half * (a == b)
    gb = g * (b < a) + half * (a == b)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _sigmoid_cross_entropy_forward(x, z):
    # max(x, 0) - x z + log(1 + exp(-|x|)) = log(1 + e^x) - x z without overflow.
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_cross_entropy_vjp(g, x, z, y):
    # d/dx = sigmoid(x) - z, d/dz = -x
    return unbroadcast(g * (_stable_sigmoid(x) - z), x.shape), unbroadcast(-g * x, z.shape)


_BINARY: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray],
                         Callable[..., Any], str]] = {
    "add": (np.add, _add_vjp, "Elementwise a + b, broadcasting like numpy."),
    "subtract": (np.subtract, _subtract_vjp, "Elementwise a - b, broadcasting like numpy."),
    "multiply": (np.multiply, _multiply_vjp, "Elementwise a * b, broadcasting like numpy."),
    "divide": (np.divide, _divide_vjp, "Elementwise a / b, broadcasting like numpy."),
    "power": (np.power, _power_vjp,
              "Elementwise a ** b; the gradient in b is taken as 0 where a <= 0."),
    "maximum": (np.maximum, _maximum_vjp,
                "Elementwise maximum; at ties each operand gets half the gradient."),
    "minimum": (np.minimum, _minimum_vjp,
                "Elementwise minimum; at ties each operand gets half the gradient."),
    "sigmoid_cross_entropy": (
        _sigmoid_cross_entropy_forward, _sigmoid_cross_entropy_vjp,
        "Elementwise logistic loss of ``logits`` against ``labels`` in [0, 1] (TensorFlow's\n"
        "    sigmoid_cross_entropy_with_logits): max(x, 0) - x*z + log(1 + exp(-|x|))."),
}


def _make_binary(name: str) -> Callable[[TensorLike, TensorLike], Tensor]:
    forward, vjp, doc = _BINARY[name]

    def op(a: TensorLike, b: TensorLike) -> Tensor:
        a, b = _as_tensors(a, b)
        _broadcast_shapes(name, a.shape, b.shape)
        y = forward(a.value, b.value)
        return _record(name, y, (a, b), vjp, (a.value, b.value, y))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"{doc}\n\n    Parameters\n    ----------\n    a, b : TensorLike\n\n"
                  f"    Returns\n    -------\n    Tensor\n    ")
    return op


add = _make_binary("add")
subtract = _make_binary("subtract")
multiply = _make_binary("multiply")
divide = _make_binary("divide")
power = _make_binary("power")
maximum = _make_binary("maximum")
minimum = _make_binary("minimum")
_sigmoid_cross_entropy = _make_binary("sigmoid_cross_entropy")


def sigmoid_cross_entropy(logits: TensorLike, labels: TensorLike) -> Tensor:
    """Elementwise logistic loss, like TensorFlow's ``sigmoid_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : TensorLike
        Unnormalized log-odds ``x``.
    labels : TensorLike
        Targets ``z`` in [0, 1]; broadcast against ``logits``.

    Returns
    -------
    Tensor
        ``max(x, 0) - x*z + log(1 + exp(-|x|))``; its gradients are ``sigmoid(x) - z`` in
        the logits and ``-x`` in the labels.
    """
    return _sigmoid_cross_entropy(logits, labels)


def _where_vjp(g, cond, a_shape, b_shape):
    zero = np.zeros((), g.dtype)
    return (unbroadcast(np.where(cond, g, zero), a_shape),
            unbroadcast(np.where(cond, zero, g), b_shape))


def where(cond: Any, a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise ``a`` where ``cond`` else ``b``, broadcasting all three.

    Parameters
    ----------
    cond : array_like of bool
        The selector (a Tensor is read as its value; it gets no gradient).
    a, b : TensorLike
        The choices.

    Returns
    -------
    Tensor
    """
    cond = np.asarray(_value_of(cond), dtype=bool)
    a, b = _as_tensors(a, b)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: condition of shape {cond.shape} and operands of shape "
                         f"{a.shape} and {b.shape} do not broadcast") from None
    y = np.where(cond, a.value, b.value)
    return _record("where", y, (a, b), _where_vjp, (cond, a.shape, b.shape))


# --------------------------------------------------------------------------------------------
# matmul
# --------------------------------------------------------------------------------------------

def _matmul_vjp(g, a, b):
    # For matrices C = A B: dA = G B^T, dB = A^T G. Vectors are promoted as numpy does
    # (a (k,) -> (1, k), b (k,) -> (k, 1)); batch axes are summed back by unbroadcast.
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a.ndim == 1 and b.ndim == 1:
        g2 = g.reshape(1, 1)
    elif a.ndim == 1:
        g2 = g[..., None, :]
    elif b.ndim == 1:
        g2 = g[..., :, None]
    else:
        g2 = g
    ga = g2 @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a2, -1, -2) @ g2
    return unbroadcast(ga, a2.shape).reshape(a.shape), unbroadcast(gb, b2.shape).reshape(b.shape)


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """Matrix product with numpy's rules (vectors promoted, batch axes broadcast).

    Parameters
    ----------
    a, b : TensorLike
        Operands of at least one dimension.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        If an operand is 0-d, the contracted lengths differ or the batch axes do not
        broadcast.
    """
    a, b = _as_tensors(a, b)
    sa, sb = a.shape, b.shape
    if not sa or not sb:
        raise ValueError(f"matmul: operands of shape {sa} and {sb}: 0-d operands are not "
                         f"allowed (use multiply)")
    ka, kb = sa[-1], (sb[-2] if len(sb) >= 2 else sb[0])
    if ka != kb:
        raise ValueError(f"matmul: operands of shape {sa} and {sb} do not align ({ka} != {kb})")
    try:
        np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of operands of shape {sa} and {sb} "
                         f"do not broadcast") from None
    y = np.matmul(a.value, b.value)
    return _record("matmul", y, (a, b), _matmul_vjp, (a.value, b.value))


# --------------------------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------------------------

def _sum_vjp(g, shape, axes, keepdims):
    # every summed element receives the adjoint of its sum
    return np.broadcast_to(_restore_axes(g, axes, keepdims), shape)


def _mean_vjp(g, shape, axes, keepdims):
    count = math.prod(shape[ax] for ax in axes)  # a Python int: no dtype promotion
    return np.broadcast_to(_restore_axes(g, axes, keepdims) / count, shape)


def _max_vjp(g, x, axes, keepdims):
    # The whole adjoint goes to one element per reduced slice: the first maximum in C order
    # among the reduced axes. Move those axes last and flatten them so argmax finds it.
    kept = [ax for ax in range(x.ndim) if ax not in axes]
    perm = kept + list(axes)
    moved = np.transpose(x, perm)
    lead = moved.shape[:len(kept)]
    flat = moved.reshape(lead + (-1,))
    first = np.argmax(flat, axis=-1)
    out = np.zeros(flat.shape, dtype=g.dtype)
    np.put_along_axis(out, first[..., None], g.reshape(lead)[..., None], axis=-1)
    return np.transpose(out.reshape(moved.shape), np.argsort(perm))


def sum(x: TensorLike, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (int, tuple or None for all; negatives allowed).

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int or None
    keepdims : bool
        Keep reduced axes with length 1.

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    axes = _normalize_axes("sum", axis, x.shape)
    y = np.sum(x.value, axis=axes, keepdims=keepdims)
    return _record("sum", y, (x,), _sum_vjp, (x.shape, axes, keepdims))


def mean(x: TensorLike, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (int, tuple or None for all; negatives allowed).

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int or None
    keepdims : bool
        Keep reduced axes with length 1.

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    axes = _normalize_axes("mean", axis, x.shape)
    y = np.mean(x.value, axis=axes, keepdims=keepdims)
    return _record("mean", y, (x,), _mean_vjp, (x.shape, axes, keepdims))


def max(x: TensorLike, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis``; at ties the first maximal element in C order gets the gradient.

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int or None
    keepdims : bool
        Keep reduced axes with length 1.

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    axes = _normalize_axes("max", axis, x.shape)
    if x.size == 0:
        raise ValueError(f"max: cannot reduce an empty operand of shape {x.shape}")
    y = np.max(x.value, axis=axes, keepdims=keepdims)
    return _record("max", y, (x,), _max_vjp, (x.value, axes, keepdims))


# --------------------------------------------------------------------------------------------
# Structural ops
# --------------------------------------------------------------------------------------------

def _transpose_vjp(g, axes):
    return np.transpose(g, np.argsort(axes))  # the inverse permutation


def transpose(x: TensorLike, axes: Optional[Sequence[int]] = None) -> Tensor:
    """Permute axes (default: reverse them).

    Parameters
    ----------
    x : TensorLike
    axes : sequence of int, optional
        A permutation of ``range(x.ndim)`` (negatives allowed).

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    if axes is None:
        perm = tuple(reversed(range(x.ndim)))
    else:
        perm = tuple(int(ax) % x.ndim if -x.ndim <= ax < x.ndim else -1 for ax in axes)
        if sorted(perm) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the axes "
                             f"of an operand of shape {x.shape}")
    y = np.transpose(x.value, perm)
    return _record("transpose", y, (x,), _transpose_vjp, (perm,))


def _reshape_vjp(g, shape):
    return g.reshape(shape)


def reshape(x: TensorLike, shape: Any) -> Tensor:
    """Reshape to ``shape`` (one entry may be -1).

    Parameters
    ----------
    x : TensorLike
    shape : int or tuple of int

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    try:
        y = np.reshape(x.value, shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape an operand of shape {x.shape} "
                         f"into shape {shape}") from None
    return _record("reshape", y, (x,), _reshape_vjp, (x.shape,))


_BASIC_INDEX_TYPES = (int, np.integer, slice, type(None), type(Ellipsis))


def _getitem_vjp(g, shape, key, basic):
    # scatter the adjoint back into zeros; advanced indices may repeat, so add.at sums them
    out = np.zeros(shape, dtype=g.dtype)
    if basic:
        out[key] = g
    else:
        np.add.at(out, key, g)
    return out


def _getitem(x: Tensor, key: Any) -> Tensor:
    """``x[key]``: basic indexing (ints, slices, None, Ellipsis) or numpy advanced indexing."""
    parts = key if isinstance(key, tuple) else (key,)
    parts = tuple(_value_of(p) for p in parts)
    basic = builtins.all(isinstance(p, _BASIC_INDEX_TYPES) and not isinstance(p, bool)
                         for p in parts)
    key = parts if isinstance(key, tuple) else parts[0]
    try:
        y = x.value[key]
    except IndexError as err:
        raise IndexError(f"getitem: {err} (operand of shape {x.shape})") from None
    return _record("getitem", np.asarray(y), (x,), _getitem_vjp, (x.shape, key, basic))


def one_hot(labels: Any, depth: int, dtype: Any = "float32") -> Tensor:
    """One-hot encode integer labels along a new last axis (no gradient).

    Parameters
    ----------
    labels : array_like of int
        Class indices; out-of-range labels give an all-zero row (like TensorFlow).
    depth : int
        The number of classes.
    dtype : dtype, default "float32"

    Returns
    -------
    Tensor
        Of shape ``labels.shape + (depth,)``, not connected to any tape.
    """
    labels = np.asarray(_value_of(labels))
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    return Tensor((labels[..., None] == np.arange(depth)).astype(dtype))


def stop_gradient(x: TensorLike) -> Tensor:
    """The value of ``x`` as a new tensor that no tape connects to ``x``.

    Parameters
    ----------
    x : TensorLike

    Returns
    -------
    Tensor
    """
    return Tensor(_value_of(x))


# --------------------------------------------------------------------------------------------
# Normalizations and losses (shifted by the max; stable backward rules)
# --------------------------------------------------------------------------------------------

def _softmax_forward(x, axis):
    z = x - np.max(x, axis=axis, keepdims=True)  # exp(z) <= 1: no overflow
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_forward(x, axis):
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _softmax_vjp(g, y, axis):
    # J^T g = y * (g - <g, y>) along the axis
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))


def _log_softmax_vjp(g, y, axis):
    # d log_softmax_i / dx_j = delta_ij - softmax_j  =>  J^T g = g - softmax * sum(g)
    return g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)


def softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """Softmax along ``axis``, shifted by the max for stability.

    Parameters
    ----------
    x : TensorLike
    axis : int, default -1

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    ax = _normalize_axis("softmax", axis, x.shape)
    y = _softmax_forward(x.value, ax)
    return _record("softmax", y, (x,), _softmax_vjp, (y, ax))


def log_softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """Log-softmax along ``axis``: ``x - logsumexp(x)``, shifted by the max.

    Parameters
    ----------
    x : TensorLike
    axis : int, default -1

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    ax = _normalize_axis("log_softmax", axis, x.shape)
    y = _log_softmax_forward(x.value, ax)
    return _record("log_softmax", y, (x,), _log_softmax_vjp, (y, ax))


def _logsumexp_vjp(g, x, y_kept, axes, keepdims):
    # d/dx logsumexp(x) = softmax(x) = exp(x - logsumexp(x)), never overflowing
    return _restore_axes(g, axes, keepdims) * np.exp(x - y_kept)


def logsumexp(x: TensorLike, axis: Any = None, keepdims: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``axis``, shifted by the max.

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int or None
    keepdims : bool

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    axes = _normalize_axes("logsumexp", axis, x.shape)
    m = np.max(x.value, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) slices: shift by 0, not nan
    with np.errstate(divide="ignore"):  # log(0) = -inf is the answer for all -inf slices
        y_kept = np.log(np.sum(np.exp(x.value - m), axis=axes, keepdims=True)) + m
    y = y_kept if keepdims else np.squeeze(y_kept, axis=axes)
    return _record("logsumexp", y, (x,), _logsumexp_vjp, (x.value, y_kept, axes, keepdims))


def _softmax_cross_entropy_vjp(g, log_p, labels, axis):
    # loss = -sum(z * log_softmax(x)):  d/dx = softmax(x) * sum(z) - z,  d/dz = -log_softmax(x)
    g = np.expand_dims(g, axis)
    grad_logits = g * (np.exp(log_p) * np.sum(labels, axis=axis, keepdims=True) - labels)
    return grad_logits, -g * log_p


def softmax_cross_entropy(logits: TensorLike, onehot: TensorLike, axis: int = -1) -> Tensor:
    """Per-example ``-sum(onehot * log_softmax(logits), axis)``.

    Like TensorFlow's ``softmax_cross_entropy_with_logits``: ``onehot`` may be any
    distribution (or any weights), and gets a gradient too.

    Parameters
    ----------
    logits : TensorLike
    onehot : TensorLike
        Labels of the same shape as ``logits``.
    axis : int, default -1
        The class axis.

    Returns
    -------
    Tensor
        ``logits``' shape without ``axis``.
    """
    logits, labels = _as_tensors(logits, onehot)
    if logits.shape != labels.shape:
        raise ValueError(f"softmax_cross_entropy: logits of shape {logits.shape} and labels "
                         f"of shape {labels.shape} differ")
    ax = _normalize_axis("softmax_cross_entropy", axis, logits.shape)
    log_p = _log_softmax_forward(logits.value, ax)
    y = -np.sum(labels.value * log_p, axis=ax)
    return _record("softmax_cross_entropy", y, (logits, labels), _softmax_cross_entropy_vjp,
                   (log_p, labels.value, ax))


def _l2_loss_vjp(g, x):
    return g * x  # d/dx sum(x^2)/2 = x


def l2_loss(x: TensorLike) -> Tensor:
    """``sum(x**2) / 2``, like TensorFlow's ``l2_loss``.

    Parameters
    ----------
    x : TensorLike

    Returns
    -------
    Tensor
        A scalar.
    """
    x = _as_tensor(x)
    y = np.sum(x.value * x.value) / 2
    return _record("l2_loss", y, (x,), _l2_loss_vjp, (x.value,))


def _norm_vjp(g, x, y_kept, axes, keepdims):
    # d/dx ||x|| = x / ||x||, taken as 0 where the norm is 0 (PyTorch's choice)
    safe = np.where(y_kept == 0, 1, y_kept)
    return _restore_axes(g, axes, keepdims) * (x / safe)


def norm(x: TensorLike, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Euclidean (L2) norm over ``axis`` (all axes by default).

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int or None
    keepdims : bool

    Returns
    -------
    Tensor
    """
    x = _as_tensor(x)
    axes = _normalize_axes("norm", axis, x.shape)
    y_kept = np.sqrt(np.sum(x.value * x.value, axis=axes, keepdims=True))
    y = y_kept if keepdims else np.squeeze(y_kept, axis=axes)
    return _record("norm", y, (x,), _norm_vjp, (x.value, y_kept, axes, keepdims))


# --------------------------------------------------------------------------------------------
# custom_gradient
# --------------------------------------------------------------------------------------------

def _custom_vjp(g, grad_fn, inputs, name):
    grads = grad_fn(Tensor(g))
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != len(inputs):
        raise ValueError(f"custom_gradient({name}): grad_fn returned {len(grads)} gradients "
                         f"for {len(inputs)} inputs")
    out = []
    for k, (gk, t) in enumerate(zip(grads, inputs)):
        if gk is None:
            out.append(None)
            continue
        gk = np.asarray(_value_of(gk))
        if gk.shape != t.shape:
            raise ValueError(f"custom_gradient({name}): gradient {k} has shape {gk.shape} "
                             f"but input {k} has shape {t.shape}")
        # the user's grad_fn may compute in float64; the input's dtype is the promise
        out.append(gk.astype(t.dtype, copy=False)
                   if np.issubdtype(t.dtype, np.inexact) else gk)
    return tuple(out)


def custom_gradient(f: Callable[..., Any]) -> Callable[..., Tensor]:
    """Decorator: ``f(*args)`` returns ``(y, grad_fn)`` and ``grad_fn(dy)`` the input gradients.

    Parameters
    ----------
    f : callable
        Called with the decorated function's arguments (while no tape records). Returns the
        output value ``y`` (Tensor or array) and ``grad_fn``, which receives the output
        adjoint ``dy`` as a Tensor and returns one gradient per positional argument (a
        single value when there is one argument; None for no gradient).

    Returns
    -------
    callable
        A function recording one node whose VJP is ``grad_fn``. Keyword arguments are passed
        to ``f`` and are not differentiated; variables used inside ``f`` but not passed as
        arguments get no gradient.

    Examples
    --------
    >>> @custom_gradient
    ... def clip_grad(x):
    ...     def grad_fn(dy):
    ...         return dy * 0.5
    ...     return x.value.copy(), grad_fn
    """
    name = getattr(f, "__name__", "f")

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Tensor:
        inputs = tuple(_as_tensor(a) for a in args)
        with _pause_all_tapes():
            result = f(*args, **kwargs)
        if not (isinstance(result, tuple) and len(result) == 2 and callable(result[1])):
            raise TypeError(f"custom_gradient({name}): the function must return (y, grad_fn)")
        y, grad_fn = result
        return _record(f"custom_gradient({name})", np.asarray(_value_of(y)), inputs,
                       _custom_vjp, (grad_fn, inputs, name))

    return wrapper
