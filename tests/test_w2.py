"""W2 of docs/workloads.md: gradients small enough to check by hand.

Each test states the hand-derived numbers from the workload and checks symgrad's compiled
values against them (and, where docs/workloads.md gives a formula, the printed gradient against
that formula, compared as SymPy expressions so that equivalent printings agree).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

import symgrad as sg


def _same_formula(printed: str, expected: str) -> bool:
    """True when two printed formulas are the same SymPy expression (``1 + x**2`` and
    ``x**2 + 1`` agree; ``2*x*y`` and ``2*x + y`` do not)."""
    return sympy.sympify(printed) == sympy.sympify(expected)


# ---------------------------------------------------------------------------------------
# W2.1  X = [-1, -2] constant, w = [2, 3], Y = w*X, cost = Y[1]*Y (a vector)
# ---------------------------------------------------------------------------------------


def _w21():
    X = sg.constant(np.array([-1.0, -2.0]))
    w = sg.param("w", shape=(2,))
    Y = w * X
    cost = Y[1] * Y
    return w, cost


def test_w2_1_vector_cost_gradient_is_6_28():
    w, cost = _w21()
    assert cost.shape == (2,)
    (g,) = sg.grad(cost, [w])  # a vector target is differentiated as the sum of its elements
    f = sg.compile([cost, g])
    cost_v, g_v = f(w=np.array([2.0, 3.0]))
    # Y = [-2, -6]; cost = Y[1]*Y = [12, 36]
    np.testing.assert_array_equal(cost_v, [12.0, 36.0])
    # d/dw0 = w1*x0*x1 = 6, d/dw1 = w0*x0*x1 + 2*w1*x1*x1 = 28
    np.testing.assert_array_equal(g_v, [6.0, 28.0])


def test_w2_1_one_sgd_step_with_learning_rate_1_gives_minus_4_minus_25():
    w, cost = _w21()
    (g,) = sg.grad(cost, [w])
    update = sg.compile(w - 1.0 * g)  # the update written as an expression
    np.testing.assert_array_equal(update(np.array([2.0, 3.0])), [-4.0, -25.0])

    step = sg.train_step(cost, sg.optim.SGD(1.0))  # the same step, fused and in place
    state = step.init({"w": np.array([2.0, 3.0])})
    loss = step(state)
    assert loss == pytest.approx(48.0)  # the vector cost is reported as its sum
    np.testing.assert_array_equal(state.params["w"], [-4.0, -25.0])


# ---------------------------------------------------------------------------------------
# W2.2  f(x, y) = x^2*y + y + 2 at (3, 4)
# ---------------------------------------------------------------------------------------


def test_w2_2_partial_derivatives_values_and_formulas():
    x, y = sg.param("x"), sg.param("y")
    f = x**2 * y + y + 2
    gx, gy = sg.grad(f, [x, y])
    values = sg.compile([f, gx, gy])(x=3.0, y=4.0)
    np.testing.assert_array_equal(values, [42.0, 24.0, 10.0])
    assert _same_formula(str(gx), "2*x*y"), str(gx)
    assert _same_formula(str(gy), "x**2 + 1"), str(gy)
    assert not _same_formula(str(gx), "2*x + y")  # the comparison can fail


# ---------------------------------------------------------------------------------------
# W2.3  f(x) = sin(x)^2 at pi/2
# ---------------------------------------------------------------------------------------


def test_w2_3_sin_squared_at_half_pi():
    x = sg.param("x")
    f = sg.sin(x) ** 2
    (g,) = sg.grad(f, [x])
    f_v, g_v = sg.compile([f, g])(math.pi / 2)
    assert f_v == pytest.approx(1.0, rel=1e-15)
    assert abs(g_v) <= 1e-12
    assert _same_formula(str(g), "2*sin(x)*cos(x)"), str(g)
    # and it is the derivative away from the kink-free point too
    g_at = sg.compile(g)(0.3)
    assert g_at == pytest.approx(2 * math.sin(0.3) * math.cos(0.3), rel=1e-14)


# ---------------------------------------------------------------------------------------
# W2.4  custom gradient: sign forward, straight-through hard-tanh backward
# ---------------------------------------------------------------------------------------


@sg.custom_gradient
def ste_sign(x):
    def grad(dy):
        return dy * sg.where(sg.abs(x) <= 1, 1.0, 0.0)

    return sg.sign(x), grad


XS = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
HARD_TANH_MASK = np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])


def test_w2_4_straight_through_sign():
    x = sg.input("x", shape=(7,))
    r = sg.input("r", shape=(7,))
    y = ste_sign(x)
    (g,) = sg.grad(sg.sum(y * r), [x])
    rv = np.arange(1.0, 8.0)
    y_v, g_v = sg.compile([y, g])(x=XS, r=rv)
    np.testing.assert_array_equal(y_v, np.sign(XS))
    # 1 where -1 <= x <= 1 (bounds included), 0 outside; not sign's own derivative (0)
    np.testing.assert_array_equal(g_v, rv * HARD_TANH_MASK)


def test_w2_4_straight_through_inside_a_model():
    """The custom rule composes with the chain rule on both sides."""
    w = sg.param("w", shape=(7,))
    t = sg.input("t", shape=(7,))
    loss = sg.sum((ste_sign(w * 2.0) - t) ** 2)
    (g,) = sg.grad(loss, [w])
    wv = XS / 2.0
    tv = np.linspace(-1.0, 1.0, 7)
    got = sg.compile(g)(t=tv, w=wv)
    # d/dw = 2*(sign(2w) - t) * mask(2w) * 2
    np.testing.assert_allclose(got, 2.0 * (np.sign(XS) - tv) * HARD_TANH_MASK * 2.0, rtol=1e-15)


# ---------------------------------------------------------------------------------------
# W2.5  clipping by global norm; several targets with grad_ys; stop_gradient
# ---------------------------------------------------------------------------------------


def _clip_model():
    x = sg.input("x", shape=(4, 3))
    w1 = sg.param("w1", shape=(3,))
    w2 = sg.param("w2", shape=(2, 2))
    loss = sg.sum((x @ w1) ** 2) + sg.sum(sg.exp(w2) * 3.0)
    return x, w1, w2, loss


@pytest.mark.parametrize("clip_norm", [0.5, 1e6])  # clipping active, then inactive
def test_w2_5_clip_by_global_norm(clip_norm):
    x, w1, w2, loss = _clip_model()
    grads = sg.grad(loss, [w1, w2])
    global_norm = sg.sqrt(sum(sg.sum(g * g) for g in grads))
    # TensorFlow's clip_by_global_norm: t * clip_norm / max(global_norm, clip_norm)
    scale = clip_norm / sg.maximum(global_norm, clip_norm)
    clipped = [g * scale for g in grads]
    f = sg.compile([global_norm, *clipped], inputs=[x, w1, w2])

    rng = np.random.default_rng(5)
    xv, w1v, w2v = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(2, 2))
    norm_v, c1, c2 = f(xv, w1v, w2v)
    g1 = 2.0 * xv.T @ (xv @ w1v)  # by hand
    g2 = 3.0 * np.exp(w2v)
    norm_hand = math.sqrt(np.sum(g1 * g1) + np.sum(g2 * g2))
    assert norm_v == pytest.approx(norm_hand, rel=1e-12)
    factor = clip_norm / max(norm_hand, clip_norm)
    np.testing.assert_allclose(c1, g1 * factor, rtol=1e-12)
    np.testing.assert_allclose(c2, g2 * factor, rtol=1e-12)
    clipped_norm = math.sqrt(np.sum(c1 * c1) + np.sum(c2 * c2))
    assert clipped_norm == pytest.approx(min(clip_norm, norm_hand), rel=1e-12)


def test_w2_5_several_targets_with_grad_ys():
    w = sg.param("w", shape=(3,))
    x = sg.input("x", shape=(3,))
    u = sg.input("u", shape=(3,))
    y1 = w * x  # a vector target, cotangent u
    y2 = sg.sum(w * w)  # a scalar target, cotangent 2.0
    (g,) = sg.grad([y1, y2], [w], grad_ys=[u, 2.0])
    wv, xv, uv = np.array([1.0, -2.0, 0.5]), np.array([3.0, 1.0, -1.0]), np.array([1.0, 2.0, 3.0])
    got = sg.compile(g)(u=uv, w=wv, x=xv)
    # d/dw (u . y1 + 2 * y2) = u*x + 4*w
    np.testing.assert_allclose(got, uv * xv + 4.0 * wv, rtol=1e-15)
    # without grad_ys both targets count with weight 1 (their elements summed)
    (g1,) = sg.grad([y1, y2], [w])
    np.testing.assert_allclose(sg.compile(g1)(w=wv, x=xv), xv + 2.0 * wv, rtol=1e-15)


def test_w2_5_grad_ys_must_match_the_target_shape():
    w = sg.param("w", shape=(3,))
    with pytest.raises(sg.GradientError, match=r"grad_ys\[0\].*\(2,\).*\(3,\)"):
        sg.grad(w * 2.0, [w], grad_ys=[sg.input("u", shape=(2,))])


def test_w2_5_stop_gradient():
    w = sg.param("w", shape=(3,))
    loss = sg.sum(w * sg.stop_gradient(w)) + sg.sum(sg.stop_gradient(w * w) * 5.0)
    (g,) = sg.grad(loss, [w])
    wv = np.array([1.0, -2.0, 3.0])
    loss_v, g_v = sg.compile([loss, g])(wv)
    assert loss_v == pytest.approx(6.0 * np.sum(wv * wv))  # the forward is unchanged
    np.testing.assert_array_equal(g_v, wv)  # d/dw of w*const(w): w, not 2w; the rest is 0
