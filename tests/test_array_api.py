"""The array API target (``backend="array_api"``): every op's spec row, compiled once, run
on array_api_strict arrays (the reference implementation, which rejects anything outside
the standard) and on PyTorch CPU tensors, agrees with the numpy backend to 1e-12 in
float64, forward and gradients. Each namespace is skipped when it is not installed (the
test extra installs array-api-compat and array-api-strict; CI installs PyTorch, and with
``SYMGRAD_REQUIRE_TORCH=1`` a missing torch fails instead of skipping)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad.compiler.array_api import UnsupportedOpError

from test_op_spec import SPEC, _values

pytest.importorskip("array_api_compat")


def _strict():
    return pytest.importorskip("array_api_strict")


def _torch():
    if os.environ.get("SYMGRAD_REQUIRE_TORCH", "") == "1":
        import torch  # a failure, not a skip, where CI promises PyTorch
        return torch
    return pytest.importorskip("torch")


def _to_numpy(value):
    """An output of any namespace as a numpy array (through DLPack; 0-d values too)."""
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    if isinstance(value, (int, float)):
        return np.asarray(value)
    return np.from_dlpack(value)


NAMESPACES = {
    "array_api_strict": lambda v: _strict().asarray(v),
    "torch": lambda v: _torch().asarray(v),
}


#: ops refused on this target, and why: compiling them must say so, naming the op
NUMPY_ONLY = {
    # numpy's partition leaves every position but the kth in an order of its own; the
    # standard has no partition, and a sort would be a different (valid) answer
    "argpartition": "numpy's order", "partition": "numpy's order",
}


def _spec_cases():
    for name in sg.PUBLIC_OPS:
        for k, case in enumerate(SPEC.get(name, [])):
            yield pytest.param(name, case, id=f"{name}-{k}")


def _build(name, case):
    """Both modules of a spec row (numpy, array API) and its input values."""
    build, _, shapes, domain = case
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    values = _values(shapes, domain, rng)
    leaves = [sg.param(f"a{i}", s, "float64", shared=True) for i, s in enumerate(shapes)]
    out = build(*leaves)
    weights = rng.standard_normal(out.shape)
    target = sg.sum(out * sg.constant(weights)) if out.shape else out * float(weights)
    outputs = [out, *sg.grad(target, leaves)]
    reference = sg.compile(outputs, inputs=leaves)
    generated = sg.compile(outputs, inputs=leaves, backend="array_api")  # every op has a form
    return reference, generated, values


def test_every_op_has_a_spec_row_here():
    # every op is checked below: an op without a row would be an op never run on the target
    assert set(sg.PUBLIC_OPS) <= set(SPEC)


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
@pytest.mark.parametrize("name,case", list(_spec_cases()))
def test_spec_row_agrees_with_numpy_backend(name, case, namespace):
    if name in NUMPY_ONLY:
        with pytest.raises(NotImplementedError, match="argpartition"):
            _build(name, case)
        return
    convert = NAMESPACES[namespace]
    reference, generated, values = _build(name, case)
    want = reference(*values)
    got = generated(*[convert(v) for v in values])
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        if not isinstance(g, (int, float)):
            assert type(g).__module__.split(".")[0] == namespace, (name, i, type(g))
        g = _to_numpy(g)
        assert g.shape == np.shape(w) and g.dtype == np.float64, (name, i, g.shape, g.dtype)
        what = "forward" if i == 0 else f"gradient of input {i - 1}"
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"{name}: {what}")


def test_the_module_calls_only_the_standard_through_xp():
    _, generated, _ = _build("logsumexp", SPEC["logsumexp"][0])
    body = generated.source[generated.source.index("def compute("):]
    assert "np." not in body and "xp.logaddexp" not in body
    assert "xp, _dev = _namespace(" in body
    assert "import array_api_compat" in generated.source


def test_numpy_arrays_run_too_and_float32_stays_float32():
    x = sg.input("x", ("N", 3), "float32")
    w = sg.param("w", (3, 2), "float32")
    loss = sg.mean(sg.relu(x @ w) ** 2)
    f = sg.compile([loss, *sg.grad(loss, [w])], backend="array_api")
    xv = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    wv = np.ones((3, 2), np.float32)
    value, gw = f(xv, wv)
    assert np.asarray(value).dtype == np.float32 and gw.dtype == np.float32
    ref = sg.compile([loss, *sg.grad(loss, [w])])(xv, wv)
    np.testing.assert_allclose(gw, ref[1], rtol=1e-6)
    # a smaller batch: the symbolic dim is read from the input
    assert f(xv[:2], wv)[1].shape == (3, 2)


def test_inputs_are_checked_through_the_standard():
    xs = _strict()
    x = sg.input("x", ("N", 3))
    f = sg.compile(sg.sum(sg.exp(x)), backend="array_api")
    with pytest.raises(TypeError, match=r"input 'x' must have dtype float64, got"):
        f(xs.ones((2, 3), dtype=xs.float32))
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(N, 3\), got \(2, 4\)"):
        f(xs.ones((2, 4), dtype=xs.float64))


def test_inputs_of_two_namespaces_are_refused():
    xs, torch = _strict(), _torch()
    a, b = sg.input("a", (2,)), sg.input("b", (2,))
    f = sg.compile(a * b, backend="array_api")
    with pytest.raises(TypeError, match="one array API namespace"):
        f(xs.ones(2, dtype=xs.float64), torch.ones(2, dtype=torch.float64))


def test_an_op_without_a_standard_form_names_the_op_and_the_backend():
    from symgrad import expr as tensors
    from symgrad.ops.record import lift
    # an elementwise function whose numpy form (np.i0) the standard does not have
    node = lift("besselish", lambda x: x, "np.i0")
    x = sg.input("x", (3,))
    y = tensors.elementwise_node("besselish", node, x)
    with pytest.raises(UnsupportedOpError, match=r"besselish: .*np\.i0.*'array_api'"):
        sg.compile(y, backend="array_api")
    assert issubclass(UnsupportedOpError, NotImplementedError)


def test_missing_array_api_compat_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "array_api_compat", None)
    x = sg.input("x", (3,))
    with pytest.raises(ImportError, match=r"symgrad\[array_api\]"):
        sg.compile(sg.exp(x), backend="array_api")


def test_unknown_backend_says_what_is_supported():
    x = sg.input("x", (3,))
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        sg.compile(sg.exp(x), backend="jax")
    w = sg.param("w", (3,))
    with pytest.raises(ValueError, match="target='scalar'.*backend='array_api'"):
        sg.train_step(sg.sum(w * x), sg.optim.SGD(0.1), backend="array_api", target="scalar")


def test_the_cache_key_includes_the_backend():
    x = sg.input("x", (3,))
    a = sg.compile(sg.exp(x))
    b = sg.compile(sg.exp(x), backend="array_api")
    assert a.key != b.key and "xp.exp" in b.source and "np.exp" in a.source


# (ops with float64 constants in their spec rows promote to float64, as numpy does, and
# float_power computes in float64 whatever its operands)
@pytest.mark.parametrize("name,case", [c for c in _spec_cases() if c.values[0] not in (
    "one_hot", "softmax_cross_entropy", "sigmoid_cross_entropy", "float_power",
    *NUMPY_ONLY)])
def test_float32_in_float32_out_on_array_api_strict(name, case):
    xs = _strict()
    build, _, shapes, domain = case
    values = [v.astype(np.float32) for v in _values(shapes, domain, np.random.default_rng(0))]
    leaves = [sg.param(f"b{i}", s, "float32", shared=True) for i, s in enumerate(shapes)]
    out = build(*leaves)
    target = sg.sum(out) if out.shape else out
    f = sg.compile([out, *sg.grad(target, leaves)], inputs=leaves, backend="array_api")
    for r in f(*[xs.asarray(v) for v in values]):
        assert r.dtype == xs.float32, (name, r.dtype)


# -- the forms written for the array API target, at the values where they are delicate ----


def _agree_on_both(outputs, leaves, values, rtol=1e-12):
    """The array API module of ``outputs`` agrees with the numpy backend on array_api_strict
    and on torch (nan where numpy has nan)."""
    reference = sg.compile(outputs, inputs=leaves)(*values)
    generated = sg.compile(outputs, inputs=leaves, backend="array_api")
    for namespace, convert in NAMESPACES.items():
        got = generated(*[convert(v) for v in values])
        for i, (g, w) in enumerate(zip(got, reference)):
            g = _to_numpy(g)
            assert g.shape == np.shape(w), (namespace, i, g.shape, np.shape(w))
            np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-12,
                                       err_msg=f"{namespace}: output {i}")


def _with_grads(build, values):
    leaves = [sg.param(f"a{i}", v.shape, "float64", shared=True) for i, v in enumerate(values)]
    out = build(*leaves)
    weights = np.random.default_rng(3).standard_normal(out.shape)
    target = sg.sum(out * sg.constant(weights)) if out.shape else out
    return [out, *sg.grad(target, leaves)], leaves


ZEROS = np.array([[0.0, 2.0, -1.5, 3.0], [0.0, 0.0, 2.0, 0.5], [1.5, -2.0, 0.5, 3.0]])
SPECIAL = np.array([0.0, -0.0, 1.5, -2.5, np.inf, -np.inf, np.nan, 7.0])


@pytest.mark.parametrize("build,values", [
    # the exact gradient of a product with one zero, two zeros and none per slice
    (lambda a: sg.prod(a, axis=1), [ZEROS]),
    (lambda a: sg.prod(a), [ZEROS[2:]]),
    (lambda a: sg.cumprod(a, axis=1), [ZEROS]),
    # negative steps: flipped, then a positive slice (its adjoint: scattered, then flipped)
    (lambda a: a[::-1, 5:0:-2], [np.arange(28.0).reshape(4, 7)]),
    (lambda a: a[-1::-3, None, 2], [np.arange(28.0).reshape(4, 7)]),
    (lambda a: a[:, 6:-9:-4] * 2.0, [np.arange(28.0).reshape(4, 7)]),
    (lambda a: sg.sum(a[1:3:-1]) + sg.sum(a), [np.arange(28.0).reshape(4, 7)]),
    # repeated and negative indices add up in the gradient; indices broadcast along axes
    (lambda a: sg.take(a, [[-1, 0], [3, -1]], axis=0), [np.arange(12.0).reshape(4, 3)]),
    (lambda a: sg.take_along_axis(a, np.array([[2, -1, 0, 2]]), 1),
     [np.arange(12.0).reshape(3, 4)]),
    (lambda a: sg.sort(a, axis=0), [np.array([[3.0, 1.0], [1.0, 1.0], [2.0, -1.0]])]),
    # einsum: three operands, a letter only one has, a full sum, a transpose, a batch
    (lambda a, b, c: sg.einsum("ij,jk,kl->il", a, b, c),
     [np.arange(6.0).reshape(2, 3), np.ones((3, 4)), np.arange(8.0).reshape(4, 2)]),
    (lambda a, b: sg.einsum("ijk,ik->j", a, b), [np.arange(24.0).reshape(2, 3, 4),
                                                 np.arange(8.0).reshape(2, 4)]),
    (lambda a: sg.einsum("ij->", a), [np.arange(6.0).reshape(2, 3)]),
    (lambda a: sg.einsum("ij->ji", a), [np.arange(6.0).reshape(2, 3)]),
    (lambda a, b: sg.einsum("bij,bjk->bki", a, b), [np.arange(12.0).reshape(2, 2, 3),
                                                    np.arange(18.0).reshape(2, 3, 3)]),
    (lambda a, b: sg.cross(a, b), [np.arange(6.0).reshape(2, 3), np.array([1.0, -2.0, 0.5])]),
    (lambda a: sg.pad(a, ((1, 0), (2, 3)), constant_values=-1.5), [np.ones((2, 3))]),
    # numpy's special values: nan, infinities, signed zeros
    (sg.nan_to_num, [SPECIAL]),
    (lambda a: sg.fmax(a, SPECIAL[::-1].copy()), [SPECIAL]),
    (lambda a: sg.fmin(a, SPECIAL[::-1].copy()), [SPECIAL]),
    (lambda a: sg.heaviside(a, np.full(8, 0.25)), [SPECIAL]),
    (lambda a: sg.sinc(a) + sg.cbrt(a) + sg.exp2(a / 8.0), [np.array([0.0, -8.0, 27.0, 0.3])]),
    (lambda a, b: sg.fmod(a, b), [np.array([5.5, -5.5, 5.5, -5.5, 0.0]),
                                  np.array([2.0, 2.0, -2.0, -2.0, 3.0])]),
], ids=lambda v: "" if isinstance(v, list) else None)
def test_delicate_values_agree_with_numpy_backend(build, values):
    _strict(), _torch()
    outputs, leaves = _with_grads(build, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        _agree_on_both(outputs, leaves, values)


@pytest.mark.parametrize("layer", ["conv2d", "max_pool2d"])
def test_second_order_gradients_of_the_convolution_helpers(layer):
    # grad of grad: conv_transpose2d, conv2d_filter_grad and max_pool2d_gather run too
    _strict(), _torch()
    rng = np.random.default_rng(7)
    xv = rng.standard_normal((2, 2, 5, 6))
    wv = rng.standard_normal((3, 2, 3, 2))
    x = sg.param("x", xv.shape, "float64")
    w = sg.param("w", wv.shape, "float64")
    if layer == "conv2d":
        y = sg.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2))
        leaves, values = [x, w], [xv, wv]
    else:
        y = sg.max_pool2d(x * 1.0, 3, stride=2, padding=1)
        leaves, values = [x], [xv]
    loss = sg.sum(sg.tanh(y) ** 2)
    first = sg.grad(loss, leaves)
    second = sg.grad(sum(sg.sum(g * g) for g in first), leaves)
    _agree_on_both([loss, *first, *second], leaves, values)


# -- train steps on the array API target ---------------------------------------------------


def _w1_case():
    from symgrad import workloads
    d = workloads.w1()
    x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
    w1, w2 = sg.param("w1", (2, 3)), sg.param("w2", (3, 1))
    loss = sg.mean(((x @ w1) @ w2 - y) ** 2)
    batches = [dict(zip(("x", "y"), workloads.w1_batch(d, i))) for i in range(4)]
    return loss, {"w1": d["w1"], "w2": d["w2"]}, batches


def _w3_case():
    """A W3-shaped MLP (relu layers, mean squared error on one-hot labels), small."""
    from symgrad import data, workloads
    sizes = (20, 16, 12, 10)
    x, onehot = sg.input("x", ("N", sizes[0])), sg.input("onehot", ("N", sizes[-1]))
    h = x
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        h = h @ sg.param(f"w{i}", (n_in, n_out)) + sg.param(f"b{i}", (n_out,))
        if i < len(sizes) - 1:
            h = sg.relu(h)
    loss = sg.mean((onehot - h) ** 2)
    params = workloads.mlp_params(sizes, seed=3, dtype="float64")
    d = workloads.synthetic_mnist(41, seed=5, dtype="float64", features=sizes[0])
    batches = [{"x": xb, "onehot": yb}
               for xb, yb in data.minibatches(d["x"], d["onehot"], batch_size=16, seed=1)]
    return loss, params, batches


OPTIMIZERS = {
    "SGD": lambda: sg.optim.SGD(0.1),
    "Momentum": lambda: sg.optim.Momentum(0.05, momentum=0.9, nesterov=True),
    "Adam": lambda: sg.optim.Adam(0.01),
    "Adam-decay-clip": lambda: sg.optim.Adam(0.01, weight_decay=0.1, clip_norm=0.5),
}


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("case", [_w1_case, _w3_case], ids=["W1", "W3"])
def test_train_step_agrees_with_the_numpy_step(case, optimizer, namespace):
    convert = NAMESPACES[namespace]
    loss, initial, batches = case()
    reference = sg.train_step(loss, OPTIMIZERS[optimizer]())
    step = sg.train_step(loss, OPTIMIZERS[optimizer](), backend="array_api")
    assert step.backend == "array_api" and "np." not in step.source.split("def train_step(")[1]
    ref_state = reference.init(initial)
    state = step.init({k: convert(v) for k, v in initial.items()})
    for i, batch in enumerate(batches):
        want = reference(ref_state, **batch)
        got = step(state, **{k: convert(v) for k, v in batch.items()})
        assert isinstance(got, float)
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"loss of step {i}")
        for name in initial:
            value = state.params[name]
            assert type(value).__module__.split(".")[0] == namespace, type(value)
            np.testing.assert_allclose(_to_numpy(value), ref_state.params[name], rtol=1e-12,
                                       atol=1e-15, err_msg=f"{name} after step {i}")
            for slot, ref_slot in ref_state.slots[name].items():
                np.testing.assert_allclose(_to_numpy(state.slots[name][slot]), ref_slot,
                                           rtol=1e-12, atol=1e-15,
                                           err_msg=f"{name}'s {slot} after step {i}")
    assert state.step == len(batches)


def test_array_api_train_step_follows_its_optimizer_and_checks_its_arguments():
    xs = _strict()
    loss, initial, batches = _w1_case()
    step = sg.train_step(loss, sg.optim.SGD(0.1), backend="array_api")
    reference = sg.train_step(loss, sg.optim.SGD(0.1))
    state = step.init({k: xs.asarray(v) for k, v in initial.items()})
    ref_state = reference.init(initial)
    step.optimizer.lr = reference.optimizer.lr = 0.02  # read at every call: a schedule
    ref_batch = batches[0]
    batch = {k: xs.asarray(v) for k, v in ref_batch.items()}
    np.testing.assert_allclose(step(state, batch["x"], y=batch["y"]),
                               reference(ref_state, **ref_batch), rtol=1e-12)
    np.testing.assert_allclose(_to_numpy(state.params["w2"]), ref_state.params["w2"],
                               rtol=1e-12)
    step.optimizer = sg.optim.SGD(0.1, weight_decay=0.5)  # another update rule
    with pytest.raises(TypeError, match="update rule"):
        step(state, **batch)
    step.optimizer = sg.optim.SGD(0.1)
    with pytest.raises(TypeError, match=r"missing input\(s\) \['y'\]"):
        step(state, x=batch["x"])
    with pytest.raises(TypeError, match="unknown input 'z'"):
        step(state, z=batch["x"], **batch)
    with pytest.raises(ValueError, match=r"missing initial value\(s\) for parameter\(s\) \['w2'\]"):
        step.init({"w1": initial["w1"]})
    with pytest.raises(ValueError, match=r"parameter 'w1' must have shape \(2, 3\)"):
        step.init({"w1": np.ones((3, 2)), "w2": initial["w2"]})


def test_array_api_step_bound_to_its_state_and_its_check_inputs_attribute():
    xs = _strict()
    loss, initial, batches = _w1_case()
    step = sg.train_step(loss, sg.optim.SGD(0.1), backend="array_api")
    assert step.check_inputs is True  # the array API target always checks (namespace, device)
    bound_state = step.init({k: xs.asarray(v) for k, v in initial.items()})
    plain_state = step.init({k: xs.asarray(v) for k, v in initial.items()})
    fit = step.bound(bound_state)
    for b in batches[:2]:
        batch = {k: xs.asarray(v) for k, v in b.items()}
        assert fit(**batch) == step(plain_state, **batch)
    np.testing.assert_array_equal(_to_numpy(bound_state.params["w1"]),
                                  _to_numpy(plain_state.params["w1"]))
    assert bound_state.step == 2
    with pytest.raises(TypeError, match="expected an ArrayApiTrainState"):
        step.bound(sg.train_step(loss, sg.optim.SGD(0.1)).init(initial))
    other = sg.train_step(sg.sum(sg.param("p", (2,)) ** 2), sg.optim.SGD(0.1),
                          backend="array_api")
    with pytest.raises(ValueError, match="parameters"):
        step.bound(other.init({"p": xs.asarray(np.zeros(2))}))


def test_array_api_train_step_keeps_a_float32_model_in_float32():
    # the hyperparameters are fed as 0-d arrays of the parameters' dtype: a float64 one
    # would promote the whole step to float64 in the standard
    xs = _strict()
    x, y = sg.input("x", ("N", 2), "float32"), sg.input("y", ("N", 1), "float32")
    w = sg.param("w", (2, 1), "float32")
    loss = sg.mean((x @ w - y) ** 2)
    step = sg.train_step(loss, sg.optim.Adam(0.1), backend="array_api")
    reference = sg.train_step(loss, sg.optim.Adam(0.1))
    state = step.init({"w": xs.asarray(np.zeros((2, 1), np.float32))})
    ref_state = reference.init({"w": np.zeros((2, 1), np.float32)})
    xb, yb = np.eye(2, dtype=np.float32), np.ones((2, 1), np.float32)
    for _ in range(3):
        got = step(state, x=xs.asarray(xb), y=xs.asarray(yb))
        want = reference(ref_state, x=xb, y=yb)
    assert state.params["w"].dtype == xs.float32 and state.slots["w"]["v"].dtype == xs.float32
    # Adam's bias corrections are computed in float32 here, in Python floats by numpy
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(_to_numpy(state.params["w"]), ref_state.params["w"], rtol=1e-5)
