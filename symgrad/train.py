"""Training: one generated function computes the loss, the gradients and the optimizer
update of every parameter and its optimizer state, in place.

    step = sg.train_step(loss, sg.optim.Adam(1e-3))
    state = step.init({"w1": w1_0, "b1": b1_0})
    for xb, yb in batches:
        loss_value = step(state, x=xb, y=yb)      # updates state.params in place

The generated ``train_step`` is straight-line numpy: a forward/backward block planned like
any compiled function, then the update rules of :mod:`symgrad.optim` written as in-place
statements (``w -= lr*grad_w``; ``m *= beta1; m += ...``), in an order where each
statement reads only values that are still current. Nothing is written before every input
has been checked, so a failing call leaves the state as it was.
"""

from __future__ import annotations

import functools
import types

import numpy as np
import sympy

from . import cache as C
from .api import (CompiledFunction, _fingerprint_tensor, _resolve_inputs, count_nodes,
                  default_input_order, grad, leaves_of)
from .codegen import ModuleSpec, render, template_text
from .expr import Tensor, as_tensor
from .nodes import TensorSymbol
from .optim import Optimizer, _SymbolicOps
from .optimize import plan
from .printer import formula
from .shapes import Dim, format_shape

__all__ = ["train_step", "TrainStep", "TrainState"]


def _hyper_tensor(name: str) -> Tensor:
    return Tensor(TensorSymbol(name, (), "", "hyper"), (), None)


class TrainState:
    """Parameters and optimizer slots of one model, updated in place by a :class:`TrainStep`.

    ``params`` maps each parameter's name to its array; assigning to it copies the new
    value into the existing array (after checking its shape), so the step keeps seeing it.
    ``slots`` maps each parameter's name to its optimizer state arrays; ``step`` counts
    the updates done.
    """

    def __init__(self, names, params: list, slot_names, slots: list, hyper: list):
        self._names = list(names)
        self._hyper = hyper  # the optimizer's live hyperparameter list
        self._param_list = params
        self._slot_list = slots
        self._counter = [0]
        self.params = _ParamView(self._names, params)
        per = len(slot_names)
        self.slots = {n: dict(zip(slot_names, slots[i * per:(i + 1) * per]))
                      for i, n in enumerate(self._names)}

    @property
    def step(self) -> int:
        return self._counter[0]

    def __repr__(self):
        return f"TrainState(step={self.step}, params={self._names})"


class _ParamView(dict):
    """A dict of the parameter arrays whose item assignment copies into the live array."""

    def __init__(self, names, arrays):
        super().__init__(zip(names, arrays))

    def __setitem__(self, name, value):
        if name not in self:
            raise KeyError(f"no parameter named {name!r}; parameters are {list(self)}")
        live = dict.__getitem__(self, name)
        value = np.asarray(value)
        if value.shape != live.shape:
            raise ValueError(f"parameter {name!r} has shape {live.shape}, got {value.shape}")
        np.copyto(live, value, casting="same_kind")


class TrainStep:
    """What ``sg.train_step`` returns, described (it is a plain function, for speed).

    ``step(state, **batch)`` runs one step and returns the batch loss as a float, updating
    ``state`` in place. Attributes: ``init(values) -> TrainState``, ``source`` (the generated
    module), ``path`` (where it is cached), ``optimizer`` (change ``optimizer.lr`` between
    steps freely), ``params`` and ``inputs`` (names, in order), ``loss``.

    A step is the generated function itself, so calling it costs one Python call: at the size
    of W0 (one weight) a step is all call overhead, and a wrapper would double it.
    """


def _init_state(params: list, optimizer: Optimizer, values: dict) -> TrainState:
    """A fresh state: copies of the initial ``values`` (by parameter name), zero slots."""
    names = [p.name for p in params]
    if not isinstance(values, dict):
        raise TypeError("init: give the initial values as a dict {param name: array}")
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"init: missing initial value(s) for parameter(s) {missing}")
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ValueError(f"init: unknown parameter(s) {unknown}; parameters are {names}")
    arrays = []
    for p in params:
        v = np.asarray(values[p.name])
        if v.shape != p.shape:
            raise ValueError(f"init: parameter {p.name!r} must have shape "
                             f"{format_shape(p.shape)}, got {v.shape}")
        if not np.can_cast(v.dtype, p.dtype, casting="same_kind"):
            raise TypeError(f"init: parameter {p.name!r} must be {p.dtype}, got {v.dtype}")
        arrays.append(np.array(v, dtype=p.dtype, copy=True))
    slots = [np.zeros(p.shape, dtype=p.dtype) for p in params for _ in optimizer.slot_names]
    return TrainState(names, arrays, optimizer.slot_names, slots, optimizer._hyper)


def _make_step(compiled: CompiledFunction, optimizer: Optimizer, params: list, loss):
    fn = compiled._fn
    if compiled._rename:  # some input name is not an identifier: map keywords first
        def step(state, /, *args, **kwargs):
            return fn(state, *compiled._bind(args, kwargs))
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
    step.loss = loss
    step.init = functools.partial(_init_state, params, optimizer)
    return step


def train_step(loss, optimizer: Optimizer, params=None, inputs=None, *, inplace: bool = True):
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
    """
    loss = as_tensor(loss)
    if loss.shape != ():  # a non-scalar loss is differentiated (and reported) as its sum
        from .expr import sum as _sum
        loss = _sum(loss)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"train_step: optimizer must be a symgrad.optim optimizer, got "
                        f"{type(optimizer).__name__}")
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

    memo, ser = {}, []
    described = _fingerprint_tensor(loss, memo, ser)
    key = C.make_key("train_step", C.version_fingerprint(), template_text(), optimizer.config(),
                     repr([(p.name, tuple(map(str, p.shape)), p.dtype_name) for p in plist]),
                     repr([(s.name, s.role, tuple(map(str, s.shape)), s.dtype_name)
                           for s in chosen]),
                     "\n".join(ser), described, f"inplace={bool(inplace)}")
    mod = C.MODULES.lookup(key)
    if mod is None:
        mod = C.MODULES.store(key, _generate_step(loss, optimizer, plist, chosen, key,
                                                  bool(inplace)))
    compiled = CompiledFunction(mod, "train_step", chosen, "single", None, ["loss"], [loss],
                                {"check_finite": False})
    return _make_step(compiled, optimizer, plist, loss)


def _generate_step(loss: Tensor, optimizer: Optimizer, plist, chosen, key,
                   inplace: bool = True) -> str:
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

    def epilogue(printer, names):
        for i, p in enumerate(plist):
            names[grad_syms[i]] = names[out_by_name[f"grad_{p.name}"]]
        lines = []
        if step_t is not None:
            names[step_t.expr] = "_t"
            lines.append("_counter = _state._counter")
            lines.append("_t = _counter[0] + 1")
        lines += _print_updates(updates, printer, names)
        if step_t is not None:
            lines.append("_counter[0] = _t")
        return lines

    hyper_leaves = [h.expr for h in hyper.values()]
    formulas = [f"loss = {formula(loss.expr)}",
                f"update: {optimizer!r}, options {optimizer.config()}"]
    spec = ModuleSpec(title=f"train_step: {optimizer!r} over {', '.join(p.name for p in plist)}",
                      fn_name="train_step", inputs=chosen, result_kind="single", key=key,
                      version=__version__, formulas=tuple(formulas),
                      leading_params=("_state",),
                      unpacked=(("_state._param_list", plist), ("_state._slot_list", slot_syms),
                                ("_state._hyper", hyper_leaves)),
                      epilogue=epilogue, unbox_scalars=True, result_wrapper="float",
                      reuse_buffers=inplace)
    # the step returns the loss; the update block reads the gradients computed before it
    program.outputs = [o for o in program.outputs if o.name == "loss"] + [
        o for o in program.outputs if o.name != "loss"]
    source = render(program, spec)
    return source.replace("    return [", "    return [", 1)


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


def _print_updates(updates, p, names) -> list:
    """In-place numpy statements for ``var <- value``: ``+=``/``-=``, ``*=`` then ``+=``,
    or ``var[...] = value``."""
    lines = []
    counter = [0]

    def temp_name():
        counter[0] += 1
        return f"_u{counter[0]}"

    for var, value in updates:
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
                lines.append(f"{v} += {p.doprint(rest)}")
            continue
        lines.append(f"{v}[...] = {p.doprint(reduced)}")
    return lines


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
