"""W5 -- a small convolutional network, trained with one generated step function.

The model of ``docs/workloads.md``: ``conv 3x3 (8 channels) + b1, relu, 2x2 max pool``,
``conv 3x3 (16 channels) + b2, relu, 2x2 max pool``, flatten, ``@ w3 + b3`` to 10 logits,
loss ``mean(softmax_cross_entropy(logits, onehot))``; NCHW, float32; weights truncated
normal (stddev 0.1), biases 0.1 (``symgrad.workloads.cnn_params``); Adam at 0.001, batches
of 64.

Data, with no download (as the W3 example): ``--mnist DIR`` reads the MNIST IDX files
(28 x 28 images, valid convolutions: 28 -> 26 -> 13 -> 11 -> 5, 400 features); otherwise
``symgrad.data.default_digits()``: scikit-learn's 8x8 digits when it is installed
(``"same"`` convolutions there: 8 -> 4 -> 2, 64 features), else synthetic MNIST-shaped
data, fine for timing and as a smoke test but not images of digits. The script says which.
The synthetic prototypes are random sparse pixels with no spatial structure, which 2x2
pooling partly averages away: on them the CNN learns slowly (3 epochs of 3000 rows: about
12 % test accuracy at lr 0.001, 20 % after 4 epochs at lr 0.01; chance is 10 %), unlike the
MLP of W3. Use real images to see it learn.

The generated step calls numpy only: each convolution is an im2col (one strided copy per
kernel tap) and one matrix product, its gradients the transposed products and the matching
scatter over the taps.

Run::

    python examples/w5_cnn.py                   # default data, 3 epochs of Adam
    python examples/w5_cnn.py --mnist ~/mnist   # real MNIST from IDX files
    python examples/w5_cnn.py --quick           # 1 epoch on 256 rows (the tests)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("symgrad") is None:  # running from a source checkout
    sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))  # examples/_common.py

import _common  # noqa: E402

if __name__ == "__main__":  # an entry point: one BLAS thread, set before numpy loads BLAS
    _common.limit_blas_threads()

import numpy as np  # noqa: E402
import symgrad as sg  # noqa: E402
from _common import _function_body  # noqa: E402
from symgrad import data, workloads  # noqa: E402
from w3_mnist_mlp import OPTIMIZERS, load_data  # noqa: E402


def build(side: int, classes: int = 10, dtype="float32"):
    """``(loss, logits, params)``: the CNN over ``x`` (N x 1 x side x side) and ``onehot``.

    Valid convolutions for MNIST's 28 x 28, "same" ones for small images (8 x 8 digits).
    """
    padding = "valid" if side >= 16 else "same"
    x = sg.input("x", ("N", 1, side, side), dtype)
    onehot = sg.input("onehot", ("N", classes), dtype)
    shapes = dict(workloads.CNN_SHAPES)
    h = x
    params = {}
    for i in (1, 2):
        params[f"k{i}"] = sg.param(f"k{i}", shapes[f"k{i}"], dtype)
        params[f"b{i}"] = sg.param(f"b{i}", shapes[f"b{i}"], dtype)
        h = sg.max_pool2d(sg.relu(sg.conv2d(h, params[f"k{i}"], padding=padding)
                                  + params[f"b{i}"]), 2)
    features = h.shape[1] * h.shape[2] * h.shape[3]
    params["w3"] = sg.param("w3", (features, classes), dtype)
    params["b3"] = sg.param("b3", (classes,), dtype)
    logits = sg.reshape(h, (-1, features)) @ params["w3"] + params["b3"]
    return sg.mean(sg.softmax_cross_entropy(logits, onehot)), logits, params


def initial_params(params: dict, seed: int, dtype) -> dict:
    """W5's initial values; the last layer redrawn alike when the flattened width is not
    W5's 400 (small images)."""
    init = workloads.cnn_params(seed, dtype)
    shape = params["w3"].shape
    if init["w3"].shape != shape:
        init["w3"] = workloads.truncated_normal(np.random.default_rng(seed + 1), shape, 0.1,
                                                dtype=dtype)
    return init


def train(x_train, labels_train, x_test, labels_test, *, epochs: int = 3,
          optimizer: str = "adam", lr: float = 0.001, batch: int = 64, seed: int = 0,
          log=print) -> dict:
    """Train the CNN on images ``(N, side * side)``; one log line per epoch.

    Returns ``losses`` (every step's batch loss), ``epochs`` (per epoch: mean loss, train
    accuracy, test accuracy, seconds), ``test_accuracy``, ``params`` and ``step``.
    """
    dtype = x_train.dtype
    side = int(round(np.sqrt(x_train.shape[1])))
    x_train = x_train.reshape(-1, 1, side, side)
    x_test = x_test.reshape(-1, 1, side, side)
    loss, logits, params = build(side, 10, dtype)
    opt = OPTIMIZERS[optimizer](lr)
    step = sg.train_step(loss, opt)
    log(f"generated step: {opt!r}, {step.source.count(chr(10))} lines, cached at {step.path}")
    log(_function_body(step.source, lines=40) + "\n    ...\n")
    predict = sg.compile(logits, inputs=["x", *params])
    state = step.init(initial_params(params, seed, dtype))
    onehot_train = data.one_hot(labels_train, 10, dtype)

    def accuracy(x, labels):
        return float(np.mean(predict(x=x, **state.params).argmax(axis=1) == labels))

    losses, history = [], []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        total, rows = 0.0, 0
        for xb, yb in data.minibatches(x_train, onehot_train, batch_size=batch, seed=epoch):
            value = float(step(state, x=xb, onehot=yb))
            losses.append(value)
            total += value * len(xb)
            rows += len(xb)
        seconds = time.perf_counter() - start
        train_acc, test_acc = accuracy(x_train, labels_train), accuracy(x_test, labels_test)
        history.append((total / rows, train_acc, test_acc, seconds))
        log(f"epoch {epoch:2d}/{epochs}  loss {total / rows:.5f}  train accuracy "
            f"{train_acc:.4f}  test accuracy {test_acc:.4f}  ({seconds:.2f} s)")
    return {"losses": losses, "epochs": history, "test_accuracy": history[-1][2],
            "params": {k: v.copy() for k, v in state.params.items()}, "step": step}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=None,
                        help="directory holding the MNIST IDX files (default: built-in data)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 3)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    parser.add_argument("--lr", type=float, default=0.001, help="learning rate (0.001)")
    parser.add_argument("--batch", type=int, default=64, help="rows per minibatch (64)")
    parser.add_argument("--synthetic-rows", type=int, default=3000,
                        help="rows of synthetic data when scikit-learn is missing (3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and split")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch on 256 training rows (for the tests)")
    args = parser.parse_args(argv)
    print(_common.blas_threads())
    x_train, y_train, x_test, y_test, description = load_data(
        args.mnist, args.synthetic_rows, args.seed)
    if args.quick:
        x_train, y_train = x_train[:256], y_train[:256]
        x_test, y_test = x_test[:128], y_test[:128]
    epochs = args.epochs or (1 if args.quick else 3)
    print("W5: CNN conv3x3(8) relu pool2, conv3x3(16) relu pool2, linear(10), "
          "softmax cross-entropy")
    print("data:", description)
    print(f"      {len(x_train)} training rows, {len(x_test)} test rows; "
          f"{args.optimizer} lr {args.lr}, batches of {args.batch}, {epochs} epoch(s)")
    result = train(x_train, y_train, x_test, y_test, epochs=epochs, optimizer=args.optimizer,
                   lr=args.lr, batch=args.batch, seed=args.seed)
    print(f"final test accuracy: {result['test_accuracy']:.4f} (chance: 0.1)")
    result.update(description=description)
    return result


if __name__ == "__main__":
    main()
