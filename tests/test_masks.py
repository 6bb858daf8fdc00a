"""Comparisons and logical ops as boolean tensors: sg.where conditions, and 0/1 masks inside
arithmetic with numpy's values and dtypes. No gradient flows through a mask; the gradient
through the other operand is checked against float64 central finite differences."""

import numpy as np
import pytest

import symgrad as sg

X = np.array([-1.5, -0.25, 0.5, 2.0])
Y = np.array([0.75, -0.5, 1.25, -2.0])


def _run(build, dtype="float64", values=(X, Y)):
    x = sg.param("mx", (4,), dtype)
    y = sg.param("my", (4,), dtype)
    out = build(x, y)
    f = sg.compile([out], inputs=[x, y])
    (got,) = f(*(np.asarray(v, dtype) for v in values))
    return out, got


CASES = [
    ("gt_times", lambda x, y: (x > 0) * x),
    ("ge_times", lambda x, y: y * (x >= 1.0)),
    ("lt_plus", lambda x, y: (x < y) + 1.0),
    ("le_minus", lambda x, y: x - (x <= y)),
    ("mask_scale", lambda x, y: (x > 0) * 2.5),
    ("neg_mask", lambda x, y: -(x > 0) * y),
    ("invert", lambda x, y: x * ~(x > 0)),
    ("and", lambda x, y: ((x > 0) & (y > 0)) * x + y),
    ("or", lambda x, y: ((x > 0) | (y > 0)) * y),
    ("xor", lambda x, y: ((x > 0) ^ (y > 0)) * x),
    ("equal", lambda x, y: sg.equal(x, 0.5) * y),
    ("not_equal", lambda x, y: sg.not_equal(x, 0.5) * y),
    ("functions", lambda x, y: sg.greater(x, y) * x + sg.less_equal(x, y) * y),
    ("logical_fns", lambda x, y: sg.logical_not(sg.logical_or(x > 1, y < 0)) * x),
    ("logical_numbers", lambda x, y: sg.logical_and(x, y - 0.75) * x),
    ("mask_of_mask", lambda x, y: (x > 0) * (y > 0) * x),
]

NUMPY = {
    "gt_times": lambda x, y: (x > 0) * x,
    "ge_times": lambda x, y: y * (x >= 1.0),
    "lt_plus": lambda x, y: (x < y) + 1.0,
    "le_minus": lambda x, y: x - (x <= y),
    "mask_scale": lambda x, y: (x > 0) * 2.5,
    # numpy refuses -bool_array; symgrad negates the 0/1 mask as an int64 (then * float32
    # is float64, numpy's promotion of int64 with float32)
    "neg_mask": lambda x, y: -(x > 0).astype(np.int64) * y,
    "invert": lambda x, y: x * ~(x > 0),
    "and": lambda x, y: ((x > 0) & (y > 0)) * x + y,
    "or": lambda x, y: ((x > 0) | (y > 0)) * y,
    "xor": lambda x, y: ((x > 0) ^ (y > 0)) * x,
    "equal": lambda x, y: np.equal(x, 0.5) * y,
    "not_equal": lambda x, y: np.not_equal(x, 0.5) * y,
    "functions": lambda x, y: np.greater(x, y) * x + np.less_equal(x, y) * y,
    "logical_fns": lambda x, y: np.logical_not(np.logical_or(x > 1, y < 0)) * x,
    "logical_numbers": lambda x, y: np.logical_and(x, y - 0.75) * x,
    # a product of masks is their 0/1 product, an int64 (numpy's bool * bool is a bool)
    "mask_of_mask": lambda x, y: (x > 0).astype(np.int64) * (y > 0) * x,
}


@pytest.mark.parametrize("name,build", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_masks_in_arithmetic_match_numpy(name, build, dtype):
    out, got = _run(build, dtype)
    expected = NUMPY[name](X.astype(dtype), Y.astype(dtype))
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == "float32" else 1e-15)
    # the declared dtype, the computed one and numpy's agree (float32 stays float32, a
    # mask plus a Python float is float64 as in numpy)
    assert got.dtype == expected.dtype == out.dtype, (got.dtype, expected.dtype, out.dtype)


@pytest.mark.parametrize("name,build", CASES, ids=[c[0] for c in CASES])
def test_gradients_through_masks(name, build):
    # nothing flows through the mask; the other operand's gradient is the derivative of the
    # piecewise-smooth function (finite differences, away from the switch points)
    rng = np.random.default_rng(0)
    x = sg.param("gx", (4,))
    y = sg.param("gy", (4,))
    w = rng.standard_normal(4)
    loss = sg.sum(build(x, y) * sg.constant(w))
    f = sg.compile(list(sg.grad(loss, [x, y])), inputs=[x, y])
    gx, gy = f(X, Y)

    def objective(a, b):
        return float(np.sum(NUMPY[name](a, b) * w))

    h = 1e-6
    for i, g in enumerate((gx, gy)):
        for k in range(4):
            e = np.zeros(4)
            e[k] = h
            args_p = [X + e, Y] if i == 0 else [X, Y + e]
            args_m = [X - e, Y] if i == 0 else [X, Y - e]
            fd = (objective(*args_p) - objective(*args_m)) / (2 * h)
            np.testing.assert_allclose(g[k], fd, rtol=1e-7, atol=1e-8,
                                       err_msg=f"{name}: d/d{'xy'[i]}[{k}]")


def test_the_gradient_through_a_mask_is_zero_where_it_would_be_a_spike():
    # d/dx [(x > 0) * 1.0] is 0 everywhere, also at the switch x = 0 (no Dirac spike)
    x = sg.param("zx", (3,))
    f = sg.compile(list(sg.grad(sg.sum((x > 0) * 1.0 + (x >= 0) * 3.0), [x])), inputs=[x])
    (g,) = f(np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(g, np.zeros(3))


def test_where_still_takes_comparisons_and_logical_ops():
    x = sg.param("wx", (4,))
    y = sg.param("wy", (4,))
    out = sg.where((x > 0) & ~(y > 1.0), x * y, y)
    assert out.dtype == np.float64
    g = sg.grad(sg.sum(out), [x, y])
    f = sg.compile([out, *g], inputs=[x, y])
    got, gx, gy = f(X, Y)
    cond = (X > 0) & ~(Y > 1.0)
    np.testing.assert_array_equal(got, np.where(cond, X * Y, Y))
    np.testing.assert_array_equal(gx, np.where(cond, Y, 0.0))
    np.testing.assert_array_equal(gy, np.where(cond, X, 1.0))
    # a mask and a where condition from one comparison, in one graph
    both = sg.where(x > 0, x, 0.0) + (x > 0) * y
    (v,) = sg.compile([both], inputs=[x, y])(X, Y)
    np.testing.assert_array_equal(v, np.where(X > 0, X, 0.0) + (X > 0) * Y)


def test_comparisons_are_boolean_tensors():
    x = sg.param("bx", (4,), "float32")
    for t in (x > 0, sg.greater_equal(x, 1.0), sg.equal(x, x), sg.logical_not(x > 0),
              (x > 0) | (x < -1)):
        assert t.dtype == np.dtype(bool) and t.shape == (4,)
    f = sg.compile([x > 0, sg.logical_xor(x > 0, x < 1)], inputs=[x])
    a, b = f(X.astype(np.float32))
    assert a.dtype == b.dtype == np.dtype(bool)
    np.testing.assert_array_equal(a, X > 0)
    np.testing.assert_array_equal(b, np.logical_xor(X > 0, X < 1))


def test_the_generated_code_reads_like_numpy():
    x = sg.param("rx", (4,))
    src = sg.compile([(x > 0) * x], inputs=[x], target="numpy").source  # the numpy form
    body = src[src.index("def compute"):]
    assert "(rx > 0)" in body and "logical_and.reduce" not in body
    src = sg.compile([((x > 0) & (x < 1)) * x], inputs=[x], target="numpy").source
    assert "np.logical_and((rx > 0), (rx < 1))" in src


def test_equality_stays_identity_and_bad_operands_are_named():
    x = sg.param("ex", (2,))
    assert (x == x) is True and {x: 1}[x] == 1  # Tensors stay usable as dict keys
    with pytest.raises(TypeError, match="boolean"):
        ~x
    with pytest.raises(TypeError, match="logical_and"):
        x & (x > 0)


def test_a_comparison_sympy_folds_to_a_constant_is_still_a_mask():
    # x <= x - 0.5 is False for every x: SymPy folds it, and the constant is spread over
    # the shape; it must stay usable in arithmetic, in functions and in where
    p = sg.param("fold_p", (4, 1))
    s = sg.softplus(p)
    never, always = s <= s - 0.5, s >= s
    u = sg.input("fold_u", (4, 1))
    loss = sg.sum(sg.arccos(never) * u) + sg.sum(always * p)
    f = sg.compile([loss, *sg.grad(loss, [p])], inputs=[p, u], target="numpy")
    value, grad = f(np.full((4, 1), 0.3), np.ones((4, 1)))
    assert value == pytest.approx(4 * np.pi / 2 + 4 * 0.3)
    np.testing.assert_array_equal(grad, np.ones((4, 1)))
    w = sg.where(never, p, 2.0 * p)
    np.testing.assert_array_equal(sg.compile(w, inputs=[p])(np.ones((4, 1))), np.full((4, 1), 2.0))


def test_a_negated_product_led_by_a_bool_function_is_arithmetic():
    """nan_to_num's derivative is isfinite(x), a bool array: with a negative coefficient the
    product printed as ``-np.isfinite(x)*...``, which numpy refuses (found by the property
    test through norm(nan_to_num(...)))."""
    x = sg.param("x", (3,), "float64", shared=True)
    y = sg.param("y", (3,), "float64", shared=True)
    loss = -sg.sum(sg.nan_to_num(x) * sg.sin(y))
    f = sg.compile([loss, *sg.grad(loss, [x])])
    xv, yv = np.array([0.5, -1.0, 2.0]), np.array([0.3, 1.2, -0.7])
    value, gx = f(xv, yv)
    assert np.isclose(value, -np.sum(xv * np.sin(yv)))
    np.testing.assert_allclose(gx, -np.sin(yv), rtol=1e-15)
