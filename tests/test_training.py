"""Training steps: symgrad's fused generated step against two independent implementations.

For the reference workloads W0, W1, W3 (a small MLP) and W4, from identical initial values
and identical batches, three implementations must hold the same parameters after EVERY
step (float64, relative tolerance 1e-10):

* ``sg.train_step``: loss, gradients and optimizer update in one generated function;
* the tape loop: :mod:`symgrad.tape` gradients, then ``optimizer.apply_arrays``;
* hand-written numpy with hand-derived gradients (``benchmarks/hand.py``), for SGD,
  momentum and Adam -- or, for the options hand.py does not have (RMSProp, AdaGrad, weight
  decay, the three clippings), tape gradients fed to this file's own transcription of
  PyTorch's update formulas (the optimizer rule code is shared by the first two, so a third,
  separately written update is what can catch a wrong rule).

Also: learning rates changed between steps, variable batch sizes, the tutorials' results
(W2.1 gives [-4, -25], W0 reaches A ~ 10, W3 learns the default data), and the errors of
``step.init`` and of a failing step call.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``benchmarks`` is not installed: import it from the tree
    sys.path.insert(0, str(ROOT))

import symgrad as sg  # noqa: E402
from benchmarks.hand import W0Step, W1Step, W3Step, W4Step  # noqa: E402
from symgrad import data, workloads  # noqa: E402
from symgrad import tape as tp  # noqa: E402

RTOL = 1e-10


#: the tests of this module share one private cache (conftest's ``module_cache_env``)
pytestmark = pytest.mark.usefixtures("module_cache_env")


def assert_same(got: dict, want: dict, what: str) -> None:
    """Every array of ``got`` equals ``want``'s to RTOL, relative to the array's magnitude."""
    assert got.keys() == want.keys(), what
    for k in want:
        a, b = np.asarray(got[k]), np.asarray(want[k])
        assert a.shape == b.shape and a.dtype == b.dtype, (what, k, a.shape, b.shape)
        scale = max(float(np.max(np.abs(b))), 1e-300)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale, err_msg=f"{what}: {k}")


# ---------------------------------------------------------------------------------------------
# The workloads, each written three ways
# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One workload: initial values, batches, and its loss for each implementation."""

    name: str
    params: dict                                   # initial float64 values, by name
    batches: list                                  # keyword inputs of each step
    loss: sg.Tensor                                # symbolic loss over sg.param leaves
    tape_loss: Callable                            # (variables dict, batch dict) -> tp.Tensor
    hand: type                                     # benchmarks.hand step class
    hand_args: tuple                               # batch keys, in hand.step's order


def case_w0(steps: int = 100) -> Case:
    d = workloads.w0()
    x, target, a = sg.input("x"), sg.input("target"), sg.param("A")
    batches = [{"x": d["x"][i], "target": d["target"]} for i in d["indices"][:steps]]
    return Case("W0", {"A": d["A"]}, batches, (x * a - target) ** 2,
                lambda v, b: tp.square(b["x"] * v["A"] - b["target"]),
                W0Step, ("x", "target"))


def _w1_symbolic():
    x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
    w1, w2 = sg.param("w1", (2, 3)), sg.param("w2", (3, 1))
    return sg.mean(((x @ w1) @ w2 - y) ** 2)


def _w1_tape(v, b):
    return tp.mean(tp.square(tp.matmul(tp.matmul(b["x"], v["w1"]), v["w2"]) - b["y"]))


def case_w1(steps: int = 40) -> Case:
    """The tutorial's sliding window of 8 rows."""
    d = workloads.w1()
    batches = []
    for i in range(steps):
        xb, yb = workloads.w1_batch(d, i)
        batches.append({"x": xb, "y": yb})
    return Case("W1", {"w1": d["w1"], "w2": d["w2"]}, batches, _w1_symbolic(), _w1_tape,
                W1Step, ("x", "y"))


def case_w1_minibatch() -> Case:
    """Shuffled minibatches of 12 rows over the 32 points: 12, 12, then a last batch of 8."""
    d = workloads.w1()
    batches = [{"x": xb, "y": yb} for epoch in range(3)
               for xb, yb in data.minibatches(d["X"], d["Y"], batch_size=12, seed=epoch)]
    assert [len(b["x"]) for b in batches[:3]] == [12, 12, 8]
    return Case("W1-minibatch", {"w1": d["w1"], "w2": d["w2"]}, batches, _w1_symbolic(),
                _w1_tape, W1Step, ("x", "y"))


W3_SIZES = (20, 16, 12, 10)


def _mlp_symbolic(sizes):
    x = sg.input("x", ("N", sizes[0]))
    onehot = sg.input("onehot", ("N", sizes[-1]))
    h = x
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        h = h @ sg.param(f"w{i}", (n_in, n_out)) + sg.param(f"b{i}", (n_out,))
        if i < len(sizes) - 1:
            h = sg.relu(h)
    return sg.mean((onehot - h) ** 2)


def _mlp_tape(v, b):
    depth = len(v) // 2
    h = b["x"]
    for i in range(1, depth + 1):
        h = tp.matmul(h, v[f"w{i}"]) + v[f"b{i}"]
        if i < depth:
            h = tp.relu(h)
    return tp.mean(tp.square(b["onehot"] - h))


def case_w3(rows: int = 57, batch: int = 16) -> Case:
    """A small W3 MLP in float64: batches of 16, 16, 16 and a last one of 9 rows."""
    params = workloads.mlp_params(W3_SIZES, seed=3, dtype="float64")
    d = workloads.synthetic_mnist(rows, seed=5, dtype="float64", features=W3_SIZES[0])
    batches = [{"x": xb, "onehot": yb}
               for xb, yb in data.minibatches(d["x"], d["onehot"], batch_size=batch, seed=1)]
    assert [len(b["x"]) for b in batches] == [16, 16, 16, 9]
    return Case("W3", params, batches, _mlp_symbolic(W3_SIZES), _mlp_tape, W3Step,
                ("x", "onehot"))


def case_w4(steps: int = 50) -> Case:
    d = workloads.w4()
    inp, target = sg.input("input", ("N", 2)), sg.input("target", ("N", 1))
    weights = sg.param("weights", (2, 1))
    batches = [{"input": d["input"], "target": d["target"]}] * steps
    return Case("W4", {"weights": d["weights"]}, batches, sg.l2_loss(inp @ weights - target),
                lambda v, b: tp.l2_loss(tp.matmul(b["input"], v["weights"]) - b["target"]),
                W4Step, ("input", "target"))


CASES = {"W0": case_w0, "W1": case_w1, "W1-minibatch": case_w1_minibatch, "W3": case_w3,
         "W4": case_w4}


# ---------------------------------------------------------------------------------------------
# The three ways of running a case
# ---------------------------------------------------------------------------------------------

def _snapshot(params: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in params.items()}


def run_symbolic(case: Case, opt, schedule=None):
    """``sg.train_step``: (losses, parameters after each step); ``schedule(i, opt)`` may
    change hyperparameters before step ``i``."""
    step = sg.train_step(case.loss, opt)
    state = step.init(case.params)
    losses, snaps = [], []
    for i, batch in enumerate(case.batches):
        if schedule is not None:
            schedule(i, opt)
        losses.append(float(step(state, **batch)))
        snaps.append(_snapshot(state.params))
    return losses, snaps


def tape_gradients(case: Case, variables: dict, batch: dict):
    with tp.GradientTape() as t:
        loss = case.tape_loss(variables, batch)
    return float(loss), t.gradient(loss, variables)


def run_tape(case: Case, opt, schedule=None):
    """Tape gradients, then ``opt.apply_arrays`` on the variables' arrays (t from 1)."""
    variables = {k: tp.Variable(v, name=k) for k, v in case.params.items()}
    arrays = {k: v.value for k, v in variables.items()}  # live: updated in place
    slots = opt.init_slots(arrays)
    losses, snaps = [], []
    for t, batch in enumerate(case.batches, start=1):
        if schedule is not None:
            schedule(t - 1, opt)
        loss, grads = tape_gradients(case, variables, batch)
        opt.apply_arrays(arrays, grads, slots, t)
        losses.append(loss)
        snaps.append(_snapshot(arrays))
    return losses, snaps


def run_hand(case: Case, lr: float, kind: str, **hyper):
    """``benchmarks.hand``: hand-derived gradients and hand-written updates."""
    h = case.hand(case.params, lr, kind, **hyper)
    losses, snaps = [], []
    for batch in case.batches:
        losses.append(h.step(*(batch[k] for k in case.hand_args)))
        snaps.append(_snapshot({k: h.params[k] for k in case.params}))
    return losses, snaps


def reference_update(kind: str, h: dict, options: dict, params: dict, grads: dict,
                     state: dict, t: int) -> None:
    """PyTorch's update formulas written out plainly, independently of ``symgrad.optim``."""
    g = {k: np.array(v, dtype=np.float64) for k, v in grads.items()}
    if options.get("clip_value") is not None:
        c = options["clip_value"]
        g = {k: np.clip(v, -c, c) for k, v in g.items()}
    if options.get("clip_norm") is not None:
        c = options["clip_norm"]
        g = {k: v * min(1.0, c / (math.sqrt(float(np.sum(v * v))) + 1e-6))
             for k, v in g.items()}
    if options.get("clip_global_norm") is not None:
        c = options["clip_global_norm"]
        total = math.sqrt(sum(float(np.sum(v * v)) for v in g.values()))
        g = {k: v * min(1.0, c / (total + 1e-6)) for k, v in g.items()}
    wd = options.get("weight_decay", 0.0)
    for k, p in params.items():
        gk = g[k] + wd * p
        s = state.setdefault(k, {})
        if kind == "sgd":
            p -= h["lr"] * gk
        elif kind == "momentum":
            buf = s["buf"] = h["momentum"] * s.get("buf", 0.0) + gk
            p -= h["lr"] * (gk + h["momentum"] * buf if h.get("nesterov") else buf)
        elif kind == "adam":
            m = s["m"] = h["beta1"] * s.get("m", 0.0) + (1 - h["beta1"]) * gk
            v = s["v"] = h["beta2"] * s.get("v", 0.0) + (1 - h["beta2"]) * gk * gk
            mhat, vhat = m / (1 - h["beta1"] ** t), v / (1 - h["beta2"] ** t)
            p -= h["lr"] * mhat / (np.sqrt(vhat) + h["eps"])
        elif kind == "rmsprop":
            v = s["v"] = h["rho"] * s.get("v", 0.0) + (1 - h["rho"]) * gk * gk
            p -= h["lr"] * gk / (np.sqrt(v) + h["eps"])
        elif kind == "adagrad":
            acc = s["sum"] = s.get("sum", 0.0) + gk * gk
            p -= h["lr"] * gk / (np.sqrt(acc) + h["eps"])
        else:
            raise ValueError(kind)


def run_reference(case: Case, kind: str, h: dict, options: dict):
    """Tape gradients fed to :func:`reference_update`."""
    variables = {k: tp.Variable(v, name=k) for k, v in case.params.items()}
    arrays = {k: v.value for k, v in variables.items()}
    state: dict = {}
    losses, snaps = [], []
    for t, batch in enumerate(case.batches, start=1):
        loss, grads = tape_gradients(case, variables, batch)
        reference_update(kind, h, options, arrays, grads, state, t)
        losses.append(loss)
        snaps.append(_snapshot(arrays))
    return losses, snaps


def assert_runs_agree(a, b, what: str) -> None:
    (loss_a, snaps_a), (loss_b, snaps_b) = a, b
    assert len(snaps_a) == len(snaps_b) > 0
    np.testing.assert_allclose(loss_a, loss_b, rtol=RTOL, err_msg=f"{what}: losses")
    for i, (sa, sb) in enumerate(zip(snaps_a, snaps_b)):
        assert_same(sa, sb, f"{what}, after step {i + 1}")


def assert_moved(case: Case, run, what: str) -> None:
    """The run changed every parameter (so agreement is not agreement on doing nothing)."""
    for k, v in case.params.items():
        assert not np.allclose(run[1][-1][k], v, rtol=1e-6, atol=1e-9), f"{what}: {k} unchanged"


# ---------------------------------------------------------------------------------------------
# SGD, momentum and Adam: symbolic == tape == hand-written numpy, after every step
# ---------------------------------------------------------------------------------------------

#: (label, symgrad optimizer factory, hand.py kind and hyperparameters); lr per case below
OPTIMIZERS = [
    ("sgd", lambda lr: sg.optim.SGD(lr), "sgd", {}),
    ("momentum", lambda lr: sg.optim.Momentum(lr, momentum=0.9), "momentum", {"momentum": 0.9}),
    ("nesterov", lambda lr: sg.optim.Momentum(lr, momentum=0.8, nesterov=True), "momentum",
     {"momentum": 0.8, "nesterov": True}),
    ("adam", lambda lr: sg.optim.Adam(lr, beta1=0.8, beta2=0.95, eps=1e-7), "adam",
     {"beta1": 0.8, "beta2": 0.95, "eps": 1e-7}),
]

#: learning rates that move every parameter visibly within the case's steps
LR = {"W0": 0.02, "W1": 0.01, "W1-minibatch": 0.01, "W3": 0.05, "W4": 0.002}
LR_ADAM = {"W0": 0.05, "W1": 0.01, "W1-minibatch": 0.01, "W3": 0.01, "W4": 0.05}


@pytest.mark.parametrize("label,make,kind,hyper", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
@pytest.mark.parametrize("case_name", list(CASES))
def test_three_way_agreement(case_name, label, make, kind, hyper):
    case = CASES[case_name]()
    lr = (LR_ADAM if kind == "adam" else LR)[case_name]
    sym = run_symbolic(case, make(lr))
    assert_moved(case, sym, f"{case_name} {label}")
    assert_runs_agree(sym, run_tape(case, make(lr)), f"{case_name} {label}: symbolic vs tape")
    assert_runs_agree(sym, run_hand(case, lr, kind, **hyper),
                      f"{case_name} {label}: symbolic vs hand")


# ---------------------------------------------------------------------------------------------
# RMSProp, AdaGrad, weight decay and clipping: symbolic == tape == plain formulas
# ---------------------------------------------------------------------------------------------

def _initial_gradients(case: Case) -> dict:
    variables = {k: tp.Variable(v) for k, v in case.params.items()}
    return tape_gradients(case, variables, case.batches[0])[1]


def _option_configs(case: Case):
    """(label, optimizer, reference kind, hyper, options); clip thresholds are set at half
    the initial gradients' size, so every clipping is active from the first step."""
    g = _initial_gradients(case)
    gmax = max(float(np.max(np.abs(v))) for v in g.values())
    gnorm_min = min(float(np.linalg.norm(v)) for v in g.values())
    gnorm_all = math.sqrt(sum(float(np.sum(v * v)) for v in g.values()))
    c_value, c_norm, c_global = 0.5 * gmax, 0.5 * gnorm_min, 0.5 * gnorm_all
    return [
        ("rmsprop", sg.optim.RMSProp(0.01, rho=0.8, eps=1e-6), "rmsprop",
         {"lr": 0.01, "rho": 0.8, "eps": 1e-6}, {}),
        ("adagrad", sg.optim.AdaGrad(0.05, eps=1e-8), "adagrad", {"lr": 0.05, "eps": 1e-8}, {}),
        ("sgd+weight_decay", sg.optim.SGD(0.05, weight_decay=0.1), "sgd", {"lr": 0.05},
         {"weight_decay": 0.1}),
        ("adam+weight_decay", sg.optim.Adam(0.01, weight_decay=0.05), "adam",
         {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, {"weight_decay": 0.05}),
        ("sgd+clip_value", sg.optim.SGD(0.05, clip_value=c_value), "sgd", {"lr": 0.05},
         {"clip_value": c_value}),
        ("momentum+clip_norm", sg.optim.Momentum(0.05, momentum=0.9, clip_norm=c_norm),
         "momentum", {"lr": 0.05, "momentum": 0.9}, {"clip_norm": c_norm}),
        ("sgd+clip_global_norm", sg.optim.SGD(0.05, clip_global_norm=c_global), "sgd",
         {"lr": 0.05}, {"clip_global_norm": c_global}),
        ("rmsprop+all", sg.optim.RMSProp(0.01, weight_decay=0.01, clip_value=c_value,
                                         clip_global_norm=c_global), "rmsprop",
         {"lr": 0.01, "rho": 0.9, "eps": 1e-7},
         {"weight_decay": 0.01, "clip_value": c_value, "clip_global_norm": c_global}),
    ]


OPTION_LABELS = ["rmsprop", "adagrad", "sgd+weight_decay", "adam+weight_decay",
                 "sgd+clip_value", "momentum+clip_norm", "sgd+clip_global_norm", "rmsprop+all"]


@pytest.mark.parametrize("label", OPTION_LABELS)
@pytest.mark.parametrize("case_name", ["W1", "W3"])
def test_optimizer_options_agree(case_name, label):
    case = CASES[case_name]()
    case.batches = case.batches[:12]
    configs = {c[0]: c for c in _option_configs(case)}
    _, opt, kind, hyper, options = configs[label]
    sym = run_symbolic(case, opt)
    assert_moved(case, sym, label)
    assert_runs_agree(sym, run_tape(case, opt), f"{case_name} {label}: symbolic vs tape")
    assert_runs_agree(sym, run_reference(case, kind, hyper, options),
                      f"{case_name} {label}: symbolic vs plain formulas")
    if options:  # the option changes the result (it is not silently ignored)
        plain = run_reference(case, kind, hyper, {})
        assert not np.allclose(np.concatenate([v.ravel() for v in sym[1][-1].values()]),
                               np.concatenate([v.ravel() for v in plain[1][-1].values()]),
                               rtol=1e-6, atol=0), f"{label} made no difference"


# ---------------------------------------------------------------------------------------------
# Hyperparameters change between steps without recompiling
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,make", [
    ("sgd", lambda: sg.optim.SGD(0.01)),
    ("momentum", lambda: sg.optim.Momentum(0.01, momentum=0.9)),
    ("adam", lambda: sg.optim.Adam(0.01)),
])
def test_learning_rate_schedule_takes_effect(name, make):
    case = case_w1(steps=12)
    opt = make()
    step = sg.train_step(case.loss, opt)
    path, source = step.path, step.source
    # the generated code does not depend on the values: another lr gives the same module
    other = make()
    other.lr = 0.5
    assert sg.train_step(case.loss, other).path == path

    def schedule(i, o):
        o.lr = [0.01, 0.05, 0.2][i // 4]
        if name == "adam" and i == 8:
            o.beta1 = 0.5

    sym = run_symbolic(case, opt, schedule)
    assert step.path == path and step.source == source
    assert_runs_agree(sym, run_tape(case, make(), schedule), f"{name} with an lr schedule")
    # and it matters: a constant lr ends elsewhere
    constant = run_symbolic(case, make())
    assert not np.allclose(sym[1][-1]["w1"], constant[1][-1]["w1"], rtol=1e-6)

    # lr = 0 freezes SGD's parameters (the lr is read at every call, even folded into the
    # backward pass)
    if name == "sgd":
        state = step.init(case.params)
        opt.lr = 0.0
        step(state, **case.batches[0])
        assert_same(dict(state.params), case.params, "after a step with lr = 0")
        opt.lr = 0.01
        step(state, **case.batches[0])
        assert not np.allclose(state.params["w1"], case.params["w1"])


# ---------------------------------------------------------------------------------------------
# Variable batch size
# ---------------------------------------------------------------------------------------------

def test_variable_batch_sizes_in_one_run():
    """Batches of 16, 16, 16, 9 through one step function; each call's loss is that batch's
    mean (a stale N would scale it), checked against a direct numpy evaluation."""
    case = case_w3()
    step = sg.train_step(case.loss, sg.optim.SGD(0.05))
    state = step.init(case.params)
    for batch in case.batches:
        p = {k: v.copy() for k, v in state.params.items()}
        h = batch["x"]
        for i in (1, 2, 3):
            h = h @ p[f"w{i}"] + p[f"b{i}"]
            h = np.maximum(h, 0) if i < 3 else h
        expected = float(np.mean((batch["onehot"] - h) ** 2))
        assert step(state, **batch) == pytest.approx(expected, rel=1e-12)
    sizes = [len(b["x"]) for b in case.batches]
    assert sizes[-1] < sizes[0]


# ---------------------------------------------------------------------------------------------
# The tutorials' results
# ---------------------------------------------------------------------------------------------

def test_w2_1_one_step_gives_minus_4_minus_25():
    d = workloads.w2_1()
    w = sg.param("w", (2,))
    y = w * sg.constant(d["X"], name="X")
    cost = y[1] * y                               # a vector: differentiated as its sum
    step = sg.train_step(cost, sg.optim.SGD(d["lr"]))
    state = step.init({"w": d["w"]})
    assert float(step(state)) == pytest.approx(48.0)  # sum([12, 36]) before the update
    np.testing.assert_array_equal(state.params["w"], [-4.0, -25.0])
    np.testing.assert_array_equal(d["w"], [2.0, 3.0])  # init copied the initial value


def test_w0_reaches_ten_at_the_tutorials_settings():
    d = workloads.w0()
    case = case_w0()
    step = sg.train_step(case.loss, sg.optim.SGD(d["lr"]))
    state = step.init({"A": d["A"]})
    losses = [float(step(state, **b)) for b in case.batches]
    assert len(losses) == d["steps"] == 100
    assert abs(float(state.params["A"]) - 10.0) < 0.5
    assert abs(float(d["A"]) - 10.0) > 5  # it started far away
    assert np.mean(losses[-10:]) < 0.02 * np.mean(losses[:10])


def test_w1_matches_the_tutorials_log():
    """Loss on all 32 points after step 0 ~ 5.1 (tutorial 5.13), after 2500 ~ 0.39."""
    d = workloads.w1()
    step = sg.train_step(_w1_symbolic(), sg.optim.SGD(d["lr"]))
    loss_all = sg.compile(_w1_symbolic())
    state = step.init({"w1": d["w1"], "w2": d["w2"]})
    logged = {}
    for i in range(2501):
        xb, yb = workloads.w1_batch(d, i)
        step(state, x=xb, y=yb)
        if i % 500 == 0:
            logged[i] = float(loss_all(x=d["X"], y=d["Y"], **state.params))
    assert logged[0] == pytest.approx(5.13, abs=0.1)
    assert logged[2500] == pytest.approx(0.39, abs=0.01)
    assert all(logged[a] > logged[b] for a, b in zip(list(logged), list(logged)[1:]))


#: test accuracy the W3 MLP (784 or 64 -> 256 -> 128 -> 10, Adam lr 0.001, batches of 128,
#: 10 epochs, 80/20 split) must reach on ``data.default_digits()``: real 8x8 digits when
#: scikit-learn is installed (measured 0.983), else 6000 rows of synthetic MNIST-shaped data
#: (measured 0.973; chance is 0.1).
W3_ACCURACY = {"digits": 0.9, "synthetic": 0.9}


@pytest.mark.slow  # 10-20 s of training; test_examples runs W3's quick mode by default
def test_w3_learns_the_default_data(rng):
    x, labels, description = data.default_digits(n_synthetic=6000)
    kind = "digits" if x.shape[1] == 64 else "synthetic"
    order = rng.permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    sizes = (x.shape[1], 256, 128, 10)
    xs = sg.input("x", ("N", sizes[0]), "float32")
    onehot = sg.input("onehot", ("N", 10), "float32")
    h = xs
    for i in (1, 2, 3):
        h = h @ sg.param(f"w{i}", sizes[i - 1:i + 1], "float32") + sg.param(
            f"b{i}", (sizes[i],), "float32")
        h = sg.relu(h) if i < 3 else h
    step = sg.train_step(sg.mean((onehot - h) ** 2), sg.optim.Adam(0.001))
    predict = sg.compile(h)
    state = step.init(workloads.mlp_params(sizes, seed=0))
    oh = data.one_hot(labels[train], 10)
    first = None
    for epoch in range(1, 11):
        for xb, yb in data.minibatches(x[train], oh, batch_size=128, seed=epoch):
            value = step(state, x=xb, onehot=yb)
            first = value if first is None else first
    assert state.params["w1"].dtype == np.float32
    accuracy = float(np.mean(predict(x=x[test], **state.params).argmax(1) == labels[test]))
    assert accuracy >= W3_ACCURACY[kind], (description, accuracy)
    assert value < 0.5 * first


# ---------------------------------------------------------------------------------------------
# Errors: step.init and a failing call
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def w1_step():
    return sg.train_step(_w1_symbolic(), sg.optim.Adam(0.01))


def test_init_names_a_missing_parameter(w1_step):
    d = workloads.w1()
    with pytest.raises(ValueError, match=r"missing.*w2"):
        w1_step.init({"w1": d["w1"]})


def test_init_names_a_misshaped_parameter(w1_step):
    d = workloads.w1()
    with pytest.raises(ValueError, match=r"'w2'.*\(3, 1\).*\(1, 3\)"):
        w1_step.init({"w1": d["w1"], "w2": d["w2"].T})


def test_init_names_an_unknown_parameter(w1_step):
    d = workloads.w1()
    with pytest.raises(ValueError, match=r"unknown.*'w3'"):
        w1_step.init({"w1": d["w1"], "w2": d["w2"], "w3": d["w2"]})


def test_init_rejects_a_non_dict(w1_step):
    with pytest.raises(TypeError, match="dict"):
        w1_step.init([np.zeros((2, 3)), np.zeros((3, 1))])


def test_init_copies_the_initial_values(w1_step):
    d = workloads.w1()
    w1_0 = d["w1"].copy()
    state = w1_step.init({"w1": d["w1"], "w2": d["w2"]})
    w1_step(state, x=d["X"][:8], y=d["Y"][:8])
    np.testing.assert_array_equal(d["w1"], w1_0)
    assert not np.array_equal(state.params["w1"], w1_0)
    d["w1"][0, 0] = 99.0  # and the state does not see later changes to the caller's array
    assert state.params["w1"][0, 0] != 99.0


@pytest.mark.parametrize("bad,error,message", [
    ({"x": np.zeros((8, 3)), "y": np.zeros((8, 1))}, ValueError, r"'x'.*shape"),
    ({"x": np.zeros((8, 2)), "y": np.zeros((7, 1))}, ValueError, r"'y'"),
    ({"x": np.zeros((8, 2), np.float32), "y": np.zeros((8, 1))}, TypeError, r"'x'.*float64"),
    ({"x": np.zeros((8, 2))}, TypeError, r"y"),
])
def test_a_failing_call_leaves_the_state_unchanged(w1_step, bad, error, message):
    d = workloads.w1()
    state = w1_step.init({"w1": d["w1"], "w2": d["w2"]})
    w1_step(state, x=d["X"][:8], y=d["Y"][:8])  # non-trivial slots and step count
    before = _snapshot(state.params)
    slots = {k: _snapshot(v) for k, v in state.slots.items()}
    with pytest.raises(error, match=message):
        w1_step(state, **bad)
    assert_same(dict(state.params), before, "params after a failing call")
    for k in slots:
        assert_same(state.slots[k], slots[k], f"slots of {k} after a failing call")
    assert state.step == 1
    # and the state still works, continuing where it was
    w1_step(state, x=d["X"][8:16], y=d["Y"][8:16])
    assert state.step == 2
