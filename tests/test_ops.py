"""The first ops symgrad had, in more cases than their spec rows, and what a table cannot show.

Every op needs one row in tests/test_op_spec.py (a test fails without it). :data:`SPEC`
here adds cases for the first 41 ops (more shapes, the method and operator spellings, input
domains built around their kinks and ties): a builder over symbolic tensors, the operand shapes and static arguments of
each case, a numpy reference of the forward, and an input domain that keeps away from kinks
and poles. Every case is compiled and checked:

* in float64, the forward against the numpy reference (values and shape);
* in float64, the gradient of ``sum(out * R)`` (``R`` a fixed random cotangent, so that a
  wrong rule cannot hide behind a plain sum) with respect to every float operand, along
  random directions ``v``, against central differences of the reference:
  ``<g, v>`` vs ``(F(x + h v) - F(x - h v)) / 2h`` with ``h = 1e-6``, relative tolerance
  ``1e-6``;
* in float32, forward and gradients come out float32 (no silent float64) and close to the
  float64 results.

Then what a table cannot show: the conventions at kinks and ties, shape errors raised at
build time, a Hessian-vector product, a deep chain, unconnected parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import symgrad as sg

H = 1e-6  # finite-difference step (float64)
RTOL_FD = 1e-6  # <grad, v> against central differences
RTOL_FWD = 1e-12  # generated forward against the numpy reference, float64
RTOL_F32 = 2e-4  # float32 results against float64 ones


# ---------------------------------------------------------------------------------------
# Input domains: one generator per operand, (rng, shape, kw) -> float64 array
# ---------------------------------------------------------------------------------------


def real(rng, shape, kw):
    return rng.uniform(-2.0, 2.0, shape)


def positive(rng, shape, kw):
    return rng.uniform(0.5, 2.0, shape)


def unit(rng, shape, kw):
    return rng.uniform(0.05, 0.95, shape)


def away0(rng, shape, kw):
    """|x| in [0.3, 2]: no kink at 0 within reach of the finite differences."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)


def distinct(rng, shape, kw):
    """Pairwise at least 0.1 apart: no ties for max."""
    n = math.prod(shape)
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.15 + rng.uniform(0, 0.05, shape)


def grid(offset):
    """Values on a 0.2 grid shifted by ``offset``: operands on different grids never tie."""

    def gen(rng, shape, kw):
        return rng.integers(-10, 10, shape) * 0.2 + offset

    return gen


def away_from_bounds(rng, shape, kw):
    """Uniform in [-1, 1], but at least 0.1 away from the clip bounds +-0.5."""
    x = rng.uniform(-1.0, 1.0, shape)
    return np.where(np.abs(np.abs(x) - 0.5) < 0.1, x * 0.4, x)


def labels(rng, shape, kw):
    return rng.integers(0, kw["depth"], shape)


# ---------------------------------------------------------------------------------------
# The spec table
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    shapes: tuple  # one shape per operand
    kw: tuple = ()  # static arguments, as sorted (name, value) pairs

    @property
    def kwargs(self) -> dict:
        return dict(self.kw)

    def __str__(self):
        parts = ["x".join(map(str, s)) or "scalar" for s in self.shapes]
        parts += [f"{k}={v!r}" for k, v in self.kw]
        return ",".join(parts).replace(" ", "")


def C(*shapes, **kw) -> Case:
    return Case(tuple(tuple(s) for s in shapes), tuple(sorted(kw.items())))


@dataclass
class OpSpec:
    build: Callable  # (*tensors, **kw) -> Tensor
    ref: Callable  # (*arrays, **kw) -> array: numpy's forward
    cases: list
    domain: tuple = (real,)  # one generator per operand (the last one repeats)
    kinds: tuple = ()  # per operand "f" (float, default) or "i" (integer labels)
    #: reference for the finite differences when it differs from ``ref`` (stop_gradient):
    #: called as ``fd_ref(unperturbed_arrays, *arrays, **kw)``
    fd_ref: Callable | None = None

    def kind(self, i):
        return self.kinds[i] if i < len(self.kinds) else "f"

    def gen(self, i):
        return self.domain[min(i, len(self.domain) - 1)]


UNARY = [C(()), C((5,)), C((2, 3, 4))]
BINARY = [C((3, 4), (3, 4)), C((3, 4), (4,)), C((2, 1, 3), (1, 4, 1)), C((), (3,)),
          C((5, 1), (5,))]
REDUCE = [C((3, 4), axis=a, keepdims=k) for a in (None, 0, -1) for k in (False, True)] + \
    [C((2, 3, 4), axis=a, keepdims=k) for a in (None, 1, (0, 2), (-1, 0)) for k in (False, True)]
SOFTMAX = [C((3, 4), axis=-1), C((3, 4), axis=0), C((2, 3, 4), axis=1), C((2, 3, 4), axis=-1),
           C((2, 3, 4), axis=(0, 2))]
MATMUL = [C((4,), (4,)), C((4,), (4, 3)), C((3, 4), (4,)), C((3, 4), (4, 5)),
          C((3, 4), (4, 5), via="sg.matmul"), C((2, 3, 4), (4, 5)), C((2, 3, 4), (2, 4, 5)),
          C((2, 1, 3, 4), (3, 4, 2)), C((4,), (2, 4, 3)), C((2, 3, 4), (4,))]


def _lse(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _log_softmax(x, axis=-1):
    return x - _lse(x, axis, keepdims=True)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _power(a, b=None, k=None, base=None):
    if k is not None:
        return a**k
    if base is not None:
        return base**a
    return a**b


def _matmul(a, b, via="@"):
    if via == "sg.matmul":
        return sg.matmul(a, b) if isinstance(a, sg.Tensor) else np.matmul(a, b)
    return a @ b


def _transpose(x, axes=None, via="fn"):
    if via == ".T":
        return x.T
    if via == "method":
        return x.transpose(*axes)
    if isinstance(x, sg.Tensor):
        return sg.transpose(x, axes)
    return np.transpose(x, axes)


def _reshape(x, shape, via="fn"):
    if via == "method":
        return x.reshape(*shape)
    if isinstance(x, sg.Tensor):
        return sg.reshape(x, shape)
    return np.reshape(x, shape)


@sg.custom_gradient
def _custom_mul_sin(a, b):
    """a*sin(b) with a hand-written (correct) rule: the finite differences must agree."""

    def grad(dy):
        return dy * sg.sin(b), dy * a * sg.cos(b)

    return a * sg.sin(b), grad


@sg.custom_gradient
def _custom_cube(x):
    def grad(dy):
        return dy * 3.0 * x * x

    return x * x * x, grad


def _custom(*ops, fn="mul_sin"):
    if isinstance(ops[0], sg.Tensor):
        return _custom_mul_sin(*ops) if fn == "mul_sin" else _custom_cube(*ops)
    return ops[0] * np.sin(ops[1]) if fn == "mul_sin" else ops[0] ** 3


def _abs(x, via="sg"):
    if via == "builtin" or not isinstance(x, sg.Tensor):
        return abs(x)  # Tensor.__abs__, or numpy's
    return sg.abs(x)


def _index(x, idx):
    return x[idx]


_S = slice
SPEC: dict[str, OpSpec] = {
    # -- arithmetic (the builder is the reference: the same operators work on arrays) ----
    "add": OpSpec(lambda a, b: a + b, lambda a, b: a + b, BINARY + [C((3, 4), (1,))]),
    "subtract": OpSpec(lambda a, b: a - b, lambda a, b: a - b, BINARY),
    "multiply": OpSpec(lambda a, b: a * b, lambda a, b: a * b, BINARY),
    "divide": OpSpec(lambda a, b: a / b, lambda a, b: a / b, BINARY, domain=(real, away0)),
    "power": OpSpec(_power, _power,
                    BINARY + [C((3, 4), k=3), C((3, 4), k=2), C((3, 4), k=-1),
                              C((3, 4), k=0.5), C((3, 4), k=-1.5), C((3, 4), base=2.0)],
                    domain=(positive, real)),
    "negative": OpSpec(lambda a: -a, lambda a: -a, UNARY),
    "matmul": OpSpec(_matmul, _matmul, MATMUL),
    # -- elementwise functions ------------------------------------------------------------
    "exp": OpSpec(sg.exp, np.exp, UNARY),
    "log": OpSpec(sg.log, np.log, UNARY, domain=(positive,)),
    "sqrt": OpSpec(sg.sqrt, np.sqrt, UNARY, domain=(positive,)),
    "sin": OpSpec(sg.sin, np.sin, UNARY),
    "cos": OpSpec(sg.cos, np.cos, UNARY),
    "tanh": OpSpec(sg.tanh, np.tanh, UNARY),
    "sigmoid": OpSpec(sg.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), UNARY),
    "relu": OpSpec(sg.relu, lambda x: np.maximum(x, 0.0), UNARY, domain=(away0,)),
    "abs": OpSpec(_abs, _abs, UNARY + [C((3, 4), via="builtin")], domain=(away0,)),
    "square": OpSpec(sg.square, np.square, UNARY),
    "sign": OpSpec(sg.sign, np.sign, UNARY, domain=(away0,)),
    "softplus": OpSpec(sg.softplus, _softplus, UNARY),
    "log_sigmoid": OpSpec(sg.log_sigmoid, lambda x: -_softplus(-x), UNARY),
    "maximum": OpSpec(sg.maximum, np.maximum, BINARY, domain=(grid(0.05), grid(0.15))),
    "minimum": OpSpec(sg.minimum, np.minimum, BINARY, domain=(grid(0.05), grid(0.15))),
    "where": OpSpec(lambda c, a, b: sg.where(c > 0, a, b), lambda c, a, b: np.where(c > 0, a, b),
                    [C((3, 4), (3, 4), (3, 4)), C((3, 1), (3, 4), (4,)), C((4,), (2, 1, 4), ())],
                    domain=(away0, real, real)),
    "clip": OpSpec(lambda x: sg.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
                   [C((5,)), C((3, 4)), C((2, 3, 4))], domain=(away_from_bounds,)),
    "stop_gradient": OpSpec(
        lambda a, b: sg.stop_gradient(a * a) * b + a, lambda a, b: (a * a) * b + a,
        [C((3, 4), (3, 4)), C((3, 4), (4,))],
        fd_ref=lambda orig, a, b: (orig[0] * orig[0]) * b + a),
    "custom_gradient": OpSpec(_custom, _custom,
                              [C((3, 4), (3, 4)), C((3, 4), (4,)), C((5,), fn="cube")]),
    # -- reductions -----------------------------------------------------------------------
    "sum": OpSpec(lambda x, axis, keepdims: sg.sum(x, axis, keepdims),
                  lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
                  REDUCE + [C((5,), axis=0, keepdims=False), C((), axis=None, keepdims=False)]),
    "mean": OpSpec(lambda x, axis, keepdims: x.mean(axis, keepdims),
                   lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims), REDUCE),
    "max": OpSpec(lambda x, axis, keepdims: sg.max(x, axis, keepdims),
                  lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims), REDUCE,
                  domain=(distinct,)),
    "logsumexp": OpSpec(lambda x, axis, keepdims: sg.logsumexp(x, axis, keepdims), _lse, REDUCE),
    "norm": OpSpec(lambda x, axis, keepdims: sg.norm(x, axis=axis, keepdims=keepdims),
                   lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)),
                   REDUCE, domain=(away0,)),
    "softmax": OpSpec(lambda x, axis: sg.softmax(x, axis),
                      lambda x, axis: np.exp(_log_softmax(x, axis)), SOFTMAX),
    "log_softmax": OpSpec(lambda x, axis: sg.log_softmax(x, axis), _log_softmax, SOFTMAX),
    # -- shapes ---------------------------------------------------------------------------
    "transpose": OpSpec(_transpose, _transpose,
                        [C((3, 4), via=".T"), C((2, 3, 4)), C((2, 3, 4), axes=(1, 0, 2)),
                         C((2, 3, 4), axes=(2, 0, 1)),
                         C((2, 3, 4), axes=(0, -1, 1), via="method")]),
    "reshape": OpSpec(_reshape, _reshape,
                      [C((3, 4), shape=(2, 6)), C((3, 4), shape=(12,)), C((2, 3, 4), shape=(4, -1)),
                       C((6,), shape=(2, 1, 3), via="method"), C((), shape=(1, 1))]),
    "index": OpSpec(_index, _index,
                    [C((3, 4), idx=1), C((3, 4), idx=(_S(None), 0)),
                     C((3, 4), idx=(_S(1, 3), _S(None, None, 2))),
                     C((3, 4), idx=(None, Ellipsis, -1)),
                     C((2, 3, 4), idx=(1, _S(None), _S(1, 3))), C((2, 3, 4), idx=(Ellipsis, 0)),
                     C((5,), idx=_S(None, None, -2))]),
    "broadcast_to": OpSpec(lambda x, shape: sg.broadcast_to(x, shape),
                           lambda x, shape: np.broadcast_to(x, shape),
                           [C((4,), shape=(3, 4)), C((3, 1), shape=(2, 3, 4)), C((), shape=(2, 3)),
                            C((1, 4), shape=(3, 4))]),
    "one_hot": OpSpec(lambda lab, x, depth: sg.one_hot(lab, depth, dtype=x.dtype) * x,
                      lambda lab, x, depth: np.eye(depth)[lab] * x,
                      [C((3,), (3, 4), depth=4), C((2, 3), (2, 3, 5), depth=5),
                       C((4,), (4,), depth=4)],
                      domain=(labels, real), kinds=("i", "f")),
    # -- losses ---------------------------------------------------------------------------
    "softmax_cross_entropy": OpSpec(
        lambda z, y, axis=-1: sg.softmax_cross_entropy(z, y, axis),
        lambda z, y, axis=-1: -np.sum(y * _log_softmax(z, axis), axis=axis),
        [C((3, 4), (3, 4)), C((2, 3, 5), (2, 3, 5)), C((3, 4), (3, 4), axis=0)],
        domain=(real, positive)),
    "sigmoid_cross_entropy": OpSpec(
        sg.sigmoid_cross_entropy, lambda z, y: _softplus(z) - z * y,
        [C((3, 4), (3, 4)), C((3, 4), (4,)), C((5,), ())], domain=(real, unit)),
    "l2_loss": OpSpec(sg.l2_loss, lambda x: np.sum(x * x) / 2, [C((5,)), C((3, 4)), C((2, 3, 4))]),
}

CASES = [pytest.param(name, case, id=f"{name}[{case}]")
         for name, spec in SPEC.items() for case in spec.cases]
#: the float32 check runs on the first and the last (usually broadcasting) case of each op
CASES_F32 = [pytest.param(name, case, id=f"{name}[{case}]")
             for name, spec in SPEC.items()
             for case in [spec.cases[0], spec.cases[-1]][:len(spec.cases)]]


def test_every_row_names_an_op():
    # the one row every op needs is in tests/test_op_spec.py; these are more cases
    unknown = [name for name in SPEC if name not in sg.PUBLIC_OPS]
    assert not unknown, f"spec rows for ops that sg.PUBLIC_OPS does not list: {unknown}"
    assert all(SPEC[name].cases for name in SPEC)


# ---------------------------------------------------------------------------------------
# Running one case
# ---------------------------------------------------------------------------------------


def _seed(name, case) -> int:
    return sum(map(ord, f"{name}{case}")) * 7919 % 2**31


def _values(spec, case, rng, float_dtype):
    vals = []
    for i, shape in enumerate(case.shapes):
        v = np.asarray(spec.gen(i)(rng, shape, case.kwargs))
        vals.append(v.astype(np.int64) if spec.kind(i) == "i" else v.astype(float_dtype))
    return vals


def _compiled(spec, case, dtype, cotangent=True):
    """(f, float operand positions, out tensor, grad tensors): forward and gradients of
    sum(out * R) in one module; f takes the operands, then R. ``cotangent=False``: of the
    plain sum(out), and f takes the operands only."""
    ops = [sg.input(f"x{i}", shape=s, dtype=("int64" if spec.kind(i) == "i" else dtype))
           for i, s in enumerate(case.shapes)]
    out = spec.build(*ops, **case.kwargs)
    floats = [i for i in range(len(ops)) if spec.kind(i) == "f"]
    if not cotangent:
        grads = sg.grad(sg.sum(out), [ops[i] for i in floats])
        return sg.compile([out, *grads], inputs=ops), floats, out, grads
    r = sg.input("r", shape=out.shape, dtype=dtype)
    grads = sg.grad(sg.sum(out * r), [ops[i] for i in floats])
    f = sg.compile([out, *grads], inputs=[*ops, r])
    return f, floats, out, grads


def _dot(a, b) -> float:
    return float(np.sum(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)))


def _check_gradients(name, spec, case, vals, grads, floats, R, rng):
    """<grad, v> against central differences of sum(ref * R), two directions per operand."""
    ref = spec.ref if spec.fd_ref is None else (
        lambda *a, **kw: spec.fd_ref([v.copy() for v in vals], *a, **kw))

    def F(args) -> float:
        return _dot(ref(*args, **case.kwargs), R)

    scale = 1.0 + float(np.sum(np.abs(ref(*vals, **case.kwargs) * R)))
    for k, i in enumerate(floats):
        g = np.asarray(grads[k])
        assert g.shape == vals[i].shape, f"gradient {i}: shape {g.shape} vs {vals[i].shape}"
        assert g.dtype == np.float64
        for _ in range(2):
            v = rng.normal(size=vals[i].shape)
            plus, minus = list(vals), list(vals)
            plus[i], minus[i] = vals[i] + H * v, vals[i] - H * v
            fd = (F(plus) - F(minus)) / (2 * H)
            ad = _dot(g, v)
            assert abs(ad - fd) <= RTOL_FD * max(abs(ad), abs(fd)) + 1e-9 * scale, (
                f"{name} operand {i}: <grad, v> = {ad!r}, finite differences {fd!r}")


@pytest.mark.parametrize("name,case", CASES)
def test_forward_and_gradient_float64(name, case):
    spec = SPEC[name]
    rng = np.random.default_rng(_seed(name, case))
    vals = _values(spec, case, rng, np.float64)
    want = np.asarray(spec.ref(*vals, **case.kwargs), dtype=np.float64)
    R = rng.normal(size=want.shape)
    f, floats, out_t, grad_ts = _compiled(spec, case, "float64")
    assert out_t.shape == want.shape, f"symbolic shape {out_t.shape} vs numpy {want.shape}"
    out, *grads = f(*vals, R)

    assert np.shape(out) == want.shape
    assert np.asarray(out).dtype == np.float64
    np.testing.assert_allclose(out, want, rtol=RTOL_FWD, atol=RTOL_FWD)
    _check_gradients(name, spec, case, vals, grads, floats, R, rng)


#: cases whose result is larger than an operand (broadcasting, a reduction's keepdims...):
#: with the plain sum(out) the adjoint is a constant and the rules must expand it
CASES_PLAIN = [pytest.param(name, case, id=f"{name}[{case}]")
               for name, spec in SPEC.items() for case in spec.cases
               if len(set(case.shapes)) > 1 or name in ("broadcast_to", "max", "norm")]


@pytest.mark.parametrize("name,case", CASES_PLAIN)
def test_gradient_of_a_plain_sum(name, case):
    spec = SPEC[name]
    rng = np.random.default_rng(_seed(name, case) + 1)
    vals = _values(spec, case, rng, np.float64)
    f, floats, out_t, _ = _compiled(spec, case, "float64", cotangent=False)
    out, *grads = f(*vals)
    _check_gradients(name, spec, case, vals, grads, floats, np.ones(out_t.shape), rng)


@pytest.mark.parametrize("name,case", CASES_F32)
def test_float32_in_float32_out(name, case):
    """float32 operands give float32 values and gradients, close to the float64 ones."""
    spec = SPEC[name]
    rng = np.random.default_rng(_seed(name, case))
    vals64 = _values(spec, case, rng, np.float64)
    vals32 = [v.astype(np.float32) if v.dtype == np.float64 else v for v in vals64]
    f64, floats, _, _ = _compiled(spec, case, "float64")
    f32, _, out_t, grad_ts = _compiled(spec, case, "float32")
    assert out_t.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grad_ts)
    R = rng.normal(size=out_t.shape)
    res64 = f64(*vals64, R)
    res32 = f32(*vals32, R.astype(np.float32))
    for k, (a32, a64) in enumerate(zip(res32, res64)):
        a32 = np.asarray(a32)
        assert a32.dtype == np.float32, f"{name}: result {k} is {a32.dtype}, not float32"
        assert a32.shape == np.shape(a64)
        np.testing.assert_allclose(a32, a64, rtol=RTOL_F32, atol=RTOL_F32)


# ---------------------------------------------------------------------------------------
# Conventions at kinks and ties (PyTorch's)
# ---------------------------------------------------------------------------------------


def _grad_at(build, value, dtype="float64"):
    x = sg.input("x", shape=np.shape(value), dtype=dtype)
    (g,) = sg.grad(sg.sum(build(x)), [x])
    return sg.compile(g)(np.asarray(value, dtype=dtype))


def test_relu_derivative_at_zero_is_zero():
    np.testing.assert_array_equal(_grad_at(sg.relu, [-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0])


def test_abs_derivative_at_zero_is_zero():
    np.testing.assert_array_equal(_grad_at(sg.abs, [-1.5, 0.0, 2.0]), [-1.0, 0.0, 1.0])


def test_sign_derivative_is_zero_everywhere():
    np.testing.assert_array_equal(_grad_at(sg.sign, [-1.5, 0.0, 2.0]), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("op", [sg.maximum, sg.minimum])
def test_elementwise_max_min_tie_splits_the_gradient(op):
    a = sg.input("a", shape=(3,))
    b = sg.input("b", shape=(3,))
    ga, gb = sg.grad(sg.sum(op(a, b) * np.array([1.0, 2.0, 4.0])), [a, b])
    got_a, got_b = sg.compile([ga, gb])(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 5.0]))
    lo_a = [0.5, 1.0, 0.0] if op is sg.maximum else [0.5, 0.0, 4.0]
    np.testing.assert_array_equal(got_a, np.array(lo_a) * [1.0, 2.0, 1.0])
    np.testing.assert_array_equal(got_a + got_b, [1.0, 2.0, 4.0])


def test_max_reduction_tie_sends_the_whole_gradient_to_the_first_maximum():
    np.testing.assert_array_equal(_grad_at(sg.max, [3.0, 1.0, 3.0, 3.0]), [1.0, 0.0, 0.0, 0.0])
    x = sg.input("x", shape=(2, 3))
    (g,) = sg.grad(sg.sum(sg.max(x, axis=1) * np.array([2.0, 5.0])), [x])
    got = sg.compile(g)(np.array([[2.0, 7.0, 7.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_array_equal(got, [[0.0, 2.0, 0.0], [5.0, 0.0, 0.0]])


def test_clip_gradient_is_one_inside_and_zero_outside():
    got = _grad_at(lambda x: sg.clip(x, -1.0, 1.0), [-2.0, -0.5, 0.5, 3.0])
    np.testing.assert_array_equal(got, [0.0, 1.0, 1.0, 0.0])


# ---------------------------------------------------------------------------------------
# Shape errors are raised when the expression is built, naming the op and the shapes
# ---------------------------------------------------------------------------------------


def _t(name, shape, dtype="float64"):
    return sg.input(name, shape=shape, dtype=dtype)


@pytest.mark.parametrize("build,pattern", [
    (lambda: _t("a", (3, 4)) + _t("b", (5,)), r"add.*\(3, 4\).*\(5,\)"),
    (lambda: _t("a", (2, 3)) * _t("b", (3, 2)), r"multiply.*\(2, 3\).*\(3, 2\)"),
    (lambda: _t("a", (3,)) - _t("b", (4,)), r"subtract.*\(3,\).*\(4,\)"),
    (lambda: _t("a", (3, 4)) @ _t("b", (5, 2)), r"matmul.*\(3, 4\).*\(5, 2\)"),
    (lambda: sg.matmul(_t("a", ()), _t("b", (3,))), r"matmul.*\(\).*\(3,\)"),
    (lambda: _t("a", (2, 3, 4)) @ _t("b", (3, 4, 2)), r"matmul.*\(2,\).*\(3,\)"),
    (lambda: sg.maximum(_t("a", (3,)), _t("b", (4,))), r"maximum.*\(3,\).*\(4,\)"),
    (lambda: sg.where(_t("c", (3,)) > 0, _t("a", (3,)), _t("b", (2,))), r"where.*\(3,\).*\(2,\)"),
    (lambda: sg.reshape(_t("a", (3, 4)), (5, 2)), r"reshape.*\(3, 4\)"),
    (lambda: sg.reshape(_t("a", (3, 4)), (5, -1)), r"reshape.*\(3, 4\)"),
    (lambda: sg.broadcast_to(_t("a", (3,)), (4,)), r"broadcast_to.*\(3,\).*\(4,\)"),
    (lambda: sg.sum(_t("a", (3, 4)), axis=2), r"sum.*axis 2"),
    (lambda: sg.max(_t("a", (3, 4)), axis=(0, 0)), r"max.*repeated axis"),
    (lambda: sg.transpose(_t("a", (3, 4)), (0, 0)), r"transpose.*\(3, 4\)"),
    (lambda: sg.one_hot(_t("a", (3,)), 4), r"one_hot.*integer"),
    (lambda: _t("a", ("N", 3)) + _t("b", ("M", 3)), r"add.*\(N, 3\).*\(M, 3\)"),
    (lambda: sg.softmax_cross_entropy(_t("z", (3, 4)), _t("y", (3, 5))),
     r"softmax_cross_entropy.*\(3, 4\).*\(3, 5\)"),
    (lambda: sg.sigmoid_cross_entropy(_t("z", (3, 4)), _t("y", (3,))),
     r"sigmoid_cross_entropy.*\(3, 4\).*\(3,\)"),
])
def test_shape_errors_name_the_op_and_the_shapes(build, pattern):
    with pytest.raises(sg.ShapeError, match=pattern):
        build()


def test_index_out_of_bounds_is_an_error_at_build_time():
    with pytest.raises(IndexError, match=r"index 5 is out of bounds.*\(3, 4\)"):
        _t("a", (3, 4))[5]


# ---------------------------------------------------------------------------------------
# Second derivatives: a Hessian-vector product of a 2-layer tanh MLP
# ---------------------------------------------------------------------------------------


def test_hessian_vector_product_matches_finite_differences_of_the_gradient():
    x = sg.input("x", shape=(5, 3))
    y = sg.input("y", shape=(5, 2))
    w1 = sg.param("w1", shape=(3, 4))
    b1 = sg.param("b1", shape=(4,))
    w2 = sg.param("w2", shape=(4, 2))
    params = [w1, b1, w2]
    loss = sg.mean((sg.tanh(x @ w1 + b1) @ w2 - y) ** 2)
    grads = sg.grad(loss, params)
    vs = [sg.input(f"v_{p.expr.name}", shape=p.shape) for p in params]
    hvp = sg.grad(grads, params, grad_ys=vs)
    f_grad = sg.compile(grads, inputs=[x, y, *params])
    f_hvp = sg.compile(hvp, inputs=[x, y, *params, *vs])

    rng = np.random.default_rng(7)
    xv, yv = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    p0 = [rng.normal(size=p.shape) * 0.7 for p in params]
    v = [rng.normal(size=p.shape) for p in params]
    u = [rng.normal(size=p.shape) for p in params]
    hv = f_hvp(xv, yv, *p0, *v)
    h = 1e-5
    up = f_grad(xv, yv, *[p + h * d for p, d in zip(p0, v)])
    down = f_grad(xv, yv, *[p - h * d for p, d in zip(p0, v)])
    for k, (got, a, b) in enumerate(zip(hv, up, down)):
        fd = (a - b) / (2 * h)
        assert got.shape == p0[k].shape
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8 * (1 + np.abs(fd).max()))
    # the Hessian is symmetric: <u, H v> == <v, H u>
    hu = f_hvp(xv, yv, *p0, *u)
    uhv = sum(_dot(a, b) for a, b in zip(u, hv))
    vhu = sum(_dot(a, b) for a, b in zip(v, hu))
    assert abs(uhv - vhu) <= 1e-10 * (abs(uhv) + abs(vhu))


# ---------------------------------------------------------------------------------------
# A deep chain; unconnected parameters
# ---------------------------------------------------------------------------------------


def _chain(y, links):
    for _ in range(links):
        y = sg.sin(y) * 0.5 + y
    return y


def _chain_numpy(v, links):
    dv = np.ones_like(v)
    for _ in range(links):
        dv = dv * (np.cos(v) * 0.5 + 1.0)
        v = np.sin(v) * 0.5 + v
    return v, dv


@pytest.mark.slow  # ~10 s; the 600-op gradient chain below and test_depth run by default
def test_deep_chain_of_2000_elementwise_ops_compiles_and_matches_numpy():
    links = 667  # three elementwise ops per link (sin, *, +): 2001 nested ops
    x = sg.input("x", shape=(4,))
    y = _chain(x, links)
    xv = np.linspace(-1.0, 1.0, 4)
    got = sg.compile(y)(xv)
    np.testing.assert_allclose(got, _chain_numpy(xv, links)[0], rtol=1e-12)


def test_gradient_of_a_deep_chain_matches_the_chain_rule():
    links = 200  # 600 nested ops: far deeper than SymPy's recursion allows unbound
    x = sg.input("x", shape=(4,))
    (g,) = sg.grad(sg.sum(_chain(x, links)), [x])
    xv = np.linspace(-1.0, 1.0, 4)
    np.testing.assert_allclose(sg.compile(g)(xv), _chain_numpy(xv, links)[1], rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unconnected_params_get_zeros_of_their_shape(dtype):
    x = sg.input("x", shape=(4,), dtype=dtype)
    w = sg.param("w", shape=(4,), dtype=dtype)
    unused = sg.param("unused", shape=(2, 3), dtype=dtype)
    loss = sg.sum(x * w)
    gw, gu = sg.grad(loss, [w, unused])
    assert gu.shape == (2, 3) and gu.dtype == np.dtype(dtype)
    f = sg.compile([gw, gu], inputs=[x, w, unused])
    xv = np.arange(4, dtype=dtype)
    got_w, got_u = f(xv, np.ones(4, dtype=dtype), np.ones((2, 3), dtype=dtype))
    np.testing.assert_array_equal(got_w, xv)
    assert got_u.shape == (2, 3) and got_u.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got_u, np.zeros((2, 3)))
    got_u[0, 0] = 1.0  # a real, writable array (not a broadcast view of a scalar)
