"""Issue 12's reductions and products where random inputs do not reach: zeros in prod and
cumprod, ties in min, a zero variance in std, integer outputs of argmax/argmin, and the
tape's rules at the same points (the tape is the independent oracle)."""

import numpy as np
import pytest

import symgrad as sg
from symgrad import tape as tp


def _fd(f, v, h=1e-6):
    """Central differences of a scalar function, one element at a time (exact for the
    multilinear prod and cumprod, even at zeros)."""
    g = np.zeros_like(v)
    for i in np.ndindex(v.shape):
        e = np.zeros_like(v)
        e[i] = h
        g[i] = (f(v + e) - f(v - e)) / (2 * h)
    return g


def _compiled_grad(build, v, weights):
    x = sg.input("x", v.shape, "float64")
    out = build(x)
    f = sg.compile([out, sg.grad(sg.sum(out * sg.constant(weights)), [x])[0]], inputs=[x])
    return f(v)


def _tape_grad(fn, v, weights):
    t = tp.Variable(v)
    with tp.GradientTape() as tape:
        loss = tp.sum(fn(t) * weights)
    return tape.gradient(loss, t)


# one zero in row 0, two in row 1, none in row 2
_ZEROS = np.array([[1.5, 0.0, -2.0, 0.7],
                   [0.0, 1.3, 0.0, -0.4],
                   [0.9, -1.1, 1.7, 0.6]])


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_prod_gradient_is_the_product_of_the_others_with_zeros(axis):
    weights = np.random.default_rng(0).standard_normal(np.shape(np.prod(_ZEROS, axis)))
    y, g = _compiled_grad(lambda a: sg.prod(a, axis), _ZEROS, weights)
    np.testing.assert_allclose(y, np.prod(_ZEROS, axis))
    expected = _fd(lambda a: np.sum(np.prod(a, axis) * weights), _ZEROS)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_tape_grad(lambda t: tp.prod(t, axis=axis), _ZEROS, weights),
                               expected, rtol=1e-9, atol=1e-12)
    if axis == 1:  # by hand: the zero of row 0 gets the product of the rest; row 1 gets 0
        assert g[0, 1] == pytest.approx(weights[0] * 1.5 * -2.0 * 0.7)
        assert not g[0, [0, 2, 3]].any() and not g[1].any()


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_cumprod_gradient_is_exact_with_zeros(axis):
    weights = np.random.default_rng(1).standard_normal(np.shape(np.cumprod(_ZEROS, axis)))
    y, g = _compiled_grad(lambda a: sg.cumprod(a, axis), _ZEROS, weights)
    np.testing.assert_allclose(y, np.cumprod(_ZEROS, axis))
    expected = _fd(lambda a: np.sum(np.cumprod(a, axis) * weights), _ZEROS)
    np.testing.assert_allclose(g, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_tape_grad(lambda t: tp.cumprod(t, axis=axis), _ZEROS, weights),
                               expected, rtol=1e-9, atol=1e-12)


def test_min_sends_the_whole_gradient_to_the_first_minimum_in_c_order():
    v = np.array([[3.0, -1.0, 2.0, -1.0], [0.5, 0.5, 4.0, 0.5]])
    for axis, first in ((1, [(0, 1), (1, 0)]), (None, [(0, 1)])):
        y, g = _compiled_grad(lambda a: sg.min(a, axis), v, np.ones(np.shape(v.min(axis))))
        expected = np.zeros_like(v)
        for i in first:
            expected[i] = 1
        np.testing.assert_array_equal(g, expected)
        np.testing.assert_array_equal(_tape_grad(lambda t: tp.min(t, axis=axis), v, 1.0),
                                      expected)


def test_std_gradient_is_zero_at_zero_variance_and_var_is_two_pass():
    v = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    y, g = _compiled_grad(lambda a: sg.std(a, 1), v, np.ones(2))
    np.testing.assert_allclose(y, np.std(v, 1))
    assert np.all(np.isfinite(g)) and not g[0].any()
    np.testing.assert_allclose(g[1], _fd(lambda a: np.std(a), v[1]), rtol=1e-7)
    assert not _tape_grad(lambda t: tp.std(t, axis=1), v, 1.0)[0].any()
    # E[x^2] - E[x]^2 loses everything to cancellation at an offset of 1e8; two passes do not
    big = 1e8 + np.array([1.0, 2.0, 3.0, 4.0])
    x = sg.input("x", (4,), "float64")
    assert sg.compile(sg.var(x), inputs=[x])(big) == pytest.approx(1.25, rel=1e-9)


def test_var_refuses_ddof_without_degrees_of_freedom():
    x = sg.input("x", (3,), "float64")
    with pytest.raises(ValueError, match="var: ddof=3"):
        sg.var(x, ddof=3)
    with pytest.raises(TypeError, match="ddof"):
        sg.std(x, ddof=0.5)


def test_argmax_and_argmin_are_integer_outputs_of_compile():
    v = np.array([[1.0, 5.0, 5.0], [7.0, -2.0, -2.0]])
    x = sg.input("x", (2, 3), "float64")
    outs = [sg.argmax(x), sg.argmax(x, -1), sg.argmin(x, 0, keepdims=True), x.argmin(1)]
    got = sg.compile(outs, inputs=[x])(v)
    want = [np.argmax(v), np.argmax(v, -1), np.argmin(v, 0, keepdims=True), np.argmin(v, 1)]
    for a, b in zip(got, want):
        assert np.asarray(a).dtype.kind == "i" and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    # no gradient through the indices: d/dx (x * argmax) is argmax, as a constant
    loss = sg.sum(x * sg.argmax(x, 1, keepdims=True))
    (g,) = sg.grad(loss, [x])
    np.testing.assert_array_equal(sg.compile(g, inputs=[x])(v), np.ones((2, 3)) * [[1], [0]])


def test_reductions_name_the_op_in_errors():
    x = sg.input("x", (2, 3), "float64")
    with pytest.raises(sg.ShapeError, match="argmax: axis"):
        sg.argmax(x, (0, 1))
    with pytest.raises(sg.ShapeError, match="average: weights of shape"):
        sg.average(x, 1, np.ones(2))
    with pytest.raises(sg.ShapeError, match="cumprod"):
        sg.cumprod(x, 2)


def test_a_one_operand_einsum_output_is_not_a_view_of_the_input():
    # np.einsum('ij->ji', v) is a view of v: the node does not claim a fresh result, so
    # compile copies the output rather than hand the caller the input's memory
    v = np.arange(6.0).reshape(2, 3)
    x = sg.input("x", (2, 3), "float64")
    out = sg.compile(sg.einsum("ij->ji", x), inputs=[x])(v)
    np.testing.assert_array_equal(out, v.T)
    assert not np.shares_memory(out, v)


def test_products_name_the_op_and_shapes_in_errors():
    a, b = sg.input("a", (2, 3, 4), "float64"), sg.input("b", (4, 2), "float64")
    with pytest.raises(sg.ShapeError, match=r"dot: operands of shape \(2, 3, 4\)"):
        sg.dot(a, b)
    with pytest.raises(sg.ShapeError, match="einsum: subscripts must be"):
        sg.einsum("ijk,kl", a, b)
    with pytest.raises(sg.ShapeError, match="repeat a letter"):
        sg.einsum("ii->i", b[:2])
    with pytest.raises(sg.ShapeError, match="letter 'k'"):
        sg.einsum("ijk,lk->ijl", a, b)
    with pytest.raises(sg.ShapeError, match="tensordot: operands of shape"):
        sg.tensordot(a, b, ([2], [1]))
    with pytest.raises(sg.ShapeError, match="kron"):
        sg.kron(a, b)
    with pytest.raises(sg.ShapeError, match="cross"):
        sg.cross(b, b)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_sum_over_the_rows_of_a_matrix_is_numpys_sum(dtype, scale):
    # printed as _ones_for(x).dot(x) (one BLAS call): the same sums as x.sum(axis=0), for
    # any batch length (0 and 1 too), strides and special values
    x = sg.input("x", ("N", 3), dtype)
    f = sg.compile(sg.sum(x, axis=0), target="numpy")
    assert "_ones_for(x).dot(x)" in f.source
    rng = np.random.default_rng(2)
    big = (rng.standard_normal((9, 6)) * scale).astype(dtype)
    cases = [big[:, :3], big[:, ::2], big[:1, :3], big[:0, :3], np.asfortranarray(big[:, 3:])]
    special = big[:, :3].copy()
    special[1, 0], special[2, 1], special[3, 2] = np.inf, np.nan, -np.inf
    special[4, 2] = np.inf  # inf - inf: nan, as numpy sums it
    cases.append(special)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for value in cases:
        got, want = f(value), value.sum(axis=0)
        assert got.dtype == want.dtype and got.shape == want.shape
        finite = np.isfinite(want)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(got[~finite & ~np.isnan(want)],
                                      want[~finite & ~np.isnan(want)])
        np.testing.assert_allclose(got[finite], want[finite], rtol=tol,
                                   atol=tol * np.abs(value).sum(axis=0)[finite].max(initial=0))


def test_sum_over_rows_keeps_numpys_form_where_blas_does_not_apply():
    for shape, axis, keepdims, dtype in [((4, 3), 0, True, "float64"), ((4, 3), 1, False,
                                                                        "float64"),
                                         ((2, 4, 3), 0, False, "float64"),
                                         ((4, 3), 0, False, "int64")]:
        x = sg.input("x", shape, dtype)
        f = sg.compile(sg.sum(x, axis=axis, keepdims=keepdims), target="numpy")
        assert "_ones_for" not in f.source
        value = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
        np.testing.assert_array_equal(f(value), value.sum(axis=axis, keepdims=keepdims))
