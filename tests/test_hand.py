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

from benchmarks.hand import (W0Step, W1Step, W3Step, W4Step,  # noqa: E402
                             mlp_loss_and_grads)
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
