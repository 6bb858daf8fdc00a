"""The benchmark workloads: each problem described once, for every implementation.

A :class:`Workload` holds the loss (written with Python operators and a small ``ops``
namespace, so every framework builds it alike), the parameter and input shapes, the
learning rate, how many steps the correctness run takes and how to make its data. The main
workloads are W0, W1, W3, W4 and W5 (the small CNN) of ``docs/workloads.md``; the sweeps
(``batch``, ``width``, ``depth``) scale W3's MLP along one axis, and the grid ``W3sweep`` along two (hidden width x
batch; opt-in in the quick run: ``--only W3sweep``). :func:`catalogue` lists them all,
cheaply: no data is made until ``workload.data()`` is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

MAIN_WORKLOADS = ("W0", "W1", "W3", "W4", "W5")
SWEEPS = ("batch", "width", "depth")
SWEEP_TITLES = {"batch": "W3 MLP 784-256-128-10 over the batch size",
                "width": "MLP 784-w-w/2-10 over the hidden width w, batch 128",
                "depth": "MLP of depth d (hidden layers of 128), batch 128"}

#: The two-axis sweep: W3's MLP 784-H-H/2-10 at every hidden width H and batch B
#: (H=256, B=128 is W3 itself). Part of ``--full``; the quick run leaves it out (CI time).
GRID = "W3sweep"
GRID_TITLE = "W3 MLP 784-H-H/2-10 over hidden width H x batch B"
GRID_WIDTHS = (64, 256, 1024, 2048)
GRID_BATCHES = (1, 8, 64, 128)


@dataclass
class Workload:
    """One benchmark problem, described once for every implementation.

    ``inputs`` lists the per-step batch arrays as ``(name, shape, dtype)``, ``"N"`` marking
    the batch axis; ``loss(ops, params, batch)`` builds the loss with Python operators and
    ``ops.mean``/``ops.sum``/``ops.relu``; ``hand`` names the class in
    :mod:`benchmarks.hand`; ``data()`` returns ``(initial params, list of batches)``, the
    batches used in turn (step ``i`` takes ``batches[i % len(batches)]``). ``steps`` is the
    length of the correctness run; ``compile`` and ``memory`` say whether to measure
    symgrad's compile time and the peak memory (each costs new processes); ``default`` says
    whether a run without ``--only`` includes it.
    """

    name: str
    group: str
    title: str
    dtype: str
    inputs: tuple
    param_shapes: dict
    loss: Callable
    hand: str
    lr: float
    steps: int
    data: Callable[[], tuple]
    sweep: Optional[tuple] = None
    compile: bool = True
    memory: bool = True
    default: bool = True

    @property
    def input_names(self) -> tuple:
        """The names of the per-step batch arrays, in batch order."""
        return tuple(name for name, _, _ in self.inputs)


def loss_w0(ops, p, b):
    """W0: ``(x A - target)^2`` on one sample."""
    return (b["x"] * p["A"] - b["target"]) ** 2


def loss_w1(ops, p, b):
    """W1: ``mean(((x @ w1) @ w2 - y)^2)``."""
    return ops.mean((b["x"] @ p["w1"] @ p["w2"] - b["y"]) ** 2)


def loss_mlp(ops, p, b):
    """W3 and the sweeps: relu MLP ``w1, b1, ..., wL, bL``, loss ``mean((onehot - out)^2)``."""
    depth = len(p) // 2
    h = b["x"]
    for i in range(1, depth + 1):
        h = h @ p[f"w{i}"] + p[f"b{i}"]
        if i < depth:
            h = ops.relu(h)
    return ops.mean((b["onehot"] - h) ** 2)


def loss_w4(ops, p, b):
    """W4: ``sum((input @ weights - target)^2) / 2``."""
    return ops.sum((b["input"] @ p["weights"] - b["target"]) ** 2) / 2


def loss_cnn(ops, p, b):
    """W5: ``conv3x3 relu pool2 conv3x3 relu pool2 flatten linear``, mean softmax
    cross-entropy (NCHW, valid convolutions; biases of shape (C, 1, 1))."""
    h = ops.max_pool2d(ops.relu(ops.conv2d(b["x"], p["k1"]) + p["b1"]), 2)
    h = ops.max_pool2d(ops.relu(ops.conv2d(h, p["k2"]) + p["b2"]), 2)
    logits = ops.reshape(h, (-1, 400)) @ p["w3"] + p["b3"]
    return ops.mean(ops.softmax_cross_entropy(logits, b["onehot"]))


def _w5(quick: bool) -> Workload:
    batch, n_batches = 64, 4

    def data():
        from symgrad import workloads
        params = workloads.cnn_params(seed=0, dtype="float32")
        d = workloads.synthetic_mnist(batch * n_batches, seed=1, dtype="float32")
        x = d["x"].reshape(-1, 1, 28, 28)
        batches = [(x[i * batch:(i + 1) * batch], d["onehot"][i * batch:(i + 1) * batch])
                   for i in range(n_batches)]
        return params, batches

    # symgrad.workloads.CNN_SHAPES, written out: listing the catalogue imports no symgrad
    shapes = {"k1": (8, 1, 3, 3), "b1": (8, 1, 1), "k2": (16, 8, 3, 3), "b2": (16, 1, 1),
              "w3": (400, 10), "b3": (10,)}
    return Workload("W5", "W5", f"CNN conv3x3(8)-pool-conv3x3(16)-pool-linear(10), batch "
                    f"{batch}, synthetic MNIST, float32", "float32",
                    (("x", ("N", 1, 28, 28), "float32"), ("onehot", ("N", 10), "float32")),
                    shapes, loss_cnn, "W5Step", 0.01, 5 if quick else 20, data,
                    compile=not quick, memory=not quick)


def _w0(quick: bool) -> Workload:
    def data():
        from symgrad import workloads
        d = workloads.w0()
        batches = [(float(d["x"][i]), float(d["target"])) for i in d["indices"]]
        return {"A": d["A"]}, batches
    return Workload("W0", "W0", "one scalar weight, one sample per step, float64", "float64",
                    (("x", (), "float64"), ("target", (), "float64")), {"A": ()}, loss_w0,
                    "W0Step", 0.02, 100, data, compile=not quick, memory=not quick)


def _w1(quick: bool) -> Workload:
    def data():
        from symgrad import workloads
        d = workloads.w1()
        return {"w1": d["w1"], "w2": d["w2"]}, [workloads.w1_batch(d, i) for i in range(4)]
    return Workload("W1", "W1", "two-layer linear net 2-3-1, batch 8, float64", "float64",
                    (("x", ("N", 2), "float64"), ("y", ("N", 1), "float64")),
                    {"w1": (2, 3), "w2": (3, 1)}, loss_w1, "W1Step", 0.001,
                    300 if quick else 3000, data, compile=not quick, memory=not quick)


def _w4(quick: bool) -> Workload:
    def data():
        from symgrad import workloads
        d = workloads.w4()
        return {"weights": d["weights"]}, [(d["input"], d["target"])]
    return Workload("W4", "W4", "linear regression with a bias column, 5 points, float64",
                    # the five points are every batch: fixed shapes, as a tiny model declares
                    # them (so symgrad's target="auto" may pick the scalar target)
                    "float64", (("input", (5, 2), "float64"), ("target", (5, 1), "float64")),
                    {"weights": (2, 1)}, loss_w4, "W4Step", 0.002, 50, data,
                    compile=not quick, memory=not quick)


def _mlp(name: str, group: str, batch: int, hidden: tuple, steps: int, n_batches: int,
         sweep: Optional[tuple] = None, compile: bool = True, memory: bool = True,
         default: bool = True) -> Workload:
    sizes = (784, *hidden, 10)
    shapes = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        shapes[f"w{i}"] = (n_in, n_out)
        shapes[f"b{i}"] = (n_out,)

    def data():
        from symgrad import workloads
        params = workloads.mlp_params(sizes, seed=0, dtype="float32")
        d = workloads.synthetic_mnist(batch * n_batches, seed=1, dtype="float32")
        batches = [(d["x"][i * batch:(i + 1) * batch], d["onehot"][i * batch:(i + 1) * batch])
                   for i in range(n_batches)]
        return params, batches

    arch = "-".join(map(str, sizes))
    return Workload(name, group, f"MLP {arch}, batch {batch}, synthetic MNIST, float32",
                    "float32", (("x", ("N", 784), "float32"), ("onehot", ("N", 10), "float32")),
                    shapes, loss_mlp, "W3Step", 0.001, steps, data, sweep, compile, memory,
                    default)


def sweep_grid(axis: str, quick: bool) -> tuple:
    """The values of a scaling sweep.

    Parameters
    ----------
    axis : str
        ``"batch"``, ``"width"`` or ``"depth"``.
    quick : bool
        A few points (the quick run) instead of every one.

    Returns
    -------
    tuple of int
        The sweep's points, in increasing order.
    """
    if axis == "batch":
        return (16, 128, 1024) if quick else tuple(2 ** k for k in range(4, 13))
    if axis == "width":
        return (64, 512) if quick else tuple(2 ** k for k in range(5, 11))
    if axis == "depth":
        return (1, 4, 8) if quick else tuple(range(1, 9))
    raise ValueError(f"unknown sweep {axis!r}")


def catalogue(quick: bool = False) -> list:
    """Every workload, main ones first, then the sweeps, then the width x batch grid.

    Cheap: no data is made until ``workload.data()`` is called.

    Parameters
    ----------
    quick : bool
        Shorter runs, fewer sweep points, compile time and memory measured for W3 only; the
        grid is listed but not run by default (``Workload.default``).

    Returns
    -------
    list of Workload
    """
    steps, sweep_steps = (5, 3) if quick else (20, 5)
    out = [_w0(quick), _w1(quick), _mlp("W3", "W3", 128, (256, 128), steps, 8), _w4(quick),
           _w5(quick)]
    for b in sweep_grid("batch", quick):
        # the batch axis is symbolic: every point runs W3's compiled module
        out.append(_mlp(f"W3 batch={b}", "batch", b, (256, 128), sweep_steps,
                        2 if b > 512 else 4, ("batch", b), compile=False, memory=not quick))
    for w in sweep_grid("width", quick):
        out.append(_mlp(f"W3 width={w}", "width", 128, (w, w // 2), sweep_steps, 4,
                        ("width", w), compile=not quick, memory=not quick))
    for d in sweep_grid("depth", quick):
        out.append(_mlp(f"MLP depth={d}", "depth", 128, (128,) * (d - 1), sweep_steps, 4,
                        ("depth", d), compile=not quick, memory=not quick))
    for h in GRID_WIDTHS:
        for b in GRID_BATCHES:
            # time ratios only: no compile or memory processes for the 16 cells
            out.append(_mlp(f"{GRID} H={h} B={b}", GRID, b, (h, h // 2), sweep_steps, 4,
                            (GRID, {"H": h, "B": b}), compile=False, memory=False,
                            default=not quick))
    return out


def find_workload(name: str, quick: bool = False) -> Workload:
    """The workload of that name (used by the measuring child processes).

    Parameters
    ----------
    name : str
        A workload name, e.g. ``"W3"`` or ``"W3 batch=16"``.
    quick : bool
        Look it up in the quick catalogue.

    Returns
    -------
    Workload

    Raises
    ------
    KeyError
        When no workload has that name.
    """
    for wl in catalogue(quick):
        if wl.name == name:
            return wl
    raise KeyError(f"no workload named {name!r}")


def select(workloads: list, only: Optional[list]) -> list:
    """The workloads whose name or group is in ``only``.

    Parameters
    ----------
    workloads : list of Workload
    only : list of str or None
        Names or groups; ``"sweeps"`` means the three one-axis sweeps. ``None`` or empty:
        every workload whose ``default`` is true.

    Returns
    -------
    list of Workload
        In the order of ``workloads``.
    """
    if not only:
        return [wl for wl in workloads if wl.default]
    wanted = set()
    for item in only:
        wanted |= set(SWEEPS) if item == "sweeps" else {item}
    return [wl for wl in workloads if wl.name in wanted or wl.group in wanted]


