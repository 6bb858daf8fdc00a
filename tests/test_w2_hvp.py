"""docs/workloads.md W2 (gradients checkable by hand) and second derivatives."""

import numpy as np
import pytest
import sympy

import symgrad as sg


def _same_formula(printed: str, expected: str) -> bool:
    names = {n: sympy.Symbol(n) for n in ("x", "y", "w")}
    return sympy.simplify(sympy.sympify(printed, locals=names)
                          - sympy.sympify(expected, locals=names)) == 0


def test_w2_1_vector_target_and_one_sgd_step():
    X = sg.constant(np.array([-1.0, -2.0]), name="X")
    w = sg.param("w", (2,))
    Y = w * X
    cost = Y[1] * Y  # a vector: differentiated as the sum of its elements
    (gw,) = sg.grad(cost, [w])
    f = sg.compile(gw)
    g = f(np.array([2.0, 3.0]))
    np.testing.assert_allclose(g, [6.0, 28.0])
    step = sg.train_step(cost, sg.optim.SGD(1.0))
    state = step.init({"w": np.array([2.0, 3.0])})
    step(state)
    np.testing.assert_allclose(state.params["w"], [-4.0, -25.0])


def test_w2_2_values_and_printed_formulas():
    x, y = sg.input("x"), sg.input("y")
    f = x ** 2 * y + y + 2
    gx, gy = sg.grad(f, [x, y])
    assert _same_formula(str(gx), "2*x*y") and _same_formula(str(gy), "x**2 + 1")
    value, dx, dy = sg.compile([f, gx, gy], inputs=[x, y])(3.0, 4.0)
    assert (value, dx, dy) == (42.0, 24.0, 10.0)


def test_w2_3_sin_squared_at_half_pi():
    x = sg.input("x")
    f = sg.sin(x) ** 2
    (g,) = sg.grad(f, [x])
    assert _same_formula(str(g).replace("sin", "sympy.sin").replace("cos", "sympy.cos")
                         .replace("sympy.", ""), "2*sin(x)*cos(x)")
    value, slope = sg.compile([f, g])(np.pi / 2)
    assert abs(value - 1.0) < 1e-15 and abs(slope) < 1e-12


def test_w2_4_straight_through_sign():
    @sg.custom_gradient
    def ste_sign(x):
        def grad(dy):
            return dy * sg.where(sg.abs(x) <= 1, 1.0, 0.0)
        return sg.sign(x), grad

    x = sg.input("x", (5,))
    y = ste_sign(x)
    (g,) = sg.grad(sg.sum(y * sg.constant(np.arange(1.0, 6.0))), [x])
    out, grad = sg.compile([y, g])(np.array([-2.0, -0.5, 0.0, 0.7, 1.5]))
    np.testing.assert_array_equal(out, [-1, -1, 0, 1, 1])
    np.testing.assert_array_equal(grad, [0, 2, 3, 4, 0])


def test_w2_5_several_targets_with_grad_ys_and_stop_gradient():
    w = sg.param("w", (3,))
    a, b = w * 2.0, sg.stop_gradient(w) * w
    ga = sg.input("ga", (3,))
    (g,) = sg.grad([a, b], [w], grad_ys=[ga, sg.constant(np.ones(3))])
    wv, gav = np.array([1.0, -2.0, 3.0]), np.array([0.5, 1.0, -1.0])
    np.testing.assert_allclose(sg.compile(g, inputs=[ga, w])(gav, wv), 2.0 * gav + wv)


def test_hessian_vector_product_of_a_small_mlp(rng):
    x = sg.input("x", (5, 3))
    w1, w2 = sg.param("w1", (3, 4)), sg.param("w2", (4, 2))
    loss = sg.mean(sg.tanh(sg.tanh(x @ w1) @ w2) ** 2)
    v = sg.input("v", (3, 4))
    (g1,) = sg.grad(loss, [w1])
    (hvp,) = sg.grad(sg.sum(g1 * v), [w1])  # d/dw1 <grad, v> = H v
    f_g = sg.compile(g1, inputs=[x, w1, w2])
    f_hvp = sg.compile(hvp, inputs=[x, w1, w2, v])
    xv, w1v, w2v, vv = (rng.standard_normal(s) for s in [(5, 3), (3, 4), (4, 2), (3, 4)])
    h = 1e-5
    fd = (f_g(xv, w1v + h * vv, w2v) - f_g(xv, w1v - h * vv, w2v)) / (2 * h)
    np.testing.assert_allclose(f_hvp(xv, w1v, w2v, vv), fd, rtol=1e-6, atol=1e-9)


def test_unconnected_param_gets_zeros_and_shape_errors_name_the_op():
    x, w, u = sg.input("x", (2, 3)), sg.param("w", (3,)), sg.param("u", (4, 2), "float32")
    gw, gu = sg.grad(sg.sum(x @ w), [w, u])
    out = sg.compile([gw, gu], inputs=[x, w, u])(np.ones((2, 3)), np.ones(3),
                                                 np.ones((4, 2), np.float32))
    assert out[1].shape == (4, 2) and out[1].dtype == np.float32 and not out[1].any()
    try:
        sg.input("a", (3, 4)) @ sg.input("b", (5, 2))
    except sg.ShapeError as err:
        assert "matmul" in str(err) and "(3, 4)" in str(err) and "(5, 2)" in str(err)
    else:
        raise AssertionError("no ShapeError")


@pytest.mark.slow  # ~20 s; test_depth's chain-300 covers deep chains in the default run
def test_deep_chain_compiles_and_matches_numpy():
    x = sg.input("x", (3,))
    y, yv = x, np.array([0.1, -0.4, 0.8])
    ref = yv.copy()
    for _ in range(400):  # deeper than SymPy recursion allows without let-binding
        y = sg.sin(y) * 0.5 + y * 0.5
        ref = np.sin(ref) * 0.5 + ref * 0.5
    f = sg.compile([sg.sum(y), sg.grad(sg.sum(y), [x])[0]])
    value, g = f(yv)
    np.testing.assert_allclose(value, ref.sum(), rtol=1e-12)
    assert g.shape == (3,) and np.all(np.isfinite(g))
