"""The tape's recording engine: :class:`GradientTape`, the backward walk and ``custom_gradient``.

What it promises.

* An op (see :mod:`symgrad.tape.rules`) computes its value with numpy and calls
  :func:`_record`; when a tape is recording and one of the op's inputs is watched, a node is
  appended to that tape: the output, the inputs, the op's vector-Jacobian rule and what the
  rule needs (``saved``). Nothing else in the tape knows any op.
* TensorFlow's tape rules: Variables are watched when an op reads them, other tensors only
  through :meth:`GradientTape.watch`; a non-scalar target is differentiated as the sum of its
  elements; a non-persistent tape answers one ``gradient`` call; ``stop_recording`` pauses a
  tape; tapes are per thread.
* :meth:`GradientTape.gradient` walks the recorded nodes iteratively in reverse order of
  recording (never recursively), visiting only nodes on a path from a source to the target,
  and accumulates adjoints with ``+=`` into fresh arrays (forward values are never mutated).
* A rule returns a tuple with one entry per input (None: no gradient), each of its input's
  shape and never of a wider dtype than its op's (checked on every accumulation). An op
  recorded without a rule raises NotImplementedError naming the op and the input position.
* Gradients are first order only: the backward walk is not itself recorded.

This module imports only numpy, the standard library and :mod:`symgrad.tape.values`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .values import Tensor, Variable, _as_tensor, _value_of

__all__ = ["GradientTape", "custom_gradient"]


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Node:
    """One recorded op: ``vjp(adjoint_of_output, *saved)`` returns one gradient per input.

    ``vjp`` is None for an op that has no rule: differentiating through it raises an error
    naming the op and the input position.
    """

    op: str
    output: Tensor
    inputs: tuple[Tensor, ...]
    vjp: Optional[Callable[..., Any]]
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


def _record(op: str, value: Any, inputs: Sequence[Tensor], vjp: Optional[Callable[..., Any]],
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
        if any(id(t) in tape._tracked for t in inputs):
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
    >>> from symgrad import tape as tp
    >>> w = tp.Variable(np.array([2.0, 3.0]))
    >>> with tp.GradientTape() as t:
    ...     loss = tp.sum(tp.square(w))
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
            if any(id(t) in reach for t in node.inputs):
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
            if node.vjp is None:
                _missing_rule(node, reach)
            grads = node.vjp(g, *node.saved)
            if type(grads) is not tuple or len(grads) != len(node.inputs):
                raise RuntimeError(
                    f"internal error: the vector-Jacobian rule {node.vjp.__name__} of op "
                    f"{node.op} returned {_describe(grads)}; a rule returns a tuple with one "
                    f"entry per input ({len(node.inputs)}), None for no gradient")
            for t, gi in zip(node.inputs, grads):
                if gi is not None and id(t) in reach:
                    _check_no_upcast(node, t, gi)
                    _accumulate(adjoints, t, gi, node.op)
        return adjoints


def _missing_rule(node: _Node, reach: set[int]) -> None:
    """Raise for an op recorded without a vector-Jacobian rule, naming the input that needs it."""
    needed = [k for k, t in enumerate(node.inputs) if id(t) in reach]
    position = needed[0] if needed else 0
    raise NotImplementedError(f"{node.op}: no vector-Jacobian rule, so no gradient with respect "
                              f"to its input {position}")


def _describe(grads: Any) -> str:
    if type(grads) is tuple:
        return f"{len(grads)} entries"
    return f"a {type(grads).__name__}, not a tuple"


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
