"""What a compiled function accepts and what it hands back (issue 9, items 6 and 7).

* Inputs: an ndarray subclass that changes arithmetic (np.matrix, whose ``*`` is a matrix
  product; a masked array, whose mask numpy's ufuncs would ignore) is converted to the plain
  array of its elements, or refused when that would lose information (a masked element),
  with an error naming the input. The results are compared with the same function called
  on plain arrays, never with the subclass's own arithmetic.
* ``sg.grad`` refuses integer and bool sources, naming the source and its dtype.
* Outputs: never one of the caller's arrays, never a module constant, never two outputs
  sharing memory; a copy is added only where aliasing is possible.
* Dict outputs come back with their keys exactly as given (any hashable).
* An empty batch (N = 0): a mean is numpy's nan with a RuntimeWarning, never a
  ZeroDivisionError.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import symgrad as sg

RNG = np.random.default_rng(9)


def _no_two_share(arrays) -> bool:
    arrays = [a for a in arrays if isinstance(a, np.ndarray)]
    return not any(np.shares_memory(a, b) for a, b in itertools.combinations(arrays, 2))


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------


def test_matrix_inputs_compute_elementwise_as_plain_arrays():
    a, b = sg.input("a", (1, 3)), sg.input("b", (1, 3))
    f = sg.compile(sg.sum(a * b))
    ma, mb = np.matrix([[1.0, 2.0, 3.0]]), np.matrix([[2.0, 2.0, 2.0]])
    assert f(ma, mb) == 12.0  # np.matrix's own a * b.T would give a different meaning
    assert f(a=ma, b=mb) == f(np.asarray(ma), np.asarray(mb))


def test_matrix_inputs_in_a_mse_loss_and_its_gradients():
    x, y = sg.input("x", ("N", 3)), sg.input("y", ("N", 1))
    w = sg.param("w", (3, 1))
    loss = sg.mean((x @ w - y) ** 2)
    f = sg.compile([loss, sg.grad(loss, [w])[0]])
    xv, yv, wv = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 1)), RNG.normal(size=(3, 1))
    want = f(xv, yv, wv)
    got = f(np.matrix(xv), np.matrix(yv), np.matrix(wv))
    # the plain computation, written out in numpy
    r = xv @ wv - yv
    assert want[0] == pytest.approx(np.mean(r ** 2), rel=1e-14)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    assert type(got[1]) is np.ndarray


def test_masked_array_without_masked_elements_is_its_data():
    a = sg.input("a", (3,))
    f = sg.compile([sg.sum(a * a), a * 2])
    m = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, False, False])
    total, doubled = f(m)
    assert total == 14.0
    assert type(doubled) is np.ndarray
    np.testing.assert_array_equal(doubled, [2.0, 4.0, 6.0])


@pytest.mark.parametrize("shape,value", [
    ((3,), np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])),
    ((), np.ma.masked_array(1.0, mask=True)),
    ((2, 2), np.ma.masked_invalid(np.array([[1.0, np.nan], [0.0, 1.0]]))),
])
def test_masked_elements_are_refused_naming_the_input(shape, value):
    a = sg.input("a_in", shape)
    f = sg.compile(sg.sum(a * 2.0) if shape else a * 2.0)
    with pytest.raises(TypeError, match=r"'a_in'.*mask"):
        f(value)
    with pytest.raises(TypeError, match=r"'a_in'.*mask"):
        f(a_in=value)


class _Doubling(np.ndarray):
    """A subclass whose arithmetic lies: every product is doubled."""

    def __mul__(self, other):
        return 2 * np.multiply(np.asarray(self), other)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = [np.asarray(i) if isinstance(i, _Doubling) else i for i in inputs]
        out = getattr(ufunc, method)(*inputs, **kwargs)
        return 2 * out if ufunc is np.multiply else out


def test_a_subclass_with_its_own_arithmetic_computes_as_a_plain_array():
    a, b = sg.input("a", (4,)), sg.input("b", (4,))
    f = sg.compile([a * b, sg.sum(a * b)])
    av, bv = RNG.normal(size=4), RNG.normal(size=4)
    sub = av.view(_Doubling)
    assert np.asarray(sub * bv) == pytest.approx(2 * av * bv)  # it does lie
    prod, total = f(sub, bv)
    np.testing.assert_array_equal(prod, av * bv)
    assert total == pytest.approx(np.sum(av * bv), rel=1e-15)
    assert type(prod) is np.ndarray


def test_plain_arrays_and_numpy_scalars_still_pass():
    s, v = sg.input("s", ()), sg.input("v", (2,))
    f = sg.compile(s * v)
    np.testing.assert_array_equal(f(np.float64(3.0), np.ones(2)), [3.0, 3.0])
    np.testing.assert_array_equal(f(np.array(3.0), np.ones(2)), [3.0, 3.0])
    np.testing.assert_array_equal(f(3.0, np.ones(2)), [3.0, 3.0])


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
def test_grad_refuses_integer_and_bool_sources(dtype):
    n = sg.input("n_count", (3,), dtype=dtype)
    w = sg.param("w", (3,))
    loss = sg.sum(w * w)
    with pytest.raises(TypeError, match=rf"source 1 .*'n_count'.*{dtype}"):
        sg.grad(loss, [w, n])
    with pytest.raises(TypeError, match=rf"'n_count'.*{dtype}"):
        sg.grad(loss, n)
    sg.grad(loss, [w])  # float sources are fine


def test_an_integer_input_still_works_as_data():
    n = sg.input("n", (3,), dtype="int64")
    w = sg.param("w", (3,))
    (g,) = sg.grad(sg.sum(w * n), [w])
    f = sg.compile(g)
    np.testing.assert_array_equal(f(np.array([1, 2, 3]), np.ones(3)), [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------


def test_the_same_input_twice_gives_two_fresh_arrays():
    a = sg.input("a", (3,))
    f = sg.compile([a, a])
    av = np.arange(3.0)
    r0, r1 = f(av)
    assert r0 is not av and r1 is not av and r0 is not r1
    assert _no_two_share([av, r0, r1])
    r0[0] = 99.0
    assert av[0] == 0.0 and r1[0] == 0.0


@pytest.mark.parametrize("make", [
    lambda a: a.T,
    lambda a: a[0],
    lambda a: a[:, 1],
    lambda a: sg.reshape(a, (6,)),
    lambda a: sg.broadcast_to(a, (4, 2, 3)),
    lambda a: sg.stop_gradient(a),
    lambda a: a * 1,
])
def test_a_view_of_an_input_is_a_copy(make):
    a = sg.input("a", (2, 3))
    f = sg.compile([make(a), a])
    av = RNG.normal(size=(2, 3))
    keep = av.copy()
    out, same = f(av)
    assert _no_two_share([av, out, same])
    out[...] = 7.0  # writable, and writing does not reach the caller's array
    same[...] = 8.0
    np.testing.assert_array_equal(av, keep)


def test_a_constant_output_cannot_be_changed_by_the_caller():
    c = sg.constant(np.array([1.0, 2.0]))
    v = sg.input("v", (2,))
    f = sg.compile([c, v + c])
    first, _ = f(np.zeros(2))
    first[...] = -1.0
    again, total = f(np.zeros(2))
    np.testing.assert_array_equal(again, [1.0, 2.0])
    np.testing.assert_array_equal(total, [1.0, 2.0])


def test_repeated_and_viewed_temporaries_never_share_memory():
    h = sg.input("h", (2, 3))
    t = h * 2.0
    f = sg.compile([t, t.T, t, sg.reshape(t, (3, 2)), sg.exp(t), t[0]])
    outs = f(RNG.normal(size=(2, 3)))
    assert _no_two_share(outs)
    np.testing.assert_array_equal(outs[1], outs[0].T)
    np.testing.assert_array_equal(outs[5], outs[0][0])


def test_outputs_that_cannot_alias_are_not_copied():
    a = sg.input("a", (3,))
    w = sg.param("w", (3, 2))
    f = sg.compile([a * 2.0, sg.exp(a), a @ w, sg.sum(a)])
    assert ".copy()" not in f.source
    g = sg.compile([a * 2.0, a])
    assert g.source.count(".copy()") == 1


def test_gradient_outputs_of_a_linear_loss_are_fresh():
    # d(sum(x * w))/dw is x itself: the gradient must not be the caller's x
    x, w = sg.input("x", (3,)), sg.param("w", (3,))
    loss = sg.sum(x * w)
    f = sg.compile([loss, *sg.grad(loss, [w, x])])
    xv, wv = RNG.normal(size=3), RNG.normal(size=3)
    _, gw, gx = f(xv, wv)
    np.testing.assert_array_equal(gw, xv)
    np.testing.assert_array_equal(gx, wv)
    assert _no_two_share([xv, wv, gw, gx])


# ---------------------------------------------------------------------------------------
# Dict keys
# ---------------------------------------------------------------------------------------


class _Hostile:
    """A hashable key whose text is code."""

    def __repr__(self):
        return "__import__('os').system('echo PWNED')"

    __str__ = __repr__


def test_int_and_str_keys_with_the_same_text_are_two_outputs():
    a = sg.input("a", (2,))
    f = sg.compile({1: a * 2.0, "1": a * 3.0})
    out = f(np.ones(2))
    assert set(out) == {1, "1"} and len(out) == 2
    np.testing.assert_array_equal(out[1], [2.0, 2.0])
    np.testing.assert_array_equal(out["1"], [3.0, 3.0])


def test_any_hashable_key_comes_back_as_the_same_object():
    a = sg.input("a", (2,))
    hostile, fs = _Hostile(), frozenset({"x"})
    keys = [("layer", 1), None, fs, hostile, 2.5, True, "plain"]
    f = sg.compile({k: a * float(i + 1) for i, k in enumerate(keys)})
    assert "PWNED" not in f.source
    out = f(np.ones(2))
    assert list(out) == keys
    for got, want in zip(out, keys):
        assert got is want
    for i, k in enumerate(keys):
        np.testing.assert_array_equal(out[k], [i + 1.0] * 2)


def test_str_keys_are_returned_by_the_module_itself():
    a = sg.input("a", (2,))
    key = "'); import os; ('"
    f = sg.compile({key: a * 2.0, "b": a})
    out = f(np.ones(2))
    assert list(out) == [key, "b"]
    assert f.output_keys == [key, "b"]
    assert repr(key) in f.source  # a literal, escaped by repr


def test_keys_of_different_types_do_not_share_a_cache_entry():
    a = sg.input("a", (2,))
    f_int = sg.compile({1: a})
    f_str = sg.compile({"1": a})
    assert list(f_int(np.ones(2))) == [1]
    assert list(f_str(np.ones(2))) == ["1"]


# ---------------------------------------------------------------------------------------
# Empty batch
# ---------------------------------------------------------------------------------------


def test_mean_over_an_empty_batch_is_numpys_nan_with_a_warning():
    x = sg.input("x", ("N", 2))
    loss = sg.mean(x * x)
    f = sg.compile([loss, sg.grad(loss, [x])[0], sg.sum(x)])
    with pytest.warns(RuntimeWarning):
        np_value = np.mean(np.zeros((0, 2)))
    with pytest.warns(RuntimeWarning):
        value, grad, total = f(np.zeros((0, 2)))
    assert np.isnan(value) and np.isnan(np_value)
    assert grad.shape == (0, 2)
    assert total == 0.0
    # and a non-empty batch after an empty one is unaffected
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad, total = f(np.ones((4, 2)))
    assert value == 1.0 and total == 8.0


def test_mean_over_an_empty_axis_of_a_batch():
    x = sg.input("x", ("N", 3))
    f = sg.compile(sg.mean(x, axis=0))
    with pytest.warns(RuntimeWarning):
        out = f(np.zeros((0, 3)))
    assert out.shape == (3,) and np.isnan(out).all()
