"""``check_inputs=False`` and ``step.bound(state)``: the two per-call savings of issue 15.

``check_inputs=False`` drops the generated function's input tests (the caller vouches for
the batch, as with PyTensor's ``trust_input``); every other number must stay the same, so
each test trains or evaluates a checked and an unchecked function side by side, and the
W4 and W1 steps also against their closed-form gradients (least squares, a linear net).
``step.bound(state)`` is the step with the state bound as a method: same numbers, same
state, refusing a state it cannot train.
"""

from __future__ import annotations

import re
import types

import numpy as np
import pytest

import symgrad as sg
from symgrad import optim, workloads

pytestmark = pytest.mark.filterwarnings("ignore::symgrad.SharedParameterWarning")


def _function_body(source: str, name: str) -> str:
    """The text of ``def name(...)`` up to the next top-level statement."""
    start = source.index(f"\ndef {name}(")
    end = re.search(r"\n(?=\S)", source[start + 1:])
    return source[start:start + 1 + end.start()] if end else source[start:]


def _w4_loss():
    inp, tgt = sg.input("input", (5, 2)), sg.input("target", (5, 1))
    return sg.sum((inp @ sg.param("weights", (2, 1)) - tgt) ** 2) / 2


def _w1_loss():
    x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
    w1, w2 = sg.param("w1", (2, 3)), sg.param("w2", (3, 1))
    return sg.mean((x @ w1 @ w2 - y) ** 2)


@pytest.mark.parametrize("target", ["scalar", "numpy"])
def test_unchecked_w4_step_follows_least_squares_and_the_checked_step(target):
    d = workloads.w4()
    lr = 0.01
    checked = sg.train_step(_w4_loss(), optim.SGD(lr), target=target)
    unchecked = sg.train_step(_w4_loss(), optim.SGD(lr), target=target, check_inputs=False)
    assert (checked.check_inputs, unchecked.check_inputs) == (True, False)
    assert unchecked.target == target and unchecked.key != checked.key
    s1, s2 = checked.init({"weights": d["weights"]}), unchecked.init({"weights": d["weights"]})
    w = d["weights"].copy()
    x, y = d["input"], d["target"]
    for _ in range(4):
        e = x @ w - y
        want_loss = float(np.sum(e * e)) / 2
        w = w - lr * (x.T @ e)  # d/dw of sum(e**2)/2 is x.T e
        assert unchecked(s2, x, y) == pytest.approx(want_loss, rel=1e-12)
        checked(s1, x, y)
        np.testing.assert_allclose(s2.params["weights"], w, rtol=1e-12)
        np.testing.assert_array_equal(s2.params["weights"], s1.params["weights"])


@pytest.mark.parametrize("target", ["scalar", "numpy"])
def test_unchecked_step_has_no_input_test_and_checked_one_names_the_input(target):
    unchecked = sg.train_step(_w4_loss(), optim.SGD(0.01), target=target, check_inputs=False)
    checked = sg.train_step(_w4_loss(), optim.SGD(0.01), target=target)
    for name in ("train_step", "_numpy_train_step") if target == "scalar" else ("train_step",):
        assert "_check_inputs(" not in _function_body(unchecked.source, name)
        assert "_check_inputs(" in _function_body(checked.source, name)
    d = workloads.w4()
    state = checked.init({"weights": d["weights"]})
    with pytest.raises(TypeError, match="'input'.*float64"):
        checked(state, d["input"].astype(np.float32), d["target"])


def test_unchecked_w1_step_matches_the_chain_rule_with_a_symbolic_batch():
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((2, 3)), rng.standard_normal((3, 1))
    lr = 0.05
    step = sg.train_step(_w1_loss(), optim.SGD(lr), check_inputs=False)
    assert "_check_inputs(" not in _function_body(step.source, "train_step")
    state = step.init({"w1": w1, "w2": w2})
    for n in (8, 3, 8):  # the batch size is read from the shape at each call
        x, y = rng.standard_normal((n, 2)), rng.standard_normal((n, 1))
        h = x @ w1
        e = h @ w2 - y
        dy = 2 * e / e.size
        want = float(np.mean(e ** 2))
        w1, w2 = w1 - lr * x.T @ (dy @ w2.T), w2 - lr * h.T @ dy
        assert step(state, x, y) == pytest.approx(want, rel=1e-12)
        np.testing.assert_allclose(state.params["w1"], w1, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(state.params["w2"], w2, rtol=1e-12, atol=1e-15)


def test_unchecked_empty_batch_follows_numpy_as_the_checked_step_does():
    checked = sg.train_step(_w1_loss(), optim.SGD(0.1))
    unchecked = sg.train_step(_w1_loss(), optim.SGD(0.1), check_inputs=False)
    init = {"w1": np.ones((2, 3)), "w2": np.ones((3, 1))}
    s1, s2 = checked.init(init), unchecked.init(init)
    x, y = np.zeros((0, 2)), np.zeros((0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        l1, l2 = checked(s1, x, y), unchecked(s2, x, y)
    assert np.isnan(l1) and np.isnan(l2)  # numpy's mean of nothing, not ZeroDivisionError
    np.testing.assert_array_equal(s1.params["w1"], s2.params["w1"])


def test_unchecked_w0_step_converts_every_float64_scalar_form():
    x, t, a = sg.input("x"), sg.input("target"), sg.param("A")
    loss = (x * a - t) ** 2
    step = sg.train_step(loss, optim.SGD(0.1), check_inputs=False)
    ref = sg.train_step(loss, optim.SGD(0.1))
    assert step.target == "scalar" and step.inputs == ["target", "x"]  # sorted by name
    s, r = step.init({"A": np.array(0.5)}), ref.init({"A": np.array(0.5)})
    for xv, tv in [(1.5, 2.0), (np.float64(1.5), np.array(2.0)), (np.array(-0.5), 3.0)]:
        got = step(s, x=xv, target=tv)
        assert type(got) is float
        assert got == ref(r, x=xv, target=tv)
        assert s.params["A"] == r.params["A"]
    a0 = 0.5
    for xv, tv in [(1.5, 2.0), (1.5, 2.0), (-0.5, 3.0)]:  # by hand: d/dA (xA - t)^2
        a0 -= 0.1 * 2 * (xv * a0 - tv) * xv
    assert float(s.params["A"]) == pytest.approx(a0, rel=1e-14)


@pytest.mark.parametrize("target", ["scalar", "numpy"])
def test_unchecked_compile_gives_the_checked_values_and_gradients(target):
    x = sg.input("x", (3,))
    w = sg.param("w", (3,))
    loss = sg.sum(sg.tanh(x * w) ** 2)
    outs = [loss, *sg.grad(loss, [w])]
    f = sg.compile(outs, target=target, check_inputs=False)
    g = sg.compile(outs, target=target)
    assert f.target == target and f.check_inputs is False and g.check_inputs is True
    rng = np.random.default_rng(1)
    xv, wv = rng.standard_normal(3), rng.standard_normal(3)
    for a, b in zip(f(xv, wv), g(xv, wv)):
        np.testing.assert_array_equal(a, b)
    # finite differences of the loss, float64
    eps, fd = 1e-6, np.empty(3)
    for i in range(3):
        d = np.zeros(3)
        d[i] = eps
        fd[i] = (f(xv, wv + d)[0] - f(xv, wv - d)[0]) / (2 * eps)
    np.testing.assert_allclose(f(xv, wv)[1], fd, rtol=1e-6, atol=1e-9)


def test_check_inputs_option_is_validated():
    x = sg.input("x", (2,))
    with pytest.raises(TypeError, match="check_inputs must be True or False"):
        sg.compile(sg.sum(x), check_inputs="no")
    with pytest.raises(TypeError, match="check_inputs must be True or False"):
        sg.train_step(sg.sum(x * sg.param("p", (2,))), optim.SGD(0.1), check_inputs=0)
    pytest.importorskip("array_api_compat")
    with pytest.raises(ValueError, match="check_inputs=False applies to backend='numpy'"):
        sg.compile(sg.sum(x), backend="array_api", check_inputs=False)


def test_bound_step_is_the_step_with_its_state():
    d = workloads.w4()
    step = sg.train_step(_w4_loss(), optim.Adam(0.01))
    other = sg.train_step(_w4_loss(), optim.Adam(0.01))
    s1, s2 = step.init({"weights": d["weights"]}), step.init({"weights": d["weights"]})
    fit = step.bound(s1)
    assert isinstance(fit, types.MethodType) and fit.__self__ is s1
    for _ in range(3):
        assert fit(d["input"], d["target"]) == step(s2, d["input"], d["target"])
    np.testing.assert_array_equal(s1.params["weights"], s2.params["weights"])
    assert s1.step == 3
    assert fit(input=d["input"], target=d["target"]) == step(s2, d["input"], d["target"])
    other.bound(s1)  # a step of the same model and rule trains this state too


def test_bound_refuses_what_it_cannot_train():
    step = sg.train_step(_w4_loss(), optim.SGD(0.01))
    with pytest.raises(TypeError, match="expected a TrainState"):
        step.bound({"weights": np.zeros((2, 1))})
    x = sg.input("x", (2,))
    other = sg.train_step(sg.sum(x * sg.param("p", (2,))), optim.SGD(0.1))
    with pytest.raises(ValueError, match="parameters"):
        step.bound(other.init({"p": np.zeros(2)}))
    adam = sg.train_step(_w4_loss(), optim.Adam(0.01))
    with pytest.raises(ValueError, match="update rule|slots"):
        step.bound(adam.init({"weights": np.zeros((2, 1))}))
