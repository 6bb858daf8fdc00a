"""The scalar target (issue 15): straight-line Python floats for tiny fixed-shape models.

Every function here is compiled twice, ``target="scalar"`` (or "auto") and
``target="numpy"``, and the two must agree to 1e-12, gradients and train steps included;
where Python's float arithmetic raises (overflow, division by zero, log of 0), the scalar
function reruns the call in numpy and gives numpy's inf/nan with its warnings.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad as sg
from symgrad import optim, workloads
from symgrad.compiler import scalar
from symgrad.compiler.scalar import ScalarUnsupported
from symgrad.runtime.safety import MATH_NAMES, UnsafeModuleError, check_module_source

pytestmark = pytest.mark.filterwarnings("ignore::symgrad.SharedParameterWarning")

TOL = dict(rtol=1e-12, atol=1e-12)


def both(outputs, inputs=None):
    f = sg.compile(outputs, inputs, target="scalar")
    g = sg.compile(outputs, inputs, target="numpy")
    assert f.target == "scalar" and g.target == "numpy"
    return f, g


def same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            same(a[k], b[k])
        return
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
        return
    assert type(a) is type(b), (type(a), type(b))
    assert np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
    np.testing.assert_allclose(a, b, **TOL)


# ---------------------------------------------------------------------------------------
# W0, W4 and random small expressions: the numbers of the numpy target
# ---------------------------------------------------------------------------------------


def test_w0_loss_and_gradient_match_numpy():
    d = workloads.w0()
    x, t, a = sg.input("x"), sg.input("target"), sg.param("A")
    loss = (x * a - t) ** 2
    f, g = both({"loss": loss, "g": sg.grad(loss, [a])[0]})
    for i in d["indices"][:10]:
        args = dict(x=np.float64(d["x"][i]), target=np.float64(d["target"]), A=d["A"])
        same(f(**args), g(**args))
    assert "np." not in f.source.split("\ndef compute(")[1].split("return")[0]


def test_w4_loss_and_gradient_match_numpy_and_the_source_is_unrolled():
    d = workloads.w4()
    inp, tgt = sg.input("input", (5, 2)), sg.input("target", (5, 1))
    w = sg.param("weights", (2, 1))
    loss = sg.sum((inp @ w - tgt) ** 2) / 2
    f, g = both([loss, sg.grad(loss, [w])[0]])
    same(f(d["input"], d["target"], d["weights"]), g(d["input"], d["target"], d["weights"]))
    body = f.source.split("\ndef compute(")[1]
    assert "weights_1_0" in body and ".tolist()" in body and "np.matmul" not in body
    assert sg.compile([loss, sg.grad(loss, [w])[0]]).target == "scalar"  # auto: small


def _models():
    """(name, build) pairs: build() -> (outputs, {input name: value})."""
    rng = np.random.default_rng(7)
    xv = rng.normal(size=(3, 4))
    wv = rng.normal(size=(4, 2))
    bv = rng.normal(size=(2,))
    pv = rng.uniform(0.5, 2.0, size=(3, 4))

    def leaves():
        return (sg.input("x", (3, 4)), sg.param("w", (4, 2)), sg.param("b", (2,)),
                sg.input("p", (3, 4)))

    vals = {"x": xv, "w": wv, "b": bv, "p": pv}

    def mlp():
        x, w, b, _ = leaves()
        h = sg.tanh(x @ w + b)
        return sg.mean(h ** 2) + sg.sum(sg.sigmoid(h)), [w, b]

    def smooth_ops():
        x, w, b, p = leaves()
        e = sg.exp(x) * sg.log(p) + sg.sqrt(p) - sg.softplus(3 * x) + sg.sin(x) * sg.cos(p)
        return sg.sum(e * sg.log1p(p)) + sg.sum(sg.log_sigmoid(x @ w)), [w]

    def kinks():
        x, w, b, p = leaves()
        e = sg.relu(x) + sg.maximum(x, 0.1 * p) - sg.minimum(x, p) + sg.abs(x) * sg.sign(x)
        e = e + sg.where(x > 0, x, 2 * x) + sg.clip(x, -0.5, 0.5)
        return sg.sum(e * p), [w]

    def shapes():
        x, w, b, p = leaves()
        t = x.T @ p                                   # (4, 4)
        r = sg.reshape(t, (2, 8))
        s = sg.sum(r, axis=0) + sg.sum(x[1] * p[:, 2].reshape((3, 1)), axis=0).mean()
        bb = sg.broadcast_to(b, (3, 2))
        return sg.sum(s ** 2) + sg.sum((x @ w) * bb) + sg.max(x), [w, b]

    def softmax_ce():
        x, w, b, _ = leaves()
        logits = x @ w + b
        onehot = sg.constant(np.eye(2)[[0, 1, 1]])
        return sg.sum(-onehot * sg.log_softmax(logits, axis=-1)), [w, b]

    return [(fn.__name__, fn, vals) for fn in (mlp, smooth_ops, kinks, shapes, softmax_ce)]


@pytest.mark.parametrize("name,build,vals", _models(), ids=[m[0] for m in _models()])
def test_random_small_models_and_their_gradients_match_numpy(name, build, vals):
    loss, wrt = build()
    outs = [loss] + list(sg.grad(loss, wrt))
    try:
        f = sg.compile(outs, target="scalar")
    except ScalarUnsupported as err:
        # an op without a scalar form: auto falls back to numpy and says why
        auto = sg.compile(outs)
        assert auto.target == "numpy" and auto.target_reason == str(err).split(": ", 1)[1] \
            .rsplit("; use", 1)[0]
        pytest.skip(f"no scalar form: {err}")
    g = sg.compile(outs, target="numpy")
    args = {n: vals[n] for n in f.inputs}
    same(f(**args), g(**args))


def test_gradients_match_float64_central_differences():
    x, w = sg.input("x", (2, 3)), sg.param("w", (3,))
    loss = sg.sum(sg.softplus(x @ w) * sg.sigmoid(x @ w - 1.0)) + sg.mean(sg.tanh(w) ** 3)
    f = sg.compile([loss, sg.grad(loss, [w])[0]], target="scalar")
    rng = np.random.default_rng(3)
    xv, wv = rng.normal(size=(2, 3)), rng.normal(size=(3,))
    value, grad = f(xv, wv)
    h = 1e-6
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        fd = (f(xv, wv + e)[0] - f(xv, wv - e)[0]) / (2 * h)
        assert abs(fd - grad[i]) < 1e-7 * max(1.0, abs(grad[i]))


# ---------------------------------------------------------------------------------------
# Train steps
# ---------------------------------------------------------------------------------------


OPTIMIZERS = [lambda: optim.SGD(0.02), lambda: optim.Momentum(0.01, momentum=0.9),
              lambda: optim.Momentum(0.01, momentum=0.9, nesterov=True),
              lambda: optim.Adam(0.01), lambda: optim.RMSProp(0.01), lambda: optim.AdaGrad(0.1),
              lambda: optim.SGD(0.02, weight_decay=0.1)]


@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_w0_and_w4_train_steps_match_numpy(make_opt):
    d0, d4 = workloads.w0(), workloads.w4()
    x, t, a = sg.input("x"), sg.input("target"), sg.param("A")
    inp, tgt = sg.input("input", (5, 2)), sg.input("target", (5, 1))
    w = sg.param("weights", (2, 1))
    cases = [((x * a - t) ** 2, {"A": d0["A"]},
              [dict(x=float(d0["x"][i]), target=float(d0["target"])) for i in d0["indices"][:20]]),
             (sg.sum((inp @ w - tgt) ** 2) / 2, {"weights": d4["weights"]},
              [dict(input=d4["input"], target=d4["target"])] * 20)]
    for loss, init, batches in cases:
        s_step = sg.train_step(loss, make_opt(), target="scalar")
        n_step = sg.train_step(loss, make_opt(), target="numpy")
        assert s_step.target == "scalar" and n_step.target == "numpy"
        s_state, n_state = s_step.init(init), n_step.init(init)
        for batch in batches:
            ls, ln = s_step(s_state, **batch), n_step(n_state, **batch)
            assert type(ls) is float
            np.testing.assert_allclose(ls, ln, **TOL)
        for k in init:
            np.testing.assert_allclose(s_state.params[k], n_state.params[k], **TOL)
        assert s_state.step == n_state.step


def test_the_benchmark_w4_step_is_scalar_by_default():
    from benchmarks.impl_base import OptimizerSpec
    from benchmarks.impl_symgrad import build_step
    from benchmarks import workloads as bw
    wl = next(w for w in bw.catalogue() if w.name == "W4")
    step = build_step(wl, OptimizerSpec("sgd", wl.lr))
    assert step.target == "scalar", step.target_reason


# ---------------------------------------------------------------------------------------
# inf and nan: numpy's numbers where Python floats raise
# ---------------------------------------------------------------------------------------


def _with_warnings(fn, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
    return out, {type(w.message) for w in caught}


@pytest.mark.parametrize("build,value", [
    (lambda x: sg.sum(sg.exp(x)), np.array([1000.0, 1.0])),          # OverflowError
    (lambda x: sg.sum(sg.log(x)), np.array([0.0, 1.0])),              # ValueError
    (lambda x: sg.sum(1.0 / x), np.array([0.0, 1.0])),                # ZeroDivisionError
    (lambda x: sg.sum(sg.sqrt(x)), np.array([-1.0, 1.0])),            # ValueError
    (lambda x: sg.sum(x ** 3), np.array([1e200, 1.0])),               # OverflowError
    (lambda x: sg.sum(sg.relu(x) + sg.maximum(x, 1.0)), np.array([np.nan, 2.0])),
    (lambda x: sg.sum(sg.sigmoid(x) + sg.softplus(x)), np.array([-np.inf, np.inf])),
])
def test_inf_and_nan_are_numpys(build, value):
    x = sg.input("x", (2,))
    out = build(x)
    f, g = both([out, sg.grad(out, [x])[0]])
    got, got_warnings = _with_warnings(f, value)
    want, want_warnings = _with_warnings(g, value)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)  # inf == inf, nan == nan
    assert got_warnings == want_warnings


def test_a_train_step_that_overflows_takes_the_numpy_step_and_updates_once():
    x, a = sg.input("x"), sg.param("A")
    loss = sg.exp(a * x)
    s_step = sg.train_step(loss, optim.SGD(0.1), target="scalar")
    n_step = sg.train_step(loss, optim.SGD(0.1), target="numpy")
    s_state, n_state = s_step.init({"A": 1.0}), n_step.init({"A": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert s_step(s_state, x=1000.0) == n_step(n_state, x=1000.0) == np.inf
    np.testing.assert_array_equal(s_state.params["A"], n_state.params["A"])
    assert s_step(s_state, x=0.5) == n_step(n_state, x=0.5) or np.isnan(
        n_step(n_state, x=0.5))


# ---------------------------------------------------------------------------------------
# The option, the fallback, checks, cache and allowlist
# ---------------------------------------------------------------------------------------


def test_scalar_on_an_unsupported_function_names_why():
    x = sg.input("x", ("N", 2))
    with pytest.raises(ScalarUnsupported, match="symbolic shape"):
        sg.compile(sg.sum(x), target="scalar")
    f = sg.compile(sg.sum(x))
    assert f.target == "numpy" and "symbolic shape" in f.target_reason
    y = sg.input("y", (2, 2), dtype="float32")
    with pytest.raises(ScalarUnsupported, match="float32"):
        sg.compile(sg.sum(y), target="scalar")
    assert sg.compile(sg.sum(y)).target == "numpy"
    with pytest.raises(ValueError, match="target must be one of"):
        sg.compile(sg.sum(y), target="fast")
    with pytest.raises(ValueError, match="target must be one of"):
        sg.train_step(sg.sum(sg.param("q", (2,)) ** 2), optim.SGD(0.1), target="cuda")


def test_auto_keeps_numpy_beyond_the_threshold():
    n = scalar.SCALAR_MAX_ELEMENTS + 1
    x = sg.input("x", (n,))
    f = sg.compile(sg.sum(x * x))
    assert f.target == "numpy" and "SCALAR_MAX_ELEMENTS" in f.target_reason
    assert sg.compile(sg.sum(x * x), target="scalar").target == "scalar"  # forceable


def test_input_checks_name_the_input():
    x, w = sg.input("x", (3, 2)), sg.param("w", (2,))
    f = sg.compile(sg.sum(x @ w), target="scalar")
    with pytest.raises(ValueError, match="'x'.*shape"):
        f(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(TypeError, match="'w'.*dtype"):
        f(np.zeros((3, 2)), np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="missing"):
        f(np.zeros((3, 2)))
    assert f(np.ones((3, 2)), np.array([1.0, 2.0])) == 9.0


def test_the_target_is_part_of_the_cache_key():
    x = sg.input("x", (2,))
    keys = {sg.compile(sg.sum(sg.exp(x)), target=t).key for t in scalar.TARGETS}
    assert len(keys) == 3


def test_allowlist_admits_math_functions_only():
    ok = "import numpy as np\nimport math\n\ndef f(x):\n    return math.exp(x) + math.inf\n"
    check_module_source(ok)
    for bad in ["import math as m\n", "from math import exp\n", "import os\n",
                "import math\ndef f(x):\n    return math.sys\n",
                "import math\ndef f():\n    return math\n",
                "import math\nmath = 1\n",
                "import math\ndef f(x):\n    return math.exp.__self__\n"]:
        with pytest.raises(UnsafeModuleError):
            check_module_source(bad)
    written = set()
    for fn in list(scalar.MATH_FUNCTIONS.values()) + ["math.pow", "math.inf", "math.nan"]:
        written.add(fn.split(".", 1)[1])
    assert written <= MATH_NAMES


def test_the_scalar_module_passes_the_verifier_and_allowlist_from_the_cache():
    x, w = sg.input("x", (2, 2)), sg.param("w", (2,))
    loss = sg.sum(sg.sigmoid(x @ w))
    step = sg.train_step(loss, optim.Adam(0.1), target="scalar")
    check_module_source(step.source.split("\n", 1)[1] if step.source.startswith("# symgrad-entry")
                        else step.source)
    from symgrad.compiler.verify import verify_source
    src = step.source
    verify_source(src, "train_step", ("temp", "param:_state"))


def test_outputs_with_no_elements_keep_their_shape():
    """A nested list literal of no elements is numpy's (0,): an output of shape (0, 2) (a
    zero-size constant broadcast against an input) came back as (0,) from the scalar
    target, where the numpy target gives (0, 2)."""
    e = sg.input("e", (2,), "float64")
    c = sg.constant(np.zeros((0, 1)))
    loss = sg.sum(c * e) + sg.sum(e * e)
    outputs = [c * e, sg.exp(c * e), loss, *sg.grad(loss, [e])]
    scalar = sg.compile(outputs, target="scalar")
    numpy_ = sg.compile(outputs, target="numpy")
    args = (np.array([1.5, -2.0]),)
    for got, want in zip(scalar(*args), numpy_(*args)):
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)
