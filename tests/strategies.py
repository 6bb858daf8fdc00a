"""Random expression-graph programs for the property tests, and their three interpreters.

A *program* is a short list of instructions. Each instruction makes one value: a leaf
(:class:`Leaf`: a float input/parameter, an integer label array, or a reduction weight) or
an op application (:class:`Step`: an op name, the indices of earlier values it reads, and
its static parameters). One generator (:func:`programs`) writes programs; one interpreter
(:func:`run`) evaluates a program against a *backend* -- a namespace of the op functions:

* :class:`NumpyBackend` -- plain numpy, the reference forward (and the function that the
  finite differences differentiate); it records a *branch signature* (relu masks, max
  argmaxes, comparison results, ...) so a finite difference that crosses a kink can be
  detected, and replays stop_gradient values;
* :data:`SG` -- symgrad's symbolic API (``sg.exp``, ``sg.where``, operators on
  ``sg.Tensor``);
* :data:`TP` -- the tape (``symgrad.tape``).

Every op is written once, in :data:`OPS`, over a backend ``B``, so the symbolic side and
the tape build the identical graph; the smooth elementwise ops of one
operand not written there are drawn from their records (:data:`RECORD_UNARY`), each in its
test domain, and so are smooth binary elementwise ops (:data:`RECORD_BINARY`), reductions
with numpy's ``(x, axis=None, keepdims=False)`` signature (:data:`RECORD_REDUCTIONS`: axis,
keepdims and ddof drawn) and ops of one array called with their defaults
(:data:`RECORD_SHAPE`: flip, diagonal, sort, ...), each at the ranks where numpy and symgrad
both take it; half of the structural steps draw from these. The scalar
the gradients are taken of is ``sum_k sum(out_k * u_k)`` over the program's outputs (the
values no step reads) with random weight leaves ``u_k``.

Inputs are kept away from kinks and poles by construction: ``log``/``sqrt``/fractional
powers get ``square(x) + c`` (c > 0), division is by ``1 + square(x)``; relu/abs/sign,
maximum/minimum, clip, where and the max reduction get offsets (dyadic constants, exact in
binary) chosen from the actual values so that every argument stays at least
:data:`MARGIN` from its kink; an op whose values would leave [-BOUND, BOUND] (or exceed the
size limits) is replaced by ``tanh`` of its first operand.

Hypothesis draws a seed and the number of steps; every other choice (ops, operands, shapes,
axes, offsets, leaf values) comes from a numpy generator with that seed, so the op mix is
the one written here, and a failure shrinks to the shortest failing prefix of a program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

import symgrad as sg
from symgrad import tape as tp
from symgrad.ops import RECORDS

#: every value of a generated graph stays in [-BOUND, BOUND]
BOUND = 30.0
#: kink arguments stay at least this far from the kink
MARGIN = 0.05
#: offsets are multiples of 1/DYADIC (exact in binary, so both sides see the same constant)
DYADIC = 64
MAX_RANK = 4
MAX_SIZE = 96


# ------------------------------------------------------------------------------------------
# Programs
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """A leaf: ``kind`` is "input" or "param" (float, differentiated), "labels" (int64 class
    indices below ``depth``) or "weight" (float, a reduction weight, not differentiated)."""

    name: str
    shape: tuple
    kind: str
    depth: int = 0


@dataclass(frozen=True)
class Step:
    op: str
    args: tuple
    params: tuple = ()  # sorted (name, value) pairs

    @property
    def kw(self) -> dict:
        return dict(self.params)


@dataclass
class Program:
    instrs: list
    values: dict  # leaf name -> ndarray
    outputs: list  # (value index, weight-leaf index)
    fallbacks: int = 0

    @property
    def leaves(self) -> list:
        return [i for i in self.instrs if isinstance(i, Leaf)]

    @property
    def diff_leaves(self) -> list:
        return [i for i in self.instrs if isinstance(i, Leaf) and i.kind in ("input", "param")]

    @property
    def steps(self) -> list:
        return [i for i in self.instrs if isinstance(i, Step)]

    def depth(self) -> int:
        d = []
        for ins in self.instrs:
            d.append(0 if isinstance(ins, Leaf) else 1 + max(d[a] for a in ins.args))
        return max(d)

    def describe(self) -> str:
        lines = []
        for k, ins in enumerate(self.instrs):
            if isinstance(ins, Leaf):
                lines.append(f"v{k} = {ins.kind} {ins.name}{ins.shape}")
            else:
                args = ", ".join(f"v{a}" for a in ins.args)
                kw = ", ".join(f"{n}={_short(v)}" for n, v in ins.params)
                lines.append(f"v{k} = {ins.op}({args}{', ' if kw else ''}{kw})")
        lines.append("loss = " + " + ".join(f"sum(v{i} * v{j})" for i, j in self.outputs))
        return "\n".join(lines)


def _short(v):
    if isinstance(v, np.ndarray):
        return f"array{v.shape}"
    return repr(v)


# ------------------------------------------------------------------------------------------
# The ops, each written once over a backend B
# ------------------------------------------------------------------------------------------


def _max_op(B, a, axis, keepdims, tiebreak=None):
    if tiebreak is not None:
        a = a + B.const(tiebreak)
    return B.max(a, axis, keepdims)


def _scalar_op(B, a, form, k):
    if form == "mul":
        return a * k
    if form == "rmul":
        return k * a
    if form == "add":
        return a + k
    if form == "rsub":
        return k - a
    if form == "div":
        return a / k
    return k / (B.square(a) + 1.0)  # "rdiv"


OPS: dict[str, Callable] = {
    # elementwise unary
    "neg": lambda B, a: -a,
    "exp": lambda B, a: B.exp(a),
    "log": lambda B, a: B.log(B.square(a) + 1.0),
    "sqrt": lambda B, a: B.sqrt(B.square(a) + 0.5),
    "sin": lambda B, a: B.sin(a),
    "cos": lambda B, a: B.cos(a),
    "tanh": lambda B, a: B.tanh(a),
    "sigmoid": lambda B, a: B.sigmoid(a),
    "softplus": lambda B, a: B.softplus(a),
    "log_sigmoid": lambda B, a: B.log_sigmoid(a),
    "square": lambda B, a: B.square(a),
    "relu": lambda B, a, c: B.relu(a - c),
    "abs": lambda B, a, c: B.abs(a - c),
    "sign": lambda B, a, c: B.sign(a - c) * a,
    "clip": lambda B, a, lo, hi: B.clip(a, lo, hi),
    "pow_const": lambda B, a, p: (B.square(a) + 1.0) ** p,
    "pow_int": lambda B, a, n: a ** n,
    "custom_cube": lambda B, a: B.cube(a),
    "scalar": _scalar_op,
    # elementwise binary (broadcasting)
    "add": lambda B, a, b: a + b,
    "sub": lambda B, a, b: a - b,
    "mul": lambda B, a, b: a * b,
    "div": lambda B, a, b: a / (B.square(b) + 1.0),
    "pow": lambda B, a, b: (B.square(a) + 1.0) ** b,
    "maximum": lambda B, a, b, c: B.maximum(a, b + c),
    "minimum": lambda B, a, b, c: B.minimum(a, b + c),
    "where": lambda B, a, b, sel, t: B.where(B.gt(a if sel == 0 else b, t), a, b),
    "sigmoid_xent": lambda B, a, b: B.sigmoid_cross_entropy(a, b),
    "hypot": lambda B, a, b: B.hypot(a, B.square(b) + 0.5),
    "arctan2": lambda B, a, b: B.arctan2(a, B.square(b) + 0.5),
    "logaddexp": lambda B, a, b: B.logaddexp(a, b),
    "logaddexp2": lambda B, a, b: B.logaddexp2(a, b),
    "fmax": lambda B, a, b, c: B.fmax(a, b + c),
    "fmin": lambda B, a, b, c: B.fmin(a, b + c),
    "mod": lambda B, a, b: B.mod(a, B.square(b) + 0.5),
    "remainder": lambda B, a, b: B.remainder(a, B.square(b) + 0.5),
    "fmod": lambda B, a, b: B.fmod(a, B.square(b) + 0.5),
    "copysign": lambda B, a, b: B.copysign(a, b),
    "float_power": lambda B, a, b: B.float_power(B.square(a) + 0.5, b),
    "true_divide": lambda B, a, b: B.true_divide(a, B.square(b) + 1.0),
    "heaviside": lambda B, a, b: B.heaviside(a, b) * b,
    # comparisons and logical ops as 0/1 masks in arithmetic (offset t away from the kink)
    "compare": lambda B, a, b, fn, t: getattr(B, fn)(a, b + t) * a,
    "logical": lambda B, a, b, fn, t: (B.logical_not(B.gt(a, t)) if fn == "logical_not" else
                                       getattr(B, fn)(B.gt(a, t), B.gt(b, t))) * b,
    "stop_gradient": lambda B, a, b: B.stop_gradient(a) * b,
    "matmul": lambda B, a, b: B.matmul(a, b),
    # reductions and structure
    "sum": lambda B, a, axis, keepdims: B.sum(a, axis, keepdims),
    "mean": lambda B, a, axis, keepdims: B.mean(a, axis, keepdims),
    "max": _max_op,
    "logsumexp": lambda B, a, axis, keepdims: B.logsumexp(a, axis, keepdims),
    "norm": lambda B, a, axis, keepdims: B.norm(a, axis=axis, keepdims=keepdims),
    "l2_loss": lambda B, a: B.l2_loss(a),
    "transpose": lambda B, a, perm: B.transpose(a, perm),
    "reshape": lambda B, a, shape: B.reshape(a, shape),
    "index": lambda B, a, key: a[key],
    "broadcast_to": lambda B, a, shape: B.broadcast_to(a, shape),
    "softmax": lambda B, a, axis: B.softmax(a, axis),
    "log_softmax": lambda B, a, axis: B.log_softmax(a, axis),
    "softmax_xent": lambda B, a, labels, depth: B.softmax_cross_entropy(
        a, B.one_hot(labels, depth), -1),
}

#: ops written out above, by the public op they exercise (the rest come from the records)
_WRITTEN = {"neg": "negative", "sub": "subtract", "mul": "multiply", "div": "divide",
            "pow": "power", "pow_const": "power", "pow_int": "power", "scalar": "multiply",
            "sigmoid_xent": "sigmoid_cross_entropy", "softmax_xent": "softmax_cross_entropy",
            "custom_cube": "custom_gradient"}
#: drawn by the "compare" and "logical" steps
COMPARISONS = ["greater", "greater_equal", "less", "less_equal", "equal", "not_equal"]
LOGICAL = ["logical_and", "logical_or", "logical_xor", "logical_not"]
_WRITTEN_PUBLIC = {_WRITTEN.get(op, op) for op in OPS} | {"one_hot", *COMPARISONS, *LOGICAL}


def _into_domain(B, a, domain, name=""):
    """``a`` mapped into an op's test domain (see ``symgrad.ops.record.DOMAINS``)."""
    if domain == "positive":
        return B.square(a) + (1.5 if name == "arccosh" else 0.5)  # arccosh: x >= 1 only
    if domain == "unit":
        return B.tanh(a) * 0.9
    return a


#: smooth elementwise ops of one operand taken from their records: every new one is drawn
#: without an entry here (its reference, the tape's function and its domain suffice)
RECORD_UNARY = sorted(n for n, r in RECORDS.items() if r.kind == "elementwise"
                      and r.arity == 1 and r.smooth and n not in _WRITTEN_PUBLIC)
for _name in RECORD_UNARY:
    OPS[_name] = (lambda B, a, n=_name, d=RECORDS[_name].domain:
                  getattr(B, n)(_into_domain(B, a, d, n)))


def _piecewise_constant(name) -> bool:
    """A record whose derivative is 0 (floor, round, ...): numpy marks its value as a branch
    (a finite difference across one of its jumps is skipped, like one across a kink)."""
    import sympy
    x = sympy.Symbol("x", real=True)
    node = RECORDS[name].node
    return node is not None and sympy.diff(node(x), x) == 0


PIECEWISE_CONSTANT = {n for n in RECORD_UNARY if _piecewise_constant(n)}


# --- record-drawn binary ops, reductions and shape ops ---------------------------------
# Like RECORD_UNARY: an op declared in symgrad/ops with enough metadata is drawn into the
# graphs without an entry in this file. What makes an op drawable here is read off its
# record: binary elementwise ops by ``arity`` and ``smooth``; reductions and shape ops by
# the public function's signature (numpy's ``(x, axis=None, keepdims=False)``, or one
# array and nothing else required) and by a probe that builds them on a float64 Tensor of
# each rank (a float result, and numpy accepts the same rank). Their numpy form is the
# record's ``numpy=`` name; the tape's is ``symgrad.tape.<name>``.

#: smooth elementwise ops of two operands taken from their records
RECORD_BINARY = sorted(n for n, r in RECORDS.items() if r.kind == "elementwise"
                       and r.arity == 2 and r.smooth and n not in _WRITTEN_PUBLIC
                       and hasattr(tp, n))
for _name in RECORD_BINARY:
    OPS[_name] = (lambda B, a, b, n=_name, d=RECORDS[_name].domain:
                  getattr(B, n)(_into_domain(B, a, d, n), _into_domain(B, b, d, n)))


def _numpy_of(record):
    """numpy's function for a record (``"np.amax"`` -> ``np.amax``), or None."""
    obj = np
    root, *path = (record.numpy or "x").split(".")
    for part in path:
        obj = getattr(obj, part, None)
    return obj if root == "np" and path and callable(obj) else None


def _parameters(record):
    import inspect
    try:
        return list(inspect.signature(record.function).parameters.values())
    except (TypeError, ValueError):
        return None


def _is_reduction(record) -> bool:
    """numpy's reduction signature: ``(x, axis=None, keepdims=False)``, plus optional
    arguments left at their defaults (``weights``) or drawn (``ddof``)."""
    params = _parameters(record)
    if not params or params[0].default is not params[0].empty:
        return False
    rest = {p.name: p.default for p in params[1:]}
    return (rest.get("axis", 0) is None and rest.get("keepdims", True) is False
            and all(d is not params[0].empty for d in rest.values()))


def _is_one_array(record) -> bool:
    """One array operand and nothing else required (``np.flipud(m)``, ``np.diff(a)``)."""
    params = _parameters(record)
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY,
                                            params[0].POSITIONAL_OR_KEYWORD):
        return False
    return (params[0].default is params[0].empty
            and all(p.default is not p.empty for p in params[1:])
            and not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params))


_PROBE_SHAPES = [(), (3,), (2, 3), (2, 3, 4)]


def _ranks(name, record) -> set:
    """The operand ranks where numpy and symgrad both take the op and symgrad gives a float
    tensor of numpy's shape (integer results, argmax and argsort, have no gradient)."""
    ref = _numpy_of(record)
    tape_fn = getattr(tp, name, None)
    if ref is None or tape_fn is None:
        return set()
    ranks = set()
    for shape in _PROBE_SHAPES:
        x = np.arange(1.0, 1.0 + int(np.prod(shape))).reshape(shape) / 7.0
        try:
            want = np.asarray(ref(x))
            got = record.function(sg.input(f"probe_{name}", shape, "float64"))
        except Exception:  # noqa: BLE001 - a rank either side refuses is not drawn
            continue
        if (isinstance(got, sg.Tensor) and got.dtype == "float64"
                and tuple(got.shape) == want.shape and want.dtype == np.float64):
            ranks.add(len(shape))
    return ranks


def _kinked(ref) -> bool:
    """Whether a one-array op permutes values by their order (``sort``): positively
    homogeneous of degree 1 (``f(2x) = 2 f(x)``, as every linear op and every gather) but
    not odd (``f(-x) != -f(x)``, which every linear op and gather is). Such an op gets a
    tie-break so that no two elements it orders are within MARGIN."""
    x = np.array([[0.3, -1.1, 0.7, 2.0], [1.5, 0.2, -0.4, -2.2], [0.9, -0.6, 1.2, 0.1]])
    with np.errstate(all="ignore"):
        fx = np.asarray(ref(x))
        return bool(np.allclose(ref(2 * x), 2 * fx) and not np.allclose(ref(-x), -fx))


#: record ops not drawn, each for a symgrad bug this generator found (remove when fixed)
KNOWN_BUGS: dict = {}
_CANDIDATES = {n: r for n, r in RECORDS.items()
               if r.kind != "elementwise" and n not in _WRITTEN_PUBLIC and r.exported
               and n not in KNOWN_BUGS}
#: reductions (axis and keepdims drawn; ddof too where the function takes it)
RECORD_REDUCTIONS = sorted(n for n, r in _CANDIDATES.items()
                           if _is_reduction(r) and _ranks(n, r) >= {1, 2, 3})
#: shape ops of one array, called with their defaults, by the operand ranks they take
RECORD_SHAPE_RANKS = {n: _ranks(n, r) for n, r in sorted(_CANDIDATES.items())
                      if n not in RECORD_REDUCTIONS and _is_one_array(r)}
RECORD_SHAPE_RANKS = {n: rk for n, rk in RECORD_SHAPE_RANKS.items() if rk}
RECORD_SHAPE = sorted(RECORD_SHAPE_RANKS)
#: record-drawn ops that order their operand's values (see :func:`_kinked`)
ORDERING = {n for n in RECORD_SHAPE + RECORD_REDUCTIONS
            if 2 in (RECORD_SHAPE_RANKS.get(n) or {2}) and _kinked(_numpy_of(RECORDS[n]))}


def _record_reduction(B, a, name, axis, keepdims, ddof=None, tiebreak=None):
    if tiebreak is not None:
        a = a + B.const(tiebreak)
    kw = {} if ddof is None else {"ddof": ddof}
    return getattr(B, name)(a, axis=axis, keepdims=keepdims, **kw)


def _record_shape(B, a, name, tiebreak=None):
    if tiebreak is not None:
        a = a + B.const(tiebreak)
    return getattr(B, name)(a)


for _name in RECORD_REDUCTIONS:
    OPS[_name] = (lambda B, a, n=_name, **kw: _record_reduction(B, a, n, **kw))
for _name in RECORD_SHAPE:
    OPS[_name] = (lambda B, a, n=_name, **kw: _record_shape(B, a, n, **kw))

UNARY = ["tanh", "neg", "exp", "log", "sqrt", "sin", "cos", "sigmoid", "softplus",
         "log_sigmoid", "square", "relu", "abs", "sign", "clip", "pow_const", "pow_int",
         "custom_cube", "scalar", *RECORD_UNARY]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "where", "sigmoid_xent",
          "stop_gradient", "matmul", "hypot", "arctan2", "logaddexp", "logaddexp2", "fmax",
          "fmin", "mod", "remainder", "fmod", "copysign", "float_power", "true_divide",
          "heaviside", "compare", "logical", *RECORD_BINARY]
#: structural ops and reductions, by the least rank of their operand
STRUCTURAL = {0: ["sum", "reshape", "broadcast_to", "l2_loss"],
              1: ["mean", "max", "logsumexp", "norm", "index", "softmax", "log_softmax",
                  "softmax_xent"],
              2: ["transpose"]}
#: the public symbolic ops the programs exercise (checked against sg.PUBLIC_OPS by a test)
COVERED_PUBLIC_OPS = {
    "add", "subtract", "multiply", "divide", "power", "negative", "matmul", "exp", "log",
    "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "square", "sign", "softplus",
    "log_sigmoid", "maximum", "minimum", "where", "clip", "sum", "mean", "max", "transpose",
    "reshape", "index", "broadcast_to", "one_hot", "softmax", "log_softmax", "logsumexp",
    "softmax_cross_entropy", "sigmoid_cross_entropy", "l2_loss", "norm", "stop_gradient",
    "custom_gradient", *RECORD_UNARY, "hypot", "arctan2", "logaddexp", "logaddexp2", "fmax",
    "fmin", "mod", "remainder", "fmod", "copysign", "float_power", "true_divide", "heaviside",
    *COMPARISONS, *LOGICAL, *RECORD_BINARY, *RECORD_REDUCTIONS, *RECORD_SHAPE}


def run(program: Program, B, leaf_value: Callable[[Leaf], Any]):
    """Evaluate ``program`` with backend ``B``; ``leaf_value(leaf)`` gives each leaf's value.
    Returns ``(loss, values)``."""
    vals = []
    for ins in program.instrs:
        if isinstance(ins, Leaf):
            vals.append(leaf_value(ins))
        else:
            vals.append(OPS[ins.op](B, *[vals[a] for a in ins.args], **ins.kw))
    loss = None
    for i, j in program.outputs:
        term = B.sum(vals[i] * vals[j], None, False)
        loss = term if loss is None else loss + term
    return loss, vals


# ------------------------------------------------------------------------------------------
# Backends
# ------------------------------------------------------------------------------------------


class NumpyBackend:
    """Plain numpy; records the branch taken at every kink in ``self.signature``.

    ``stop_gradient`` values are recorded in ``self.stopped``; given ``frozen`` (the
    ``stopped`` list of an evaluation at the base point) they are replayed instead, so that
    finite differences see the function whose gradient stop_gradient defines."""

    def __init__(self, frozen=None):
        self.signature: list = []
        self.stopped: list = []
        self.frozen = frozen

    def _mark(self, x):
        self.signature.append(np.asarray(x).tobytes())

    exp, sin, cos, tanh, square = (staticmethod(np.exp), staticmethod(np.sin),
                                   staticmethod(np.cos), staticmethod(np.tanh),
                                   staticmethod(np.square))

    @staticmethod
    def log(x):
        return np.log(x)

    @staticmethod
    def sqrt(x):
        return np.sqrt(x)

    @staticmethod
    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))

    @staticmethod
    def softplus(x):
        return np.logaddexp(0.0, x)

    @staticmethod
    def log_sigmoid(x):
        return -np.logaddexp(0.0, -x)

    def relu(self, x):
        self._mark(x > 0)
        return np.maximum(x, 0.0)

    def abs(self, x):
        self._mark(np.sign(x))
        return np.abs(x)

    def sign(self, x):
        self._mark(np.sign(x))
        return np.sign(x)

    def clip(self, x, lo, hi):
        self._mark((x < lo) * 1 + (x > hi) * 2)
        return np.clip(x, lo, hi)

    def maximum(self, a, b):
        self._mark(np.sign(a - b))
        return np.maximum(a, b)

    def minimum(self, a, b):
        self._mark(np.sign(a - b))
        return np.minimum(a, b)

    def gt(self, x, t):
        m = np.asarray(x > t)
        self._mark(m)
        return m

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def sum(x, axis, keepdims):
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def mean(x, axis, keepdims):
        return np.mean(x, axis=axis, keepdims=keepdims)

    def max(self, x, axis, keepdims):
        x = np.asarray(x)
        axes = _axes(axis, x.ndim)
        self._mark(_argmax_over(x, axes))
        return np.max(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def logsumexp(x, axis, keepdims):
        x = np.asarray(x)
        m = np.max(x, axis=axis, keepdims=True)
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=_axes(axis, x.ndim))

    @staticmethod
    def norm(x, ord=None, axis=None, keepdims=False):
        return np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims))

    @staticmethod
    def l2_loss(x):
        return np.sum(np.square(x)) / 2

    @staticmethod
    def transpose(x, perm):
        return np.transpose(x, perm)

    @staticmethod
    def reshape(x, shape):
        return np.reshape(x, shape)

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def one_hot(labels, depth):
        return (np.asarray(labels)[..., None] == np.arange(depth)).astype(np.float64)

    def log_softmax(self, x, axis):
        return x - self.logsumexp(x, axis, True)

    def softmax(self, x, axis):
        return np.exp(self.log_softmax(x, axis))

    def softmax_cross_entropy(self, logits, onehot, axis):
        return -np.sum(onehot * self.log_softmax(logits, axis), axis=axis)

    def sigmoid_cross_entropy(self, x, z):
        return self.softplus(x) - x * z

    def stop_gradient(self, x):
        if self.frozen is not None:
            x = self.frozen[len(self.stopped)]
        self.stopped.append(np.array(x, copy=True))
        return self.stopped[-1]

    @staticmethod
    def cube(x):
        return np.asarray(x) ** 3

    @staticmethod
    def matmul(a, b):
        return np.matmul(a, b)

    @staticmethod
    def const(arr):
        return arr

    def fmax(self, a, b):
        self._mark(np.sign(a - b))
        return np.fmax(a, b)

    def fmin(self, a, b):
        self._mark(np.sign(a - b))
        return np.fmin(a, b)

    def mod(self, a, b):
        self._mark(np.floor(a / b))  # its jumps
        return np.mod(a, b)

    remainder = mod

    def fmod(self, a, b):
        self._mark(np.trunc(a / b))
        return np.fmod(a, b)

    def copysign(self, a, b):
        self._mark(np.sign(a) * 3 + np.sign(b))
        return np.copysign(a, b)

    def heaviside(self, a, b):
        self._mark(np.sign(a))
        return np.heaviside(a, b)

    def __getattr__(self, name):
        # an op drawn from its record: the record's numpy reference
        if name in PIECEWISE_CONSTANT or name in COMPARISONS or name in LOGICAL:
            def marked(*args, f=RECORDS[name].reference):
                out = f(*args)
                self._mark(out)  # a jump of a rounding op, a flip of a comparison
                return out
            return marked
        if name in RECORD_REDUCTIONS or name in RECORD_SHAPE:
            def ordered(x, f=_numpy_of(RECORDS[name]), **kw):
                x = np.asarray(x)
                # the order of the operand's elements: where max/min/sort/std change branch
                self._mark(np.argsort(x, axis=None, kind="stable"))
                return f(x, **kw)
            return ordered
        if name in RECORD_UNARY or name in RECORDS:
            return RECORDS[name].reference
        raise AttributeError(name)


@sg.custom_gradient
def _sg_cube(x):
    def grad(dy):
        return dy * 3.0 * sg.square(x)
    return x ** 3, grad


@tp.custom_gradient
def _tp_cube(x):
    xv = np.asarray(x.value if isinstance(x, tp.Tensor) else x)

    def grad(dy):
        return np.asarray(dy.value) * 3.0 * xv ** 2
    return xv ** 3, grad


def _namespace(module, **extra):
    """A backend: ``module``'s op functions by name, plus/overridden by ``extra``."""
    names = ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "softplus", "log_sigmoid",
             "square", "relu", "abs", "sign", "maximum", "minimum", "where", "sum", "mean",
             "max", "logsumexp", "norm", "l2_loss", "transpose", "reshape", "matmul",
             "softmax", "log_softmax", "softmax_cross_entropy", "sigmoid_cross_entropy",
             "stop_gradient", "clip", "broadcast_to", *RECORD_UNARY, "hypot", "arctan2",
             "logaddexp", "logaddexp2", "fmax", "fmin", "mod", "remainder", "fmod", "copysign",
             "float_power", "true_divide", "heaviside", *COMPARISONS, *LOGICAL,
             *RECORD_BINARY, *RECORD_REDUCTIONS, *RECORD_SHAPE]
    ns = {n: getattr(module, n) for n in names if hasattr(module, n)}
    ns.update(extra)
    missing = set(names) - set(ns)
    assert not missing, missing
    return SimpleNamespace(**ns)


#: symgrad's public symbolic API
SG = _namespace(sg, cube=_sg_cube, gt=lambda x, t: x > t,
                one_hot=lambda labels, depth: sg.one_hot(labels, depth, dtype="float64"),
                const=sg.constant)
#: the tape (symgrad.tape); comparisons give plain boolean arrays there
TP = _namespace(tp, cube=_tp_cube, gt=lambda x, t: x > t,
                one_hot=lambda labels, depth: tp.one_hot(labels, depth, dtype="float64"),
                const=lambda arr: arr)


def numpy_eval(program: Program, values: dict, frozen=None):
    """(loss, signature, stop_gradient values) of the program at leaf ``values`` (plain
    numpy); ``frozen``: the stop_gradient values to use (see :class:`NumpyBackend`)."""
    B = NumpyBackend(frozen)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, _ = run(program, B, lambda leaf: values[leaf.name])
    return float(loss), B.signature, B.stopped


# ------------------------------------------------------------------------------------------
# Helpers for the generator
# ------------------------------------------------------------------------------------------


def _axes(axis, ndim) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim for a in axis))


def _argmax_over(x, axes):
    rest = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, rest + list(axes))
    flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
    return flat.argmax(axis=-1)


def _top_gap(x, axes) -> float:
    """Smallest gap between the largest and second-largest element over ``axes``."""
    rest = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, rest + list(axes))
    flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
    if flat.shape[-1] < 2:
        return math.inf
    s = np.sort(flat, axis=-1)
    return float(np.min(s[..., -1] - s[..., -2]))


def _dyadic(x: float) -> float:
    return round(x * DYADIC) / DYADIC


def _offsets(values) -> list:
    """Dyadic constants c with every |value - c| >= MARGIN: 0 first when it qualifies, then
    midpoints of the gaps between sorted values, then one below and one above them all."""
    u = np.unique(np.asarray(values, dtype=np.float64).ravel())
    cands = [0.0] + [_dyadic((lo + hi) / 2) for lo, hi in zip(u[:-1], u[1:])
                     if hi - lo >= 2 * MARGIN + 2.0 / DYADIC]
    cands += [_dyadic(u[0] - 0.5), _dyadic(u[-1] + 0.5)]
    out = []
    for c in cands:
        if np.min(np.abs(u - c)) >= MARGIN and c not in out:
            out.append(c)
    return out


def _broadcastable(s1, s2) -> bool:
    try:
        np.broadcast_shapes(s1, s2)
        return True
    except ValueError:
        return False


def _matmul_shape(sa, sb):
    if not sa or not sb:
        return None
    try:
        return np.matmul(np.zeros(sa), np.zeros(sb)).shape
    except ValueError:
        return None


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


@dataclass
class _Builder:
    """The program under construction, with the numpy value of each instruction. Every
    choice comes from ``rng`` (seeded by hypothesis), so the choice frequencies are the
    ones written here; hypothesis draws the seed and the number of steps, and shrinks a
    failure to the shortest failing prefix of the same program."""

    rng: np.random.Generator
    instrs: list = field(default_factory=list)
    vals: list = field(default_factory=list)  # numpy value of each instruction
    values: dict = field(default_factory=dict)  # leaf name -> array
    counts: dict = field(default_factory=dict)
    fallbacks: int = 0

    def leaf(self, kind, shape, depth=0):
        prefix = {"input": "x", "param": "p", "labels": "lab", "weight": "u"}[kind]
        n = self.counts.get(prefix, 0)
        self.counts[prefix] = n + 1
        name = f"{prefix}{n}"
        shape = tuple(int(d) for d in shape)
        if kind == "labels":
            val = self.rng.integers(0, depth, size=shape).astype(np.int64)
        elif kind == "weight":
            val = self.rng.standard_normal(shape)
        else:
            val = self.rng.uniform(-1.5, 1.5, size=shape)
        val = np.asarray(val)
        self.instrs.append(Leaf(name, shape, kind, depth))
        self.vals.append(val)
        self.values[name] = val
        return len(self.instrs) - 1

    def float_leaf(self, shape):
        return self.leaf(self.pick(["input", "param"]), shape)

    def pick(self, options, p=None):
        return options[int(self.rng.choice(len(options), p=p))]

    def int(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def coin(self, p=0.5) -> bool:
        return bool(self.rng.random() < p)

    def is_float(self, i):
        ins = self.instrs[i]
        return not (isinstance(ins, Leaf) and ins.kind in ("labels", "weight"))

    def float_values(self):
        return [i for i in range(len(self.instrs)) if self.is_float(i)]

    def try_step(self, op, args, limits=True, **params) -> bool:
        """Append op(args) if its values are finite, bounded and (with ``limits``) of at
        most MAX_RANK axes and MAX_SIZE elements."""
        step = Step(op, tuple(args), tuple(sorted(params.items())))
        B = NumpyBackend()
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                val = np.asarray(OPS[op](B, *[self.vals[a] for a in args], **params))
        except (FloatingPointError, ValueError, ZeroDivisionError):
            return False
        too_big = limits and (val.ndim > MAX_RANK or val.size > MAX_SIZE)
        if (too_big or val.size == 0 or not np.all(np.isfinite(val))
                or np.max(np.abs(val)) > BOUND):
            return False
        self.instrs.append(step)
        self.vals.append(val)
        return True


# ------------------------------------------------------------------------------------------
# Op generators: each draws operands and static parameters for one op, appends it, and
# returns False when it cannot (the caller then falls back to tanh).
# ------------------------------------------------------------------------------------------


def _pick_partner(b: _Builder, a: int) -> int:
    """An earlier float value that broadcasts with value ``a`` (or a fresh leaf)."""
    sa = b.vals[a].shape
    choice = b.int(0, 3)
    if choice == 3:  # a fresh leaf of a broadcast-compatible shape: a suffix, some dims 1
        k = b.int(0, len(sa))
        shape = tuple(d if b.coin() else 1 for d in sa[len(sa) - k:])
        return b.float_leaf(shape)
    cands = [j for j in b.float_values() if _broadcastable(sa, b.vals[j].shape)]
    return b.pick(cands)


def _draw_axis(b: _Builder, ndim: int):
    if ndim == 0:
        return None
    kind = b.pick(["one", "tuple", "none"] if ndim >= 2 else ["one", "none"])
    if kind == "none":
        return None
    if kind == "one":
        ax = b.int(0, ndim - 1)
        return ax - ndim if b.coin() else ax
    axes = [int(i) for i in b.rng.permutation(ndim)[:b.int(2, ndim)]]
    return tuple(axes)


def _ramp(shape):
    """Distinct dyadic constants (multiples of 1/4) of ``shape``: a tie-break."""
    return (np.arange(_size(shape), dtype=np.float64) * 0.25).reshape(shape)


def _min_gap(x) -> float:
    """Smallest gap between two of ``x``'s elements (0 for exact ties)."""
    s = np.sort(np.asarray(x).ravel())
    return float(np.min(np.diff(s))) if s.size > 1 else math.inf


def _gen_record_reduction(b: _Builder, op: str, a: int) -> bool:
    x = b.vals[a]
    axis = _draw_axis(b, x.ndim)
    axes = _axes(axis, x.ndim)
    if _size([x.shape[i] for i in axes]) < 2:  # one element: var/std at their kink
        return False
    kw = {"axis": axis, "keepdims": b.coin()}
    if any(p.name == "ddof" for p in _parameters(RECORDS[op])):
        kw["ddof"] = b.int(0, 1)
    if op not in ORDERING:
        return b.try_step(op, [a], **kw)
    # max/min-like: the largest two and the smallest two elements over the axes MARGIN
    # apart (broadcast copies are exact ties: broken with distinct constants, as for max)
    gaps = lambda v: min(_top_gap(v, axes), _top_gap(-v, axes))  # noqa: E731
    if gaps(x) >= MARGIN:
        return b.try_step(op, [a], **kw)
    tiebreak = _ramp(tuple(d if i in axes else 1 for i, d in enumerate(x.shape)))
    if gaps(x + tiebreak) < MARGIN:
        return False
    return b.try_step(op, [a], tiebreak=tiebreak, **kw)


def _gen_record_shape(b: _Builder, op: str, a: int) -> bool:
    x = b.vals[a]
    if x.ndim not in RECORD_SHAPE_RANKS[op]:
        return False
    if op not in ORDERING or _min_gap(x) >= MARGIN:
        return b.try_step(op, [a])
    tiebreak = _ramp(x.shape)  # sort-like: every two elements MARGIN apart
    if _min_gap(x + tiebreak) < MARGIN:
        return False
    return b.try_step(op, [a], tiebreak=tiebreak)


def gen_op(b: _Builder, op: str, a: int) -> bool:
    x = b.vals[a]
    if op in ("neg", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "softplus",
              "log_sigmoid", "square", "custom_cube", "l2_loss", *RECORD_UNARY):
        return b.try_step(op, [a])
    if op in ("relu", "abs", "sign"):
        cands = _offsets(x)
        return b.try_step(op, [a], c=cands[b.int(0, len(cands) - 1)])
    if op == "clip":
        cands = _offsets(x)
        i = b.int(0, len(cands) - 1)
        j = b.int(0, len(cands) - 1)
        lo, hi = sorted((cands[i], cands[j]))
        if lo == hi:
            hi = lo + 1.0
            if np.min(np.abs(x - hi)) < MARGIN:
                return False
        return b.try_step(op, [a], lo=lo, hi=hi)
    if op == "pow_const":
        return b.try_step(op, [a], p=b.pick([0.5, -0.5, 1.5, -1.0, 2.5, 3.0]))
    if op == "pow_int":
        return b.try_step(op, [a], n=b.pick([2, 3, 4]))
    if op == "scalar":
        form = b.pick(["mul", "rmul", "add", "rsub", "div", "rdiv"])
        k = b.pick([0.5, 2.0, -1.5, 3.0, -0.25])
        return b.try_step(op, [a], form=form, k=k)
    if op in BINARY and op != "matmul":
        p = _pick_partner(b, a)
        args = [a, p] if b.coin() else [p, a]
        va, vb = b.vals[args[0]], b.vals[args[1]]
        if op == "compare":
            fn = b.pick(COMPARISONS)
            cands = _offsets(np.broadcast_to(va - vb, np.broadcast_shapes(va.shape, vb.shape)))
            return b.try_step(op, args, fn=fn, t=cands[b.int(0, len(cands) - 1)])
        if op == "logical":
            fn = b.pick(LOGICAL)
            cands = _offsets(np.concatenate([va.ravel(), vb.ravel()]))
            return b.try_step(op, args, fn=fn, t=cands[b.int(0, len(cands) - 1)])
        if op in ("maximum", "minimum", "fmax", "fmin"):
            cands = _offsets(np.broadcast_to(va - vb, np.broadcast_shapes(va.shape, vb.shape)))
            return b.try_step(op, args, c=cands[b.int(0, len(cands) - 1)])
        if op == "where":
            sel = b.int(0, 1)
            cands = _offsets(va if sel == 0 else vb)
            return b.try_step(op, args, sel=sel, t=cands[b.int(0, len(cands) - 1)])
        return b.try_step(op, args)
    if op in RECORD_REDUCTIONS:
        return _gen_record_reduction(b, op, a)
    if op in RECORD_SHAPE:
        return _gen_record_shape(b, op, a)
    if op in ("sum", "mean", "logsumexp"):
        return b.try_step(op, [a], axis=_draw_axis(b, x.ndim), keepdims=b.coin())
    if op == "norm":
        axis = _draw_axis(b, x.ndim)
        if np.min(np.sqrt(np.sum(x * x, axis=axis))) < MARGIN:
            return False
        return b.try_step(op, [a], axis=axis, keepdims=b.coin())
    if op == "max":
        axis = _draw_axis(b, x.ndim)
        keepdims = b.coin()
        axes = _axes(axis, x.ndim)
        if _top_gap(x, axes) >= MARGIN:
            return b.try_step(op, [a], axis=axis, keepdims=keepdims, tiebreak=None)
        # break ties (broadcast copies are exact ties) with distinct constants along axes
        rshape = tuple(d if i in axes else 1 for i, d in enumerate(x.shape))
        tiebreak = (np.arange(_size(rshape), dtype=np.float64) * 0.25).reshape(rshape)
        if _top_gap(x + tiebreak, axes) < MARGIN:
            return False
        return b.try_step(op, [a], axis=axis, keepdims=keepdims, tiebreak=tiebreak)
    if op == "transpose":
        perm = [int(i) for i in b.rng.permutation(x.ndim)]
        return b.try_step(op, [a], perm=tuple(perm))
    if op == "reshape":
        n = x.size
        d1 = b.pick(_divisors(n))
        d2 = b.pick(_divisors(n // d1))
        shape = [d1, d2, n // d1 // d2][:b.int(1, 3)]
        shape[-1] = n // _size(shape[:-1])
        if b.coin():
            shape[b.int(0, len(shape) - 1)] = -1
        return b.try_step(op, [a], shape=tuple(shape))
    if op == "index":
        m = b.int(1, x.ndim)
        trailing = m < x.ndim and b.coin()  # x[..., k] rather than x[k]
        items = []
        for d in (x.shape[x.ndim - m:] if trailing else x.shape[:m]):
            kind = b.pick(["all", "int", "range", "step", "none"])
            if kind == "none":
                items.append(None)
                kind = "all"
            if kind == "all":
                items.append(slice(None))
            elif kind == "int":
                items.append(b.int(-d, d - 1))
            elif kind == "range":
                start = b.int(0, d - 1)
                items.append(slice(start, b.int(start + 1, d)))
            else:
                items.append(slice(None, None, b.pick([2, -1])))
        if trailing:
            items = [Ellipsis] + items
        key = items[0] if len(items) == 1 and b.coin() else tuple(items)
        return b.try_step(op, [a], key=key)
    if op == "broadcast_to":
        shape = tuple(b.int(2, 3) if d == 1 and b.coin() else d
                      for d in x.shape)
        if b.coin() or shape == x.shape:
            shape = (b.int(1, 3),) + shape
        return b.try_step(op, [a], shape=shape)
    if op in ("softmax", "log_softmax"):
        ax = b.int(-x.ndim, x.ndim - 1)
        return b.try_step(op, [a], axis=ax)
    if op == "softmax_xent":
        depth = x.shape[-1]
        labels = b.leaf("labels", x.shape[:-1], depth=depth)
        return b.try_step(op, [a, labels], depth=depth)
    if op == "matmul":
        sa = x.shape
        swap = b.coin()  # False: a @ other, True: other @ a
        ok = lambda sb: _matmul_shape(sb, sa) if swap else _matmul_shape(sa, sb)  # noqa: E731
        existing = [j for j in b.float_values() if ok(b.vals[j].shape) is not None]
        if existing and b.coin():
            other = b.pick(existing)
        else:
            k = (sa[-2] if len(sa) >= 2 else sa[0]) if swap else sa[-1]
            n = b.int(1, 3)
            form = b.pick(["vec", "mat", "batch"])
            shape = {"vec": (k,), "mat": (n, k) if swap else (k, n),
                     "batch": (b.int(1, 2),) + ((n, k) if swap else (k, n))}[form]
            if ok(shape) is None:
                shape = (k,)
            other = b.float_leaf(shape)
        return b.try_step(op, [other, a] if swap else [a, other])
    raise AssertionError(op)


@st.composite
def programs(draw, max_ops: int = 8) -> Program:
    """A random program of 1..``max_ops`` op steps over 1..3 initial leaves (plus the
    leaves that matmul, binary ops and softmax_xent create on the way). The first ``n``
    steps of a program do not depend on how many steps follow."""
    seed = draw(st.integers(0, 2**32 - 1))
    # (a wide integer folded: hypothesis draws small ranges' low ends very often)
    n_ops = 1 + draw(st.integers(0, 2**16 - 1)) % max_ops
    b = _Builder(np.random.default_rng(seed))
    rank = b.pick([0, 1, 2, 3], p=[0.1, 0.25, 0.35, 0.3])
    full = tuple(b.pick([1, 2, 3, 4], p=[0.1, 0.3, 0.3, 0.3]) for _ in range(rank))
    for _ in range(b.int(1, 3)):
        k = rank - b.pick([0, 1], p=[0.7, 0.3]) if rank else 0  # mostly full rank
        shape = tuple(d if b.coin(0.8) else 1 for d in full[rank - k:])
        b.float_leaf(shape)
    for _ in range(n_ops):
        floats = b.float_values()
        if b.coin(0.6):  # mostly extend the newest value: deep graphs
            a = floats[-1]
        else:
            a = b.pick(floats)
        ndim = b.vals[a].ndim
        kind = b.pick(["structural", "unary", "binary"])
        if kind == "unary":
            ops = UNARY
        elif kind == "binary":
            ops = BINARY if ndim >= 1 else [o for o in BINARY if o != "matmul"]
        else:
            ops = [o for r in range(min(ndim, 2) + 1) for o in STRUCTURAL[r]]
            drawn = ([o for o in RECORD_REDUCTIONS if ndim >= 1]
                     + [o for o in RECORD_SHAPE if ndim in RECORD_SHAPE_RANKS[o]])
            if drawn and b.coin():  # half the time an op drawn from the records
                ops = drawn
        op = b.pick(ops)
        mark = len(b.instrs)
        if not gen_op(b, op, a):
            # could not place the op safely: drop what it created, use tanh instead
            for ins in b.instrs[mark:]:
                if isinstance(ins, Leaf):
                    del b.values[ins.name]
            del b.instrs[mark:], b.vals[mark:]
            b.fallbacks += 1
            assert b.try_step("tanh", [a], limits=False)
    used = {arg for ins in b.instrs if isinstance(ins, Step) for arg in ins.args}
    dangling = [i for i in b.float_values() if i not in used]
    last = len(b.instrs) - 1
    outs = ([last] + [i for i in dangling if i != last][-3:])
    outputs = [(i, b.leaf("weight", b.vals[i].shape)) for i in outs]
    return Program(b.instrs, b.values, outputs, b.fallbacks)
