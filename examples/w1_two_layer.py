"""W1 -- a two-layer linear network, ``y = (x @ w1) @ w2``, trained on 32 points.

The tutorial: X is ``RandomState(23455).rand(32, 2)``, the label is 1 where
``x0 + x1 < 1``; w1 (2x3) and w2 (3x1) start from N(0, 1); the loss is the mean squared
error; gradient descent with learning rate 0.001 on sliding-window batches of 8 for 3000
steps, logging the loss on all 32 points every 500 steps (5.13 after the first step, 0.39
by step 2500). TensorFlow's random initial weights cannot be reproduced; ours come from
``symgrad.workloads.w1`` (seed 66, chosen because its run looks like the tutorial's).

The tutorial names Momentum and Adam as the other optimizers to try: ``--optimizer``.

Run::

    python examples/w1_two_layer.py                      # 3000 steps of gradient descent
    python examples/w1_two_layer.py --optimizer adam     # or momentum
    python examples/w1_two_layer.py --quick              # 40 steps (used by the tests)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
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
from symgrad import workloads  # noqa: E402

OPTIMIZERS = {
    "sgd": lambda lr: sg.optim.SGD(lr),
    "momentum": lambda lr: sg.optim.Momentum(lr, momentum=0.9),
    "adam": lambda lr: sg.optim.Adam(lr),
}


def build():
    """The network and its loss: ``mean(((x @ w1) @ w2 - y)^2)`` over a batch of N rows."""
    x = sg.input("x", shape=("N", 2))
    y = sg.input("y", shape=("N", 1))
    w1 = sg.param("w1", (2, 3))
    w2 = sg.param("w2", (3, 1))
    loss = sg.mean(((x @ w1) @ w2 - y) ** 2)
    return loss, w1, w2


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 0.001)")
    parser.add_argument("--steps", type=int, default=None, help="steps (default 3000)")
    parser.add_argument("--seed", type=int, default=66, help="seed of the initial weights")
    parser.add_argument("--plots", type=Path, default=HERE / "out",
                        help="directory for the plots (default examples/out/)")
    parser.add_argument("--quick", action="store_true", help="40 steps (for the tests)")
    args = parser.parse_args(argv)
    print(_common.blas_threads())

    d = workloads.w1(seed=args.seed)
    steps = args.steps or (40 if args.quick else d["steps"])
    log_every = 10 if args.quick else d["log_every"]
    lr = d["lr"] if args.lr is None else args.lr
    loss, w1, w2 = build()
    opt = OPTIMIZERS[args.optimizer](lr)

    np.set_printoptions(precision=4, suppress=True)
    print("W1: y = (x @ w1) @ w2, loss = mean((y - y_)^2)")
    print(f"  X: {d['X'].shape}, {int(d['Y'].sum())} of {len(d['Y'])} labels are 1")
    print("  initial w1 =\n", d["w1"], "\n  initial w2 =\n", d["w2"])
    grads = sg.compile(dict(zip(("dloss_dw1", "dloss_dw2"), sg.grad(loss, [w1, w2]))))
    for name, text in grads.formulas.items():
        print(f"  {name} = {text}")

    step = sg.train_step(loss, opt)
    print(f"\nThe generated training step, {opt!r} (cached at {step.path}):")
    print(_function_body(step.source, lines=40))
    print()

    # the loss on all 32 points, at the current parameters
    loss_all = sg.compile(loss, inputs=["x", "y", "w1", "w2"])
    state = step.init({"w1": d["w1"], "w2": d["w2"]})
    batch_losses, logged = [], []
    for i in range(steps):
        xb, yb = workloads.w1_batch(d, i)
        batch_losses.append(float(step(state, x=xb, y=yb)))
        if i % log_every == 0:  # logged after the step's update, as the tutorial does
            total = float(loss_all(d["X"], d["Y"], state.params["w1"], state.params["w2"]))
            logged.append((i, total))
            print(f"After {i} training step(s), loss on all data is {total:.4g}")
    final = float(loss_all(d["X"], d["Y"], state.params["w1"], state.params["w2"]))
    print(f"After {steps} training steps, loss on all data is {final:.4g} "
          "(tutorial: 5.13 after step 0, 0.39 by step 2500)")
    print("final w1 =\n", state.params["w1"], "\nfinal w2 =\n", state.params["w2"])

    # the plotted curve: every log line, and the final loss when the last log line comes
    # before the last step (3000 steps log at 0, 500, ..., 2500)
    curve = logged if logged and logged[-1][0] == steps - 1 else [*logged, (steps - 1, final)]
    saved = []
    plt = _pyplot()
    if plt is None:
        print("matplotlib is not installed: no plots")
    else:
        args.plots.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(range(steps), batch_losses, lw=0.6, alpha=0.6, label="batch of 8")
        ax.plot(*zip(*curve), "o-", label="all 32 points (after the step)")
        ax.set_xlabel("step")
        ax.set_ylabel("mean squared error")
        ax.set_yscale("log")
        ax.set_title(f"W1: loss over steps ({opt!r})")
        ax.legend()
        fig.tight_layout()
        path = args.plots / f"w1_loss_{args.optimizer}.png"
        fig.savefig(path)
        plt.close(fig)
        saved.append(path)
        print("saved", path)
    return {"logged": logged, "final_loss": final, "batch_losses": batch_losses,
            "params": {k: v.copy() for k, v in state.params.items()}, "plots": saved,
            "plotted": curve}


if __name__ == "__main__":
    main()
