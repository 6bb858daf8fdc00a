"""Tests of the hand-written numpy floor, ``benchmarks/hand.py``.

The hand-derived gradients are checked against float64 central differences of plainly
written losses (so a wrong gradient fails); the optimizers against a straightforward,
unoptimised transcription of PyTorch's update formulas; and the reference workloads
W0 and W1 against the behaviour their tutorials report.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``benchmarks`` is not installed: import it from the tree
    sys.path.insert(0, str(ROOT))

from benchmarks.hand import (W0FloatStep, W0Step, W1Step, W3Step,  # noqa: E402
                             W4FloatStep, W4Step, mlp_loss_and_grads)
from symgrad import workloads  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Plain reference losses (float64) and finite differences
# ---------------------------------------------------------------------------------------------

def loss_w0(p, x, target):
    return float((x * p["A"] - target) ** 2)


def loss_w1(p, x, y_):
    return float(np.mean(((x @ p["w1"]) @ p["w2"] - y_) ** 2))


def loss_w3(p, x, onehot):
    return mlp_loss_and_grads(p, x, onehot)[0]


def loss_w4(p, inp, target):
    return float(np.sum((inp @ p["weights"] - target) ** 2) / 2)


def fd_grads(loss, params: dict, *batch, h: float = 1e-6) -> dict:
    """Central differences ``(L(p + h e) - L(p - h e)) / 2h`` for every element, float64."""
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    grads = {}
    for k, p in params.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up = loss(params, *batch)
            p[idx] = old - h
            down = loss(params, *batch)
            p[idx] = old
            g[idx] = (up - down) / (2 * h)
        grads[k] = g
    return grads


def assert_grads_close(got: dict, want: dict, rtol: float = 1e-6, atol: float = 1e-8):
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


def w0_case(rng):
    return {"A": np.asarray(rng.normal())}, [(rng.normal(1, 0.1), 10.0) for _ in range(3)]


def w1_case(rng):
    params = {"w1": rng.standard_normal((2, 3)), "w2": rng.standard_normal((3, 1))}
    batches = [(rng.random((n, 2)), rng.integers(0, 2, (n, 1)).astype(float))
               for n in (8, 8, 5)]
    return params, batches


def w3_case(rng, sizes=(6, 5, 4, 3)):
    params = workloads.mlp_params(sizes, seed=int(rng.integers(1000)), dtype="float64",
                                  stddev=0.5)
    for k in params:
        if k.startswith("b"):  # non-zero biases, so their gradients matter
            params[k] = rng.normal(0, 0.1, params[k].shape)
    batches = []
    for n in (7, 7, 3):  # a smaller last batch
        labels = rng.integers(0, sizes[-1], n)
        batches.append((rng.random((n, sizes[0])), np.eye(sizes[-1])[labels]))
    return params, batches


def w4_case(rng):
    d = workloads.w4(seed=int(rng.integers(1000)))
    return {"weights": d["weights"]}, [(d["input"], d["target"])] * 3


CASES = {
    "W0": (W0Step, loss_w0, w0_case),
    "W1": (W1Step, loss_w1, w1_case),
    "W3": (W3Step, loss_w3, w3_case),
    "W4": (W4Step, loss_w4, w4_case),
    "W0 floats": (W0FloatStep, loss_w0, w0_case),
    "W4 floats": (W4FloatStep, loss_w4, w4_case),
}


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------

def _forward(params, x):
    """The MLP forward pass, written independently of mlp_loss_and_grads."""
    depth = len(params) // 2
    for i in range(1, depth + 1):
        x = x @ params[f"w{i}"] + params[f"b{i}"]
        if i < depth:
            x = np.maximum(x, 0)
    return x


@pytest.mark.parametrize("sizes", [(5, 3), (5, 4, 3), (6, 5, 4, 3), (4, 6, 5, 4, 3)])
def test_mlp_loss_and_grads_match_finite_differences(sizes):
    params, batches = w3_case(np.random.default_rng(len(sizes)), sizes)
    x, onehot = batches[0]
    loss, grads = mlp_loss_and_grads(params, x, onehot)
    assert loss == pytest.approx(float(np.mean((onehot - _forward(params, x)) ** 2)))
    assert_grads_close(grads, fd_grads(loss_w3, params, x, onehot))


@pytest.mark.parametrize("name", list(CASES))
def test_first_sgd_update_is_minus_lr_times_gradient(name):
    step_cls, loss, case = CASES[name]
    params, batches = case(np.random.default_rng(1))
    lr = 0.01
    step = step_cls(params, lr)
    for batch in batches[:2] if name == "W3" else batches[:1]:
        before = {k: np.array(v, dtype=np.float64) for k, v in step.params.items()}
        want_loss = loss(before, *batch)
        want = fd_grads(loss, before, *batch)
        got_loss = step.step(*batch)
        assert isinstance(got_loss, float)
        assert got_loss == pytest.approx(want_loss, rel=1e-12)
        # The update p1 = p0 - lr g recovers the step's gradient g = (p0 - p1) / lr.
        got = {k: (before[k] - step.params[k]) / lr for k in before}
        assert_grads_close(got, want, rtol=1e-6, atol=1e-7)


def test_w3_smaller_last_batch_and_float32():
    params64, batches = w3_case(np.random.default_rng(2), (8, 6, 5))
    step = W3Step({k: v.astype(np.float32) for k, v in params64.items()}, 0.05)
    ref = dict(params64)
    for x, onehot in batches:  # sizes 7, 7, 3
        loss, grads = mlp_loss_and_grads(ref, x, onehot)
        got = step.step(x.astype(np.float32), onehot.astype(np.float32))
        assert got == pytest.approx(loss, rel=1e-5)
        ref = {k: ref[k] - 0.05 * grads[k] for k in ref}
    for k in ref:
        assert step.params[k].dtype == np.float32
        np.testing.assert_allclose(step.params[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_steps_copy_their_parameters_and_check_arguments():
    d = workloads.w3(batch=4, hidden=(8,), dtype="float64")
    original = d["w1"].copy()
    step = W3Step(d, 0.1)  # extra keys (x, onehot, lr, ...) are ignored
    assert list(step.params) == ["w1", "b1", "w2", "b2"]
    step.step(d["x"], d["onehot"])
    np.testing.assert_array_equal(d["w1"], original)
    with pytest.raises(TypeError, match="momentum"):
        W1Step(workloads.w1(), 0.1, "sgd", momentum=0.9)
    with pytest.raises(ValueError, match="unknown optimizer"):
        W4Step(workloads.w4(), 0.1, "rmsprop")
    with pytest.raises(KeyError, match="w2"):
        W1Step({"w1": np.zeros((2, 3))}, 0.1)
    with pytest.raises(ValueError, match="chain"):
        W3Step({"w1": np.zeros((3, 4)), "b1": np.zeros(4), "w2": np.zeros((5, 2)),
                "b2": np.zeros(2)}, 0.1)


# ---------------------------------------------------------------------------------------------
# Optimizers against a plain transcription of PyTorch's formulas
# ---------------------------------------------------------------------------------------------

class ReferenceOptimizer:
    """torch.optim.SGD (dampening 0) and torch.optim.Adam, written out plainly."""

    def __init__(self, kind, lr, momentum=0.9, nesterov=False, beta1=0.9, beta2=0.999,
                 eps=1e-8):
        self.kind, self.lr, self.mu, self.nesterov = kind, lr, momentum, nesterov
        self.b1, self.b2, self.eps = beta1, beta2, eps
        self.t = 0
        self.buf, self.m, self.v = {}, {}, {}

    def step(self, params, grads):
        self.t += 1
        new = {}
        for k, p in params.items():
            g = grads[k]
            if self.kind == "momentum":
                # PyTorch: the buffer starts as a copy of the first gradient.
                self.buf[k] = g.copy() if self.t == 1 else self.mu * self.buf[k] + g
                d = g + self.mu * self.buf[k] if self.nesterov else self.buf[k]
                new[k] = p - self.lr * d
            else:
                self.m[k] = self.b1 * self.m.get(k, 0.0) + (1 - self.b1) * g
                self.v[k] = self.b2 * self.v.get(k, 0.0) + (1 - self.b2) * g * g
                mhat = self.m[k] / (1 - self.b1 ** self.t)
                vhat = self.v[k] / (1 - self.b2 ** self.t)
                new[k] = p - self.lr * mhat / (np.sqrt(vhat) + self.eps)
        return new


def exact_grads(name, params, *batch):
    """Plain analytic gradients (themselves checked against finite differences below)."""
    name = name.split()[0]  # "W0 floats" has W0's gradient
    if name == "W0":
        x, t = batch
        return {"A": np.asarray(2 * (x * params["A"] - t) * x)}
    if name == "W1":
        x, y_ = batch
        h = x @ params["w1"]
        dy = 2 * (h @ params["w2"] - y_) / y_.size
        return {"w1": x.T @ (dy @ params["w2"].T), "w2": h.T @ dy}
    if name == "W3":
        return mlp_loss_and_grads(params, *batch)[1]
    inp, target = batch
    return {"weights": inp.T @ (inp @ params["weights"] - target)}


@pytest.mark.parametrize("name", list(CASES))
def test_exact_grads_oracle(name):
    _, loss, case = CASES[name]
    params, batches = case(np.random.default_rng(3))
    assert_grads_close(exact_grads(name, params, *batches[0]),
                       fd_grads(loss, params, *batches[0]))


OPTIMIZER_CASES = [
    ("momentum", {}),
    ("momentum", {"nesterov": True}),
    ("momentum", {"momentum": 0.5}),
    ("adam", {}),
    ("adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6}),
]


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("optimizer,hyper", OPTIMIZER_CASES)
def test_optimizers_match_pytorch_formulas_over_three_steps(name, optimizer, hyper):
    step_cls, loss, case = CASES[name]
    params, batches = case(np.random.default_rng(4))
    lr = 0.01
    step = step_cls(params, lr, optimizer, **hyper)
    reference = ReferenceOptimizer(optimizer, lr, **hyper)
    ref = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    for batch in batches:
        got_loss = step.step(*batch)
        assert got_loss == pytest.approx(loss(ref, *batch), rel=1e-12)
        ref = reference.step(ref, exact_grads(name, ref, *batch))
        for k in ref:
            np.testing.assert_allclose(step.params[k], ref[k], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} {optimizer} {hyper} {k}")
    moved = any(not np.allclose(step.params[k], params[k]) for k in ref)
    assert moved


# ---------------------------------------------------------------------------------------------
# Reference workloads at the tutorial settings
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_w0_reaches_ten(seed):
    d = workloads.w0(seed=seed)
    step = W0Step(d, d["lr"])
    for i in range(d["steps"]):
        loss = step.step(d["x"][d["indices"][i]], d["target"])
    a = float(step.params["A"])
    print(f"W0 seed {seed}: A = {a:.4f}, last loss {loss:.4f}")
    assert abs(a - 10.0) < 0.5


def test_w1_loss_falls_like_the_tutorial():
    d = workloads.w1()
    step = W1Step(d, d["lr"])

    def full_loss():
        return loss_w1(step.params, d["X"], d["Y"])

    logs = []
    for i in range(d["steps"]):
        step.step(*workloads.w1_batch(d, i))
        if i % d["log_every"] == 0:
            logs.append(full_loss())
    logs.append(full_loss())
    print("W1 loss on all data every 500 steps (tutorial: 5.13 ... 0.39):",
          [round(v, 3) for v in logs])
    assert logs[-1] < 0.2 * logs[0]
    assert all(b <= a + 1e-12 for a, b in zip(logs, logs[1:]))
    assert math.isclose(logs[0], 5.13, abs_tol=0.5)  # the default seed is chosen to be close
    assert logs[-1] < 0.45


# ---------------------------------------------------------------------------------------------
# The Python-float steps: the same numbers as hand numpy, and no call inside the step
# ---------------------------------------------------------------------------------------------

def _w0_run():
    d = workloads.w0()
    return {"A": d["A"]}, [(float(d["x"][i]), float(d["target"])) for i in d["indices"]], 0.02


def _w4_run():
    d = workloads.w4()
    other = workloads.w4(seed=7)  # alternate two batches: the float rows must follow
    return {"weights": d["weights"]}, [(d["input"], d["target"]),
                                       (other["input"], other["target"])] * 25, 0.002


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("numpy_cls, float_cls, run", [(W0Step, W0FloatStep, _w0_run),
                                                       (W4Step, W4FloatStep, _w4_run)])
def test_float_steps_agree_with_hand_numpy(numpy_cls, float_cls, run, optimizer):
    """Over the whole reference run (W0: 100 steps, W4: 50), loss curve and final
    parameters within 1e-12 of hand numpy (relative to the largest loss / the parameters)."""
    params, batches, lr = run()
    hand, floats = numpy_cls(params, lr, optimizer), float_cls(params, lr, optimizer)
    want = np.array([hand.step(*b) for b in batches])
    got = np.array([floats.step(*b) for b in batches])
    assert all(isinstance(v, float) for v in got.tolist())
    assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want))
    for k, p in hand.params.items():
        assert floats.params[k].shape == p.shape and floats.params[k].dtype == np.float64
        assert np.max(np.abs(floats.params[k] - p)) <= 1e-12 * np.max(np.abs(p)), k
    assert floats.t == hand.t == len(batches)
    assert not np.allclose(floats.params[k], params[k])  # it trained


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("float_cls, run", [(W0FloatStep, _w0_run), (W4FloatStep, _w4_run)])
def test_float_sgd_step_calls_no_function(float_cls, run, optimizer):
    """The SGD step is straight-line float arithmetic: once the batch is read into floats,
    a step calls no function at all (numpy's or any other), as the profiler sees it; the
    other optimizers call their Python update only."""
    params, batches, lr = run()
    step = float_cls(params, lr, optimizer)
    step.step(*batches[0])  # W4 reads the batch into floats here, once
    calls = []

    def profile(frame, event, arg):
        if event == "c_call" and arg is not sys.setprofile:
            calls.append(getattr(arg, "__qualname__", repr(arg)))
        elif event == "call":
            calls.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        step.step(*batches[0])
    finally:
        sys.setprofile(None)
    # and what the step computes on are Python floats (np.float64 is a float subclass:
    # arithmetic on it would be numpy's, without a call the profiler sees)
    state = [v for v in vars(step).values() if isinstance(v, float)]
    state += [v for row in getattr(step, "_rows", ()) for v in row]
    assert state and all(type(v) is float for v in state), state
    name = float_cls.__name__
    if optimizer == "sgd":
        assert calls == [f"{name}._step_sgd"]
    else:  # the general path: only Python functions of benchmarks.hand (and math.sqrt)
        assert calls[0] == f"{name}._step_other"
        assert not [c for c in calls if "ndarray" in c or c.startswith("np")], calls


def test_float_steps_check_their_arguments():
    with pytest.raises(ValueError, match="2x1"):
        W4FloatStep({"weights": np.zeros((3, 1))}, 0.1)
    with pytest.raises(KeyError, match="weights"):
        W4FloatStep({"w": np.zeros((2, 1))}, 0.1)
    with pytest.raises(ValueError, match="N x 2"):
        W4FloatStep({"weights": np.zeros((2, 1))}, 0.1).step(np.zeros((5, 3)), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="scalar"):
        W0FloatStep({"A": np.zeros(2)}, 0.1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        W0FloatStep({"A": 1.0}, 0.1, "rmsprop")
    with pytest.raises(TypeError, match="momentum"):
        W4FloatStep({"weights": np.zeros((2, 1))}, 0.1, "sgd", momentum=0.9)
