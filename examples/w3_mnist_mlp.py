"""W3 -- the MNIST multilayer perceptron, trained with one generated step function.

The tutorial's network: ``h1 = relu(x @ w1 + b1)``, ``h2 = relu(h1 @ w2 + b2)``,
``out = h2 @ w3 + b3`` with 256 and 128 hidden units; weights truncated normal (stddev 0.1),
biases zero; loss ``mean((onehot - out)^2)``; minibatches of 128 (the last one smaller);
float32 throughout.

Data, with no download:

* ``--mnist DIR``: the standard MNIST IDX files in DIR (``train-images-idx3-ubyte[.gz]``,
  ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``): 784 features, 60000 / 10000 rows.
* otherwise ``symgrad.data.default_digits()``: scikit-learn's real 8x8 handwritten digits
  (64 features, 1797 images, split 80 / 20 here) when scikit-learn is installed, else
  synthetic MNIST-shaped data (784 features; ``--synthetic-rows`` of them), which is fine
  for timing and as a smoke test but is not images of digits. The script says which.

The tutorial trains with plain gradient descent at learning rate 0.001. On a small data set
that barely moves the weights in a few epochs, so the default here is Adam at the same
learning rate (the optimizer the W1 tutorial suggests trying);
``--optimizer sgd --lr 0.001`` reproduces the tutorial's update exactly.

Run::

    python examples/w3_mnist_mlp.py                      # default data, 10 epochs of Adam
    python examples/w3_mnist_mlp.py --mnist ~/mnist      # real MNIST from IDX files
    python examples/w3_mnist_mlp.py --epochs 3 --optimizer momentum --lr 0.05
    python examples/w3_mnist_mlp.py --quick              # 1 epoch on 500 rows (the tests)
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
from _common import _function_body, _pyplot  # noqa: E402
from symgrad import data, workloads  # noqa: E402

OPTIMIZERS = {
    "sgd": lambda lr: sg.optim.SGD(lr),
    "momentum": lambda lr: sg.optim.Momentum(lr, momentum=0.9),
    "adam": lambda lr: sg.optim.Adam(lr),
}


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

def load_data(mnist_dir=None, synthetic_rows: int = 6000, seed: int = 0,
              dtype="float32") -> tuple:
    """``(x_train, labels_train, x_test, labels_test, description)``.

    From the IDX files in ``mnist_dir`` if given, else :func:`symgrad.data.default_digits`
    split 80 / 20 by a permutation drawn from ``seed``.
    """
    if mnist_dir is not None:
        x_train, y_train = data.load_mnist(mnist_dir, "train", dtype=dtype)
        x_test, y_test = data.load_mnist(mnist_dir, "test", dtype=dtype)
        description = (f"MNIST from IDX files in {mnist_dir}: {len(x_train)} training and "
                       f"{len(x_test)} test images of {x_train.shape[1]} pixels")
        return x_train, y_train, x_test, y_test, description
    x, labels, description = data.default_digits(dtype=dtype, n_synthetic=synthetic_rows,
                                                 seed=seed)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], labels[train], x[test], labels[test], description


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------

def build(features: int, hidden=(256, 128), classes: int = 10, dtype="float32"):
    """``(loss, out, params)``: the MLP over inputs ``x`` (N x features) and ``onehot``.

    ``params`` maps ``w1, b1, ..., wL, bL`` to their ``sg.param`` leaves.
    """
    sizes = (features, *hidden, classes)
    x = sg.input("x", ("N", features), dtype)
    onehot = sg.input("onehot", ("N", classes), dtype)
    params = {}
    h = x
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"w{i}"] = sg.param(f"w{i}", (n_in, n_out), dtype)
        params[f"b{i}"] = sg.param(f"b{i}", (n_out,), dtype)
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < len(sizes) - 1:
            h = sg.relu(h)
    loss = sg.mean((onehot - h) ** 2)
    return loss, h, params


def train(x_train, labels_train, x_test, labels_test, *, epochs: int = 10,
          optimizer: str = "adam", lr: float = 0.001, batch: int = 128,
          hidden=(256, 128), seed: int = 0, log=print) -> dict:
    """Train the MLP; ``log`` receives one line per epoch (and the step's source).

    Returns a dict: ``losses`` (every step's batch loss), ``epochs`` (per epoch: mean loss,
    train accuracy, test accuracy, seconds), ``test_accuracy`` (final), ``params``,
    ``batch_sizes`` (of the first epoch) and ``step`` (the compiled step).
    """
    dtype = x_train.dtype
    features = x_train.shape[1]
    loss, out, params = build(features, hidden, 10, dtype)
    opt = OPTIMIZERS[optimizer](lr)
    step = sg.train_step(loss, opt)
    log(f"loss = {sg.compile(loss).formulas['out']}")
    log(f"generated step: {opt!r}, {step.source.count(chr(10))} lines, cached at {step.path}")
    log(_function_body(step.source, lines=32) + "\n    ...\n")
    predict = sg.compile(out, inputs=["x", *params])
    state = step.init(workloads.mlp_params((features, *hidden, 10), seed=seed, dtype=dtype))
    onehot_train = data.one_hot(labels_train, 10, dtype)

    def accuracy(x, labels):
        return float(np.mean(predict(x=x, **state.params).argmax(axis=1) == labels))

    losses, history, first_sizes = [], [], []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        total, rows = 0.0, 0
        for xb, yb in data.minibatches(x_train, onehot_train, batch_size=batch, seed=epoch):
            value = float(step(state, x=xb, onehot=yb))
            losses.append(value)
            total += value * len(xb)
            rows += len(xb)
            if epoch == 1:
                first_sizes.append(len(xb))
        seconds = time.perf_counter() - start
        train_acc = accuracy(x_train, labels_train)
        test_acc = accuracy(x_test, labels_test)
        history.append((total / rows, train_acc, test_acc, seconds))
        log(f"epoch {epoch:2d}/{epochs}  loss {total / rows:.5f}  train accuracy "
            f"{train_acc:.4f}  test accuracy {test_acc:.4f}  ({seconds:.2f} s)")
    return {"losses": losses, "epochs": history, "test_accuracy": history[-1][2],
            "params": {k: v.copy() for k, v in state.params.items()},
            "batch_sizes": first_sizes, "step": step}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=None,
                        help="directory holding the MNIST IDX files (default: built-in data)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 10)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    parser.add_argument("--lr", type=float, default=0.001, help="learning rate (0.001)")
    parser.add_argument("--batch", type=int, default=128, help="rows per minibatch (128)")
    parser.add_argument("--synthetic-rows", type=int, default=6000,
                        help="rows of synthetic data when scikit-learn is missing (6000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and split")
    parser.add_argument("--plots", type=Path, default=HERE / "out",
                        help="directory for the plots (default examples/out/)")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch on 500 training rows (for the tests)")
    args = parser.parse_args(argv)
    print(_common.blas_threads())

    x_train, y_train, x_test, y_test, description = load_data(
        args.mnist, args.synthetic_rows, args.seed)
    if args.quick:
        x_train, y_train = x_train[:500], y_train[:500]
        x_test, y_test = x_test[:250], y_test[:250]
    epochs = args.epochs or (1 if args.quick else 10)
    print("W3: MLP", f"{x_train.shape[1]} -> 256 -> 128 -> 10,", "relu, mean squared error")
    print("data:", description)
    print(f"      {len(x_train)} training rows, {len(x_test)} test rows; "
          f"{args.optimizer} lr {args.lr}, batches of {args.batch}, {epochs} epoch(s)")
    if args.optimizer == "sgd" and args.mnist is None:
        print("note: plain gradient descent at lr 0.001 learns slowly on small data; "
              "try --optimizer adam")
    result = train(x_train, y_train, x_test, y_test, epochs=epochs, optimizer=args.optimizer,
                   lr=args.lr, batch=args.batch, seed=args.seed)
    print(f"final test accuracy: {result['test_accuracy']:.4f} (chance: 0.1)")

    saved = []
    plt = _pyplot()
    if plt is None:
        print("matplotlib is not installed: no plots")
    else:
        args.plots.mkdir(parents=True, exist_ok=True)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.plot(result["losses"], lw=0.8)
        ax1.set_xlabel("step")
        ax1.set_ylabel("batch loss")
        ax1.set_yscale("log")
        ax1.set_title("W3: loss over steps")
        ep = range(1, epochs + 1)
        ax2.plot(ep, [h[1] for h in result["epochs"]], "o-", label="train")
        ax2.plot(ep, [h[2] for h in result["epochs"]], "o-", label="test")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(0, 1)
        ax2.set_title("W3: accuracy per epoch")
        ax2.legend()
        fig.tight_layout()
        path = args.plots / "w3_training.png"
        fig.savefig(path)
        plt.close(fig)
        saved.append(path)
        print("saved", path)
    result.update(description=description, plots=saved)
    return result


if __name__ == "__main__":
    main()
