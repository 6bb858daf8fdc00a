"""Data and initial values of the reference workloads W0-W4 (see ``docs/workloads.md``).

Every implementation that runs a reference workload -- symgrad's generated step, the tape
baseline, the hand-written numpy floor in ``benchmarks/hand.py``, the examples -- takes its
data and initial parameters from here, so that they can be compared step by step.

Promises:

* pure numpy, no symgrad import: the functions can be used by any implementation;
* deterministic: the same arguments give bit-identical arrays, on every platform numpy's
  ``default_rng`` (PCG64) and ``RandomState`` are bit-stable on;
* every function returns a plain ``dict`` whose keys are documented in its docstring;
  arrays are fresh copies the caller may modify in place; hyper-parameters (learning
  rate, step counts) are plain Python numbers;
* where a tutorial draws random values we reproduce its *distribution* (TensorFlow's
  random streams cannot be reproduced bit for bit), and draw them from a generator
  seeded by the ``seed`` argument, in the order documented in each function.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["w0", "w1", "w1_batch", "w2_1", "w3", "w4", "w5", "cnn_params", "CNN_SHAPES",
           "mlp_params", "synthetic_mnist", "truncated_normal", "TEACHER_SEED"]

#: Seed of the fixed teacher (class prototypes) behind :func:`synthetic_mnist` data. It does
#: not depend on the ``seed`` argument, so a train set and a test set drawn with different
#: seeds follow the same rule.
TEACHER_SEED = 20_551


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], stddev: float = 0.1,
                     mean: float = 0.0, dtype: DTypeLike = "float64") -> np.ndarray:
    """Normal values with the tails beyond two standard deviations redrawn.

    Same distribution as TensorFlow's ``truncated_normal``: draw ``N(mean, stddev)`` and
    redraw every value with ``|value - mean| > 2 * stddev`` until none is left.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; consumed in a fixed order, so the result is deterministic.
    shape : tuple of int
        Shape of the result.
    stddev, mean : float
        Parameters of the (untruncated) normal distribution.
    dtype : dtype-like
        dtype of the result. Values are drawn in float64 and rounded once.

    Returns
    -------
    numpy.ndarray
        Array of ``shape`` with every value in ``[mean - 2 stddev, mean + 2 stddev]``.
    """
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    while bad.any():
        # About 4.6 % of the draws fall outside +-2; each pass redraws only those.
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2.0
    return (mean + stddev * z).astype(dtype)


def _one_hot(labels: np.ndarray, depth: int, dtype: DTypeLike) -> np.ndarray:
    """``(n, depth)`` one-hot rows for integer ``labels`` (kept local: no import cycle)."""
    out = np.zeros((labels.shape[0], depth), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


# ---------------------------------------------------------------------------------------------
# W0 -- one scalar weight
# ---------------------------------------------------------------------------------------------

def w0(seed: int = 0, dtype: DTypeLike = "float64") -> dict:
    """W0: fit ``x * A`` to a constant target, one random sample per step.

    Draws, in this order from ``numpy.random.default_rng(seed)``: ``x`` (100 values of
    ``N(1, 0.1)``), ``A`` (one value of ``N(0, 1)``), ``indices`` (100 integers in
    ``[0, 100)``).

    Parameters
    ----------
    seed : int
        Seed of the generator.
    dtype : dtype-like
        dtype of ``x``, ``target`` and ``A``.

    Returns
    -------
    dict
        ``x``       : (100,) array, the samples.
        ``target``  : 0-d array, 10.0 (the same target for every sample).
        ``A``       : 0-d array, the initial parameter.
        ``lr``      : float, 0.02 (plain gradient descent).
        ``steps``   : int, 100.
        ``indices`` : (100,) int64 array, ``x[indices[i]]`` is the sample of step ``i``, so
        that every implementation sees the same samples.
        ``param_names`` : ``("A",)``.
    """
    rng = np.random.default_rng(seed)
    steps = 100
    x = rng.normal(1.0, 0.1, size=100).astype(dtype)
    a = np.asarray(rng.normal(0.0, 1.0), dtype=dtype)
    indices = rng.integers(0, x.shape[0], size=steps).astype(np.int64)
    return {"x": x, "target": np.asarray(10.0, dtype=dtype), "A": a, "lr": 0.02,
            "steps": steps, "indices": indices, "param_names": ("A",)}


# ---------------------------------------------------------------------------------------------
# W1 -- two-layer linear network
# ---------------------------------------------------------------------------------------------

def w1(seed: int = 66, dtype: DTypeLike = "float64") -> dict:
    """W1: ``y = (x @ w1) @ w2`` on 32 points, sliding-window batches of 8.

    ``X`` is the tutorial's ``np.random.RandomState(23455).rand(32, 2)`` and does not depend
    on ``seed``; ``w1`` then ``w2`` are drawn from ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    seed : int
        Seed of the generator of the initial weights. TensorFlow's values cannot be
        reproduced, only their distribution; the default, 66, is a seed whose run looks
        like the tutorial's: the loss on all data is 5.10 after the first step (tutorial:
        5.13) and 0.39 by step 2500 (tutorial: 0.39).
    dtype : dtype-like
        dtype of every array.

    Returns
    -------
    dict
        ``X``        : (32, 2) inputs in [0, 1).
        ``Y``        : (32, 1) labels, ``1.0`` where ``x0 + x1 < 1`` else ``0.0``.
        ``w1``       : (2, 3) initial weights, ``N(0, 1)``.
        ``w2``       : (3, 1) initial weights, ``N(0, 1)``.
        ``lr``       : float, 0.001 (plain gradient descent).
        ``batch``    : int, 8; see :func:`w1_batch`.
        ``steps``    : int, 3000.
        ``log_every``: int, 500 (log the loss on all 32 points).
        ``param_names`` : ``("w1", "w2")``.
    """
    x = np.random.RandomState(23455).rand(32, 2)
    y = np.array([[int(x0 + x1 < 1)] for (x0, x1) in x], dtype=dtype)
    rng = np.random.default_rng(seed)
    w1_ = rng.standard_normal((2, 3)).astype(dtype)
    w2_ = rng.standard_normal((3, 1)).astype(dtype)
    return {"X": x.astype(dtype), "Y": y, "w1": w1_, "w2": w2_, "lr": 0.001, "batch": 8,
            "steps": 3000, "log_every": 500, "param_names": ("w1", "w2")}


def w1_batch(data: dict, i: int) -> tuple[np.ndarray, np.ndarray]:
    """The batch of step ``i`` of W1: the tutorial's sliding window.

    ``start = (i * batch) % n`` and ``end = min(start + batch, n)`` with ``n = len(X)``
    (with the reference sizes every batch has exactly 8 rows).

    Parameters
    ----------
    data : dict
        The result of :func:`w1` (keys ``X``, ``Y``, ``batch``).
    i : int
        Step number, from 0.

    Returns
    -------
    (xb, yb) : tuple of numpy.ndarray
        Views into ``data["X"]`` and ``data["Y"]`` (C-contiguous row slices).
    """
    n = data["X"].shape[0]
    start = (i * data["batch"]) % n
    end = min(start + data["batch"], n)
    return data["X"][start:end], data["Y"][start:end]


# ---------------------------------------------------------------------------------------------
# W2 -- gradients you can check by hand
# ---------------------------------------------------------------------------------------------

def w2_1(dtype: DTypeLike = "float64") -> dict:
    """W2.1: ``Y = w * X``, vector cost ``Y[1] * Y``, one gradient step with ``lr = 1``.

    The gradient of the sum of the cost's elements, ``Y[1] * (Y[0] + Y[1])``, is
    ``d/dw0 = w1 x0 x1 = 6`` and ``d/dw1 = w0 x0 x1 + 2 w1 x1^2 = 28``.

    Parameters
    ----------
    dtype : dtype-like
        The arrays' dtype.

    Returns
    -------
    dict
        ``X``             : (2,) constant, ``[-1, -2]``.
        ``w``             : (2,) initial variable, ``[2, 3]``.
        ``lr``            : float, 1.0.
        ``expected_grad`` : (2,) ``[6, 28]``.
        ``expected_w``    : (2,) ``[-4, -25]``, ``w`` after one step.
        ``param_names``   : ``("w",)``.
    """
    return {"X": np.array([-1.0, -2.0], dtype=dtype), "w": np.array([2.0, 3.0], dtype=dtype),
            "lr": 1.0, "expected_grad": np.array([6.0, 28.0], dtype=dtype),
            "expected_w": np.array([-4.0, -25.0], dtype=dtype), "param_names": ("w",)}


# ---------------------------------------------------------------------------------------------
# W3 -- MNIST multilayer perceptron
# ---------------------------------------------------------------------------------------------

def mlp_params(sizes: Sequence[int], seed: int = 0, dtype: DTypeLike = "float32",
               stddev: float = 0.1) -> dict:
    """Initial parameters of an MLP of any depth, named ``w1, b1, w2, b2, ...``.

    Layer ``i`` (from 1) maps ``sizes[i-1]`` features to ``sizes[i]``: ``w{i}`` has shape
    ``(sizes[i-1], sizes[i])``, truncated normal (see :func:`truncated_normal`), and
    ``b{i}`` has shape ``(sizes[i],)``, zeros. Weights are drawn layer by layer from
    ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first and output last, e.g. ``(784, 256, 128, 10)``; at least two.
    seed : int
        Seed of the generator.
    dtype : dtype-like
        dtype of every array.
    stddev : float
        Standard deviation of the weights before truncation (0.1 in the tutorial).

    Returns
    -------
    dict
        ``w1, b1, ..., wL, bL`` with ``L = len(sizes) - 1``, in that (insertion) order.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"mlp_params: need at least two positive layer widths, got {sizes}")
    rng = np.random.default_rng(seed)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"w{i}"] = truncated_normal(rng, (n_in, n_out), stddev=stddev, dtype=dtype)
        params[f"b{i}"] = np.zeros(n_out, dtype=dtype)
    return params


def synthetic_mnist(n: int, seed: int = 0, dtype: DTypeLike = "float32", features: int = 784,
                    classes: int = 10, noise: float = 0.8) -> dict:
    """MNIST-shaped synthetic data that can be learned: for timing, and for sanity checks.

    A fixed teacher, drawn from :data:`TEACHER_SEED` (not from ``seed``), holds three
    "writing styles" per class: sparse prototype images (15 % of the pixels lit, with
    intensity in [0.5, 1]). A row picks a label and a style uniformly and is
    ``clip(prototype + noise * N(0, 1), 0, 1)``. Each class is a mixture of three noisy
    clusters, so a linear model cannot separate them all but an MLP can: with the W3
    network, Adam (lr 0.001) reaches about 75 % test accuracy after one epoch of 20k rows
    and 97 % after two, while chance is 10 %. Sets drawn with different seeds (train /
    test) follow the same teacher. These are not images of digits: use real data for
    anything but timing and smoke tests.

    Parameters
    ----------
    n : int
        Number of rows.
    seed : int
        Seed of the generator of the labels, styles and noise.
    dtype : dtype-like
        dtype of ``x`` and ``onehot``.
    features, classes : int
        Row width (784 = 28 x 28) and number of classes (10).
    noise : float
        Standard deviation of the pixel noise (larger is harder).

    Returns
    -------
    dict
        ``x``      : (n, features) values in [0, 1].
        ``labels`` : (n,) int64 labels in ``0 .. classes-1``.
        ``onehot`` : (n, classes) one-hot rows of ``labels``.
    """
    styles = 3
    teacher = np.random.default_rng(TEACHER_SEED)
    lit = teacher.random((classes * styles, features)) < 0.15
    prototypes = lit * teacher.uniform(0.5, 1.0, (classes * styles, features))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n).astype(np.int64)
    style = rng.integers(0, styles, size=n)
    x = prototypes[labels * styles + style] + noise * rng.standard_normal((n, features))
    np.clip(x, 0.0, 1.0, out=x)
    return {"x": x.astype(dtype), "labels": labels, "onehot": _one_hot(labels, classes, dtype)}


def w3(batch: int = 128, seed: int = 0, dtype: DTypeLike = "float32",
       hidden: Sequence[int] = (256, 128)) -> dict:
    """W3: the MNIST MLP, ``h1 = relu(x@w1 + b1); h2 = relu(h1@w2 + b2); out = h2@w3 + b3``.

    Loss ``mean((onehot - out)^2)`` over all ``batch * 10`` entries; gradient descent with
    learning rate 0.001, 10 epochs. The parameters come from
    ``mlp_params((784, *hidden, 10), seed, dtype)``; one batch of data from
    ``synthetic_mnist(batch, seed + 1, dtype)`` (for timing; see :mod:`symgrad.data` for
    real data).

    Parameters
    ----------
    batch : int
        Rows of the included batch.
    seed : int
        Seed of the weights; the batch uses ``seed + 1``.
    dtype : dtype-like
        dtype of the parameters and of ``x`` / ``onehot`` (float32 as in the tutorial).
    hidden : sequence of int
        Hidden-layer widths; the reference is ``(256, 128)``. Any number of layers.

    Returns
    -------
    dict
        ``w1, b1, ..., wL, bL`` : initial parameters (``L = len(hidden) + 1``).
        ``x``       : (batch, 784) inputs in [0, 1).
        ``labels``  : (batch,) int64 labels.
        ``onehot``  : (batch, 10) one-hot labels.
        ``lr``      : float, 0.001.
        ``epochs``  : int, 10.
        ``batch``   : int, the batch size.
        ``sizes``   : tuple of int, ``(784, *hidden, 10)``.
        ``param_names`` : tuple of str, ``("w1", "b1", ..., "wL", "bL")``.
    """
    sizes = (784, *(int(h) for h in hidden), 10)
    params = mlp_params(sizes, seed=seed, dtype=dtype)
    data = synthetic_mnist(batch, seed=seed + 1, dtype=dtype)
    return {**params, **data, "lr": 0.001, "epochs": 10, "batch": int(batch), "sizes": sizes,
            "param_names": tuple(params)}


# ---------------------------------------------------------------------------------------------
# W4 -- linear regression with a bias column
# ---------------------------------------------------------------------------------------------

def w4(seed: int = 0, dtype: DTypeLike = "float64") -> dict:
    """W4: ``yhat = input @ weights`` on 5 noisy points, loss ``sum((yhat - target)^2) / 2``.

    Draws, in this order from ``numpy.random.default_rng(seed)``: the noise of ``x``
    (5 values of ``N(0, 1.5)``), the noise of ``y`` (5 values), ``weights`` (2 values of
    ``N(0, 0.1)``).

    Parameters
    ----------
    seed : int
        Seed of the generator.
    dtype : dtype-like
        dtype of every array.

    Returns
    -------
    dict
        ``x``       : (5,) ``linspace(-10, 10, 5)`` plus noise.
        ``y``       : (5,) ``linspace(-10, 10, 5)`` plus noise.
        ``input``   : (5, 2) rows ``[1, x_i]`` (the bias column first).
        ``target``  : (5, 1) ``y`` as a column.
        ``weights`` : (2, 1) initial ``[[b], [m]]``.
        ``lr``      : float, 0.002 (plain gradient descent).
        ``steps``   : int, 50.
        ``param_names`` : ``("weights",)``.
    """
    rng = np.random.default_rng(seed)
    base = np.linspace(-10.0, 10.0, 5)
    x = base + rng.normal(0.0, 1.5, size=5)
    y = base + rng.normal(0.0, 1.5, size=5)
    weights = rng.normal(0.0, 0.1, size=(2, 1))
    inp = np.column_stack([np.ones_like(x), x])
    return {"x": x.astype(dtype), "y": y.astype(dtype), "input": inp.astype(dtype),
            "target": y[:, None].astype(dtype), "weights": weights.astype(dtype),
            "lr": 0.002, "steps": 50, "param_names": ("weights",)}


# ---------------------------------------------------------------------------------------------
# W5 -- the MNIST-style convolutional network
# ---------------------------------------------------------------------------------------------

#: W5's parameter shapes, in order: two 3x3 convolutions (8 then 16 channels, biases of shape
#: (C, 1, 1) so that they broadcast over an NCHW batch) and the final linear layer
CNN_SHAPES = {"k1": (8, 1, 3, 3), "b1": (8, 1, 1), "k2": (16, 8, 3, 3), "b2": (16, 1, 1),
              "w3": (400, 10), "b3": (10,)}


def cnn_params(seed: int = 0, dtype: DTypeLike = "float32") -> dict:
    """Initial parameters of W5, as TensorFlow's "Deep MNIST" tutorial draws them.

    Weights ``truncated_normal(stddev=0.1)`` drawn in the order of :data:`CNN_SHAPES`
    from ``default_rng(seed)``; biases the constant 0.1.

    Parameters
    ----------
    seed : int
        Seed of the generator.
    dtype : dtype-like
        dtype of every array.

    Returns
    -------
    dict
        ``k1, b1, k2, b2, w3, b3`` with the shapes of :data:`CNN_SHAPES`.
    """
    rng = np.random.default_rng(seed)
    return {name: (np.full(shape, 0.1, dtype=dtype) if name.startswith("b")
                   else truncated_normal(rng, shape, 0.1, dtype=dtype))
            for name, shape in CNN_SHAPES.items()}


def w5(batch: int = 64, seed: int = 0, dtype: DTypeLike = "float32") -> dict:
    """W5: the small CNN on MNIST-shaped input.

    ``conv 3x3 (1 -> 8) + b1, relu, 2x2 max pool`` (28 -> 26 -> 13), ``conv 3x3 (8 -> 16)
    + b2, relu, 2x2 max pool`` (13 -> 11 -> 5), flatten to 400, ``@ w3 + b3`` to 10 logits,
    loss ``mean(softmax_cross_entropy(logits, onehot))``; NCHW, valid convolutions, stride
    1. Parameters from ``cnn_params(seed, dtype)``; one batch from
    ``synthetic_mnist(batch, seed + 1, dtype)`` reshaped to ``(batch, 1, 28, 28)``.

    Parameters
    ----------
    batch : int
        Rows of the included batch (64 in the plan of ``docs/workloads.md``).
    seed : int
        Seed of the weights; the batch uses ``seed + 1``.
    dtype : dtype-like
        dtype of the parameters and the data.

    Returns
    -------
    dict
        ``k1, b1, k2, b2, w3, b3`` : initial parameters.
        ``x``       : (batch, 1, 28, 28) inputs in [0, 1].
        ``labels``  : (batch,) int64 labels.
        ``onehot``  : (batch, 10) one-hot labels.
        ``lr``      : float, 0.001 (Adam).
        ``batch``   : int, the batch size.
        ``param_names`` : tuple of str, ``("k1", "b1", "k2", "b2", "w3", "b3")``.
    """
    params = cnn_params(seed, dtype)
    data = synthetic_mnist(batch, seed=seed + 1, dtype=dtype)
    data["x"] = data["x"].reshape(batch, 1, 28, 28)
    return {**params, **data, "lr": 0.001, "batch": int(batch),
            "param_names": tuple(params)}
