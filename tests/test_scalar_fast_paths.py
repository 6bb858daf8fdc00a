"""The scalar target's fast paths (issue 15) give the numbers of the unoptimized forms.

The scalar train step reads the state's arrays through flat memoryviews, the batch with one
flat ``tolist()`` per array, Python-float inputs with no conversion, and a step whose input
names are not identifiers (W4's ``input``) is the generated function itself with its
parameters renamed. Each test compares with ``target="numpy"`` (the reference the scalar
target must reproduce) at ordinary and extreme magnitudes, or checks what the fast path
must keep: validation naming the input, keyword calls, live arrays, threads, copies.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest

import symgrad as sg
from symgrad import optim, workloads

pytestmark = pytest.mark.filterwarnings("ignore::symgrad.SharedParameterWarning")

OPTIMIZERS = [lambda: optim.SGD(0.02), lambda: optim.Momentum(0.01, momentum=0.9),
              lambda: optim.Adam(0.01), lambda: optim.RMSProp(0.01)]


def _w0():
    x, t, a = sg.input("x"), sg.input("target"), sg.param("A")
    return (x * a - t) ** 2


def _w4():
    inp, tgt = sg.input("input", (5, 2)), sg.input("target", (5, 1))
    return sg.sum((inp @ sg.param("weights", (2, 1)) - tgt) ** 2) / 2


def _both(loss, make_opt):
    s_step = sg.train_step(loss, make_opt(), target="scalar")
    n_step = sg.train_step(loss, make_opt(), target="numpy")
    assert s_step.target == "scalar" and n_step.target == "numpy"
    return s_step, n_step


def _close(a, b, scale):
    # relative to the magnitude of the run: sums may round in another order
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_w0_and_w4_steps_match_numpy_at_extreme_magnitudes(make_opt, scale):
    d4 = workloads.w4()
    rng = np.random.default_rng(3)
    cases = [(_w0(), {"A": np.array(0.7 * scale)},
              [dict(x=float(v) * scale, target=float(v + 0.5) * scale)
               for v in rng.standard_normal(5)]),
             (_w4(), {"weights": d4["weights"] * scale},
              [dict(input=d4["input"] * scale, target=d4["target"] * scale)] * 5)]
    for loss, init, batches in cases:
        s_step, n_step = _both(loss, make_opt)
        s_state, n_state = s_step.init(init), n_step.init(init)
        for batch in batches:
            with np.errstate(all="ignore"):
                ls, ln = s_step(s_state, **batch), n_step(n_state, **batch)
            assert type(ls) is float
            _close(ls, ln, max(abs(ln), 1e-300) if np.isfinite(ln) else 1.0)
        for k in init:
            live_s, live_n = s_state.params[k], n_state.params[k]
            _close(live_s, live_n, float(np.max(np.abs(live_n))) or 1.0)
            for slot in s_state.slots[k]:
                _close(s_state.slots[k][slot], n_state.slots[k][slot],
                       float(np.max(np.abs(n_state.slots[k][slot]))) or 1.0)
        assert s_state.step == n_state.step


def test_w0_accepts_every_float64_scalar_form_and_names_bad_inputs():
    s_step, n_step = _both(_w0(), lambda: optim.Adam(0.05))
    forms = [(0.5, 1.5), (np.float64(0.5), np.float64(1.5)), (np.array(0.5), np.array(1.5)),
             (0.5, np.array(1.5)), (np.float64(0.5), 1.5)]
    results = []
    for x, t in forms:
        s_state, n_state = s_step.init({"A": 0.3}), n_step.init({"A": 0.3})
        ls = s_step(s_state, x=x, target=t)
        assert type(ls) is float and ls == n_step(n_state, x=x, target=t)
        results.append((ls, float(s_state.params["A"])))
    assert len(set(results)) == 1
    state = s_step.init({"A": 0.3})
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(\), got \(2,\)"):
        s_step(state, x=np.zeros(2), target=1.0)
    with pytest.raises(TypeError, match="input 'target' must have dtype float64, got float32"):
        s_step(state, x=0.5, target=np.float32(1.0))
    with pytest.raises(TypeError, match="'x'"):
        s_step(state, x="0.5", target=1.0)
    assert state.step == 0 and float(state.params["A"]) == 0.3  # nothing was written


def test_w4_input_name_binds_by_keyword_without_a_wrapper():
    d4 = workloads.w4()
    step = sg.train_step(_w4(), optim.SGD(0.002))
    assert step.target == "scalar"
    # the generated function itself, its parameters carrying the user's names
    assert step.__code__.co_varnames[:3] == ("_state", "input", "target")
    assert step.__code__.co_filename == step.__globals__.get("__file__", step.__code__.co_filename)
    a, b = step.init({"weights": d4["weights"]}), step.init({"weights": d4["weights"]})
    la = step(a, input=d4["input"], target=d4["target"])
    lb = step(b, d4["input"], d4["target"])
    assert la == lb and np.array_equal(a.params["weights"], b.params["weights"])
    with pytest.raises(TypeError, match="input"):
        step(a, target=d4["target"])
    with pytest.raises(TypeError, match="inputs"):
        step(a, input=d4["input"], target=d4["target"], inputs=1)
    with pytest.raises(ValueError, match=r"input 'input' must have shape \(5, 2\), got \(2, 5\)"):
        step(a, d4["input"].T.copy(), d4["target"])
    with pytest.raises(TypeError, match="input 'target' must have dtype float64"):
        step(a, d4["input"], d4["target"].astype(np.float32))


def test_w4_reads_non_contiguous_and_subclass_inputs_as_numpy_does():
    d4 = workloads.w4()
    s_step, n_step = _both(_w4(), lambda: optim.SGD(0.002))
    wide = np.zeros((5, 4))
    wide[:, ::2] = d4["input"]  # a strided view: ravel copies it in C order
    forms = [(d4["input"], d4["target"]), (wide[:, ::2], d4["target"]),
             (np.asfortranarray(d4["input"]), np.asfortranarray(d4["target"]))]
    for inp, tgt in forms:
        s_state = s_step.init({"weights": d4["weights"]})
        n_state = n_step.init({"weights": d4["weights"]})
        assert s_step(s_state, inp, tgt) == pytest.approx(n_step(n_state, inp, tgt), rel=1e-13)
        _close(s_state.params["weights"], n_state.params["weights"], 1.0)


def test_parameters_given_in_fortran_order_are_trained_live():
    x, y = sg.input("x", (2, 2)), sg.input("y", (2, 1))
    w1, w2 = sg.param("w1", (2, 3)), sg.param("w2", (3, 1))
    loss = sg.mean(((x @ w1) @ w2 - y) ** 2)
    d = workloads.w1()
    init = {"w1": np.asfortranarray(d["w1"]), "w2": d["w2"]}
    s_step, n_step = _both(loss, lambda: optim.Adam(0.01))
    s_state, n_state = s_step.init(init), n_step.init(init)
    live = s_state.params["w1"]
    xb, yb = np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([[1.0], [-0.5]])
    for _ in range(3):
        _close(s_step(s_state, xb, yb), n_step(n_state, xb, yb), 1.0)
    assert s_state.params["w1"] is live and not np.array_equal(live, d["w1"])
    for k in init:
        _close(s_state.params[k], n_state.params[k], 1.0)
        _close(s_state.slots[k]["v"], n_state.slots[k]["v"], 1.0)
    s_state.params["w1"] = d["w1"]  # written through the view: the step sees it
    n_state.params["w1"] = d["w1"]
    _close(s_step(s_state, xb, yb), n_step(n_state, xb, yb), 1.0)


def test_copies_and_resets_of_a_scalar_state_train_their_own_arrays():
    step = sg.train_step(_w0(), optim.Adam(0.05))
    assert step.target == "scalar"
    state = step.init({"A": 0.3})
    step(state, x=0.5, target=1.5)
    twin = copy.deepcopy(state)
    step(twin, x=0.5, target=1.5)
    assert twin.step == 2 and state.step == 1
    assert float(twin.params["A"]) != float(state.params["A"])
    step(state, x=0.5, target=1.5)
    assert float(twin.params["A"]) == float(state.params["A"])
    state.reset()
    assert float(state.params["A"]) == 0.3 and float(state.slots["A"]["m"]) == 0.0
    step(state, x=0.5, target=1.5)
    fresh = step.init({"A": 0.3})
    step(fresh, x=0.5, target=1.5)
    assert float(fresh.params["A"]) == float(state.params["A"])


def test_threads_stepping_one_scalar_state_lose_no_step():
    step = sg.train_step(_w0(), optim.Adam(0.01))
    assert step.target == "scalar"
    shared, alone = step.init({"A": 0.3}), step.init({"A": 0.3})

    def run():
        for _ in range(400):
            step(shared, x=0.5, target=1.5)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(1600):
        step(alone, x=0.5, target=1.5)
    assert shared.step == alone.step == 1600
    assert float(shared.params["A"]) == float(alone.params["A"])
    assert float(shared.slots["A"]["v"]) == float(alone.slots["A"]["v"])


def test_a_sum_that_starts_negative_prints_as_a_subtraction_with_the_same_value():
    x, t, a = sg.input("x"), sg.input("target"), sg.param("A")
    f = sg.compile([t - a * x, 1 - x, -x - t], target="scalar")
    g = sg.compile([t - a * x, 1 - x, -x - t], target="numpy")
    src = f.source[f.source.index("def compute("):]
    assert "-target +" not in src and "-x + 1.0" not in src and "1.0 - x" in src
    rng = np.random.default_rng(7)
    for v in rng.standard_normal((50, 3)) * np.array([1e30, 1.0, 1e-30]):
        got, want = f(*v), g(*v)
        for p, q in zip(got, want):
            assert p == q or (np.isnan(p) and np.isnan(q))  # bit for bit: IEEE + commutes


def test_states_with_empty_or_float32_arrays_still_build_and_train():
    # only non-empty float64 arrays get a memoryview; the others keep numpy's access
    x = sg.input("x", (3,))
    w, e = sg.param("w", (3,)), sg.param("e", (0,))
    step = sg.train_step(sg.sum(w * x) ** 2 + sg.sum(e), optim.Adam(0.1))
    state = step.init({"w": np.ones(3), "e": np.zeros(0)})
    assert step(state, x=np.arange(3.0)) == 9.0 and state.params["e"].shape == (0,)
    w32 = sg.param("w32", (3,), "float32")
    x32 = sg.input("x32", (3,), "float32")
    step32 = sg.train_step(sg.sum(w32 * x32) ** 2, optim.SGD(0.1))
    state32 = step32.init({"w32": np.ones(3, np.float32)})
    assert step32(state32, x32=np.arange(3, dtype=np.float32)) == 9.0


def test_compiled_functions_take_a_renamed_input_by_keyword_without_a_wrapper():
    inp, w = sg.input("input", (3, 2)), sg.param("weights", (2,))
    for target in ("scalar", "numpy"):
        f = sg.compile(sg.sum(inp @ w), target=target)
        assert f._fn.__code__.co_varnames[:2] == ("input", "weights") and not f._slow
        xv, wv = np.ones((3, 2)), np.array([1.0, 2.0])
        assert f(xv, wv) == f(input=xv, weights=wv) == f(xv, weights=wv) == 9.0
        with pytest.raises(TypeError, match="input"):
            f(weights=wv)
