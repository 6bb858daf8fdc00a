"""An honest training state: live views that write through or refuse, reset, optimizer
swaps, threads, same-name parameters, the 0-d fast path, and numpy's rules for 0-d values
and empty batches inside a train step (the same results as ``sg.compile``)."""

from __future__ import annotations

import copy
import threading
import warnings

import numpy as np
import pytest

import symgrad as sg
from symgrad import workloads


def w1_loss():
    """The W1 loss (built again by several tests while others' steps live: no warning)."""
    x = sg.input("x", ("N", 2))
    y = sg.input("y", ("N", 1))
    w1 = sg.param("w1", (2, 3))
    w2 = sg.param("w2", (3, 1))
    return sg.mean(((x @ w1) @ w2 - y) ** 2)


D = workloads.w1()
XB, YB = workloads.w1_batch(D, 0)


@pytest.fixture(scope="module")
def adam_step():
    return sg.train_step(w1_loss(), sg.optim.Adam(0.05))


def init(step):
    return step.init({"w1": D["w1"], "w2": D["w2"]})


def one_step_from(step, w1, w2, slots=None):
    """The parameters after one step from the given values (a fresh state)."""
    s = step.init({"w1": w1, "w2": w2})
    if slots:
        for name, per in slots.items():
            s.slots[name] = per
    step(s, x=XB, y=YB)
    return s


# -- live views --------------------------------------------------------------------------

def test_assigning_and_updating_params_write_into_the_trained_arrays(adam_step):
    s = init(adam_step)
    live = s.params["w1"]
    new1, new2 = np.full((2, 3), 0.5), np.full((3, 1), -0.25)
    s.params.update({"w1": new1}, w2=new2)
    assert s.params["w1"] is live  # the same array, new contents
    np.testing.assert_array_equal(live, new1)
    adam_step(s, x=XB, y=YB)
    expected = one_step_from(adam_step, new1, new2)
    np.testing.assert_array_equal(s.params["w1"], expected.params["w1"])
    np.testing.assert_array_equal(s.params["w2"], expected.params["w2"])
    s.params["w2"] = np.zeros((3, 1), dtype=np.int64)  # same_kind cast into float64
    assert s.params["w2"].dtype == np.float64 and not s.params["w2"].any()


def test_update_checks_every_value_before_writing_any(adam_step):
    s = init(adam_step)
    before = s.params["w1"].copy()
    with pytest.raises(ValueError, match=r"parameter 'w2' has shape \(3, 1\).*\(1, 3\)"):
        s.params.update({"w1": np.zeros((2, 3)), "w2": np.zeros((1, 3))})
    np.testing.assert_array_equal(s.params["w1"], before)
    with pytest.raises(TypeError, match=r"parameter 'w1' is float64.*complex128"):
        s.params["w1"] = np.zeros((2, 3), dtype=complex)
    with pytest.raises(KeyError, match="no parameter named 'w3'"):
        s.params["w3"] = np.zeros(3)
    with pytest.raises(KeyError, match="no parameter named 'w3'"):
        s.params.setdefault("w3", np.zeros(3))
    assert s.params.setdefault("w1", None) is s.params["w1"]


@pytest.mark.parametrize("mutate", [
    lambda p: p.pop("w1"), lambda p: p.popitem(), lambda p: p.clear(),
    lambda p: p.__delitem__("w1"), lambda p: p.pop("w1", None)])
def test_removing_a_parameter_raises(adam_step, mutate):
    s = init(adam_step)
    with pytest.raises(TypeError, match="fixed set"):
        mutate(s.params)
    assert list(s.params) == ["w1", "w2"]


def test_the_views_themselves_cannot_be_replaced(adam_step):
    s = init(adam_step)
    for attr in ("params", "slots", "step"):
        with pytest.raises(AttributeError):
            setattr(s, attr, {})


def test_slots_are_live_and_write_through(adam_step):
    s = init(adam_step)
    m = np.full((2, 3), 0.125)
    v = np.full((2, 3), 0.5)
    s.slots["w1"]["m"] = m
    s.slots["w1"].update(v=v)
    adam_step(s, x=XB, y=YB)
    expected = one_step_from(adam_step, D["w1"], D["w2"], {"w1": {"m": m, "v": v}})
    np.testing.assert_array_equal(s.params["w1"], expected.params["w1"])
    plain = one_step_from(adam_step, D["w1"], D["w2"])
    assert not np.array_equal(s.params["w1"], plain.params["w1"])  # the slots mattered
    with pytest.raises(ValueError, match=r"slot of parameter 'w1' 'm' has shape"):
        s.slots["w1"]["m"] = np.zeros(3)
    with pytest.raises(ValueError, match="exactly the slots"):
        s.slots["w1"] = {"m": m}
    for mutate in (lambda: s.slots.pop("w1"), lambda: s.slots["w1"].pop("m"),
                   lambda: s.slots.clear(), lambda: s.slots.update({})):
        with pytest.raises(TypeError, match="fixed set"):
            mutate()


def test_reset_starts_over_in_place(adam_step):
    s = init(adam_step)
    live = s.params["w1"]
    for i in range(5):
        adam_step(s, *workloads.w1_batch(D, i))
    s.reset()
    assert s.step == 0 and s.params["w1"] is live
    np.testing.assert_array_equal(live, D["w1"])
    assert not s.slots["w2"]["v"].any()
    again, ref = init(adam_step), s
    for i in range(5):
        adam_step(again, *workloads.w1_batch(D, i))
        adam_step(ref, *workloads.w1_batch(D, i))
    np.testing.assert_array_equal(ref.params["w2"], again.params["w2"])
    s.reset({"w1": np.ones((2, 3)), "w2": np.ones((3, 1))})
    np.testing.assert_array_equal(s.params["w1"], 1.0)
    with pytest.raises(ValueError, match="missing"):
        s.reset({"w1": np.ones((2, 3))})


# -- the optimizer -----------------------------------------------------------------------

def test_replacing_step_optimizer_takes_effect_or_raises():
    step = sg.train_step(w1_loss(), sg.optim.Adam(0.05))
    s = init(step)
    step.optimizer = sg.optim.Adam(0.2)  # the same rule: takes effect at the next call
    step(s, x=XB, y=YB)
    ref_step = sg.train_step(w1_loss(), sg.optim.Adam(0.2))
    ref = init(ref_step)
    ref_step(ref, x=XB, y=YB)
    np.testing.assert_array_equal(s.params["w1"], ref.params["w1"])
    step.optimizer = sg.optim.SGD(0.2)
    with pytest.raises(TypeError, match=r"compiled for the update rule Adam.*now SGD"):
        step(s, x=XB, y=YB)
    with pytest.raises(TypeError, match="compiled for the update rule Adam"):
        step.init({"w1": D["w1"], "w2": D["w2"]})
    assert s.step == 1  # the refused call changed nothing


def test_every_change_of_step_optimizer_reaches_the_next_step():
    """A state keeps the optimizer it follows and that optimizer's hyperparameter list
    between steps: each way of changing them must show in the very next update."""
    x, t, a = sg.input("x"), sg.input("target"), sg.param("A", shared=True)
    step = sg.train_step((x * a - t) ** 2, sg.optim.SGD(0.02))
    s = step.init({"A": 0.5})

    def stepped_with(lr):  # one step; True when it used the learning rate lr
        before = float(s.params["A"])
        step(s, x=1.5, target=10.0)
        want = before - lr * 2 * (1.5 * before - 10.0) * 1.5
        return float(s.params["A"]) == pytest.approx(want, rel=1e-12)

    first = step.optimizer
    assert stepped_with(0.02)
    first.lr = 0.1  # a schedule, after the state has stepped
    assert stepped_with(0.1)
    second = step.optimizer = sg.optim.SGD(0.3)  # replaced after the state has stepped
    assert stepped_with(0.3)
    second.lr = 0.05  # the new optimizer's own changes count ...
    assert stepped_with(0.05)
    first.lr = 0.7  # ... the old one's no longer do
    assert stepped_with(0.05)
    step.optimizer = first  # and back
    assert stepped_with(0.7)
    step.optimizer = sg.optim.Momentum(0.1, momentum=0.9)
    before = float(s.params["A"])
    with pytest.raises(TypeError, match="compiled for the update rule SGD"):
        step(s, x=1.5, target=10.0)
    assert float(s.params["A"]) == before and s.step == 0  # SGD counts no steps
    first.lr = 0.2
    step.optimizer = first  # a refused optimizer leaves the state able to adopt another
    assert stepped_with(0.2)
    copied = copy.deepcopy(s)  # a copy follows the step too
    step.optimizer = sg.optim.SGD(0.4)
    s = copied
    assert stepped_with(0.4)


def test_threads_stepping_while_the_optimizer_is_replaced_stay_serialized():
    """Adopting a replaced optimizer happens inside a step, holding the state: steps stay
    whole and counted while another thread swaps step.optimizer back and forth."""
    step = sg.train_step(w1_loss(), sg.optim.Adam(1e-3))
    shared, alone = init(step), init(step)
    twins = [sg.optim.Adam(1e-3), sg.optim.Adam(1e-3)]  # same values: one result expected
    start, done = threading.Barrier(3), threading.Event()

    def work():
        start.wait()
        for _ in range(300):
            step(shared, x=XB, y=YB)

    def swap():
        start.wait()
        i = 0
        while not done.is_set():
            step.optimizer = twins[i % 2]
            i += 1

    threads = [threading.Thread(target=work) for _ in range(2)]
    swapper = threading.Thread(target=swap)
    for th in threads + [swapper]:
        th.start()
    for th in threads:
        th.join()
    done.set()
    swapper.join()
    assert shared.step == 600
    for _ in range(600):
        step(alone, x=XB, y=YB)
    np.testing.assert_array_equal(shared.params["w1"], alone.params["w1"])
    np.testing.assert_array_equal(shared.slots["w2"]["m"], alone.slots["w2"]["m"])


def test_optimizer_options_are_frozen_once_compiled():
    opt = sg.optim.Adam(0.05, weight_decay=0.0)
    opt.weight_decay = 0.1  # before any step: fine
    sg.train_step(w1_loss(), opt)
    with pytest.raises(AttributeError, match="compiled into the training step"):
        opt.weight_decay = 0.0
    opt.lr = 0.01  # hyperparameters stay free
    assert opt.lr == 0.01


def test_adam_betas_outside_zero_one_are_refused_when_set():
    # 1 - beta**t is Adam's bias correction: at beta >= 1 its square root is no real number
    with pytest.raises(ValueError, match="beta2 must be in"):
        sg.optim.Adam(0.01, beta2=1.0)
    opt = sg.optim.Adam(0.01)
    step = sg.train_step(w1_loss(), opt)
    state = init(step)
    with pytest.raises(ValueError, match="beta1 must be in"):
        opt.beta1 = -0.1
    assert opt.beta1 == 0.9  # the refused value never reached the step
    opt.beta2 = 0.5  # a valid change reaches the next step
    before = {n: v.copy() for n, v in state.params.items()}
    step(state, x=XB, y=YB)
    assert any(not np.array_equal(before[n], state.params[n]) for n in before)


# -- threads -----------------------------------------------------------------------------

def test_two_threads_stepping_one_state_are_serialized():
    step = sg.train_step(w1_loss(), sg.optim.Adam(1e-3))
    shared, alone = init(step), init(step)
    start = threading.Barrier(2)

    def work():
        start.wait()
        for _ in range(500):
            step(shared, x=XB, y=YB)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared.step == 1000
    for _ in range(1000):  # one batch for all: whole steps in any order give one result
        step(alone, x=XB, y=YB)
    np.testing.assert_array_equal(shared.params["w1"], alone.params["w1"])
    np.testing.assert_array_equal(shared.slots["w2"]["v"], alone.slots["w2"]["v"])


# -- same-name parameters ----------------------------------------------------------------

def test_a_dense_helper_called_twice_with_one_name_warns_at_train_step():
    x = sg.input("x", ("N", 4))

    def dense(h, name, **kw):
        return sg.relu(h @ sg.param(name, (4, 4), **kw) + sg.param(name + "_b", (4,), **kw))

    out = dense(dense(x, "wd"), "wd")  # each weight's Tensor dies at once
    with pytest.warns(sg.SharedParameterWarning, match=r"sg.param\('wd(_b)?', \(4"):
        sg.train_step(sg.sum(out), sg.optim.SGD(0.1))
    tied = dense(dense(x, "wt"), "wt", shared=True)  # on purpose: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sg.train_step(sg.sum(tied), sg.optim.SGD(0.1))


def test_a_second_param_call_while_the_first_tensor_lives_warns():
    first = sg.param("wl", (2,))
    with pytest.warns(sg.SharedParameterWarning, match=r"'wl'.*still alive"):
        second = sg.param("wl", (2,))
    assert second.expr == first.expr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sg.param("wl", (2,), shared=True).expr == first.expr


def test_rebuilding_a_model_while_the_old_one_lives_does_not_warn():
    def build():
        x = sg.input("x", ("N", 2))
        return sg.mean((x @ sg.param("wr", (2, 3)) @ sg.param("vr", (3, 1))) ** 2)

    old = sg.train_step(build(), sg.optim.SGD(0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = sg.train_step(build(), sg.optim.SGD(0.1))
    assert old is not None and new is not None


# -- the fast path and numpy's rules for 0-d values --------------------------------------

def w0_step():
    x, t, a = sg.input("x"), sg.input("target"), sg.param("A")
    return sg.train_step((x * a - t) ** 2, sg.optim.SGD(0.02))


@pytest.mark.parametrize("convert", [float, np.float64, np.asarray],
                         ids=["float", "np.float64", "0-d ndarray"])
def test_0d_values_take_the_fast_path(convert, monkeypatch):
    step = w0_step()
    calls = []
    check = step.__globals__["_check_inputs"]
    monkeypatch.setitem(step.__globals__, "_check_inputs",
                        lambda *a, **k: calls.append(a) or check(*a, **k))
    s = step.init({"A": 0.5})
    loss = step(s, x=convert(1.5), target=convert(10.0))
    assert calls == []  # the full check (3 us) never ran
    assert loss == (1.5 * 0.5 - 10.0) ** 2
    with pytest.raises(TypeError, match=r"'x' must have dtype float64"):
        step(s, x=np.asarray(1.5, dtype=np.float32), target=10.0)  # the full check explains
    assert len(calls) == 1


SCALAR_CASES = {
    "1/x at 0": lambda x, p: p / x,
    "sqrt of a negative": lambda x, p: sg.sqrt(x * p),
    "log(0)": lambda x, p: sg.log(x * p),
    "negative ** 1.5": lambda x, p: (x * p) ** 1.5,
    "x ** -2 at 0": lambda x, p: p * x ** -2,
}


@pytest.mark.parametrize("name", list(SCALAR_CASES))
@pytest.mark.parametrize("xv", [0.0, -1.0, 2.0])
def test_0d_values_in_a_step_follow_numpy_like_compile(name, xv):
    x, p = sg.input("x"), sg.param("p")
    loss = SCALAR_CASES[name](x, p)
    f = sg.compile([loss, *sg.grad(loss, [p])], inputs=["x", "p"])
    step = sg.train_step(loss, sg.optim.SGD(0.5))
    with warnings.catch_warnings(record=True) as w_compile:
        warnings.simplefilter("always")
        want_loss, want_grad = (float(v) for v in f(np.float64(xv), np.float64(1.0)))
    s = step.init({"p": 1.0})
    with warnings.catch_warnings(record=True) as w_step:
        warnings.simplefilter("always")
        got = step(s, x=xv)
    np.testing.assert_array_equal(got, want_loss)  # nan == nan, inf == inf here
    np.testing.assert_array_equal(float(s.params["p"]), 1.0 - 0.5 * want_grad)
    kinds = {type(w.message) for w in w_compile}
    assert kinds <= {type(w.message) for w in w_step}  # numpy's RuntimeWarnings, too


def test_scalar_steps_with_division_use_numpy_scalars_and_plain_ones_python_floats():
    # the numpy target's choice (the scalar target: tests/test_scalar_target.py)
    w0 = w0_step().source  # W0 keeps its Python-float fast path
    assert "    A = float(_boxA)" in w0 and "_F64" not in w0
    x, p = sg.input("x"), sg.param("p")
    source = sg.train_step(p / x, sg.optim.SGD(0.5), target="numpy").source
    assert "    x = _F64(x)" in source and "    x = float(x)" not in source
    assert "p = _F64(_boxp)" in source


def test_an_empty_batch_gives_what_compile_gives():
    loss = w1_loss()
    f = sg.compile(loss, inputs=["x", "y", "w1", "w2"])
    step = sg.train_step(loss, sg.optim.SGD(0.1))
    s = init(step)
    empty_x, empty_y = np.zeros((0, 2)), np.zeros((0, 1))
    with pytest.warns(RuntimeWarning):
        want = float(f(empty_x, empty_y, D["w1"], D["w2"]))
    with pytest.warns(RuntimeWarning):
        got = step(s, x=empty_x, y=empty_y)
    assert np.isnan(want) and np.isnan(got)


def test_a_state_copy_is_stepped_independently(adam_step):
    s = init(adam_step)
    c = copy.deepcopy(s)
    adam_step(c, x=XB, y=YB)
    assert s.step == 0 and c.step == 1
