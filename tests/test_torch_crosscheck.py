"""Cross-check against PyTorch autograd: symgrad's compiled gradients == the tape's ==
torch's, in float64, on the reference workloads (docs/workloads.md) and a softmax-cross-entropy
classifier; and training steps of ``sg.train_step`` (SGD, Adam, with clipping) follow
``torch.optim`` step by step from the same initial values.

Each model is written three times, independently, in each framework's own idiom (no shared
model code), from the same data and initial values (:mod:`symgrad.workloads`).

The tests are skipped when PyTorch is not installed, unless ``SYMGRAD_REQUIRE_TORCH=1``, in
which case a missing torch is a failure. Install it with ``pip install torch==2.13.0`` (a
CPU build is served for that exact version).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import optim, workloads
from symgrad import tape as tp

REQUIRE_TORCH = os.environ.get("SYMGRAD_REQUIRE_TORCH", "") == "1"
RTOL = 1e-10  # gradients: float64, different summation orders only


def _import_torch():
    try:
        import torch
    except ImportError as err:
        if REQUIRE_TORCH:
            pytest.fail(f"SYMGRAD_REQUIRE_TORCH=1 but PyTorch cannot be imported ({err}); "
                        f"pip install torch==2.13.0")
        pytest.skip("PyTorch is not installed (pip install torch==2.13.0); set "
                    "SYMGRAD_REQUIRE_TORCH=1 to make this a failure")
    return torch


@pytest.fixture(scope="module")
def torch():
    return _import_torch()


#: the tests of this module share one private cache (conftest's ``module_cache_env``)
pytestmark = pytest.mark.usefixtures("module_cache_env")


def test_torch_is_available():
    """Fails (rather than skips) when SYMGRAD_REQUIRE_TORCH=1 and torch is missing."""
    torch = _import_torch()
    assert torch.tensor([1.0], dtype=torch.float64).dtype == torch.float64


def assert_close(name, got, want, rtol=RTOL, what=""):
    """``|got - want| <= rtol * max|want|`` elementwise (and shapes equal)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape} {what}"
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-300)
    err = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol} {what}\n{got}\n{want}"


def three_way(names, sym, tape, torch_grads, rtol=RTOL):
    for n in names:
        assert_close(f"d/d{n} symbolic vs torch", sym[n], torch_grads[n], rtol)
        assert_close(f"d/d{n} tape vs torch", tape[n], torch_grads[n], rtol)
        assert_close(f"d/d{n} symbolic vs tape", sym[n], tape[n], rtol)


def sym_gradients(loss, params: dict, inputs: dict, values: dict):
    """Compile ``loss`` and its gradients; return (loss value, {name: gradient})."""
    names = list(params)
    f = sg.compile([loss, *sg.grad(loss, [params[n] for n in names])],
                   inputs=[*inputs.values(), *params.values()])
    out = f(**values)
    return float(out[0]), dict(zip(names, out[1:]))


def tape_gradients(model, params: dict, data: dict):
    variables = {n: tp.Variable(v) for n, v in params.items()}
    with tp.GradientTape() as t:
        loss = model(variables, data)
    grads = t.gradient(loss, list(variables.values()))
    return float(np.asarray(loss.value)), dict(zip(variables, grads))


def torch_gradients(torch, model, params: dict, data: dict):
    tparams = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True)
               for n, v in params.items()}
    tdata = {n: torch.from_numpy(np.asarray(v)) for n, v in data.items()}
    loss = model(tparams, tdata)
    loss.backward()
    return float(loss.detach()), {n: p.grad.numpy() for n, p in tparams.items()}


def all_three(torch, symbolic, tape_model, torch_model, params: dict, batch: dict,
              torch_data: dict | None = None):
    """``(loss, {name: gradient})`` at the same point from the compiled code of
    ``symbolic()``, from the tape and from torch (which reads ``torch_data`` if given)."""
    loss, sp, si = symbolic()
    torch_data = batch if torch_data is None else torch_data
    return (sym_gradients(loss, sp, si, {**batch, **params}),
            tape_gradients(tape_model, params, batch),
            torch_gradients(torch, torch_model, params, torch_data))


# ------------------------------------------------------------------------------------------
# W1: two-layer linear network
# ------------------------------------------------------------------------------------------


def w1_symbolic():
    x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
    w1, w2 = sg.param("w1", (2, 3)), sg.param("w2", (3, 1))
    loss = sg.mean(((x @ w1) @ w2 - y) ** 2)
    return loss, {"w1": w1, "w2": w2}, {"x": x, "y": y}


def w1_tape(p, d):
    return tp.mean(((d["x"] @ p["w1"]) @ p["w2"] - d["y"]) ** 2)


def w1_torch(p, d):
    return torch_mod().mean(((d["x"] @ p["w1"]) @ p["w2"] - d["y"]) ** 2)


def torch_mod():
    import torch
    return torch


@pytest.mark.parametrize("step", [0, 1, 3])
def test_w1_gradients(torch, step):
    data = workloads.w1()
    xb, yb = workloads.w1_batch(data, step)
    params = {"w1": data["w1"], "w2": data["w2"]}
    batch = {"x": xb, "y": yb}
    (s_loss, s_grads), (t_loss, t_grads), (r_loss, r_grads) = all_three(
        torch, w1_symbolic, w1_tape, w1_torch, params, batch)
    assert_close("loss", [s_loss, t_loss], [r_loss, r_loss])
    three_way(params, s_grads, t_grads, r_grads)


# ------------------------------------------------------------------------------------------
# W2: gradients you can check by hand
# ------------------------------------------------------------------------------------------


def test_w2_1_vector_cost_and_one_step(torch):
    d = workloads.w2_1()
    # symbolic: a non-scalar target is differentiated as the sum of its elements
    X = sg.constant(d["X"], name="X")
    w = sg.param("w", (2,))
    Y = w * X
    cost = Y[1] * Y
    f = sg.compile([cost, *sg.grad(cost, [w])], inputs=[w])
    s_cost, s_grad = f(d["w"])
    # tape
    wv = tp.Variable(d["w"])
    with tp.GradientTape() as t:
        Yt = wv * d["X"]
        cost_t = Yt[1] * Yt
    t_grad = t.gradient(cost_t, wv)
    # torch
    wt = torch.tensor(d["w"], requires_grad=True)
    Yr = wt * torch.from_numpy(d["X"])
    cost_r = Yr[1] * Yr
    cost_r.backward(torch.ones_like(cost_r))
    assert_close("cost", s_cost, cost_r.detach().numpy())
    assert_close("cost (tape)", cost_t.value, cost_r.detach().numpy())
    three_way(["w"], {"w": s_grad}, {"w": t_grad}, {"w": wt.grad.numpy()})
    np.testing.assert_array_equal(s_grad, d["expected_grad"])  # [6, 28], exact

    # one gradient-descent step with lr = 1: symgrad's train step and torch.optim.SGD
    step = sg.train_step(cost, optim.SGD(d["lr"]))
    state = step.init({"w": d["w"]})
    step(state)
    wt2 = torch.tensor(d["w"], requires_grad=True)
    opt = torch.optim.SGD([wt2], lr=d["lr"])
    Yr2 = wt2 * torch.from_numpy(d["X"])
    (Yr2[1] * Yr2).sum().backward()
    opt.step()
    np.testing.assert_array_equal(state.params["w"], d["expected_w"])  # [-4, -25]
    assert_close("w after one step", state.params["w"], wt2.detach().numpy())


def test_w2_2_two_variables(torch):
    x, y = sg.param("x", ()), sg.param("y", ())
    f_sym = x * x * y + y + 2
    gx, gy = sg.grad(f_sym, [x, y])
    # the symbolic forms of docs/workloads.md: 2*x*y and x**2 + 1
    assert sympy.expand(gx.expr - 2 * x.expr * y.expr) == 0, str(gx)
    assert sympy.expand(gy.expr - x.expr ** 2 - 1) == 0, str(gy)
    f = sg.compile([f_sym, gx, gy], inputs=[x, y])
    s_val, s_gx, s_gy = f(np.float64(3.0), np.float64(4.0))
    xv, yv = tp.Variable(3.0), tp.Variable(4.0)
    with tp.GradientTape() as t:
        val = xv * xv * yv + yv + 2
    t_gx, t_gy = t.gradient(val, [xv, yv])
    xr = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    yr = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    (xr * xr * yr + yr + 2).backward()
    three_way(["x", "y"], {"x": s_gx, "y": s_gy}, {"x": t_gx, "y": t_gy},
              {"x": xr.grad.numpy(), "y": yr.grad.numpy()})
    assert (float(s_val), float(s_gx), float(s_gy)) == (42.0, 24.0, 10.0)


def test_w2_3_sin_squared(torch):
    x = sg.param("x", ())
    f_sym = sg.sin(x) ** 2
    (gx,) = sg.grad(f_sym, [x])
    f = sg.compile([f_sym, gx], inputs=[x])
    xs = np.array([math.pi / 2, 0.3, -1.2, 2.5])
    for xv0 in xs:
        s_val, s_g = f(np.float64(xv0))
        xv = tp.Variable(xv0)
        with tp.GradientTape() as t:
            val = tp.sin(xv) ** 2
        t_g = t.gradient(val, xv)
        xr = torch.tensor(xv0, dtype=torch.float64, requires_grad=True)
        (torch.sin(xr) ** 2).backward()
        r_g = float(xr.grad)
        # at pi/2 the derivative is 0 up to roundoff: compare absolutely there
        for label, g in (("symbolic", s_g), ("tape", t_g)):
            assert abs(float(g) - r_g) <= 1e-15 + RTOL * abs(r_g), (label, xv0, g, r_g)
        assert abs(float(s_val) - math.sin(xv0) ** 2) <= 1e-15
    assert abs(float(f(np.float64(math.pi / 2))[0]) - 1.0) <= 1e-15


def test_w2_4_straight_through_custom_gradient(torch):
    """sign forward, hard-tanh's gradient backward: sg.custom_gradient, the tape's
    custom_gradient and a torch.autograd.Function agree."""
    @sg.custom_gradient
    def ste_sign(x):
        def grad(dy):
            return dy * sg.where(sg.abs(x) <= 1, 1.0, 0.0)
        return sg.sign(x), grad

    @tp.custom_gradient
    def ste_sign_tape(x):
        xv = np.asarray(x.value)

        def grad(dy):
            return np.asarray(dy.value) * (np.abs(xv) <= 1)
        return np.sign(xv), grad

    class SteSign(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.sign(x)

        @staticmethod
        def backward(ctx, dy):
            (x,) = ctx.saved_tensors
            return dy * (x.abs() <= 1).to(dy.dtype)

    xv = np.array([-2.5, -0.7, 0.3, 0.9, 1.6, -1.1])
    u = np.random.default_rng(4).standard_normal(xv.shape)
    x = sg.param("x", xv.shape)
    loss = sg.sum(ste_sign(x) * u * x)
    f = sg.compile([loss, *sg.grad(loss, [x])], inputs=[x])
    s_loss, s_g = f(xv)
    xt = tp.Variable(xv)
    with tp.GradientTape() as t:
        lt = tp.sum(ste_sign_tape(xt) * u * xt)
    t_g = t.gradient(lt, xt)
    xr = torch.tensor(xv, requires_grad=True)
    lr_ = (SteSign.apply(xr) * torch.from_numpy(u) * xr).sum()
    lr_.backward()
    assert_close("loss", [s_loss, float(lt.value)], [float(lr_.detach())] * 2)
    three_way(["x"], {"x": s_g}, {"x": t_g}, {"x": xr.grad.numpy()})


def test_w2_5_grad_ys_stop_gradient(torch):
    """Several targets with given cotangents (grad_ys / output_gradients / grad_outputs),
    through a stop_gradient (detach)."""
    rng = np.random.default_rng(5)
    av, bv = rng.standard_normal((3, 2)), rng.standard_normal((2,))
    gy1, gy2 = rng.standard_normal((3, 2)), rng.standard_normal(())
    a, b = sg.param("a", (3, 2)), sg.param("b", (2,))
    y1 = sg.tanh(a * b) + sg.stop_gradient(a) * a
    y2 = sg.sum(sg.exp(sg.stop_gradient(b) * b) * a)
    ga, gb = sg.grad([y1, y2], [a, b], grad_ys=[sg.constant(gy1), sg.constant(gy2)])
    s_ga, s_gb = sg.compile([ga, gb], inputs=[a, b])(av, bv)
    at, bt = tp.Variable(av), tp.Variable(bv)
    with tp.GradientTape() as t:
        t1 = tp.tanh(at * bt) + tp.stop_gradient(at) * at
        t2 = tp.sum(tp.exp(tp.stop_gradient(bt) * bt) * at)
    t_ga, t_gb = t.gradient([t1, t2], [at, bt], output_gradients=[gy1, gy2])
    ar, br = (torch.tensor(v, requires_grad=True) for v in (av, bv))
    r1 = torch.tanh(ar * br) + ar.detach() * ar
    r2 = (torch.exp(br.detach() * br) * ar).sum()
    r_ga, r_gb = torch.autograd.grad([r1, r2], [ar, br],
                                     grad_outputs=[torch.from_numpy(gy1), torch.tensor(gy2)])
    three_way(["a", "b"], {"a": s_ga, "b": s_gb}, {"a": t_ga, "b": t_gb},
              {"a": r_ga.numpy(), "b": r_gb.numpy()})


# ------------------------------------------------------------------------------------------
# W3: the MNIST multilayer perceptron (float64, a smaller batch)
# ------------------------------------------------------------------------------------------

W3_NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


def w3_symbolic():
    x, y = sg.input("x", ("N", 784)), sg.input("onehot", ("N", 10))
    p = {n: sg.param(n, s) for n, s in zip(W3_NAMES, [(784, 256), (256,), (256, 128), (128,),
                                                      (128, 10), (10,)])}
    h1 = sg.relu(x @ p["w1"] + p["b1"])
    h2 = sg.relu(h1 @ p["w2"] + p["b2"])
    out = h2 @ p["w3"] + p["b3"]
    return sg.mean((y - out) ** 2), p, {"x": x, "onehot": y}


def w3_tape(p, d):
    h1 = tp.relu(d["x"] @ p["w1"] + p["b1"])
    h2 = tp.relu(h1 @ p["w2"] + p["b2"])
    return tp.mean((d["onehot"] - (h2 @ p["w3"] + p["b3"])) ** 2)


def w3_torch(p, d):
    torch = torch_mod()
    h1 = torch.relu(d["x"] @ p["w1"] + p["b1"])
    h2 = torch.relu(h1 @ p["w2"] + p["b2"])
    return torch.mean((d["onehot"] - (h2 @ p["w3"] + p["b3"])) ** 2)


def _w3_data(batch=32, seed=0):
    d = workloads.w3(batch=batch, seed=seed, dtype="float64")
    params = {n: d[n] for n in W3_NAMES}
    # biases are zero at initialization; make them random so their gradients matter less
    # trivially and relu's pattern is not all the weights' doing
    rng = np.random.default_rng(seed + 7)
    for n in ("b1", "b2", "b3"):
        params[n] = 0.05 * rng.standard_normal(params[n].shape)
    return params, {"x": d["x"], "onehot": d["onehot"]}


def test_w3_gradients(torch):
    params, batch = _w3_data()
    (s_loss, s_grads), (t_loss, t_grads), (r_loss, r_grads) = all_three(
        torch, w3_symbolic, w3_tape, w3_torch, params, batch)
    assert_close("loss", [s_loss, t_loss], [r_loss, r_loss])
    three_way(W3_NAMES, s_grads, t_grads, r_grads)


# ------------------------------------------------------------------------------------------
# A softmax-cross-entropy classifier (one hidden tanh layer)
# ------------------------------------------------------------------------------------------

CLS_NAMES = ("w1", "b1", "w2", "b2")


def _cls_data(n=48, features=20, hidden=16, classes=5, seed=11):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    labels = rng.integers(0, classes, size=n)
    onehot = np.eye(classes)[labels]
    params = {"w1": 0.3 * rng.standard_normal((features, hidden)),
              "b1": 0.1 * rng.standard_normal(hidden),
              "w2": 0.3 * rng.standard_normal((hidden, classes)),
              "b2": 0.1 * rng.standard_normal(classes)}
    return params, {"x": x, "onehot": onehot, "labels": labels}


def cls_symbolic(features=20, hidden=16, classes=5):
    x, y = sg.input("x", ("N", features)), sg.input("onehot", ("N", classes))
    p = {"w1": sg.param("w1", (features, hidden)), "b1": sg.param("b1", (hidden,)),
         "w2": sg.param("w2", (hidden, classes)), "b2": sg.param("b2", (classes,))}
    logits = sg.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return sg.mean(sg.softmax_cross_entropy(logits, y)), p, {"x": x, "onehot": y}


def cls_tape(p, d):
    logits = tp.tanh(d["x"] @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return tp.mean(tp.softmax_cross_entropy(logits, d["onehot"]))


def cls_torch(p, d):
    torch = torch_mod()
    logits = torch.tanh(d["x"] @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return torch.nn.functional.cross_entropy(logits, d["labels"])  # mean over the batch


def test_softmax_cross_entropy_classifier_gradients(torch):
    params, data = _cls_data()
    batch = {"x": data["x"], "onehot": data["onehot"]}
    (s_loss, s_grads), (t_loss, t_grads), (r_loss, r_grads) = all_three(
        torch, cls_symbolic, cls_tape, cls_torch, params, batch, torch_data=data)
    assert_close("loss", [s_loss, t_loss], [r_loss, r_loss])
    three_way(CLS_NAMES, s_grads, t_grads, r_grads)


def test_softmax_cross_entropy_is_stable_like_torch(torch):
    """Logits of magnitude 1e3: finite, and the same as torch's, on all three."""
    params, data = _cls_data()
    params = {k: v * (300.0 if k.startswith("w") else 1.0) for k, v in params.items()}
    batch = {"x": data["x"], "onehot": data["onehot"]}
    (s_loss, s_grads), (t_loss, t_grads), (r_loss, r_grads) = all_three(
        torch, cls_symbolic, cls_tape, cls_torch, params, batch, torch_data=data)
    assert np.isfinite(s_loss) and all(np.all(np.isfinite(g)) for g in s_grads.values())
    assert_close("loss", [s_loss, t_loss], [r_loss, r_loss], rtol=1e-9)
    three_way(CLS_NAMES, s_grads, t_grads, r_grads, rtol=1e-9)


# ------------------------------------------------------------------------------------------
# Training: sg.train_step (and the tape with optim.apply_arrays) against torch.optim
# ------------------------------------------------------------------------------------------


def _torch_optimizer(torch, kind, params, **kw):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=kw["lr"])
    if kind == "momentum":
        return torch.optim.SGD(params, lr=kw["lr"], momentum=kw["momentum"])
    return torch.optim.Adam(params, lr=kw["lr"], betas=(kw.get("beta1", 0.9),
                                                        kw.get("beta2", 0.999)),
                            eps=kw.get("eps", 1e-8))


def _sg_optimizer(kind, **kw):
    clip = {k: v for k, v in kw.items() if k.startswith("clip")}
    if kind == "sgd":
        return optim.SGD(kw["lr"], **clip)
    if kind == "momentum":
        return optim.Momentum(kw["lr"], momentum=kw["momentum"], **clip)
    return optim.Adam(kw["lr"], **clip)


def run_training(torch, symbolic, tape_model, torch_model, params, batches, kind, rtol,
                 **kw):
    """Train the same model with sg.train_step, the tape + optimizer.apply_arrays, and
    torch.optim, comparing the losses and the parameters after every step."""
    loss, sp, si = symbolic()
    opt = _sg_optimizer(kind, **kw)
    step = sg.train_step(loss, opt, params=list(sp.values()), inputs=list(si.values()))
    state = step.init(params)

    tape_params = {n: np.array(v, copy=True) for n, v in params.items()}
    tape_opt = _sg_optimizer(kind, **kw)
    tape_slots = tape_opt.init_slots(tape_params)

    tparams = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True)
               for n, v in params.items()}
    topt = _torch_optimizer(torch, kind, list(tparams.values()), **kw)

    for i, batch in enumerate(batches):
        sym_batch = {n: batch[n] for n in si}
        s_loss = step(state, **sym_batch)

        t_loss, t_grads = tape_gradients(tape_model, tape_params, sym_batch)
        tape_opt.apply_arrays(tape_params, t_grads, tape_slots, i + 1)

        topt.zero_grad()
        r_loss = torch_model(tparams, {n: torch.from_numpy(np.asarray(v))
                                       for n, v in batch.items()})
        r_loss.backward()
        if "clip_global_norm" in kw:
            torch.nn.utils.clip_grad_norm_(list(tparams.values()), kw["clip_global_norm"])
        topt.step()

        r_loss = float(r_loss.detach())
        assert_close(f"step {i} loss", [s_loss, t_loss], [r_loss, r_loss], rtol)
        for n, p in tparams.items():
            want = p.detach().numpy()
            assert_close(f"step {i} {n} (train_step)", state.params[n], want, rtol)
            assert_close(f"step {i} {n} (tape)", tape_params[n], want, rtol)
    return state


@pytest.mark.parametrize("kind,kw", [
    ("sgd", {"lr": 0.05}),
    ("momentum", {"lr": 0.02, "momentum": 0.9}),
    ("adam", {"lr": 0.01}),
    ("sgd", {"lr": 0.05, "clip_global_norm": 0.5}),
])
def test_w1_training_matches_torch_optim(torch, kind, kw):
    data = workloads.w1()
    batches = []
    for i in range(12):
        xb, yb = workloads.w1_batch(data, i)
        batches.append({"x": xb, "y": yb})
    run_training(torch, w1_symbolic, w1_tape, w1_torch,
                 {"w1": data["w1"], "w2": data["w2"]}, batches, kind, 1e-9, **kw)


@pytest.mark.parametrize("kind,kw", [("sgd", {"lr": 0.1}), ("adam", {"lr": 1e-3})])
def test_w3_training_matches_torch_optim(torch, kind, kw):
    params, _ = _w3_data(batch=16)
    batches = []
    for i in range(3):
        d = workloads.synthetic_mnist(16, seed=100 + i, dtype="float64")
        batches.append({"x": d["x"], "onehot": d["onehot"]})
    run_training(torch, w3_symbolic, w3_tape, w3_torch, params, batches, kind, 1e-9, **kw)


@pytest.mark.parametrize("kind,kw", [("sgd", {"lr": 0.5}), ("adam", {"lr": 0.05})])
def test_classifier_training_matches_torch_optim(torch, kind, kw):
    params, _ = _cls_data()
    batches = []
    for i in range(8):
        _, d = _cls_data(n=24, seed=200 + i)
        batches.append(d)
    state = run_training(torch, cls_symbolic, cls_tape, cls_torch, params, batches, kind,
                         1e-9, **kw)
    assert not all(np.array_equal(state.params[n], params[n]) for n in CLS_NAMES)
