"""Norms and quotient derivatives at every magnitude (issue 9, item 5).

* ``sg.norm`` is scaled against underflow and overflow: its value and its gradient are
  checked against a 50-digit mpmath reference from 1e-300 to 1e300, and its gradient at
  0 is 0 (PyTorch's and the tape's choice), never nan.
* The derivative of a quotient stays factored: d/dx x/(x*x + 1e-300) is checked against
  the exact derivative (mpmath) and against PyTorch in float64 at x = 1e-160, 1e-100, 1,
  1e100; symgrad must be finite wherever PyTorch is, and right where PyTorch is not.
* The rewrite changes no value at ordinary magnitudes: first and second derivatives of
  several quotients against mpmath, and gradients against float64 central differences.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import symgrad as sg
from symgrad import tape

mpmath.mp.dps = 50


def _mp_norm(values) -> mpmath.mpf:
    return mpmath.sqrt(mpmath.fsum(mpmath.mpf(float(v)) ** 2 for v in values))


def _ref_norm_and_grad(a: np.ndarray, axis):
    """The exact norm over ``axis`` (keepdims) and its gradient a / norm (0 at norm 0)."""
    a = np.asarray(a, dtype=np.float64)
    moved = np.moveaxis(a, axis, -1) if axis is not None else a.reshape(1, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    norms, grads = [], []
    for row in rows:
        n = _mp_norm(row)
        norms.append(float(n))
        grads.append([0.0 if n == 0 else float(mpmath.mpf(float(v)) / n) for v in row])
    grads = np.array(grads).reshape(moved.shape)
    grads = np.moveaxis(grads, -1, axis) if axis is not None else grads.reshape(a.shape)
    return np.array(norms), grads


def _close(got, want, rtol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert np.isfinite(got).all(), got
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


# ---------------------------------------------------------------------------------------
# norm
# ---------------------------------------------------------------------------------------


def _norm_function(shape, axis=None, keepdims=False, dtype="float64"):
    v = sg.input("v", shape, dtype=dtype)
    n = sg.norm(v, axis=axis, keepdims=keepdims)
    return sg.compile([n, sg.grad(sg.sum(n), [v])[0]])


@pytest.mark.parametrize("scale", [1e-300, 3e-200, 1e-160, 1e-20, 1.0, 1e20, 1e160, 4e200,
                                   1e300])
def test_norm_of_3_4_at_every_magnitude(scale):
    f = _norm_function((2,))
    value, grad = f(np.array([3.0, 4.0]) * scale)
    want, _ = _ref_norm_and_grad(np.array([3.0, 4.0]) * scale, None)
    _close(value, want[0], 1e-15)
    _close(grad, [0.6, 0.8], 1e-15)


def test_norm_examples_from_the_issue():
    f = _norm_function((2,))
    value, grad = f(np.array([3e-200, 4e-200]))
    assert value == pytest.approx(5e-200, rel=1e-15)
    np.testing.assert_allclose(grad, [0.6, 0.8], rtol=1e-15)
    value, grad = f(np.array([3e200, 4e200]))
    assert value == pytest.approx(5e200, rel=1e-15)
    np.testing.assert_allclose(grad, [0.6, 0.8], rtol=1e-15)


def test_norm_gradient_at_zero_is_zero_like_the_tape_and_pytorch():
    f = _norm_function((3,))
    value, grad = f(np.zeros(3))
    assert value == 0.0
    np.testing.assert_array_equal(grad, np.zeros(3))
    tv = tape.Variable(np.zeros(3))
    with tape.GradientTape() as t:
        y = tape.norm(tv)
    np.testing.assert_array_equal(t.gradient(y, tv), grad)


@pytest.mark.parametrize("axis,keepdims", [(0, False), (1, True), (None, True), (1, False),
                                           ((0, 1), False)])
def test_norm_over_axes_with_rows_at_different_magnitudes(axis, keepdims):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 5))
    # rows: ordinary, zero, tiny (squares underflow), huge (squares overflow)
    a[1] = 0.0
    a[2] *= 1e-170
    a[3] *= 1e170
    if axis in (0, (0, 1)) or axis is None:
        a = a[[0, 2]] if axis is not None else a[[2]]  # a column mixing 1 and 1e170 is fine
    f = _norm_function(a.shape, axis, keepdims)
    value, grad = f(a)
    ax = axis if isinstance(axis, int) else None
    if axis is None or axis == (0, 1):
        want, want_grad = _ref_norm_and_grad(a, None)
    else:
        want, want_grad = _ref_norm_and_grad(a, ax)
    np.testing.assert_allclose(np.ravel(value), want, rtol=1e-14, atol=0)
    if keepdims:
        assert np.ndim(value) == a.ndim
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, want_grad, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("scale", [1e-30, 1e-25, 1.0, 1e25, 1e30])
def test_norm_in_float32_at_the_edges_of_its_range(scale):
    f = _norm_function((2,), dtype="float32")
    x = (np.array([3.0, 4.0]) * scale).astype(np.float32)
    value, grad = f(x)
    assert value.dtype == np.float32 and grad.dtype == np.float32
    want, want_grad = _ref_norm_and_grad(x.astype(np.float64), None)
    np.testing.assert_allclose(value, want[0], rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-6)


def test_norm_propagates_inf_and_nan_as_numpy():
    f = _norm_function((2,))
    with np.errstate(invalid="ignore"):
        assert f(np.array([np.inf, 1.0]))[0] == np.inf
        assert np.isnan(f(np.array([np.nan, 1.0]))[0])
        assert np.linalg.norm([np.inf, 1.0]) == np.inf


def test_norm_matches_numpy_and_finite_differences_at_ordinary_magnitudes():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 4))
    f = _norm_function((3, 4), 1)
    value, grad = f(a)
    np.testing.assert_allclose(value, np.linalg.norm(a, axis=1), rtol=1e-15)
    fd = np.zeros_like(a)
    h = 1e-6
    for i in np.ndindex(a.shape):
        e = np.zeros_like(a)
        e[i] = h
        up, down = np.linalg.norm(a + e, axis=1), np.linalg.norm(a - e, axis=1)
        fd[i] = (up.sum() - down.sum()) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)


def test_norm_of_a_scalar_is_its_absolute_value():
    s = sg.input("s", ())
    f = sg.compile([sg.norm(s), sg.grad(sg.norm(s), [s])[0]])
    assert f(np.float64(-3e-300)) == [3e-300, -1.0]
    assert f(np.float64(0.0))[1] == 0.0


# ---------------------------------------------------------------------------------------
# Quotients
# ---------------------------------------------------------------------------------------

C = 1e-300


def _exact_dquot(x: float) -> float:
    """d/dx x/(x*x + C), exactly: (C - x**2) / (x**2 + C)**2."""
    X, c = mpmath.mpf(x), mpmath.mpf(C)
    return float((c - X * X) / (X * X + c) ** 2)


def _quotient_derivative():
    x = sg.input("x", ())
    (g,) = sg.grad(x / (x * x + C), [x])
    return sg.compile(g)


@pytest.mark.parametrize("x", [1e-160, 1e-100, 1e-30, 1.0, 1e30, 1e100, 1e150])
def test_quotient_derivative_against_the_exact_value(x):
    f = _quotient_derivative()
    for sign in (1.0, -1.0):
        _close(f(np.float64(sign * x)), _exact_dquot(sign * x), 1e-13)


def test_quotient_derivative_against_pytorch():
    torch = pytest.importorskip("torch")
    f = _quotient_derivative()
    for x in [1e-160, 1e-100, 1.0, 1e100]:
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        (xt / (xt * xt + C)).backward()
        ours, theirs = float(f(np.float64(x))), float(xt.grad)
        exact = _exact_dquot(x)
        assert np.isfinite(ours), x  # finite wherever the exact value is
        assert ours == pytest.approx(exact, rel=1e-13)
        if np.isfinite(theirs) and theirs == pytest.approx(exact, rel=1e-13):
            assert ours == pytest.approx(theirs, rel=1e-13)


def test_quotient_with_a_square_root_denominator():
    # d/dx x/sqrt(x*x + c) = c / (x*x + c)**1.5: the powers -1/2 and -3/2 are grouped too
    x = sg.input("x", ())
    c = 1e-300
    (g,) = sg.grad(x / sg.sqrt(x * x + c), [x])
    f = sg.compile(g)
    for xv in [1e-160, 1e-152, 1.0, 1e100]:
        X = mpmath.mpf(xv)
        D = X * X + mpmath.mpf(c)
        want = float(mpmath.mpf(c) / D ** 1.5)
        got = float(f(np.float64(xv)))
        assert np.isfinite(got)  # expanded: x**2 / D**1.5 is inf/nan below x = 1e-150
        # a difference of two terms of size 1/sqrt(D): a few ulps of that scale (at x = 1
        # the exact 1e-300 cancels to 0 in any float64 evaluation, PyTorch's included)
        assert abs(got - want) <= 4 * np.finfo(float).eps * float(1 / mpmath.sqrt(D))


QUOTIENTS = [
    ("x/(x*x+1)", lambda x: x / (x * x + 1.0), lambda X: X / (X * X + 1)),
    ("(x+2)/(x*x*x+5)", lambda x: (x + 2.0) / (x * x * x + 5.0),
     lambda X: (X + 2) / (X ** 3 + 5)),
    ("exp(x)/(1+x*x)**2", lambda x: sg.exp(x) / (1.0 + x * x) ** 2,
     lambda X: mpmath.exp(X) / (1 + X * X) ** 2),
    ("1/x + 1/(x*x)", lambda x: 1.0 / x + 1.0 / (x * x), lambda X: 1 / X + 1 / (X * X)),
]


@pytest.mark.parametrize("name,build,ref", QUOTIENTS, ids=[q[0] for q in QUOTIENTS])
def test_first_and_second_derivatives_of_quotients(name, build, ref):
    x = sg.input("x", (5,))
    (g,) = sg.grad(sg.sum(build(x)), [x])
    (h,) = sg.grad(sg.sum(g), [x])  # elementwise: the diagonal of the Hessian
    f = sg.compile([g, h])
    xs = np.array([-2.5, -0.7, 0.3, 1.1, 3.0])
    d1, d2 = f(xs)
    want1 = [float(mpmath.diff(ref, mpmath.mpf(v), 1)) for v in xs]
    want2 = [float(mpmath.diff(ref, mpmath.mpf(v), 2)) for v in xs]
    np.testing.assert_allclose(d1, want1, rtol=1e-12)
    np.testing.assert_allclose(d2, want2, rtol=1e-11)


def test_quotient_gradient_in_a_vector_model_against_finite_differences():
    rng = np.random.default_rng(3)
    x, w = sg.input("x", (6,)), sg.param("w", (6,))
    loss = sg.sum(w * x / (w * w + 0.5) + (x - w) / (1.0 + x * x * w * w))
    f = sg.compile([loss, sg.grad(loss, [w])[0]])
    xv, wv = rng.normal(size=6), rng.normal(size=6)
    _, grad = f(xv, wv)
    h = 1e-6
    fd = np.array([(f(xv, wv + h * e)[0] - f(xv, wv - h * e)[0]) / (2 * h) for e in np.eye(6)])
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)


def _exact_dreciprocal(x: float) -> float:
    """d/dx 1/(x*x + C), exactly: -2x / (x**2 + C)**2."""
    X, c = mpmath.mpf(x), mpmath.mpf(C)
    return float(-2 * X / (X * X + c) ** 2)


@pytest.mark.parametrize("x", [1e-100, 1e-90, 1e-30, 1.0, 1e30, 1e100])
def test_single_term_quotient_derivative_divides_step_by_step(x):
    # -2x / D**2 is printed x*-2.0/D/D: D*D underflows to 0 at x = 1e-100 (D ~ 1e-200),
    # where the quotient, about -2e300, is a float64
    v = sg.input("x", ())
    (g,) = sg.grad(1.0 / (v * v + C), [v])
    f = sg.compile(g)
    assert "**2" not in f.source.split("def compute")[1]  # no square of the denominator
    for sign in (1.0, -1.0):
        _close(f(np.float64(sign * x)), _exact_dreciprocal(sign * x), 1e-13)


def test_products_of_denominators_print_as_successive_divisions():
    # a/(b*c) as a/b/c: the same value at ordinary magnitudes, finite where b*c overflows
    a, b, c = (sg.input(n, (3,)) for n in "abc")
    f = sg.compile(a / (b * c))
    av, bv, cv = np.array([1.0, -2.0, 3e-300]), np.array([1.5, 4.0, 1e200]), \
        np.array([2.0, -0.5, 1e150])
    with np.errstate(over="ignore"):
        got = f(av, bv, cv)
    np.testing.assert_allclose(got[:2], av[:2] / (bv[:2] * cv[:2]), rtol=1e-15)
    assert got[2] == pytest.approx(3e-300 / 1e200 / 1e150, rel=1e-15) or got[2] == 0.0
    big = f(np.full(3, 1e300), np.full(3, 1e200), np.full(3, 1e200))  # b*c = inf
    assert np.all(np.isfinite(big)) and big[0] == pytest.approx(1e-100, rel=1e-15)
