"""A public gradient check: symgrad's gradients against float64 central differences.

:func:`check_grad` takes a scalar loss expression (it compiles the loss and its gradients)
or a function that returns the loss and its gradients (a :class:`~symgrad.CompiledFunction`
or any callable), and compares each gradient ``g`` with the directional derivative of the
loss along random unit directions ``v``, ``(L(x + h v) - L(x - h v)) / (2 h)`` in float64,
against ``<g, v>``; optionally also with the tape (:mod:`symgrad.tape`), element by element.

What it promises:

* the report has one row per checked input: the largest absolute and relative error over the
  directions, the tolerance used and pass/fail (and the tape's errors when a tape function
  is given); ``raise_on_failure=True`` raises :class:`GradientCheckError` naming the input
  and its error instead of returning a failing report;
* it never changes the caller's arrays; the directions come from ``numpy.random`` seeded by
  ``seed``, so a report is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

__all__ = ["check_grad", "GradCheckReport", "GradCheckRow", "GradientCheckError"]


class GradientCheckError(AssertionError):
    """A gradient disagreed with finite differences (or with the tape)."""


@dataclass
class GradCheckRow:
    """The check of one input's gradient.

    Attributes
    ----------
    name : str
        The input.
    max_abs_error, max_rel_error : float
        The largest error of the directional derivative against finite differences, over
        the random directions (relative: over the larger of the two magnitudes).
    tolerance : float
        The largest absolute error allowed.
    passed : bool
        Whether the gradient agreed with finite differences.
    tape_max_abs_error, tape_max_rel_error : float or None
        The largest elementwise difference from the tape's gradient (None: no tape check).
    tape_passed : bool or None
        Whether it agreed with the tape (None: no tape check).
    """

    name: str
    max_abs_error: float  # |<g, v> - finite difference|, largest over the directions
    max_rel_error: float  # the same, over max(|<g, v>|, |finite difference|)
    tolerance: float      # the largest absolute error allowed (atol + rtol * scale + noise)
    passed: bool
    tape_max_abs_error: Optional[float] = None  # max |g - g_tape|, element by element
    tape_max_rel_error: Optional[float] = None
    tape_passed: Optional[bool] = None

    @property
    def ok(self) -> bool:
        """Whether every check made of this gradient passed."""
        return self.passed and self.tape_passed is not False


@dataclass
class GradCheckReport:
    """What :func:`check_grad` found: ``rows`` by input name, ``passed`` for all of them.

    True in a boolean context when every gradient passed; ``str(report)`` is a table.

    Attributes
    ----------
    rows : dict
        Input name to :class:`GradCheckRow`.
    loss : float
        The loss at the checked point.
    directions : int
        The random directions tried per input.
    """

    rows: dict = field(default_factory=dict)
    loss: float = float("nan")
    directions: int = 0

    @property
    def passed(self) -> bool:
        """Whether every input's gradient passed."""
        return all(r.ok for r in self.rows.values())

    def __bool__(self) -> bool:
        return self.passed

    def failures(self) -> list:
        """The rows that did not pass.

        Returns
        -------
        list of GradCheckRow
        """
        return [r for r in self.rows.values() if not r.ok]

    def __str__(self) -> str:
        head = (f"gradient check at loss = {self.loss:.6g}, {self.directions} random "
                f"direction(s) per input: {'PASS' if self.passed else 'FAIL'}")
        lines = [head, f"  {'input':<16} {'max abs err':>12} {'max rel err':>12} "
                       f"{'tolerance':>10}  result"]
        for r in self.rows.values():
            tape = ""
            if r.tape_passed is not None:
                tape = (f"  tape: abs {r.tape_max_abs_error:.3g} rel {r.tape_max_rel_error:.3g}"
                        f" {'ok' if r.tape_passed else 'FAIL'}")
            lines.append(f"  {r.name:<16} {r.max_abs_error:12.3g} {r.max_rel_error:12.3g} "
                         f"{r.tolerance:10.3g}  {'ok' if r.passed else 'FAIL'}{tape}")
        return "\n".join(lines)


def check_grad(f_or_loss, values: dict, wrt=None, *, directions: int = 4,
               rtol: float = 1e-6, atol: float = 1e-10, step: Optional[float] = None,
               seed: int = 0, tape: Optional[Callable] = None,
               raise_on_failure: bool = False) -> GradCheckReport:
    """Check gradients against float64 central differences along random directions.

    Parameters
    ----------
    f_or_loss : Tensor or callable
        A scalar loss expression: its gradients are compiled with ``sg.grad`` and
        ``sg.compile``. Or a function called as ``f(**values)`` returning
        ``[loss, grad_1, ..., grad_k]`` (a compiled ``sg.compile([loss, *sg.grad(loss,
        params)])``, or any callable), the gradients in the order of ``wrt``.
    values : dict of str to array_like
        A value for every input of the loss (every leaf, params included), by name. Not
        modified.
    wrt : list of str, optional
        The inputs whose gradients are checked. Default: for a loss, every ``sg.param`` it
        reads (every float input if it reads none), by name; for a function, required unless
        it is a compiled function with one gradient and one ``sg.param`` input.
    directions : int
        Random unit directions per input (each one a central difference, two loss calls).
    rtol, atol : float
        A direction passes when ``|<g, v> - fd| <= atol + rtol * max(|<g, v>|, |fd|) +
        noise``, where ``noise`` bounds the rounding error of the difference quotient
        (about ``1e-16 * |loss| / step``).
    step : float, optional
        The finite-difference step ``h``; default ``6e-6 * max(1, max |x|)`` (about the cube
        root of float64's epsilon, where truncation and rounding errors balance).
    seed : int
        Seed of the random directions.
    tape : callable, optional
        ``tape(**variables)`` computing the same loss with :mod:`symgrad.tape` ops from
        ``tape.Variable`` values: its gradients are compared too, element by element
        (``rtol`` with an absolute floor of ``atol``).
    raise_on_failure : bool
        Raise :class:`GradientCheckError` (naming the input and its error) instead of
        returning a failing report.

    Returns
    -------
    GradCheckReport
        ``report.passed``, ``report.rows[name]`` (``max_abs_error``, ``max_rel_error``,
        ``passed``, ...); ``print(report)`` shows a table.

    Examples
    --------
    >>> import numpy as np
    >>> import symgrad as sg
    >>> x = sg.input("x", (4,))
    >>> w = sg.param("w", (4,))
    >>> loss = sg.sum(sg.tanh(x * w) ** 2)
    >>> report = sg.check_grad(loss, {"x": np.linspace(-1, 1, 4), "w": np.ones(4)})
    >>> report.passed
    True
    >>> report.rows["w"].max_rel_error < 1e-6
    True
    """
    from .expr import Tensor

    if directions < 1:
        raise ValueError(f"check_grad: directions must be at least 1, got {directions}")
    if not isinstance(values, dict):
        raise TypeError("check_grad: give the values as a dict {input name: array}")
    if isinstance(f_or_loss, Tensor):
        fn, wrt = _compile_loss(f_or_loss, wrt)
    elif callable(f_or_loss):
        fn = f_or_loss
        wrt = _default_wrt(f_or_loss, values, wrt)
    else:
        raise TypeError(f"check_grad: expected a loss Tensor or a function returning "
                        f"[loss, *gradients], got {type(f_or_loss).__name__}")
    unknown = [n for n in wrt if n not in values]
    if unknown:
        raise ValueError(f"check_grad: no value given for input(s) {unknown}; values has "
                         f"{sorted(values)}")
    base = {k: np.array(v, copy=True) for k, v in values.items()}

    def evaluate(vals):
        out = fn(**vals)
        if isinstance(out, dict):
            raise TypeError("check_grad: the function must return a list [loss, *gradients]")
        out = list(out)
        if len(out) != len(wrt) + 1:
            raise ValueError(f"check_grad: the function returned {len(out)} value(s); expected "
                             f"the loss and {len(wrt)} gradient(s), for {list(wrt)}")
        loss = np.asarray(out[0], dtype=np.float64)
        if loss.shape != ():
            raise ValueError(f"check_grad: the loss must be a scalar, got shape {loss.shape}")
        return float(loss), [np.asarray(g, dtype=np.float64) for g in out[1:]]

    loss0, grads = evaluate({k: v.copy() for k, v in base.items()})
    for name, g in zip(wrt, grads):
        if g.shape != np.shape(base[name]):
            raise ValueError(f"check_grad: the gradient for {name!r} has shape {g.shape}; the "
                             f"input has shape {np.shape(base[name])}")
    rng = np.random.default_rng(seed)
    report = GradCheckReport(loss=loss0, directions=directions)
    tape_grads = _tape_gradients(tape, base, wrt) if tape is not None else None
    for i, name in enumerate(wrt):
        x = base[name]
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"check_grad: input {name!r} has dtype {x.dtype}; only floating "
                            f"inputs have gradients")
        h = step if step is not None else 6e-6 * max(1.0, float(np.max(np.abs(x), initial=0)))
        noise_eps = float(np.finfo(x.dtype).eps)
        worst_abs = worst_rel = worst_tol = 0.0
        passed = True
        for _ in range(directions):
            v = rng.standard_normal(x.shape)
            v /= max(float(np.linalg.norm(v)), 1e-300)
            plus, minus = dict(base), dict(base)
            plus[name] = (x.astype(np.float64) + h * v).astype(x.dtype)
            minus[name] = (x.astype(np.float64) - h * v).astype(x.dtype)
            lp, _ = evaluate({k: a.copy() for k, a in plus.items()})
            lm, _ = evaluate({k: a.copy() for k, a in minus.items()})
            # the step actually taken, after rounding to the input's dtype
            dx = (plus[name].astype(np.float64) - minus[name].astype(np.float64))
            fd = (lp - lm) / 2.0
            sym = float(np.vdot(grads[i], dx)) / 2.0
            scale = max(abs(fd), abs(sym))
            tol = atol * h + rtol * scale + 16 * noise_eps * max(abs(lp), abs(lm), abs(loss0))
            err = abs(fd - sym)
            worst_abs = max(worst_abs, err / h)
            worst_rel = max(worst_rel, err / scale if scale > 0 else (0.0 if err == 0 else
                                                                      float("inf")))
            worst_tol = max(worst_tol, tol / h)
            if not err <= tol:  # nan fails too
                passed = False
        row = GradCheckRow(name, worst_abs, worst_rel, worst_tol, passed)
        if tape_grads is not None:
            gt = tape_grads[i]
            diff = np.abs(grads[i] - gt)
            mag = np.maximum(np.abs(grads[i]), np.abs(gt))
            row.tape_max_abs_error = float(np.max(diff, initial=0.0))
            row.tape_max_rel_error = float(np.max(np.where(mag > 0, diff / np.where(
                mag > 0, mag, 1.0), 0.0), initial=0.0))
            row.tape_passed = bool(np.all(diff <= np.maximum(atol, rtol * mag)))
        report.rows[name] = row
    if raise_on_failure and not report.passed:
        bad = report.failures()[0]
        what = (f"max abs error {bad.max_abs_error:.3g} (rel {bad.max_rel_error:.3g}, "
                f"tolerance {bad.tolerance:.3g}) against central differences")
        if bad.passed:
            what = (f"max abs error {bad.tape_max_abs_error:.3g} (rel "
                    f"{bad.tape_max_rel_error:.3g}) against the tape")
        raise GradientCheckError(f"check_grad: the gradient for input {bad.name!r} is wrong: "
                                 f"{what}\n{report}")
    return report


def _compile_loss(loss, wrt):
    """``(f, wrt)``: f(**values) -> [loss, *grads] for a loss expression."""
    from .api import compile as sg_compile, grad, leaves_of
    from .expr import Tensor

    if loss.shape != ():
        raise ValueError(f"check_grad: the loss must be a scalar, got shape {loss.shape}")
    leaves = {leaf.name: leaf for leaf in leaves_of([loss]) if leaf.role in ("input", "param")}
    if wrt is None:
        wrt = sorted(n for n, leaf in leaves.items() if leaf.role == "param")
        if not wrt:
            wrt = sorted(n for n, leaf in leaves.items()
                         if leaf.dtype is not None and leaf.dtype.kind == "f")
    wrt = [w.expr.name if isinstance(w, Tensor) else w for w in wrt]
    missing = [n for n in wrt if n not in leaves]
    if missing:
        raise ValueError(f"check_grad: the loss reads no input named {missing}; it reads "
                         f"{sorted(leaves)}")
    sources = [Tensor(leaves[n], leaves[n].shape, leaves[n].dtype) for n in wrt]
    f = sg_compile([loss, *grad(loss, sources)], inputs=sorted(leaves))
    return f, wrt


def _default_wrt(fn, values, wrt):
    if wrt is not None:
        return [w.expr.name if hasattr(w, "expr") else w for w in wrt]
    # only an unambiguous case is guessed: one gradient and one parameter (the order of
    # several gradients is the order given to sg.grad, which the function does not record)
    outs = getattr(fn, "output_names", None)
    params = [leaf.name for leaf in getattr(fn, "_leaves", None) or () if leaf.role == "param"]
    if outs is not None and len(outs) == 2 and len(params) == 1:
        return params
    raise ValueError("check_grad: say which inputs the function's gradients belong to, in "
                     "order: check_grad(f, values, wrt=[...])")


def _tape_gradients(tape_fn, base, wrt):
    from .tape import GradientTape, Variable

    variables = {k: Variable(np.array(v, copy=True), name=k) for k, v in base.items()}
    with GradientTape() as tape:
        loss = tape_fn(**variables)
    grads = tape.gradient(loss, [variables[n] for n in wrt])
    return [np.zeros(np.shape(base[n])) if g is None else np.asarray(g, dtype=np.float64)
            for n, g in zip(wrt, grads)]
