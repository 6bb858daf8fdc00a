"""Training: one generated function computes the loss, the gradients and the optimizer
update of every parameter and its optimizer state, in place.

    step = sg.train_step(loss, sg.optim.Adam(1e-3))
    state = step.init({"w1": w1_0, "b1": b1_0})
    for xb, yb in batches:
        loss_value = step(state, x=xb, y=yb)      # updates state.params in place
    state.save("run.npz")                          # resume: TrainState.load("run.npz", step)

The generated ``train_step`` is straight-line numpy: a forward/backward block planned like
any compiled function, then the update rules of :mod:`symgrad.optim` written as in-place
statements (``w -= lr*grad_w``; ``m *= beta1; m += ...``), in an order where each
statement reads only values that are still current. Nothing is written before every input
has been checked, so a failing call leaves the state as it was.

Promises about a :class:`TrainState`:

* ``state.params`` and ``state.slots`` are live mappings over the very arrays the step
  updates: reading gives the live array, writing copies the value in (shape and dtype
  checked, the parameter named in errors), and removing an entry raises.
* A step holds the state's lock (its one token) while it reads and writes it, so two
  threads stepping one state are serialized (each step is whole; the step counter counts
  every step).
* ``pickle``, ``copy.deepcopy``, ``state.save(path)`` / ``TrainState.load(path, step)``
  round-trip the parameters, the optimizer slots, the step counter and the
  hyperparameters exactly; a checkpoint is a numpy ``.npz`` read with ``allow_pickle=False``.
* The hyperparameters a step uses are those of ``step.optimizer`` at the time of the call:
  ``step.optimizer.lr = ...`` and replacing ``step.optimizer`` by an optimizer with the same
  update rule take effect at the next call; one with another update rule raises TypeError.
  (The state's token holds the optimizer it follows and that optimizer's live list of
  hyperparameters; a step compares the optimizer with ``step.optimizer`` and adopts a new
  one: a function's attributes cannot announce their own replacement.)
* 0-d float64 values are computed as Python floats (a W0 step is all call overhead) only
  when that gives numpy's results: a step whose scalar arithmetic divides or raises to a
  power (where Python raises ZeroDivisionError or returns a complex) computes with numpy
  scalars instead, as :func:`symgrad.compile` does.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import tempfile
import time
import types
from collections.abc import Mapping, MutableMapping

import numpy as np
import sympy

from .runtime import cache
from .api import (CompiledFunction, _fingerprint_tensor, _resolve_inputs, check_target,
                  default_input_order, grad, leaves_of, scalar_attempt, scalar_target_lines)
from .compiler.codegen import ModuleSpec, Namer, render, template_text, writable_origins
from .compiler.verify import verify_source
from .compiler import scalar
from .expr import Tensor, as_tensor, check_repeated_params
from .graph import rebuild
from .nodes import TensorOp, TensorSymbol, info
from .optim import Optimizer, _SymbolicOps
from .compiler.optimize import plan
from .compiler.printer import formula
from .shapes import Dim, format_shape

__all__ = ["train_step", "TrainStep", "TrainState", "ArrayApiTrainState"]

#: what a checkpoint file says it is, and the layout version this module writes and reads
CHECKPOINT_FORMAT = "symgrad-train-state"
CHECKPOINT_VERSION = 1
#: part of the cache key: bump when the code this module wraps around the step changes
_STEP_LAYOUT = "train_step/6: the state token carries the hyperparameters"


def _hyper_tensor(name: str) -> Tensor:
    return Tensor(TensorSymbol(name, (), "", "hyper"), (), None)


# ---------------------------------------------------------------------------------------
# The state and its live views
# ---------------------------------------------------------------------------------------


class TrainState:
    """Parameters and optimizer slots of one model, updated in place by a training step.

    Made by ``step.init(values)``, ``TrainState.load(path, step)``, ``pickle`` or
    ``copy.deepcopy``.

    Attributes
    ----------
    params : MutableMapping[str, numpy.ndarray]
        Live view: ``state.params["w"]`` is the array the step trains; assigning
        (``state.params["w"] = v``, ``update``, ``setdefault``) copies ``v`` into it after
        checking its shape and dtype. Removing a parameter (``del``, ``pop``, ``popitem``,
        ``clear``) raises TypeError: the step trains a fixed set.
    slots : Mapping[str, MutableMapping[str, numpy.ndarray]]
        The optimizer state of each parameter (``state.slots["w"]["m"]`` for Adam), live in
        the same way; ``state.slots["w"] = {"m": ..., "v": ...}`` writes through.
    step : int
        The number of updates done (Adam's ``t``); :meth:`reset` sets it to 0.
    optimizer : symgrad.optim.Optimizer
        Where the step reads the hyperparameters: the step's own optimizer for a state made
        by ``step.init`` or ``TrainState.load``, a copy of it after ``pickle.loads`` (call
        :meth:`bind` to follow a step's optimizer again).

    Notes
    -----
    Stepping one state from several threads is safe: each call holds the state's lock,
    so steps run one after another (a one-token list popped and appended back: list.pop
    and list.append are atomic, and cost a quarter of a threading.Lock). The token is the
    tuple ``(optimizer, its hyperparameter list, step.__dict__)`` a step reads the
    hyperparameters from, so holding the state and reading them is one ``pop``. Parallel
    training needs one state per thread.
    """

    __slots__ = ("_names", "_shapes", "_dtypes", "_slot_names", "_param_list", "_slot_list",
                 "_views", "_counter", "_token", "_bound", "_signature", "_initial", "_params",
                 "_slots", "__weakref__")

    def __init__(self, specs, slot_names, params: list, slots: list, counter: int,
                 bound: dict, signature: str, initial: list | None = None):
        self._names = [n for n, _, _ in specs]
        self._shapes = [tuple(s) for _, s, _ in specs]
        self._dtypes = [np.dtype(d) for _, _, d in specs]
        self._slot_names = tuple(slot_names)
        # the generated step unpacks these two lists and the counter: never rebind them
        self._param_list = params
        self._slot_list = slots
        self._views = _flat_views(params) + _flat_views(slots)  # the scalar target's access
        self._counter = [int(counter)]
        # mutual exclusion for the step and the views: whoever pops the one token holds the
        # state (list.pop and list.append are atomic; a threading.Lock costs 4 times as
        # much). The token is what a step reads besides the arrays, (optimizer, its live
        # hyperparameter list, the step's attribute dict): popping it is the whole
        # hyperparameter read. No optimizer yet: the first step adopts step.optimizer
        self._token = [(None, None, bound)]
        self._bound = bound  # the step's attribute dict: step.optimizer is its "optimizer"
        self._signature = signature  # the update rule the step was compiled for
        self._initial = initial if initial is not None else [a.copy() for a in params]
        self._params = _ArrayView(self, "parameter", self._names, params)
        per = len(self._slot_names)
        self._slots = _SlotsView(self, {
            n: _ArrayView(self, f"slot of parameter {n!r}", self._slot_names,
                          slots[i * per:(i + 1) * per])
            for i, n in enumerate(self._names)})

    # -- mutual exclusion ----------------------------------------------------------------
    def _wait_turn(self) -> tuple:
        """Take the token another thread holds, once it gives it back (the slow path of a
        contended step: it yields the GIL until the token is free); return it."""
        while True:
            try:
                return self._token.pop()
            except IndexError:
                time.sleep(0)

    def _take(self) -> tuple:
        """Pop the token (waiting for it): the caller holds the state until it appends a
        token back, exactly one, whatever happens."""
        try:
            return self._token.pop()
        except IndexError:
            return self._wait_turn()

    @contextlib.contextmanager
    def _turn(self):
        """Hold the state (as a step does), giving the token back unchanged."""
        held = self._take()
        try:
            yield
        finally:
            self._token.append(held)

    def _hyper_of(self, held: tuple) -> tuple:
        """The slow path of a step's hyperparameter read, called holding the token ``held``
        when ``step.optimizer`` is not the optimizer the token names (the state's first
        step, or the optimizer was replaced): the token that adopts it (same update rule),
        or TypeError (another rule, or not an optimizer), which leaves the token as it was.
        """
        attrs = held[2]
        opt = attrs["optimizer"]
        return opt, _hyper_list(opt, self._signature), attrs

    # -- what it holds -----------------------------------------------------------------
    @property
    def params(self) -> "_ArrayView":
        return self._params  # read-only: replacing the view would disconnect it

    @property
    def slots(self) -> "_SlotsView":
        return self._slots

    @property
    def step(self) -> int:
        return self._counter[0]

    @property
    def optimizer(self) -> Optimizer:
        return self._bound["optimizer"]

    def __repr__(self):
        return f"TrainState(step={self.step}, params={self._names})"

    def reset(self, values: dict | None = None) -> None:
        """Start over: parameters back to their initial values (those given to ``init``,
        or ``values``), optimizer slots to zero, the step counter to 0. In place: the step
        keeps training the same arrays."""
        with self._turn():
            if values is None:
                new = self._initial
            else:
                new = _check_values(list(zip(self._names, self._shapes, self._dtypes)),
                                    values, "reset")
            for live, v in zip(self._param_list, new):
                np.copyto(live, v)
            for s in self._slot_list:
                s[...] = 0
            self._counter[0] = 0
            if values is not None:
                self._initial = [a.copy() for a in new]

    def bind(self, step) -> "TrainState":
        """Make this state read its hyperparameters from ``step.optimizer`` (after
        ``pickle.loads``, or to move a state to another step of the same model). Raises
        ValueError when the step trains other parameters or with another update rule."""
        _check_compatible(step, self._specs(), self._signature, self._slot_names,
                          "bind", "this state")
        held = self._take()
        try:
            self._bound = step.__dict__
            held = (None, None, self._bound)  # the next step adopts step.optimizer
        finally:
            self._token.append(held)
        return self

    def _specs(self):
        return [(n, s, d.name) for n, s, d in zip(self._names, self._shapes, self._dtypes)]

    # -- copies ------------------------------------------------------------------------
    def _payload(self) -> dict:
        return {"specs": self._specs(), "slot_names": list(self._slot_names),
                "params": [a.copy() for a in self._param_list],
                "slots": [a.copy() for a in self._slot_list], "counter": self._counter[0],
                "signature": self._signature,
                "initial": [a.copy() for a in self._initial]}

    def __reduce__(self):
        with self._turn():
            payload = self._payload()
        payload["optimizer"] = copy.deepcopy(self.optimizer)
        return (_restore_state, (payload,))

    def __deepcopy__(self, memo):
        """A state with copies of the arrays and the counter, reading the hyperparameters
        from the same optimizer (a copy keeps following the step it came from)."""
        with self._turn():
            payload = self._payload()
        return TrainState(payload["specs"], payload["slot_names"], payload["params"],
                          payload["slots"], payload["counter"], self._bound,
                          payload["signature"], payload["initial"])

    def __copy__(self):
        return self.__deepcopy__({})  # never two states over one set of arrays

    # -- checkpoints -------------------------------------------------------------------
    def save(self, path) -> None:
        """Write a checkpoint: a numpy ``.npz`` holding the parameters, the optimizer slots,
        the step counter, the hyperparameters and the format version (no pickled object:
        read back with ``allow_pickle=False``). Written atomically (a temporary file, then
        ``os.replace``): an interrupted save leaves the previous file intact.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write, used exactly as given (no ``.npz`` is appended).
        """
        from ._version import __version__
        opt = self.optimizer
        with self._turn():
            arrays = {f"param_{i}": a.copy() for i, a in enumerate(self._param_list)}
            arrays.update({f"slot_{i}": a.copy() for i, a in enumerate(self._slot_list)})
            arrays.update({f"initial_{i}": a.copy() for i, a in enumerate(self._initial)})
            counter = self._counter[0]
        meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "symgrad": __version__, "params": [[n, list(s), d] for n, s, d in
                                                   self._specs()],
                "slot_names": list(self._slot_names), "step": counter,
                "optimizer": type(opt).__name__, "signature": self._signature,
                "hyper": opt.hyper}
        arrays["meta"] = np.array(json.dumps(meta))
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".symgrad-ckpt-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path, step, restore_hyper: bool = True) -> "TrainState":
        """Read a checkpoint written by :meth:`save` into a new state for ``step``.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint.
        step : TrainStep
            The step that will train the state: it must train the same parameters (names,
            shapes, dtypes) with the same update rule (optimizer class and options).
        restore_hyper : bool
            Write the checkpoint's hyperparameters (lr, betas, ...) into ``step.optimizer``
            (default), or keep the step's.

        Raises
        ------
        ValueError
            Not a symgrad checkpoint, another format version, or a step that does not match
            (the message names the parameter, shape, dtype or optimizer that differs).
        """
        try:
            with np.load(os.fspath(path), allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:  # noqa: PERF203
            raise ValueError(f"TrainState.load: cannot read {os.fspath(path)!r} as a numpy "
                             f".npz checkpoint: {e}") from e
        try:
            meta = json.loads(str(data["meta"][()]))
            fmt, version = meta["format"], meta["version"]
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"TrainState.load: {os.fspath(path)!r} is not a symgrad training "
                             f"checkpoint (no valid 'meta' entry)") from e
        if fmt != CHECKPOINT_FORMAT:
            raise ValueError(f"TrainState.load: {os.fspath(path)!r} holds {fmt!r}, not a "
                             f"{CHECKPOINT_FORMAT!r}")
        if version != CHECKPOINT_VERSION:
            raise ValueError(f"TrainState.load: checkpoint format version {version}; this "
                             f"symgrad reads version {CHECKPOINT_VERSION}")
        specs = [(n, tuple(s), d) for n, s, d in meta["params"]]
        slot_names = tuple(meta["slot_names"])
        _check_compatible(step, specs, meta["signature"], slot_names, "TrainState.load",
                          f"checkpoint {os.fspath(path)!r}")
        n_slots = len(specs) * len(slot_names)

        def take(prefix, i, shape, dtype, what):
            key = f"{prefix}_{i}"
            if key not in data:
                raise ValueError(f"TrainState.load: checkpoint lacks the {what}")
            a = data[key]
            if a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
                raise ValueError(f"TrainState.load: the {what} has shape {a.shape} and dtype "
                                 f"{a.dtype} in the checkpoint; the step needs "
                                 f"{format_shape(shape)} {dtype}")
            return np.array(a, copy=True)

        params = [take("param", i, s, d, f"parameter {n!r}") for i, (n, s, d) in
                  enumerate(specs)]
        initial = [take("initial", i, s, d, f"initial value of {n!r}") for i, (n, s, d) in
                   enumerate(specs)]
        slots = [take("slot", i * len(slot_names) + j, s, d, f"slot {sn!r} of {n!r}")
                 for i, (n, s, d) in enumerate(specs) for j, sn in enumerate(slot_names)]
        assert len(slots) == n_slots
        if restore_hyper:
            for name, value in meta["hyper"].items():
                setattr(step.optimizer, name, value)
        return cls(specs, slot_names, params, slots, meta["step"], step.__dict__,
                   meta["signature"], initial)


def _flat_views(arrays: list) -> list:
    """For the scalar target's step: a flat ``memoryview`` (format ``'d'``, C order) of each
    float64 array, None for the others. Reading or writing one element through it costs a
    third of numpy's ``float(a)`` / ``a[i, j] = v`` (~25 ns against ~70), and ``tolist()``
    half of numpy's. An array that is not C-contiguous (an initial value given in Fortran
    order: ``init`` copies keep the layout) is replaced by a C-contiguous copy in ``arrays``
    itself (the state owns these arrays: nobody holds another reference to them yet)."""
    views = []
    for i, a in enumerate(arrays):
        if a.dtype != np.float64 or a.size == 0:  # (the scalar target needs neither)
            views.append(None)
            continue
        if not a.flags.c_contiguous:
            a = arrays[i] = np.ascontiguousarray(a)
        views.append(memoryview(a).cast("B").cast("d"))
    return views


def _restore_state(payload: dict) -> TrainState:
    """Unpickle a :class:`TrainState` (it reads the hyperparameters of its own optimizer
    copy until :meth:`TrainState.bind` attaches it to a step)."""
    opt = payload["optimizer"]
    opt._freeze()
    return TrainState(payload["specs"], payload["slot_names"], payload["params"],
                      payload["slots"], payload["counter"], {"optimizer": opt},
                      payload["signature"], payload["initial"])


def _hyper_list(opt, signature: str) -> list:
    if not isinstance(opt, Optimizer):
        raise TypeError(f"train_step: step.optimizer must be a symgrad.optim optimizer, got "
                        f"{type(opt).__name__}")
    return opt.hyper_list_for(signature)


def _check_compatible(step, specs, signature, slot_names, where, what) -> None:
    """Raise ValueError naming what differs between ``step`` and a state's layout."""
    want = getattr(step, "_param_specs", None)
    if want is None:
        raise TypeError(f"{where}: expected a step made by sg.train_step, got "
                        f"{type(step).__name__}")
    names = [n for n, _, _ in specs]
    if names != [n for n, _, _ in want]:
        raise ValueError(f"{where}: {what} has parameters {names}; the step trains "
                         f"{[n for n, _, _ in want]}")
    for (n, s, d), (_, ws, wd) in zip(specs, want):
        if tuple(s) != tuple(ws) or np.dtype(d) != np.dtype(wd):
            raise ValueError(f"{where}: parameter {n!r} is {format_shape(s)} {d} in {what}; "
                             f"the step trains {format_shape(ws)} {wd}")
    if signature != step._signature:
        raise ValueError(f"{where}: {what} was trained with the update rule {signature}; the "
                         f"step was compiled for {step._signature}")
    if tuple(slot_names) != tuple(type(step.optimizer).slot_names):
        raise ValueError(f"{where}: {what} has optimizer slots {list(slot_names)}; the step "
                         f"uses {list(type(step.optimizer).slot_names)}")


class _ArrayView(MutableMapping):
    """A fixed set of named live arrays: reads give the array, writes copy into it."""

    __slots__ = ("_state", "_what", "_index", "_arrays")

    def __init__(self, state: TrainState, what: str, names, arrays):
        self._state = state
        self._what = what
        self._index = {n: i for i, n in enumerate(names)}
        self._arrays = arrays

    def __getitem__(self, name):
        i = self._index.get(name) if isinstance(name, str) else None
        if i is None:
            raise KeyError(f"no {self._what} named {name!r}; there are {list(self._index)}")
        return self._arrays[i]

    def __iter__(self):
        return iter(self._index)

    def __len__(self):
        return len(self._index)

    def __contains__(self, name):
        return isinstance(name, str) and name in self._index

    def __repr__(self):
        return "{" + ", ".join(f"{n!r}: {self._arrays[i]!r}" for n, i in self._index.items()) \
            + "}"

    def _checked(self, name, value):
        live = self[name]
        arr = np.asarray(value)
        if arr.shape != live.shape:
            raise ValueError(f"{self._what} {name!r} has shape {live.shape}, got a value of "
                             f"shape {arr.shape}")
        if arr.dtype.kind not in "biuf" or not np.can_cast(arr.dtype, live.dtype, "same_kind"):
            raise TypeError(f"{self._what} {name!r} is {live.dtype}, got a value of dtype "
                            f"{arr.dtype}")
        return live, arr

    def __setitem__(self, name, value):
        live, arr = self._checked(name, value)
        with self._state._turn():
            np.copyto(live, arr, casting="same_kind")

    def update(self, other=(), /, **kwargs):
        """Copy several values in; all are checked before any is written."""
        items = list(other.items() if isinstance(other, Mapping) else other) + \
            list(kwargs.items())
        checked = [self._checked(name, value) for name, value in items]
        with self._state._turn():
            for live, arr in checked:
                np.copyto(live, arr, casting="same_kind")

    def setdefault(self, name, default=None):
        return self[name]  # every name is present; an unknown one raises KeyError

    def _fixed(self, *args):
        raise TypeError(f"the {self._what}s of a TrainState are a fixed set (the step trains "
                        f"exactly these arrays): assign a new value instead "
                        f"(state.params[name] = value) or call state.reset()")

    __delitem__ = pop = popitem = clear = _fixed


class _SlotsView(Mapping):
    """Parameter name -> that parameter's live optimizer slots."""

    __slots__ = ("_state", "_views")

    def __init__(self, state, views: dict):
        self._state = state
        self._views = views

    def __getitem__(self, name):
        view = self._views.get(name) if isinstance(name, str) else None
        if view is None:
            raise KeyError(f"no parameter named {name!r}; there are {list(self._views)}")
        return view

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

    def __repr__(self):
        return repr(dict(self._views))

    def __setitem__(self, name, values):
        """``state.slots["w"] = {"m": ..., "v": ...}``: every slot given, copied in."""
        view = self[name]
        if not isinstance(values, Mapping) or set(values) != set(view):
            raise ValueError(f"state.slots[{name!r}] = ...: give a dict with exactly the slots "
                             f"{list(view)}")
        view.update(values)

    def _fixed(self, *args):
        raise TypeError("the optimizer slots of a TrainState are a fixed set: assign into "
                        "state.slots[name][slot] instead, or call state.reset()")

    __delitem__ = pop = popitem = clear = update = setdefault = _fixed


# ---------------------------------------------------------------------------------------
# The step
# ---------------------------------------------------------------------------------------


class TrainStep:
    """What ``sg.train_step`` returns, described (it is a plain function, for speed).

    ``step(state, **batch)`` runs one step and returns the batch loss as a float, updating
    ``state`` in place. Attributes: ``init(values) -> TrainState``, ``bound(state)`` (the
    step with the state bound: ``fit = step.bound(state); fit(x, y)``, the cheapest call),
    ``source`` (the generated module), ``path`` (where it is cached), ``optimizer``,
    ``params`` and ``inputs`` (names, in order), ``loss``, ``target`` and ``check_inputs``.

    The step reads the hyperparameters of ``step.optimizer`` at every call: change
    ``step.optimizer.lr`` between steps freely (learning-rate schedules), or assign another
    optimizer of the same class and options. The update rule itself (optimizer class,
    weight decay, clipping) is compiled in: an optimizer with another rule makes the next
    call raise TypeError, and its options cannot change once the step is built.

    A step is the generated function itself, so calling it costs one Python call: at the size
    of W0 (one weight) a step is all call overhead, and a wrapper would double it. A call holds
    the state's lock, so threads sharing a state take turns.
    """


def _check_value_names(names, values, where) -> None:
    """``values`` is a dict with exactly the parameter ``names`` as keys, or an error naming
    what is missing or unknown (both backends' states)."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{where}: give the values as a dict {{param name: array}}")
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"{where}: missing initial value(s) for parameter(s) {missing}")
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ValueError(f"{where}: unknown parameter(s) {unknown}; parameters are {names}")


def _check_values(specs, values, where) -> list:
    """Fresh arrays of the right dtype from ``values`` {name: array}, checked against specs."""
    _check_value_names([n for n, _, _ in specs], values, where)
    arrays = []
    for name, shape, dtype in specs:
        v = np.asarray(values[name])
        if v.shape != tuple(shape):
            raise ValueError(f"{where}: parameter {name!r} must have shape "
                             f"{format_shape(shape)}, got {v.shape}")
        if not np.can_cast(v.dtype, dtype, casting="same_kind"):
            raise TypeError(f"{where}: parameter {name!r} must be {dtype}, got {v.dtype}")
        arrays.append(np.array(v, dtype=dtype, copy=True))
    return arrays


def _init_state(attrs: dict, values: dict) -> TrainState:
    """A fresh state: copies of the initial ``values`` (by parameter name), zero slots."""
    specs = attrs["_param_specs"]
    opt = attrs["optimizer"]
    _hyper_list(opt, attrs["_signature"])  # an optimizer with another rule raises here
    if not isinstance(values, Mapping):
        raise TypeError("init: give the initial values as a dict {param name: array}")
    arrays = _check_values(specs, values, "init")
    slot_names = type(opt).slot_names
    slots = [np.zeros(a.shape, dtype=a.dtype) for a in arrays for _ in slot_names]
    return TrainState(specs, slot_names, arrays, slots, 0, attrs, attrs["_signature"])


def _make_step(compiled: CompiledFunction, optimizer: Optimizer, params: list, loss):
    fn = compiled._fn
    if compiled._rename:  # some input name is not an identifier: map keywords first
        def step(state, /, *args, **kwargs):
            if kwargs:
                return fn(state, *compiled._bind(args, kwargs))
            try:  # positional: straight through (W4's "input" is renamed "input_")
                return fn(state, *args)
            except TypeError:
                compiled._bind(args, kwargs)  # a missing or extra input: say which, by name
                raise
    else:  # a fresh function object over the generated code, with attributes of its own
        step = types.FunctionType(fn.__code__, fn.__globals__, "train_step", fn.__defaults__,
                                  fn.__closure__)
    step.__doc__ = TrainStep.__doc__
    step.source = compiled.source
    step.path = compiled.path
    step.key = compiled.key
    step.optimizer = optimizer
    step.params = [p.name for p in params]
    step.inputs = compiled.inputs
    step.target = compiled.target
    step.target_reason = compiled.target_reason
    step.check_inputs = compiled.check_inputs
    step.loss = loss
    step._param_specs = [(p.name, tuple(p.shape), p.dtype.name) for p in params]
    step._signature = optimizer._signature
    # the states read step.__dict__["optimizer"] at every call: assigning step.optimizer
    # reaches them, and init uses whatever optimizer the step has when it is called
    step.init = functools.partial(_init_state, step.__dict__)
    step.bound = functools.partial(_bound_step, step)
    return step


def _bound_step(step, state):
    """``step.bound(state)``: the step with ``state`` bound, called with the batch alone.

    ``fit = step.bound(state); loss = fit(x, y)`` is ``step(state, x, y)`` at the cost of a
    bound method call (``functools.partial(step, state)`` costs about 45 ns more a call,
    which shows on a one-weight model). Raises TypeError for anything but a
    :class:`TrainState` and ValueError for a state of another model or update rule.
    """
    if not isinstance(state, TrainState):
        raise TypeError(f"bound: expected a TrainState (step.init(...)), got "
                        f"{type(state).__name__}")
    _check_compatible(step, state._specs(), state._signature, state._slot_names, "bound",
                      "this state")
    return types.MethodType(step, state)


def train_step(loss, optimizer: Optimizer, params=None, inputs=None, *, inplace: bool = True,
               backend: str = "numpy", target: str = "auto", check_inputs: bool = True):
    """Compile loss + gradients + ``optimizer`` update into one cached numpy function.

    Parameters
    ----------
    loss : Tensor
        A scalar loss (a non-scalar one is summed).
    optimizer : symgrad.optim.Optimizer
        ``SGD``, ``Momentum``, ``Adam``, ``RMSProp`` or ``AdaGrad``.
    params : list of Tensor, optional
        What to train; default every ``sg.param`` the loss reads, sorted by name.
    inputs : list of Tensor or str, optional
        The batch arguments of the step, in order; default every ``sg.input``, by name.
    inplace : bool
        Evaluate temporaries in the buffers of ones that die there (default). ``False``
        gives every temporary its own array (the parameters are updated in place either way).
    backend : {"numpy", "array_api"}
        The code-generation target. ``"array_api"`` compiles the loss, the gradients and the
        update into a function of the Python array API standard
        (:func:`symgrad.compile` with ``backend="array_api"``) that returns the new values;
        the step assigns them to its state, a :class:`symgrad.train.ArrayApiTrainState`
        whose parameters and slots are arrays of the namespace ``step.init`` was given
        (PyTorch, numpy, ...). ``inplace`` does not apply there, nor ``target="scalar"``.
    target : {"auto", "numpy", "scalar"}
        As for :func:`symgrad.compile`: ``"scalar"`` unrolls the step (loss, gradients and
        update) into Python float arithmetic over the elements, reading the batch and the
        state's arrays once and writing the new values into them; ``"auto"`` picks it when
        every shape is fixed and the inputs and parameters hold at most
        ``SCALAR_MAX_ELEMENTS`` elements. ``step.target`` says which was used.
    check_inputs : bool
        As for :func:`symgrad.compile`: ``False`` skips the per-call tests of the batch's
        types, dtypes and shapes (the caller vouches for them; a wrong batch is then not
        caught and may update the parameters with numpy's broadcasting). The state is
        still held for the step and its arrays are symgrad's own either way. numpy backend
        only; ``step.check_inputs`` says which.
    """
    from .api import check_backend, check_unchecked
    backend = check_backend(backend, "train_step")
    check_inputs = check_unchecked(check_inputs, backend, "train_step")
    loss = as_tensor(loss)
    target = check_target(target, "train_step")
    check_repeated_params([loss])  # a dense() helper that made one weight of two
    if loss.shape != ():  # a non-scalar loss is differentiated (and reported) as its sum
        from .ops.reductions import sum as _sum
        loss = _sum(loss)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"train_step: optimizer must be a symgrad.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    optimizer._freeze()  # its options are compiled in from here on
    leaves = leaves_of([loss])
    if params is None:
        plist = [leaf for leaf in default_input_order(leaves) if leaf.role == "param"]
    else:
        plist = []
        for p in params:
            if not isinstance(p, Tensor) or not isinstance(p.expr, TensorSymbol):
                raise TypeError("train_step: params must be sg.param leaves")
            plist.append(p.expr)
    if not plist:
        raise ValueError("train_step: the loss reads no sg.param; nothing to train")
    for p in plist:
        if any(isinstance(d, Dim) for d in p.shape):
            raise ValueError(f"train_step: parameter {p.name!r} has a symbolic shape "
                             f"{format_shape(p.shape)}; parameters need concrete shapes")
        if p.dtype.kind != "f":
            raise TypeError(f"train_step: parameter {p.name!r} has dtype {p.dtype}; "
                            f"parameters must be floating point")
    data_leaves = [leaf for leaf in leaves if leaf not in plist]
    chosen = _resolve_inputs(inputs, data_leaves)
    if backend == "array_api":  # a function of the state that returns its new values
        return _array_api_train_step(loss, optimizer, plist, chosen, target)

    memo, ser = {}, []
    described = _fingerprint_tensor(loss, memo, ser)
    key = cache.make_key("train_step", _STEP_LAYOUT, cache.version_fingerprint(), template_text(),
                     optimizer.config(),
                     repr([(p.name, tuple(map(str, p.shape)), p.dtype_name) for p in plist]),
                     repr([(s.name, s.role, tuple(map(str, s.shape)), s.dtype_name)
                           for s in chosen]),
                     "\n".join(ser), described, f"inplace={bool(inplace)}", f"target={target}",
                     f"scalar_max={scalar.SCALAR_MAX_ELEMENTS}" if target == "auto" else "",
                     "" if check_inputs else "check_inputs=False")
    mod = cache.MODULES.lookup(key)
    if mod is None:
        mod = cache.MODULES.store(key, *_generate_step(loss, optimizer, plist, chosen, key,
                                                   bool(inplace), target, check_inputs))
    compiled = CompiledFunction(mod, "train_step", chosen, "single", None, ["loss"], [loss],
                                {"check_finite": False, "check_inputs": check_inputs})
    return _make_step(compiled, optimizer, plist, loss)


def _generate_step(loss: Tensor, optimizer: Optimizer, plist, chosen, key,
                   inplace: bool = True, target: str = "numpy",
                   check_inputs: bool = True) -> str:
    from ._version import __version__
    ptensors = [Tensor(p, p.shape, p.dtype) for p in plist]
    hyper = {name: _hyper_tensor(name) for name in optimizer.hyper_names}
    seed = optimizer.backward_seed(hyper) if loss.shape == () else None
    grads = grad(loss, ptensors, grad_ys=None if seed is None else [seed])
    grads = optimizer.transform_grads(ptensors, grads, _SymbolicOps)
    rule_hyper = hyper if seed is None else dict(hyper, lr=as_tensor(1))
    outputs = [("loss", loss.expr, (), loss.dtype)]
    outputs += [(f"grad_{p.name}", g.expr, p.shape, p.dtype) for p, g in zip(plist, grads)]
    program = plan(outputs)

    step_t = _hyper_tensor("t") if optimizer.uses_step else None
    grad_syms, slot_syms, updates = [], [], []
    for i, p in enumerate(plist):
        g = TensorSymbol(f"_G{i}", p.shape, p.dtype_name, "temp")
        grad_syms.append(g)
        slots = {s: TensorSymbol(f"{s}_{p.name}", p.shape, p.dtype_name, "state")
                 for s in optimizer.slot_names}
        slot_syms.extend(slots.values())
        new_p, new_slots = optimizer.rule(
            Tensor(p, p.shape, p.dtype), Tensor(g, p.shape, p.dtype),
            {s: Tensor(v, p.shape, p.dtype) for s, v in slots.items()},
            rule_hyper, step_t, _SymbolicOps)
        # slots first, then the parameter, which may read the slots' new values
        for s, v in new_slots.items():
            updates.append((slots[s], as_tensor(v).expr))
        updates.append((p, as_tensor(new_p).expr))
    updates = _sequence_in_place(updates)

    out_by_name = {o.name: o.symbol for o in program.outputs}

    python_floats = _python_floats_are_exact(program, updates)

    def epilogue(printer, names):
        # what the template writes around and before the body (templates/module.py.j2):
        # the state token (which also carries the hyperparameters), and np.float64 scalars
        printer.need_helper("state_token")
        if not python_floats:
            printer.need_helper("numpy_scalars")
        for i, p in enumerate(plist):
            names[grad_syms[i]] = names[out_by_name[f"grad_{p.name}"]]
        lines = []
        if step_t is not None:
            names[step_t.expr] = "_t"
            lines.append("_counter = _state._counter")
            lines.append("_t = _counter[0] + 1")
        # gradients whose buffers are the program's own: scratch once no update reads them
        owned = getattr(printer, "scratch_outputs", set())
        scratch = {names[g]: g for i, g in enumerate(grad_syms)
                   if out_by_name[f"grad_{plist[i].name}"] in owned}
        lines += _print_updates(updates, printer, names, scratch)
        if step_t is not None:
            lines.append("_counter[0] = _t")
        return lines

    hyper_leaves = [h.expr for h in hyper.values()]
    reason = scalar_attempt(target, list(chosen) + list(plist))
    scalar_lines = ()
    if not reason:
        try:
            scalar_lines = tuple(scalar.PRELUDE) + tuple(scalar.render_train_step(
                program, updates, chosen, plist, slot_syms, hyper_leaves,
                {g: out_by_name[f"grad_{p.name}"] for g, p in zip(grad_syms, plist)},
                None if step_t is None else step_t.expr, "_numpy_train_step", check_inputs))
        except scalar.ScalarUnsupported as err:
            if target == "scalar":
                raise scalar.ScalarUnsupported(
                    f"train_step(target='scalar'): {err}; use target='numpy' or 'auto'") \
                    from None
            reason = str(err)
    formulas = [f"loss = {formula(loss.expr)}",
                f"update: {optimizer!r}, options {optimizer.config()}"]
    spec = ModuleSpec(title=f"train_step: {optimizer!r} over {', '.join(p.name for p in plist)}",
                      fn_name="_numpy_train_step" if scalar_lines else "train_step",
                      internal_name=bool(scalar_lines), inputs=chosen, result_kind="single", key=key,
                      version=__version__, formulas=tuple(formulas),
                      leading_params=("_state",),
                      # "_hyper": the live list the template takes from the state token
                      unpacked=(("_state._param_list", plist), ("_state._slot_list", slot_syms),
                                ("_hyper", hyper_leaves)),
                      epilogue=epilogue, unbox_scalars=True, result_wrapper="float",
                      reuse_buffers=inplace, verify=python_floats and not scalar_lines,
                      check_inputs=check_inputs)
    # the step returns the loss; the update block reads the gradients computed before it
    program.outputs = [o for o in program.outputs if o.name == "loss"] + [
        o for o in program.outputs if o.name != "loss"]
    namer = Namer()
    namer.taken.update(_TEMPLATE_LOCALS)  # never the name of a value of the program
    source = render(program, spec, namer)
    if not python_floats:
        source = _numpy_scalars(source, namer.names, list(chosen) + plist + slot_syms)
    if scalar_lines:  # the scalar step after the numpy one, which it calls on an error
        # (the numpy step's own text is final here: the scalar step is added unrewritten)
        source = _append_scalar(source, scalar_target_lines(scalar_lines, reason))
        verify_source(source, "train_step", writable_origins(spec))
    elif reason:
        source = _append_scalar(source, scalar_target_lines((), reason))
    if not python_floats or scalar_lines:
        verify_source(source, spec.fn_name, writable_origins(spec))  # the text that is written
    return source, spec.data


def _append_scalar(source: str, lines) -> str:
    """The module with the scalar target's lines (and its ``import math``) added."""
    if any(line.startswith("def ") for line in lines):
        source = source.replace("\nimport numpy as np\n", "\nimport numpy as np\nimport math\n", 1)
        lines = ("", "", "# The scalar target: the same step unrolled over the elements in "
                 "Python floats (every", "# shape is fixed and small). An arithmetic error "
                 "(where numpy gives inf/nan) reruns", "# the step in the numpy function above.") \
            + tuple(lines)
    return source.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


#: names the train step's code binds besides the program's values: the template's (the
#: state token) and the epilogue's (the step counter)
_TEMPLATE_LOCALS = frozenset({"_state", "_turn", "_held", "_opt", "_hyper", "_attrs",
                              "_counter", "_t"})


def _numpy_scalars(source: str, names: dict, leaves) -> str:
    """Unbox 0-d float64 values as numpy float64 scalars instead of Python floats: numpy's
    rules (inf/nan with a RuntimeWarning), at about 60 ns per operation instead of 15, and
    far below 0-d arrays (each operation on one allocates).

    The one rewrite of the rendered text left: the code generator writes the unboxing
    statements (``x = float(x)`` among the input checks, ``p = float(_boxp)`` after the
    unpacking) with ``float`` fixed, so exactly those statements, found by the names it gave
    ``leaves``, get ``_F64`` (which the template defines, the "numpy_scalars" helper)."""
    unboxing = set()
    for leaf in leaves:
        if leaf in names:
            box = names.get(("box", leaf), names[leaf])
            unboxing.add(f"{names[leaf]} = float({box})")
    lines = source.split("\n")
    for i, line in enumerate(lines):
        statement = line.strip()
        if statement in unboxing:
            lines[i] = line.replace(" = float(", " = _F64(", 1)
    return "\n".join(lines)


#: functions the printer writes as numpy calls: their value is a numpy scalar
_NUMPY_PRINTED = (sympy.exp, sympy.log, sympy.sin, sympy.cos, sympy.tan, sympy.tanh,
                  sympy.Abs, sympy.sign, sympy.Heaviside)


def _python_floats_are_exact(program, updates) -> bool:
    """True when computing the step's 0-d float64 values as Python floats gives numpy's
    results: no power or division of such a value is evaluated in Python arithmetic, where
    ``1/0.0`` raises ZeroDivisionError, ``(-1.0)**0.5`` is complex and ``1e200**3`` raises
    OverflowError (numpy gives inf or nan, with its RuntimeWarning). ``+``, ``-`` and ``*``
    give the same IEEE values (without numpy's overflow warning).

    Each value is classed as "N" (a numpy scalar or array: numpy's rules apply), "P" (a
    Python float derived from a 0-d input, parameter or slot) or "H" (a Python number from
    hyperparameters, dims and literals only: the same in either mode). A power with no "N"
    operand and some "P" operand is evaluated by Python: then the step keeps numpy scalars.
    """
    kinds: dict = {}

    def leaf_kind(e):
        if isinstance(e, Dim) or e.is_Number:
            return "H"
        if isinstance(e, TensorSymbol):
            if e in kinds:
                return kinds[e]
            if e.role == "hyper":
                return "H"
            if e.shape == () and e.dtype_name == "float64" and e.role != "constant":
                return "P"
            return "N"
        return "H" if not e.free_symbols else "P"  # other atoms: be conservative

    def combine(ks):
        return "N" if "N" in ks else ("P" if "P" in ks else "H")

    def known_kind(e):  # structural nodes and leaves: not entered
        if isinstance(e, TensorOp):
            return "N"
        return leaf_kind(e) if not e.args or isinstance(e, TensorSymbol) else None

    def kind_of(expr) -> tuple:
        """(kind, risky) of one expression, folded bottom-up (each distinct node once)."""
        risky = False

        def node_kind(e, ks):
            nonlocal risky
            if isinstance(e, sympy.Pow):
                base, ex = e.args
                if ex in (sympy.S.Half, -sympy.S.Half):
                    return "N"  # np.sqrt
                if ex == 2 and base.is_Symbol:
                    return ks[0]  # printed b*b
                risky = risky or ("N" not in ks and "P" in ks)
                return combine(ks)
            if isinstance(e, _NUMPY_PRINTED):
                return "N"
            if isinstance(e, sympy.Function) and shape_is_scalar(e):
                return combine(ks + ("P",))  # a printer form we do not know: conservative
            return combine(ks)

        kind = rebuild(expr, node_kind, leaf=known_kind)
        return kind, risky

    def shape_is_scalar(e):
        try:
            return info(e)[0] == ()
        except Exception:  # noqa: BLE001  no shape: a plain SymPy function of numbers
            return True

    for s in program.statements:
        if s.is_op:
            kinds[s.target] = "N"
            continue
        kind, risky = kind_of(s.value)
        if risky:
            return False
        kinds[s.target] = kind
    return not any(kind_of(value)[1] for _, value in updates)


def _sequence_in_place(updates):
    """Rewrite ``(var, new_value)`` pairs, all written over old values, into a sequence of
    in-place assignments: later values read the already-updated variables by name."""
    done = []
    for var, value in updates:
        marks = {}
        for prev_var, prev_value in done:
            mark = sympy.Dummy(f"new_{prev_var.name}")
            value = value.xreplace({prev_value: mark})
            marks[mark] = prev_var
        stale = [v for v, _ in done if v in value.free_symbols]
        if stale:  # an old value is still needed after it was overwritten
            raise AssertionError(f"internal error: update of {var} reads overwritten {stale}")
        done.append((var, value.xreplace(marks)))
    return [(var, value) for var, value in done]


def _print_updates(updates, p, names, scratch=None) -> list:
    """In-place numpy statements for ``var <- value``: ``+=``/``-=``, ``*=`` then ``+=``,
    or ``var[...] = value``.

    ``scratch`` maps the names of gradient buffers the program owns to their symbols: once no
    later update reads one, ``var += rest`` evaluates ``rest`` in it (ufuncs with ``out=``),
    so Adam's ``w += m*c/(sqrt(v*c2) + eps)`` allocates no full-size temporaries."""
    lines = []
    counter = [0]
    scratch = dict(scratch or {})

    def temp_name():
        counter[0] += 1
        return f"_u{counter[0]}"

    reads_after = _names_read_after(updates, names)
    for k, (var, value) in enumerate(updates):
        reps, (reduced,) = sympy.cse([value], symbols=_cse_syms(), order="none")
        for sym, e in reps:
            name = temp_name()
            names[sym] = name
            lines.append(f"{name} = {p.doprint(e)}")
        v = names[var]
        box = names.get(("box", var))
        if box is not None:  # a Python float: write the new value into its 0-d array
            lines.append(f"{box}[()] = {v} = {p.doprint(reduced)}")
            continue
        rest = sympy.Add(*[t for t in sympy.Add.make_args(reduced) if t != var])
        if len(sympy.Add.make_args(reduced)) > 1 and var in sympy.Add.make_args(reduced) \
                and var not in rest.free_symbols:
            in_scratch = _in_scratch(rest, var, _dead(scratch, reads_after[k]), p, names,
                                     temp_name)
            if in_scratch is not None:  # the buffer is free again after the +=
                lines += in_scratch[0] + [f"{v} += {in_scratch[1]}"]
                continue
            text = p.doprint(rest)
            if text.startswith("-") and not rest.is_Add:
                lines.append(f"{v} -= {text[1:]}")
            else:
                lines.append(f"{v} += {text}")
            continue
        scaled = _split_scaled(reduced, var)
        if scaled is not None:
            scale, rest = scaled
            lines.append(f"{v} *= {p.doprint(scale)}")
            if rest != 0:
                in_scratch = _in_scratch(rest, var, _dead(scratch, reads_after[k]), p, names,
                                         temp_name)
                if in_scratch is not None:
                    lines += in_scratch[0] + [f"{v} += {in_scratch[1]}"]
                else:
                    lines.append(f"{v} += {p.doprint(rest)}")
            continue
        lines.append(f"{v}[...] = {p.doprint(reduced)}")
    return lines


def _dead(scratch: dict, read_later: set) -> dict:
    """The scratch buffers no later update reads."""
    return {n: g for n, g in scratch.items() if n not in read_later}


def _names_read_after(updates, names) -> list:
    """For each update, the names that the updates after it read."""
    after, seen = [], set()
    for var, value in reversed(updates):
        after.append(set(seen))
        seen |= {names[s] for s in value.free_symbols if s in names}
    return after[::-1]


def _in_scratch(rest, var, dead: dict, p, names, temp_name):
    """``(lines, name)`` evaluating ``rest`` (of var's shape and dtype) in one
    of the ``dead`` gradient buffers, along the longest in-place chain from one of its
    leaves; None when none fits. The scratch buffer must not be read by ``rest`` except as
    the chain's own leaf."""
    from .compiler.codegen import _spine
    if not dead or info(rest) != (var.shape, var.dtype) or (-rest).is_Symbol \
            or rest.is_Symbol:
        return None  # var -= g is one pass with no temporary already
    read = {names[s] for s in rest.free_symbols if s in names}
    best = None
    for scratch_name, g in sorted(dead.items()):
        if g.shape != var.shape or g.dtype != var.dtype:
            continue
        for leaf in sorted(rest.free_symbols, key=lambda x: x.name):
            if not (isinstance(leaf, TensorSymbol) and leaf.shape == var.shape
                    and leaf.dtype == var.dtype and leaf in names):
                continue
            if scratch_name in read and names[leaf] != scratch_name:
                continue  # rest still reads the scratch buffer's gradient elsewhere
            lines = _spine(rest, leaf, names[leaf], _RESULT, p, dest=scratch_name)
            if lines and (best is None or len(lines) > len(best[0])):
                best = (lines, scratch_name)
    if best is None:
        return None
    lines = best[0]
    name = temp_name()
    return [line.replace(_RESULT, name) for line in lines], name


#: stands for the in-scratch result's name until it is chosen
_RESULT = "\x01"


def _split_scaled(expr, var):
    """``a*var + rest`` with ``a`` and ``rest`` free of ``var`` -> ``(a, rest)``."""
    scale, rest = [], []
    for term in sympy.Add.make_args(expr):
        coeff, factors = term.as_independent(var, as_Add=False)
        if factors == var:
            scale.append(coeff)
        elif var in term.free_symbols:
            return None
        else:
            rest.append(term)
    if len(scale) != 1:
        return None
    return scale[0], sympy.Add(*rest)


def _cse_syms():
    i = 0
    while True:
        i += 1
        yield sympy.Symbol(f"_upd{i}", real=True)


# ---------------------------------------------------------------------------------------
# The array API target: the step as a function of the state, returning its new values
# ---------------------------------------------------------------------------------------


class ArrayApiTrainState:
    """Parameters and optimizer slots of a ``train_step(..., backend="array_api")`` step:
    arrays of one array API namespace (PyTorch, numpy, array_api_strict, ...), replaced by
    new arrays at each step (the standard has no ``out=``, and some namespaces' arrays are
    immutable).

    Made by ``step.init(values)``.

    Attributes
    ----------
    params : dict[str, array]
        The parameters by name; each step assigns new arrays.
    slots : dict[str, dict[str, array]]
        The optimizer state of each parameter (``state.slots["w"]["m"]`` for Adam).
    step : int
        The number of updates done (Adam's ``t``).

    Notes
    -----
    Unlike :class:`TrainState` it holds no lock (one state per thread) and has no
    checkpoint format of its own: its arrays are the namespace's, saved with its tools.
    """

    __slots__ = ("params", "slots", "step")

    def __init__(self, params: dict, slots: dict, step: int = 0):
        self.params = params
        self.slots = slots
        self.step = step

    def __repr__(self):
        return (f"ArrayApiTrainState(params={list(self.params)}, step={self.step}, "
                f"slots={[s for s in next(iter(self.slots.values()), {})]})")


def _array_api_train_step(loss: Tensor, optimizer: Optimizer, plist, chosen, target: str):
    """``train_step(..., backend="array_api")``: loss, gradients and update compiled by
    :func:`symgrad.compile` into one array API function of (batch, parameters, slots,
    hyperparameters, step number) returning (loss, new parameters, new slots); the step
    calls it and assigns the results to the state."""
    from .api import compile as compile_
    if target == "scalar":
        raise ValueError("train_step: target='scalar' writes Python floats for numpy arrays; "
                         "it does not combine with backend='array_api'")
    dtype = np.result_type(*[p.dtype for p in plist])

    def leaf(name, shape=(), dtype_name=dtype.name):
        # tagged: never the same symbol as a user's leaf of the same name
        return TensorSymbol(name, shape, dtype_name, "input", tag="train_step")

    # the hyperparameters and the step number are 0-d arrays of the parameters' dtype,
    # fed at every call (a float64 one would promote a float32 model in the standard)
    hyper_leaves = {name: leaf(f"hyper_{name}") for name in optimizer.hyper_names}
    hyper = {name: Tensor(s, (), dtype) for name, s in hyper_leaves.items()}
    t_leaf = leaf("hyper_t") if optimizer.uses_step else None
    ptensors = [Tensor(p, p.shape, p.dtype) for p in plist]
    seed = optimizer.backward_seed(hyper)  # the numpy step's lr seed (SGD): the same values
    grads = grad(loss, ptensors, grad_ys=None if seed is None else [seed])
    grads = optimizer.transform_grads(ptensors, grads, _SymbolicOps)
    rule_hyper = hyper if seed is None else dict(hyper, lr=as_tensor(1))
    slot_leaves, new_params, new_slots = [], [], []
    for p, g in zip(plist, grads):
        slots = {s: leaf(f"{s}_{p.name}", p.shape, p.dtype_name) for s in optimizer.slot_names}
        slot_leaves += list(slots.values())
        new_p, updated = optimizer.rule(
            Tensor(p, p.shape, p.dtype), g,
            {s: Tensor(v, p.shape, p.dtype) for s, v in slots.items()}, rule_hyper,
            None if t_leaf is None else Tensor(t_leaf, (), dtype), _SymbolicOps)
        new_params.append(as_tensor(new_p))
        new_slots += [as_tensor(updated[s]) for s in optimizer.slot_names]
    state_leaves = [Tensor(s, s.shape, s.dtype) for s in
                    [*plist, *slot_leaves, *hyper_leaves.values()]
                    + ([t_leaf] if t_leaf is not None else [])]
    compiled = compile_([loss, *new_params, *new_slots],
                        inputs=[Tensor(s, s.shape, s.dtype) for s in chosen] + state_leaves,
                        backend="array_api", name="train_step")
    return _array_api_step_function(compiled, optimizer, plist, chosen, loss)


def _array_api_step_function(compiled, optimizer: Optimizer, plist, chosen, loss):
    fn = compiled._fn
    names = [p.name for p in plist]
    slot_names = type(optimizer).slot_names
    input_names = [leaf.name for leaf in chosen]
    index = {name: i for i, name in enumerate(input_names)}
    uses_step = optimizer.uses_step

    def step(state, /, *args, **kwargs):
        """One step on ``state`` (an :class:`ArrayApiTrainState`) with the batch given by
        position or by input name; returns the batch loss as a float."""
        batch = _bind_batch(input_names, index, args, kwargs)
        opt = step.optimizer
        hyper = list(opt.hyper_list_for(step._signature))  # raises for another rule
        t = state.step + 1
        values = [*batch, *[state.params[n] for n in names],
                  *[state.slots[n][s] for n in names for s in slot_names], *hyper]
        if uses_step:
            values.append(float(t))
        value, *new = fn(*values)
        for i, n in enumerate(names):
            state.params[n] = new[i]
        k = len(names)
        for n in names:
            for s in slot_names:
                state.slots[n][s] = new[k]
                k += 1
        state.step = t
        return float(value)

    def init(values) -> ArrayApiTrainState:
        """A fresh state: copies of the initial ``values`` {param name: array} in their
        array namespace, zero slots."""
        import array_api_compat
        arrays = _check_array_api_values(plist, values)
        params, slots = {}, {}
        for p in plist:
            xp = array_api_compat.array_namespace(arrays[p.name])
            v = arrays[p.name]
            params[p.name] = xp.asarray(v, dtype=getattr(xp, p.dtype.name), copy=True)
            slots[p.name] = {s: xp.zeros_like(params[p.name]) for s in slot_names}
        return ArrayApiTrainState(params, slots, 0)

    step.__doc__ = TrainStep.__doc__
    step.source = compiled.source
    step.path = compiled.path
    step.key = compiled.key
    step.optimizer = optimizer
    step.params = names
    step.inputs = input_names
    step.target = compiled.target
    step.backend = "array_api"
    step.loss = loss
    step._signature = optimizer._signature
    step.init = init
    step.check_inputs = True  # the namespace and device are read from the checked inputs
    step.bound = functools.partial(_bound_array_api_step, step)
    return step


def _bound_array_api_step(step, state):
    """``step.bound(state)`` of an array API step: the step with ``state`` bound. Raises
    TypeError for anything but an :class:`ArrayApiTrainState` and ValueError for a state
    whose parameters are not the step's."""
    if not isinstance(state, ArrayApiTrainState):
        raise TypeError(f"bound: expected an ArrayApiTrainState (step.init(...)), got "
                        f"{type(state).__name__}")
    if sorted(state.params) != sorted(step.params):
        raise ValueError(f"bound: this state has parameters {sorted(state.params)}; the step "
                         f"trains {sorted(step.params)}")
    return types.MethodType(step, state)


def _bind_batch(names, index, args, kwargs) -> list:
    """The batch values in input order, from positions and input names."""
    if len(args) > len(names):
        raise TypeError(f"train_step takes {len(names)} inputs ({', '.join(names)}), got "
                        f"{len(args)} positional arguments")
    values = list(args) + [None] * (len(names) - len(args))
    given = [i < len(args) for i in range(len(names))]
    for k, v in kwargs.items():
        i = index.get(k)
        if i is None:
            raise TypeError(f"train_step got an unknown input {k!r}; its inputs are {names}")
        if given[i]:
            raise TypeError(f"train_step got input {k!r} twice")
        values[i], given[i] = v, True
    missing = [n for n, g in zip(names, given) if not g]
    if missing:
        raise TypeError(f"train_step is missing input(s) {missing}; its inputs are {names}")
    return values


def _check_array_api_values(plist, values) -> dict:
    """``values`` {param name: array}: every parameter, no other name, the right shape."""
    if not isinstance(values, Mapping):  # (as _init_state says it)
        raise TypeError("init: give the initial values as a dict {param name: array}")
    _check_value_names([p.name for p in plist], values, "init")
    for p in plist:
        got = tuple(getattr(values[p.name], "shape", np.shape(values[p.name])))
        if got != tuple(p.shape):
            raise ValueError(f"init: parameter {p.name!r} must have shape "
                             f"{format_shape(p.shape)}, got {got}")
    return dict(values)
