"""``sg.check_grad``: it passes correct gradients (of a loss, of a compiled function, against
the tape too) and catches wrong ones, naming the input."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad import tape

RNG = np.random.default_rng(7)
VALUES = {"x": RNG.standard_normal((5, 3)), "w": RNG.standard_normal((3, 2)),
          "b": RNG.standard_normal(2), "y": RNG.standard_normal((5, 2))}


def model():
    x, y = sg.input("x", (5, 3)), sg.input("y", (5, 2))
    w, b = sg.param("w", (3, 2), shared=True), sg.param("b", (2,), shared=True)
    return sg.mean((sg.tanh(x @ w + b) - y) ** 2 + sg.softplus(x @ w))


def tape_model(x, y, w, b):
    return tape.mean((tape.tanh(x @ w + b) - y) ** 2 + tape.softplus(x @ w))


def test_a_correct_loss_passes_against_differences_and_the_tape():
    report = sg.check_grad(model(), VALUES, tape=tape_model)
    assert report.passed and bool(report)
    assert sorted(report.rows) == ["b", "w"]  # every param by default
    for row in report.rows.values():
        assert row.max_rel_error < 1e-7 and row.tape_passed
        assert row.tape_max_rel_error < 1e-12
    assert "PASS" in str(report) and "w" in str(report)


def test_inputs_can_be_checked_too():
    report = sg.check_grad(model(), VALUES, wrt=["x", "w"], directions=2)
    assert report.passed and list(report.rows) == ["x", "w"]


def test_a_compiled_function_returning_gradients_is_checked():
    loss = model()
    w, b = (sg.param(n, s, shared=True) for n, s in (("w", (3, 2)), ("b", (2,))))
    f = sg.compile([loss, *sg.grad(loss, [w, b])])
    assert sg.check_grad(f, VALUES, wrt=["w", "b"]).passed
    x = sg.input("x", (5, 3))
    single = sg.sum(sg.tanh(x @ w))
    g = sg.compile([single, *sg.grad(single, [w])])
    assert list(sg.check_grad(g, {"x": VALUES["x"], "w": VALUES["w"]}).rows) == ["w"]


def wrong_by(scale_w=1.0, flip_b=False):
    loss = model()
    w, b = (sg.param(n, s, shared=True) for n, s in (("w", (3, 2)), ("b", (2,))))
    f = sg.compile([loss, *sg.grad(loss, [w, b])])

    def compute(**values):
        out, gw, gb = f(**values)
        gb = gb.copy()
        if flip_b:
            gb[1] = -gb[1]
        return [out, gw * scale_w, gb]
    return compute


def test_a_slightly_wrong_gradient_fails_and_names_the_input():
    report = sg.check_grad(wrong_by(scale_w=1.001), VALUES, wrt=["w", "b"])
    assert not report.passed
    assert not report.rows["w"].passed and report.rows["b"].passed
    assert 5e-4 < report.rows["w"].max_rel_error < 2e-3
    with pytest.raises(sg.GradientCheckError, match=r"input 'b' is wrong: max abs error"):
        sg.check_grad(wrong_by(flip_b=True), VALUES, wrt=["w", "b"], raise_on_failure=True)


def test_a_disagreeing_tape_is_reported():
    def other(x, y, w, b):
        return tape.mean((tape.tanh(x @ w + b) - y) ** 2)  # the softplus term is missing

    report = sg.check_grad(model(), VALUES, tape=other)
    assert not report.passed and report.rows["w"].passed  # differences agree with symgrad
    assert report.rows["w"].tape_passed is False
    with pytest.raises(sg.GradientCheckError, match="'b'.*against the tape|'w'.*against the"):
        sg.check_grad(model(), VALUES, tape=other, raise_on_failure=True)


def test_a_nan_gradient_fails():
    def nan_grad(**values):
        return [1.0, np.full((3, 2), np.nan)]
    assert not sg.check_grad(nan_grad, VALUES, wrt=["w"]).passed


def test_bad_calls_are_explained():
    with pytest.raises(ValueError, match=r"say which inputs"):
        sg.check_grad(lambda **v: [0.0, np.zeros(2)], VALUES)
    with pytest.raises(ValueError, match=r"returned 2 value\(s\); expected the loss and 2"):
        sg.check_grad(lambda **v: [0.0, np.zeros((3, 2))], VALUES, wrt=["w", "b"])
    with pytest.raises(ValueError, match=r"gradient for 'w' has shape \(2, 3\)"):
        sg.check_grad(lambda **v: [0.0, np.zeros((2, 3))], VALUES, wrt=["w"])
    with pytest.raises(ValueError, match=r"no input named \['v'\]"):
        sg.check_grad(model(), VALUES, wrt=["v"])
    with pytest.raises(TypeError, match="loss Tensor or a function"):
        sg.check_grad(3.0, VALUES)


def test_the_callers_arrays_are_not_modified():
    before = {k: v.copy() for k, v in VALUES.items()}
    sg.check_grad(model(), VALUES, wrt=["x", "w", "b"])
    for k in VALUES:
        np.testing.assert_array_equal(VALUES[k], before[k])
