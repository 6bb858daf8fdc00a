"""Tests for :mod:`symgrad.tape`, the tape-based reverse-mode baseline.

Every op's gradient is checked against float64 central finite differences along random
directions: for a random output cotangent ``u`` (passed as ``output_gradients``) and a random
input direction ``v``, ``<grad, v>`` must equal ``<u, (f(x + h v) - f(x - h v)) / 2h>``.
Inputs are kept away from kinks; the conventions at kinks, the dtype promise, the tape's
semantics and the error messages are tested directly.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import pathlib
import sys
import types
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from symgrad import tape as tp

H = 1e-6
RTOL = 1e-6


def check_gradients(f, inputs, seed=0, n_dirs=2):
    """Compare tape gradients of ``f(*inputs)`` with central differences, input by input."""
    rng = np.random.default_rng(seed)
    inputs = [np.asarray(x, dtype=np.float64) for x in inputs]
    variables = [tp.Variable(x) for x in inputs]
    with tp.GradientTape() as t:
        y = f(*variables)
    u = rng.standard_normal(np.shape(y))
    grads = t.gradient(y, variables, output_gradients=u)
    assert len(grads) == len(inputs)
    for i, (x, g) in enumerate(zip(inputs, grads)):
        assert isinstance(g, np.ndarray)
        assert g.shape == x.shape and g.dtype == np.float64
        for _ in range(n_dirs):
            v = rng.standard_normal(x.shape)
            plus = [xj + H * v if j == i else xj for j, xj in enumerate(inputs)]
            minus = [xj - H * v if j == i else xj for j, xj in enumerate(inputs)]
            fd = np.sum(u * (np.asarray(f(*plus)) - np.asarray(f(*minus)))) / (2 * H)
            ad = np.sum(g * v)
            scale = builtins.max(1.0, builtins.abs(fd), builtins.abs(ad))
            assert builtins.abs(ad - fd) <= RTOL * scale, (i, ad, fd)
    return grads


def away_from_zero(rng, shape, low=0.2, high=2.0):
    """Random values with |x| in [low, high] and random signs (no kink at 0 nearby)."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def distinct(rng, shape):
    """Values at least 0.5 apart from each other: no ties for max reductions."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.5 + rng.uniform(-0.1, 0.1, n)).reshape(shape) - n / 4


SHAPES = [(), (3,), (2, 3), (2, 1, 4)]


# ------------------------------------------------------------------------------------------
# Elementwise unary ops
# ------------------------------------------------------------------------------------------

UNARY = {
    "negative": (tp.negative, away_from_zero),
    "exp": (tp.exp, away_from_zero),
    "log": (tp.log, positive),
    "sqrt": (tp.sqrt, positive),
    "sin": (tp.sin, away_from_zero),
    "cos": (tp.cos, away_from_zero),
    "tanh": (tp.tanh, away_from_zero),
    "sigmoid": (tp.sigmoid, away_from_zero),
    "relu": (tp.relu, away_from_zero),
    "abs": (tp.abs, away_from_zero),
    "square": (tp.square, away_from_zero),
    "softplus": (tp.softplus, away_from_zero),
    "log_sigmoid": (tp.log_sigmoid, away_from_zero),
    "neg_operator": (lambda x: -x, away_from_zero),
    "abs_builtin": (lambda x: builtins.abs(x), away_from_zero),
    "scalar_minus_x": (lambda x: 2.0 - x, away_from_zero),
    "scalar_over_x": (lambda x: 3.0 / x, away_from_zero),
    "scalar_pow_x": (lambda x: 2.0 ** x, away_from_zero),
    "x_pow_int": (lambda x: x ** 3, away_from_zero),
    "x_pow_half": (lambda x: x ** 0.5, positive),
    "composite": (lambda x: tp.tanh(tp.exp(x) * 0.3) + tp.sin(x) / (1 + x * x), away_from_zero),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name, shape):
    fn, domain = UNARY[name]
    check_gradients(fn, [domain(np.random.default_rng(1), shape)])


def test_unary_values_match_numpy():
    x = away_from_zero(np.random.default_rng(2), (5,))
    expected = {
        "exp": np.exp(x), "sin": np.sin(x), "cos": np.cos(x), "tanh": np.tanh(x),
        "sigmoid": 1 / (1 + np.exp(-x)), "relu": np.maximum(x, 0), "abs": np.abs(x),
        "square": x * x, "sign": np.sign(x), "softplus": np.log1p(np.exp(x)),
        "log_sigmoid": np.log(1 / (1 + np.exp(-x))), "negative": -x,
    }
    for name, want in expected.items():
        np.testing.assert_allclose(getattr(tp, name)(x).value, want, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(tp.log(np.abs(x)).value, np.log(np.abs(x)), rtol=1e-12)
    np.testing.assert_allclose(tp.sqrt(np.abs(x)).value, np.sqrt(np.abs(x)), rtol=1e-12)


# ------------------------------------------------------------------------------------------
# Elementwise binary ops, with broadcasting
# ------------------------------------------------------------------------------------------

BINARY_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 2)), ((4, 1, 3), (2, 1)),
    ((2, 3), ()),
]


def _pair(rng, sa, sb, a_domain, b_domain, separated=False):
    """Operands; with ``separated``, |a - b| >= 0.1 everywhere after broadcasting."""
    while True:
        a, b = a_domain(rng, sa), b_domain(rng, sb)
        if not separated or np.min(np.abs(np.subtract(a, b)), initial=1.0) >= 0.1:
            return a, b


BINARY = {
    "add": (tp.add, away_from_zero, away_from_zero, False),
    "subtract": (tp.subtract, away_from_zero, away_from_zero, False),
    "multiply": (tp.multiply, away_from_zero, away_from_zero, False),
    "divide": (tp.divide, away_from_zero, away_from_zero, False),
    "power": (tp.power, positive, away_from_zero, False),
    "maximum": (tp.maximum, away_from_zero, away_from_zero, True),
    "minimum": (tp.minimum, away_from_zero, away_from_zero, True),
    "sigmoid_cross_entropy": (tp.sigmoid_cross_entropy, away_from_zero,
                              lambda rng, s: rng.uniform(0, 1, s), False),
    "op_add": (lambda a, b: a + b, away_from_zero, away_from_zero, False),
    "op_sub": (lambda a, b: a - b, away_from_zero, away_from_zero, False),
    "op_mul": (lambda a, b: a * b, away_from_zero, away_from_zero, False),
    "op_div": (lambda a, b: a / b, away_from_zero, away_from_zero, False),
    "op_pow": (lambda a, b: a ** b, positive, away_from_zero, False),
    # the condition is fixed under the finite-difference steps: a stays away from 0
    "where": (lambda a, b: tp.where(np.asarray(a) > 0, a, b), away_from_zero, away_from_zero,
              False),
}


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradients(name, shapes):
    fn, a_dom, b_dom, separated = BINARY[name]
    a, b = _pair(np.random.default_rng(3), *shapes, a_dom, b_dom, separated)
    check_gradients(fn, [a, b])


@pytest.mark.parametrize("cond_shape, a_shape, b_shape",
                         [((3,), (3,), (3,)), ((2, 3), (3,), (2, 1)), ((2, 1), (), (1, 4))])
def test_where_gradients_with_broadcast_condition(cond_shape, a_shape, b_shape):
    rng = np.random.default_rng(4)
    cond = rng.uniform(size=cond_shape) > 0.5
    check_gradients(lambda a, b: tp.where(cond, a, b),
                    [away_from_zero(rng, a_shape), away_from_zero(rng, b_shape)])
    # the total adjoint (all ones) is split between a and b by the condition
    out_shape = np.broadcast_shapes(cond_shape, a_shape, b_shape)
    a, b = tp.Variable(np.ones(a_shape)), tp.Variable(np.ones(b_shape))
    with tp.GradientTape() as t:
        y = tp.where(cond, a, b)
    ga, gb = t.gradient(y, [a, b])
    assert np.sum(ga) + np.sum(gb) == pytest.approx(np.prod(out_shape))
    assert np.sum(ga) == pytest.approx(np.sum(np.broadcast_to(cond, out_shape)))


def test_reflected_operators_with_arrays_and_scalars():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 3))
    m = rng.standard_normal((4, 2))
    x = tp.Variable(rng.standard_normal((2, 3)))
    for make in (lambda: a + x, lambda: a - x, lambda: a * x, lambda: a / x, lambda: m @ x,
                 lambda: 2 * x, lambda: np.float64(2.0) * x):
        assert isinstance(make(), tp.Tensor)
    check_gradients(lambda x: m @ x, [x.value])
    check_gradients(lambda x: a * x - a / x + 1.5 ** x, [x.value])
    np.testing.assert_allclose((a - x).value, a - x.value)
    np.testing.assert_allclose((m @ x).value, m @ x.value)


@settings(max_examples=25, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_multiply_any_broadcast(shapes):
    rng = np.random.default_rng(6)
    sa, sb = shapes.input_shapes
    check_gradients(lambda a, b: a * b + a, [away_from_zero(rng, sa), away_from_zero(rng, sb)],
                    n_dirs=1)


@settings(max_examples=25, deadline=None)
@given(hnp.array_shapes(min_dims=0, max_dims=4, max_side=3), st.data())
def test_unbroadcast_sums_to_shape(shape, data):
    big = data.draw(hnp.broadcastable_shapes(shape, min_dims=len(shape), max_dims=5,
                                             max_side=3).map(
        lambda s: np.broadcast_shapes(s, shape)))
    g = np.random.default_rng(7).standard_normal(big)
    out = tp.unbroadcast(g, shape)
    assert out.shape == shape
    # <unbroadcast(g), v> = <g, broadcast_to(v)>: unbroadcast is broadcast's adjoint
    v = np.random.default_rng(8).standard_normal(shape)
    assert np.sum(out * v) == pytest.approx(np.sum(g * np.broadcast_to(v, big)))


# ------------------------------------------------------------------------------------------
# matmul
# ------------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((3, 4), (2, 4, 2)),
]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES, ids=str)
def test_matmul_gradients(sa, sb):
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    np.testing.assert_allclose(tp.matmul(a, b).value, a @ b)
    check_gradients(tp.matmul, [a, b])
    check_gradients(lambda a, b: a @ b, [a, b])


def test_matmul_shape_errors():
    with pytest.raises(ValueError) as err:
        tp.matmul(np.ones((3, 4)), np.ones((5, 2)))
    assert str(err.value) == "matmul: operands of shape (3, 4) and (5, 2) do not align (4 != 5)"
    with pytest.raises(ValueError, match=r"matmul: operands of shape \(3,\) and \(4,\)"):
        tp.matmul(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="matmul: batch dimensions"):
        tp.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="matmul: .*0-d"):
        tp.matmul(tp.constant(1.0), np.ones(3))


def test_binary_shape_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: operands of shape \(3,\) and \(4,\)"):
        tp.add(np.ones(3), tp.constant(np.ones(4)))
    with pytest.raises(ValueError, match=r"maximum: operands of shape \(2, 3\) and \(2,\)"):
        tp.maximum(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match=r"where: condition of shape \(2,\)"):
        tp.where(np.ones(2, bool), np.ones(3), 0.0)
    with pytest.raises(ValueError, match=r"reshape: .*\(2, 3\).*\(4,\)"):
        tp.reshape(np.ones((2, 3)), (4,))
    with pytest.raises(ValueError, match=r"sum: axis 2 .* shape \(2, 3\)"):
        tp.sum(np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="softmax_cross_entropy: logits of shape"):
        tp.softmax_cross_entropy(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="transpose"):
        tp.transpose(np.ones((2, 3)), (0, 0))


# ------------------------------------------------------------------------------------------
# Reductions
# ------------------------------------------------------------------------------------------

AXES = [None, 0, 1, 2, -1, (0, 2), (-1, -3), (0, 1, 2), ()]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "logsumexp", "norm"])
def test_reduction_gradients(name, axis, keepdims):
    x = distinct(np.random.default_rng(10), (2, 3, 4))
    fn = getattr(tp, name)
    y = fn(x, axis=axis, keepdims=keepdims)
    reference = {
        "sum": np.sum(x, axis=axis, keepdims=keepdims),
        "mean": np.mean(x, axis=axis, keepdims=keepdims),
        "max": np.max(x, axis=axis, keepdims=keepdims),
        "logsumexp": np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims)),
        "norm": np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)),
    }[name]
    assert y.shape == np.shape(reference)
    np.testing.assert_allclose(y.value, reference, rtol=1e-12)
    check_gradients(lambda x: fn(x, axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("shape, axis", [((), None), ((5,), 0), ((5,), None), ((3, 1), -1)])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "logsumexp", "norm"])
def test_reduction_gradients_small_shapes(name, shape, axis):
    fn = getattr(tp, name)
    check_gradients(lambda x: fn(x, axis=axis), [distinct(np.random.default_rng(11), shape) + 3.0])


def test_reduction_methods():
    x = distinct(np.random.default_rng(12), (2, 3))
    check_gradients(lambda x: x.sum(axis=0), [x])
    check_gradients(lambda x: x.mean(axis=1, keepdims=True), [x])
    check_gradients(lambda x: x.max(axis=-1), [x])
    t = tp.constant(x)
    assert t.sum().shape == () and t.max(0, keepdims=True).shape == (1, 3)


# ------------------------------------------------------------------------------------------
# Structural ops
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (-1, 0, 1)], ids=str)
def test_transpose_gradients(axes):
    x = np.random.default_rng(13).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(tp.transpose(x, axes).value, np.transpose(x, axes))
    check_gradients(lambda x: tp.transpose(x, axes), [x])


def test_transpose_methods_and_T():
    x = np.random.default_rng(14).standard_normal((2, 3, 4))
    check_gradients(lambda x: x.T, [x])
    check_gradients(lambda x: x.transpose(1, 2, 0), [x])
    check_gradients(lambda x: x.transpose((2, 1, 0)), [x])
    assert tp.constant(x).transpose().shape == (4, 3, 2)


@pytest.mark.parametrize("shape", [(6,), (3, 2), (2, -1), (1, 2, 3, 1), (-1,)], ids=str)
def test_reshape_gradients(shape):
    x = np.random.default_rng(15).standard_normal((2, 3))
    check_gradients(lambda x: tp.reshape(x, shape), [x])
    check_gradients(lambda x: x.reshape(shape) * 2.0, [x])
    check_gradients(lambda x: x.reshape(*shape), [x])


GETITEM_KEYS = [
    1, -1, slice(1, None), (Ellipsis, 0), (None, slice(None), 1), (slice(None, None, 2),),
    (0, slice(1, 3), None), (slice(None), -2), Ellipsis, (1, 2),
]


@pytest.mark.parametrize("key", GETITEM_KEYS, ids=str)
def test_getitem_basic_gradients(key):
    x = np.random.default_rng(16).standard_normal((3, 4))
    np.testing.assert_array_equal(tp.constant(x)[key].value, x[key])
    check_gradients(lambda x: x[key], [x])


def test_getitem_backward_scatters_into_zeros():
    x = tp.Variable(np.arange(12.0).reshape(3, 4))
    with tp.GradientTape() as t:
        y = x[1, 1:3]
    g = t.gradient(y, x)
    expected = np.zeros((3, 4))
    expected[1, 1:3] = 1.0
    np.testing.assert_array_equal(g, expected)


def test_getitem_advanced_indices_accumulate_repeats():
    x = tp.Variable(np.arange(4.0))
    with tp.GradientTape() as t:
        y = x[[0, 0, 3]]
    np.testing.assert_array_equal(t.gradient(y, x), [2.0, 0.0, 0.0, 1.0])
    check_gradients(lambda x: x[np.array([2, 0, 2])], [np.arange(4.0)])


# ------------------------------------------------------------------------------------------
# Normalizations and losses
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [((2, 3, 4), -1), ((2, 3, 4), 0), ((2, 3, 4), 1),
                                         ((5,), 0), ((3, 2), -2)], ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_gradients(name, shape, axis):
    x = np.random.default_rng(17).standard_normal(shape)
    e = np.exp(x)
    p = e / e.sum(axis=axis, keepdims=True)
    want = p if name == "softmax" else np.log(p)
    np.testing.assert_allclose(getattr(tp, name)(x, axis=axis).value, want, rtol=1e-12)
    check_gradients(lambda x: getattr(tp, name)(x, axis=axis), [x])


@pytest.mark.parametrize("shape, axis", [((4, 5), -1), ((4, 5), 0), ((3,), -1),
                                         ((2, 3, 4), 1)], ids=str)
def test_softmax_cross_entropy_gradients(shape, axis):
    rng = np.random.default_rng(18)
    logits, labels = rng.standard_normal(shape), rng.uniform(0, 1, shape)
    want = -np.sum(labels * np.log(tp.softmax(logits, axis=axis).value), axis=axis)
    np.testing.assert_allclose(tp.softmax_cross_entropy(logits, labels, axis=axis).value,
                               want, rtol=1e-12)
    check_gradients(lambda x, z: tp.softmax_cross_entropy(x, z, axis=axis), [logits, labels])


def test_softmax_cross_entropy_gradient_is_softmax_minus_onehot():
    logits = tp.Variable(np.random.default_rng(19).standard_normal((4, 3)))
    onehot = tp.one_hot(np.array([0, 2, 1, 2]), 3, dtype="float64")
    with tp.GradientTape() as t:
        loss = tp.softmax_cross_entropy(logits, onehot)
    g = t.gradient(loss, logits)
    np.testing.assert_allclose(g, tp.softmax(logits).value - onehot.value, rtol=1e-12)


def test_sigmoid_cross_entropy_matches_definition():
    rng = np.random.default_rng(20)
    x, z = away_from_zero(rng, (6,)), rng.uniform(0, 1, 6)
    s = 1 / (1 + np.exp(-x))
    want = -(z * np.log(s) + (1 - z) * np.log(1 - s))
    np.testing.assert_allclose(tp.sigmoid_cross_entropy(x, z).value, want, rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_l2_loss_gradients(shape):
    x = away_from_zero(np.random.default_rng(21), shape)
    assert tp.l2_loss(x).value == pytest.approx(np.sum(x * x) / 2)
    check_gradients(tp.l2_loss, [x])
    v = tp.Variable(x)
    with tp.GradientTape() as t:
        y = tp.l2_loss(v)
    np.testing.assert_allclose(t.gradient(y, v), x)


def test_norm_at_zero_has_zero_gradient():
    x = tp.Variable(np.zeros(3))
    with tp.GradientTape() as t:
        y = tp.norm(x)
    g = t.gradient(y, x)
    np.testing.assert_array_equal(g, np.zeros(3))
    assert y.value == 0.0


def test_mlp_loss_gradients():
    rng = np.random.default_rng(22)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    y = rng.standard_normal((5, 2))
    # keep relu away from its kink: pre-activations at least 0.05 from 0
    pre = x @ w + b
    b = b + np.where(np.abs(pre) < 0.05, 0.1, 0.0).max(axis=0)

    def loss(w, b):
        return tp.mean(tp.square(tp.relu(x @ w + b) - y))

    check_gradients(loss, [w, b])


# ------------------------------------------------------------------------------------------
# Conventions at kinks (PyTorch's)
# ------------------------------------------------------------------------------------------

def _grad(fn, *values):
    vs = [tp.Variable(np.asarray(v, dtype=np.float64)) for v in values]
    with tp.GradientTape() as t:
        y = fn(*vs)
    return t.gradient(y, vs)


def test_kink_conventions_unary():
    x = [0.0, -1.0, 2.0]
    np.testing.assert_array_equal(_grad(tp.relu, x)[0], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(_grad(tp.abs, x)[0], [0.0, -1.0, 1.0])
    np.testing.assert_array_equal(_grad(tp.sign, x)[0], [0.0, 0.0, 0.0])


def test_maximum_minimum_split_ties():
    a, b = [1.0, 2.0, 3.0], [1.0, 0.0, 3.0]
    ga, gb = _grad(tp.maximum, a, b)
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 0.5])
    ga, gb = _grad(tp.minimum, a, b)
    np.testing.assert_array_equal(ga, [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.5])
    (g,) = _grad(lambda x: tp.maximum(x, x), [1.0, -2.0])
    np.testing.assert_array_equal(g, [1.0, 1.0])
    # a broadcast scalar tied with two elements collects half of each
    ga, gb = _grad(tp.maximum, [1.0, 1.0, 0.0], 1.0)
    np.testing.assert_array_equal(ga, [0.5, 0.5, 0.0])
    assert gb == 2.0


def test_max_reduction_ties_send_gradient_to_first_element():
    x = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
    np.testing.assert_array_equal(_grad(lambda x: tp.max(x, axis=1), x)[0],
                                  [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(_grad(lambda x: tp.max(x, axis=0), x)[0],
                                  [[0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(_grad(lambda x: tp.max(x), x)[0], [[0, 1, 0], [0, 0, 0]])
    # among reduced axes (0, 2) of a 3-d array: first in C order over (i, k) for each j
    x3 = np.zeros((2, 2, 2))
    x3[1, 0, 0] = 5.0
    x3[0, 0, 1] = 5.0  # comes first in C order over (i, k): (0, 1) < (1, 0)
    (g,) = _grad(lambda x: tp.max(x, axis=(0, 2), keepdims=True), x3)
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 1] = 1.0  # j = 0: the tie (0, *, 1) vs (1, *, 0) goes to (0, 1)
    expected[0, 1, 0] = 1.0  # j = 1: all zeros, the first is (0, 0)
    np.testing.assert_array_equal(g, expected)


def test_power_exponent_gradient_convention_at_nonpositive_base():
    # d(a^b)/db = a^b log(a) is taken as 0 where a <= 0 (no real log there); no warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ga, gb = _grad(tp.power, [0.0, -2.0, 2.0], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(ga, [0.0, -4.0, 4.0])
    np.testing.assert_allclose(gb, [0.0, 0.0, 4.0 * np.log(2.0)])


# ------------------------------------------------------------------------------------------
# Numerical stability
# ------------------------------------------------------------------------------------------

def test_stable_forms_do_not_overflow():
    x = tp.Variable(np.array([-1e4, -50.0, 0.0, 50.0, 1e4]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            with tp.GradientTape(persistent=True) as t:
                s, sp, ls = tp.sigmoid(x), tp.softplus(x), tp.log_sigmoid(x)
                sce = tp.sigmoid_cross_entropy(x, np.array([1.0, 0.0, 0.5, 1.0, 0.0]))
                sm, lsm = tp.softmax(x), tp.log_softmax(x)
                lse = tp.logsumexp(x)
                ce = tp.softmax_cross_entropy(x, np.array([0.0, 0.0, 0.0, 0.0, 1.0]))
            grads = {name: t.gradient(y, x) for name, y in
                     dict(s=s, sp=sp, ls=ls, sce=sce, sm=sm, lsm=lsm, lse=lse, ce=ce).items()}
    np.testing.assert_allclose(s.value, [0.0, 1 / (1 + np.exp(50.0)), 0.5,
                                         1 / (1 + np.exp(-50.0)), 1.0], rtol=1e-12)
    np.testing.assert_allclose(sp.value[[0, 2, 4]], [0.0, np.log(2.0), 1e4], rtol=1e-12)
    np.testing.assert_allclose(ls.value[[0, 2, 4]], [-1e4, -np.log(2.0), 0.0], rtol=1e-12)
    np.testing.assert_allclose(sce.value[[0, 4]], [1e4, 1e4], rtol=1e-12)
    np.testing.assert_allclose(sm.value, [0, 0, 0, 0, 1], atol=1e-300)
    assert lse.value == pytest.approx(1e4)
    assert ce.value == pytest.approx(0.0, abs=1e-12)
    for name, g in grads.items():
        assert np.all(np.isfinite(g)), name
    np.testing.assert_allclose(grads["sp"], s.value)
    np.testing.assert_allclose(grads["lse"], sm.value)
    np.testing.assert_allclose(grads["ce"], [0, 0, 0, 0, 0], atol=1e-12)


def test_logsumexp_of_large_equal_values():
    y = tp.logsumexp(np.array([1e4, 1e4]))
    assert y.value == pytest.approx(1e4 + np.log(2.0), rel=1e-15)
    assert tp.logsumexp(np.array([-np.inf, -np.inf])).value == -np.inf


# ------------------------------------------------------------------------------------------
# dtypes
# ------------------------------------------------------------------------------------------

F32_FUNCTIONS = {
    "arith": lambda x, y: (2.0 * x - y / 3 + 1) ** 2 + 0.5 ** x,
    "unary": lambda x, y: (tp.exp(x) + tp.log(tp.abs(y) + 1) + tp.sqrt(x * x + 1) + tp.sin(x)
                           + tp.cos(y) + tp.tanh(x) + tp.sigmoid(y) + tp.relu(x) + tp.square(y)
                           + tp.sign(x) + tp.softplus(y) + tp.log_sigmoid(x)),
    "binary": lambda x, y: tp.maximum(x, y) - tp.minimum(x, 0.5) + tp.where(x > 0, x, y),
    "matmul": lambda x, y: x @ y.T + x[0] @ y[1],
    "reduce": lambda x, y: (tp.sum(x, axis=0) + tp.mean(y, axis=-1, keepdims=True)
                            + tp.max(x, axis=(0, 1)) + tp.norm(y, axis=1)[0]),
    "softmax": lambda x, y: (tp.softmax(x) + tp.log_softmax(y, axis=0)
                             + tp.logsumexp(x, axis=1, keepdims=True)),
    "losses": lambda x, y: (tp.softmax_cross_entropy(x, tp.one_hot([0, 1], 3))
                            + tp.sigmoid_cross_entropy(x, 0.3).sum(axis=1) + tp.l2_loss(y)),
    "shape": lambda x, y: tp.reshape(x, (3, 2)).T * tp.transpose(y, (0, 1)) + x[:, None, 1],
}


@pytest.mark.parametrize("name", sorted(F32_FUNCTIONS))
def test_float32_is_preserved(name):
    rng = np.random.default_rng(23)
    x = tp.Variable(rng.uniform(0.2, 1.0, (2, 3)).astype(np.float32))
    y = tp.Variable(rng.uniform(-1.0, -0.2, (2, 3)).astype(np.float32))
    with tp.GradientTape() as t:
        out = F32_FUNCTIONS[name](x, y)
    assert out.dtype == np.float32
    gx, gy = t.gradient(out, [x, y])
    assert gx.dtype == np.float32 and gy.dtype == np.float32
    assert gx.shape == (2, 3) and gy.shape == (2, 3)
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))


def test_float32_gradient_agrees_with_float64():
    rng = np.random.default_rng(24)
    x64 = rng.standard_normal((3, 4))

    def f(x):
        return tp.mean(tp.softplus(x @ x.T) * 0.5) + tp.l2_loss(x) / 7

    (g64,) = _grad(f, x64)
    v = tp.Variable(x64.astype(np.float32))
    with tp.GradientTape() as t:
        y = f(v)
    g32 = t.gradient(y, v)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def test_mixed_precision_gradient_takes_the_source_dtype():
    w = tp.Variable(np.ones(3, np.float32))
    with tp.GradientTape() as t:
        y = tp.sum(w * np.arange(3.0))  # float64 array: the product is float64 (numpy's rule)
    assert y.dtype == np.float64
    g = t.gradient(y, w)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [0.0, 1.0, 2.0])


def test_unconnected_zeros_keep_dtype_and_shape():
    a = tp.Variable(np.ones((2, 2), np.float32))
    b = tp.Variable(np.ones(3, np.float32))
    with tp.GradientTape() as t:
        y = tp.sum(a * 2.0)
    ga, gb = t.gradient(y, [a, b])
    assert gb.dtype == np.float32 and gb.shape == (3,) and not gb.any()
    assert ga.dtype == np.float32


# ------------------------------------------------------------------------------------------
# Tape semantics
# ------------------------------------------------------------------------------------------

def test_w21_vector_cost():
    X = tp.constant(np.array([-1.0, -2.0]))
    w = tp.Variable(np.array([2.0, 3.0]), name="w")
    with tp.GradientTape() as t:
        Y = w * X
        cost = Y[1] * Y
    assert cost.shape == (2,)
    np.testing.assert_array_equal(t.gradient(cost, w), [6.0, 28.0])


def test_non_persistent_tape_refuses_second_gradient():
    w = tp.Variable(np.array(3.0))
    with tp.GradientTape() as t:
        y = w * w
    assert t.gradient(y, w) == 6.0
    with pytest.raises(RuntimeError, match="non-persistent.*persistent=True"):
        t.gradient(y, w)


def test_persistent_tape_allows_several_gradients():
    w = tp.Variable(np.array(3.0))
    with tp.GradientTape(persistent=True) as t:
        y = w * w
        z = y * w
    assert t.gradient(y, w) == 6.0
    assert t.gradient(z, w) == 27.0
    assert t.gradient(y, w) == 6.0


def test_watch_constants():
    x = tp.constant(np.array([1.0, 2.0]))
    y = tp.constant(np.array(3.0))
    with tp.GradientTape(persistent=True) as t:
        z = x * x * y
    # nothing watched: unconnected
    np.testing.assert_array_equal(t.gradient(z, x), [0.0, 0.0])
    with tp.GradientTape() as t:
        t.watch([x, y])
        z = x * x * y
    gx, gy = t.gradient(z, [x, y])
    np.testing.assert_array_equal(gx, [6.0, 12.0])
    assert gy == 5.0
    with pytest.raises(TypeError, match="constant"):
        tp.GradientTape().watch(np.ones(2))


def test_variables_watched_only_when_accessed_unless_disabled():
    w = tp.Variable(np.array(2.0))
    with tp.GradientTape(watch_accessed_variables=False) as t:
        y = w * 3.0
    assert t.gradient(y, w, unconnected_gradients="none") is None
    with tp.GradientTape(watch_accessed_variables=False) as t:
        t.watch(w)
        y = w * 3.0
    assert t.gradient(y, w) == 3.0
    with tp.GradientTape() as t:
        y = w * 3.0
    assert t.watched_variables() == (w,)
    frozen = tp.Variable(np.array(1.0), trainable=False)
    with tp.GradientTape() as t:
        y = frozen * w
    assert t.gradient(y, frozen, unconnected_gradients="none") is None


def test_stop_recording():
    w = tp.Variable(np.array(2.0))
    with tp.GradientTape() as t:
        y = w * 3.0
        with t.stop_recording():
            z = y * 5.0  # not recorded: a constant as far as the tape knows
        loss = y + z
    assert t.gradient(loss, w) == 3.0
    with pytest.raises(RuntimeError, match="not recording"):
        with t.stop_recording():
            pass


def test_stop_gradient():
    w = tp.Variable(np.array([1.0, -2.0]))
    with tp.GradientTape() as t:
        y = w * tp.stop_gradient(w * w)
    np.testing.assert_array_equal(t.gradient(y, w), [1.0, 4.0])  # not 3 w^2
    np.testing.assert_array_equal(y.value, [1.0, -8.0])


def test_unconnected_gradients_zero_and_none():
    a, b = tp.Variable(np.ones(2)), tp.Variable(np.ones((2, 2)))
    with tp.GradientTape(persistent=True) as t:
        y = tp.sum(a * 2.0)
    ga, gb = t.gradient(y, [a, b])
    np.testing.assert_array_equal(ga, [2.0, 2.0])
    np.testing.assert_array_equal(gb, np.zeros((2, 2)))
    ga, gb = t.gradient(y, [a, b], unconnected_gradients="none")
    assert gb is None and ga is not None
    with pytest.raises(ValueError, match="unconnected_gradients"):
        t.gradient(y, a, unconnected_gradients="zeros")


def test_non_scalar_target_is_summed():
    w = tp.Variable(np.array([1.0, 2.0, 3.0]))
    with tp.GradientTape(persistent=True) as t:
        y = w[:, None] * w  # (3, 3)
        s = tp.sum(y)
    np.testing.assert_allclose(t.gradient(y, w), t.gradient(s, w))
    np.testing.assert_allclose(t.gradient(y, w), 2 * np.sum(w.value) * np.ones(3))


def test_output_gradients():
    w = tp.Variable(np.array([1.0, 2.0]))
    u = np.array([10.0, -1.0])
    with tp.GradientTape(persistent=True) as t:
        y = w * np.array([3.0, 4.0])
    np.testing.assert_array_equal(t.gradient(y, w, output_gradients=u), [30.0, -4.0])
    with pytest.raises(ValueError, match="output_gradients"):
        t.gradient(y, w, output_gradients=np.ones(3))


def test_multiple_targets_are_summed():
    w = tp.Variable(np.array([1.0, 2.0]))
    with tp.GradientTape(persistent=True) as t:
        y1 = w * w
        y2 = tp.sum(w * 3.0)
        y3 = y1 * 2.0  # y1 also feeds another target
    g = t.gradient([y1, y2, y3], w)
    np.testing.assert_array_equal(g, 2 * w.value + 3.0 + 4 * w.value)
    g = t.gradient([y1, y2], w, output_gradients=[np.array([1.0, 0.0]), None])
    np.testing.assert_array_equal(g, [2.0 + 3.0, 3.0])
    with pytest.raises(ValueError, match="one entry per target"):
        t.gradient([y1, y2], w, output_gradients=[None])


def test_source_structures():
    a, b = tp.Variable(np.array(1.0)), tp.Variable(np.array([2.0]))
    with tp.GradientTape(persistent=True) as t:
        y = a * 3.0 + tp.sum(b * b)
    assert isinstance(t.gradient(y, a), np.ndarray) and t.gradient(y, a) == 3.0
    out = t.gradient(y, {"a": a, "pair": (a, b)})
    assert set(out) == {"a", "pair"} and isinstance(out["pair"], tuple)
    assert out["a"] == 3.0 and out["pair"][0] == 3.0
    np.testing.assert_array_equal(out["pair"][1], [4.0])
    ga1, ga2 = t.gradient(y, [a, a])
    assert ga1 is not ga2 and ga1 == ga2 == 3.0


def test_gradient_wrt_intermediate_tensor():
    w = tp.Variable(np.array([1.0, 2.0]))
    with tp.GradientTape() as t:
        h = w * 2.0
        y = tp.sum(h * h)
    gh, gw = t.gradient(y, [h, w])
    np.testing.assert_array_equal(gh, 2 * h.value)
    np.testing.assert_array_equal(gw, 4 * h.value)


def test_nested_tapes_both_record():
    w = tp.Variable(np.array(3.0))
    with tp.GradientTape() as outer:
        with tp.GradientTape() as inner:
            y = w * w
        z = y * 2.0
    assert inner.gradient(y, w) == 6.0
    assert outer.gradient(z, w) == 12.0


def test_forward_values_and_output_gradients_are_not_mutated():
    w = tp.Variable(np.array([1.0, 2.0]))
    u = np.array([1.0, 1.0])
    with tp.GradientTape() as t:
        y = w + w  # the add rule hands u itself to w twice
        y_before = y.value.copy()
    g = t.gradient(y, w, output_gradients=u)
    np.testing.assert_array_equal(g, [2.0, 2.0])
    np.testing.assert_array_equal(u, [1.0, 1.0])
    np.testing.assert_array_equal(y.value, y_before)
    np.testing.assert_array_equal(w.value, [1.0, 2.0])
    # the sum rule returns a read-only broadcast view: accumulating into it must copy first
    with tp.GradientTape() as t:
        y = tp.sum(w) + tp.sum(w) * 2.0
    np.testing.assert_array_equal(t.gradient(y, w), [3.0, 3.0])


def test_only_nodes_leading_to_target_from_sources_are_visited():
    calls = []

    @tp.custom_gradient
    def traced(x, label=""):
        def grad_fn(dy):
            calls.append(label)
            return dy
        return x.value * 1.0, grad_fn

    x = tp.Variable(np.array(2.0))
    z = tp.Variable(np.array(5.0))
    with tp.GradientTape(persistent=True) as t:
        used = traced(x, label="used")
        traced(x, label="dead")  # does not lead to the target
        other = traced(z, label="other")  # leads to the target but not from the source
        loss = used * 3.0 + other
    assert t.gradient(loss, x) == 3.0
    assert calls == ["used"]


def test_chain_of_ten_thousand_ops_is_iterative():
    x = tp.Variable(np.array(1.0))
    limit = sys.getrecursionlimit()
    with tp.GradientTape() as t:
        y = x
        for _ in range(10_000):
            y = y * 1.0001
    assert limit < 10_000
    g = t.gradient(y, x)
    assert g == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_custom_gradient_straight_through_sign():
    @tp.custom_gradient
    def ste_sign(x):
        def grad_fn(dy):
            # straight-through hard-tanh: pass dy where -1 <= x <= 1
            return dy * ((x.value >= -1) & (x.value <= 1))
        return tp.sign(x), grad_fn

    xs = np.array([-2.0, -1.0, -0.5, 0.3, 1.0, 1.5])
    x = tp.Variable(xs)
    c = np.arange(1.0, 7.0)
    with tp.GradientTape() as t:
        y = ste_sign(x)
        loss = tp.sum(y * c)
    np.testing.assert_array_equal(y.value, np.sign(xs))
    np.testing.assert_array_equal(t.gradient(loss, x), c * [0, 1, 1, 1, 1, 0])


def test_custom_gradient_two_inputs_and_errors():
    @tp.custom_gradient
    def mul(a, b):
        def grad_fn(dy):
            return dy * b.value, None
        return a.value * b.value, grad_fn

    @tp.custom_gradient
    def bad(a, b):
        return a.value + b.value, lambda dy: dy

    a, b = tp.Variable(np.array([1.0, 2.0])), tp.Variable(np.array([3.0, 4.0]))
    with tp.GradientTape(persistent=True) as t:
        y = mul(a, b)
        z = bad(a, b)
    ga, gb = t.gradient(y, [a, b])
    np.testing.assert_array_equal(ga, [3.0, 4.0])
    np.testing.assert_array_equal(gb, [0.0, 0.0])
    with pytest.raises(ValueError, match=r"custom_gradient\(bad\).*1 gradients for 2 inputs"):
        t.gradient(z, a)


def test_custom_gradient_keeps_float32():
    @tp.custom_gradient
    def double(x):
        return x.value * 2, lambda dy: dy.value * np.float64(2.0)  # user code upcasts

    x = tp.Variable(np.ones(2, np.float32))
    with tp.GradientTape() as t:
        y = double(x)
    g = t.gradient(y, x)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [2.0, 2.0])


# ------------------------------------------------------------------------------------------
# Tensors and variables
# ------------------------------------------------------------------------------------------

def test_tensor_attributes_and_comparisons():
    t = tp.constant(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64 and len(t) == 2
    copy = t.numpy()
    copy[0, 0] = 99.0
    assert t.value[0, 0] == 0.0
    w = tp.Variable(np.ones((2, 3)))
    with tp.GradientTape():
        mask = t > 2.0
        flipped = np.full((2, 3), 2.5) < t  # reflected: ndarray defers to Tensor.__gt__
        others = (t >= 3.0, t <= 3.0, t < w)
    for m in (mask, flipped, *others):
        assert type(m) is np.ndarray and m.dtype == bool
    np.testing.assert_array_equal(mask, t.value > 2.0)
    np.testing.assert_array_equal(flipped, t.value > 2.5)
    assert np.asarray(t).shape == (2, 3)


def test_variable_assign_in_place():
    init = np.array([1.0, 2.0], np.float32)
    w = tp.Variable(init, name="w")
    storage = w.value
    w.assign_sub(np.array([0.5, 0.5]))  # float64 delta, float32 variable
    assert w.value is storage and w.dtype == np.float32
    np.testing.assert_array_equal(w.value, [0.5, 1.5])
    np.testing.assert_array_equal(init, [1.0, 2.0])  # the initial array was copied
    w.assign(np.array([7.0, 8.0]))
    w.assign_add(1.0)
    np.testing.assert_array_equal(storage, [8.0, 9.0])
    assert w.name == "w" and w.shape == (2,)
    with pytest.raises(ValueError, match="assign"):
        w.assign(np.ones(3))


def test_one_hot():
    oh = tp.one_hot(np.array([0, 2, 5]), 3)
    assert oh.dtype == np.float32
    np.testing.assert_array_equal(oh.value, [[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    w = tp.Variable(np.ones(3, np.float32))
    with tp.GradientTape() as t:
        y = tp.sum(oh * w)
    np.testing.assert_array_equal(t.gradient(y, w), [1.0, 0.0, 1.0])  # column sums
    assert tp.one_hot([[1]], 2).shape == (1, 1, 2)
    with pytest.raises(ValueError, match="one_hot"):
        tp.one_hot(np.array([0.5]), 2)


# ------------------------------------------------------------------------------------------
# The rule table: one entry per op (tp.OPS), every op function derived from its entry
# ------------------------------------------------------------------------------------------

#: Every tp.<name> that tests, examples, benchmarks, docs and the library use (found with
#: ``grep -rhoE "tp\.[a-zA-Z_0-9]+" tests examples benchmarks symgrad docs README.md``).
USED_NAMES = (
    "GradientTape Tensor Variable abs add constant cos custom_gradient divide exp l2_loss log "
    "log_sigmoid log_softmax logsumexp matmul max maximum mean minimum multiply negative norm "
    "one_hot power relu reshape sigmoid sigmoid_cross_entropy sign sin softmax "
    "softmax_cross_entropy softplus sqrt square stop_gradient subtract sum tanh transpose "
    "unbroadcast where"
).split()


def _public_functions():
    """Every public function of the package (classes, modules and type aliases left out)."""
    out = {}
    for name in dir(tp):
        obj = getattr(tp, name)
        if name.startswith("_") or name in ("TensorLike", "annotations"):
            continue
        if callable(obj) and not isinstance(obj, (type, types.ModuleType)):
            out[name] = obj
    return out


def test_the_api_others_use_still_exists():
    missing = [name for name in USED_NAMES if not hasattr(tp, name)]
    assert not missing, f"tp lost names used elsewhere: {missing}"
    assert set(USED_NAMES) <= set(tp.__all__)


def test_every_public_function_has_a_rule_and_every_rule_a_function():
    functions = _public_functions()
    without_rule = sorted(set(functions) - set(tp.NOT_OPS) - set(tp.OPS))
    assert not without_rule, f"public tape functions with no entry in tp.OPS: {without_rule}"
    without_function = sorted(name for name, rule in tp.OPS.items()
                              if rule.public and name not in functions)
    assert not without_function, f"entries of tp.OPS with no function tp.<name>: " \
                                 f"{without_function}"
    for name, rule in tp.OPS.items():
        assert rule.name == name
        if rule.public:
            assert functions[name].rule is rule, f"tp.{name} is not derived from its entry"
    assert set(tp.__all__) == set(tp.NOT_OPS) | {n for n, r in tp.OPS.items() if r.public}
    # Tensor[...] goes through the table too
    assert not tp.OPS["getitem"].public and "getitem" not in tp.__all__


@pytest.mark.parametrize("name", sorted(tp.OPS))
def test_every_entry_has_named_rules_and_a_docstring(name):
    rule = tp.OPS[name]
    parts = {"forward": rule.forward, "vjp": rule.vjp}
    if rule.prepare is not None:
        parts["prepare"] = rule.prepare
    for part, fn in parts.items():
        assert callable(fn), (name, part)
        # a lambda shows up as <lambda> in a traceback; a rule must name itself
        assert fn.__name__ != "<lambda>", f"{name}: the {part} is a lambda"
    assert "Parameters" in rule.doc and "Returns" in rule.doc
    assert getattr(tp.rules.FUNCTIONS[name], "__doc__") == rule.doc


def _twice_forward(x):
    return 2 * x


def _bare_array_vjp(g, y, x):
    return 2 * g  # wrong: a rule returns a tuple


def _first_only_vjp(g, y, a, b):
    return g, None  # no gradient for b, explicitly


def test_a_missing_rule_names_the_op_and_the_input_position():
    op = tp.rules.function_from_rule(
        tp.OpRule("clip_below", np.maximum, None, "Test op.", inputs=("a", "b")))
    a, b = tp.constant(np.ones(3)), tp.Variable(np.zeros(3))
    with tp.GradientTape() as t:
        y = op(a, b)
    np.testing.assert_array_equal(y.value, np.ones(3))  # the forward works without a rule
    with pytest.raises(NotImplementedError, match=r"clip_below: .*rule.*input 1"):
        t.gradient(y, b)


def test_a_rule_must_return_one_entry_per_input():
    op = tp.rules.function_from_rule(tp.OpRule("twice", _twice_forward, _bare_array_vjp,
                                               "Test op."))
    x = tp.Variable(np.ones(2))
    with tp.GradientTape() as t:
        y = op(x)
    with pytest.raises(RuntimeError, match=r"_bare_array_vjp of op twice.*one entry per input"):
        t.gradient(y, x)


def test_none_from_a_rule_means_no_gradient():
    op = tp.rules.function_from_rule(
        tp.OpRule("first", _first_of_two, _first_only_vjp, "Test op.", inputs=("a", "b")))
    a, b = tp.Variable(np.ones(2)), tp.Variable(np.ones(2))
    with tp.GradientTape() as t:
        y = op(a, b * 3.0)
    ga, gb = t.gradient(y, [a, b], unconnected_gradients="none")
    np.testing.assert_array_equal(ga, [1.0, 1.0])
    assert gb is None


def _first_of_two(a, b):
    return a.copy()


def test_derived_functions_bind_like_python():
    x = np.arange(6.0).reshape(2, 3)
    assert str(inspect.signature(tp.where)) == "(cond, a, b)"
    assert str(inspect.signature(tp.sum)) == "(x, axis=None, keepdims=False)"
    assert str(inspect.signature(tp.reshape)) == "(x, shape)"
    np.testing.assert_array_equal(tp.sum(x, keepdims=True, axis=0).value,
                                  np.sum(x, axis=0, keepdims=True))
    np.testing.assert_array_equal(tp.sum(x, 1, True).value, np.sum(x, 1, keepdims=True))
    np.testing.assert_array_equal(tp.where(b=0.0, a=x, cond=x > 2).value,
                                  np.where(x > 2, x, 0.0))
    np.testing.assert_array_equal(tp.reshape(x, shape=(3, 2)).value, x.reshape(3, 2))
    with pytest.raises(TypeError, match=r"sum\(\) got an unexpected keyword argument 'axes'"):
        tp.sum(x, axes=0)
    with pytest.raises(TypeError, match=r"reshape\(\) missing required argument 'shape'"):
        tp.reshape(x)
    with pytest.raises(TypeError, match=r"sum\(\) got multiple values for argument 'x'"):
        tp.sum(x, x=x)
    with pytest.raises(TypeError, match=r"exp\(\) takes 1 arguments but 2 were given"):
        tp.exp(x, x)


#: What the tape may import: numpy, these standard modules, and its own modules.
_ALLOWED_IMPORTS = {"__future__", "numpy", "builtins", "contextlib", "dataclasses",
                    "functools", "inspect", "math", "threading", "types", "typing"}


def test_the_tape_imports_nothing_from_the_symbolic_side():
    package = pathlib.Path(tp.__file__).parent
    files = sorted(package.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "values.py", "engine.py", "rules.py"}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    continue  # from .values import ...: the tape's own modules
                assert node.level == 0, f"{path.name}: relative import outside the tape"
                roots = [node.module.split(".")[0]]
            else:
                continue
            bad = [r for r in roots if r not in _ALLOWED_IMPORTS]
            assert not bad, f"{path.name} imports {bad}: the tape must stay independent"
