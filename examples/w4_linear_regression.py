"""W4 -- linear regression with a bias column, compared with ``np.polyfit``.

The tutorial: 5 points, x and y each ``linspace(-10, 10, 5)`` plus N(0, 1.5) noise; the
input rows are ``[1, x_i]`` so that ``weights = [[b], [m]]`` hold the intercept and the
slope; ``yhat = input @ weights``; loss ``l2_loss(yhat - target) = sum(err^2) / 2``;
gradient descent with learning rate 0.002 for 50 steps, keeping the loss and (b, m) after
every step; then the final line against ``np.polyfit(x, y, 1)`` and three plots: the fit,
the loss over time and the lines over time.

Run::

    python examples/w4_linear_regression.py               # 50 steps, as the tutorial
    python examples/w4_linear_regression.py --steps 2000  # until it matches polyfit
    python examples/w4_linear_regression.py --quick       # 10 steps (used by the tests)
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


def build():
    """``yhat = input @ weights`` and its loss ``l2_loss(yhat - target)``."""
    inp = sg.input("input", ("N", 2))
    target = sg.input("target", ("N", 1))
    weights = sg.param("weights", (2, 1))
    yhat = inp @ weights
    loss = sg.l2_loss(yhat - target)
    return loss, weights


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps (default 50)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (0.002)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and weights")
    parser.add_argument("--plots", type=Path, default=HERE / "out",
                        help="directory for the plots (default examples/out/)")
    parser.add_argument("--quick", action="store_true", help="10 steps (for the tests)")
    args = parser.parse_args(argv)
    print(_common.blas_threads())

    d = workloads.w4(seed=args.seed)
    steps = args.steps or (10 if args.quick else d["steps"])
    lr = d["lr"] if args.lr is None else args.lr
    loss, weights = build()

    np.set_printoptions(precision=4, suppress=True)
    print("W4: linear regression yhat = [1, x] @ [[b], [m]], loss = sum((yhat - y)^2) / 2")
    print("  x =", d["x"])
    print("  y =", d["y"])
    print(f"  initial (b, m) = ({d['weights'][0, 0]:.4f}, {d['weights'][1, 0]:.4f}); "
          f"learning rate {lr}, {steps} steps")
    g = sg.compile({"loss": loss, "dloss_dweights": sg.grad(loss, [weights])[0]})
    for name, text in g.formulas.items():
        print(f"  {name} = {text}")

    step = sg.train_step(loss, sg.optim.SGD(lr))
    print(f"\nThe generated training step (cached at {step.path}):")
    print(_function_body(step.source))
    print()

    state = step.init({"weights": d["weights"]})
    losses, lines = [], []  # the loss and (b, m) after every step
    at_start = float(g(input=d["input"], target=d["target"], weights=d["weights"])["loss"])
    for i in range(steps):
        step(state, input=d["input"], target=d["target"])
        w = state.params["weights"]
        losses.append(float(g(input=d["input"], target=d["target"], weights=w)["loss"]))
        lines.append((float(w[0, 0]), float(w[1, 0])))
    every = max(1, steps // 10)
    print(f"step   0  loss {at_start:10.4f}")
    for i in range(steps):
        if (i + 1) % every == 0:
            b, m = lines[i]
            print(f"step {i + 1:3d}  loss {losses[i]:10.4f}  b = {b:8.4f}  m = {m:8.4f}")

    b, m = lines[-1]
    m_fit, b_fit = np.polyfit(d["x"], d["y"], 1)
    best = 0.5 * float(np.sum((m_fit * d["x"] + b_fit - d["y"]) ** 2))
    print(f"\ngradient descent: y = {m:.4f} x + {b:.4f}   (loss {losses[-1]:.4f})")
    print(f"np.polyfit:       y = {m_fit:.4f} x + {b_fit:.4f}   (loss {best:.4f}, the minimum)")
    print(f"difference: slope {m - m_fit:+.2e}, intercept {b - b_fit:+.2e} (the slope "
          "converges fast; the intercept slowly, at this learning rate)")

    saved = []
    plt = _pyplot()
    if plt is None:
        print("matplotlib is not installed: no plots")
    else:
        args.plots.mkdir(parents=True, exist_ok=True)
        xs = np.linspace(d["x"].min() - 1, d["x"].max() + 1, 50)

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(d["x"], d["y"], color="k", zorder=3, label="data")
        ax.plot(xs, m * xs + b, label=f"gradient descent: {m:.3f} x + {b:.3f}")
        ax.plot(xs, m_fit * xs + b_fit, "--", label=f"np.polyfit: {m_fit:.3f} x + {b_fit:.3f}")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title("W4: the fit")
        ax.legend()
        fig.tight_layout()
        saved.append(args.plots / "w4_fit.png")
        fig.savefig(saved[-1])
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(range(steps + 1), [at_start, *losses], "o-" if steps <= 100 else "-", ms=3)
        ax.axhline(best, color="gray", linestyle="--", label="minimum (polyfit)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("l2_loss")
        ax.set_title("W4: loss over time")
        ax.legend()
        fig.tight_layout()
        saved.append(args.plots / "w4_loss.png")
        fig.savefig(saved[-1])
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(d["x"], d["y"], color="k", zorder=3)
        cmap = plt.get_cmap("viridis")
        start = (float(d["weights"][0, 0]), float(d["weights"][1, 0]))
        for i, (bi, mi) in enumerate([start, *lines]):
            ax.plot(xs, mi * xs + bi, color=cmap(i / steps), lw=0.8)
        ax.set_xlabel("x")
        ax.set_ylabel("y = m x + b")
        ax.set_title(f"W4: the line after each of the {steps} steps (dark: early, light: late)")
        fig.tight_layout()
        saved.append(args.plots / "w4_lines.png")
        fig.savefig(saved[-1])
        plt.close(fig)
        for path in saved:
            print("saved", path)
    return {"losses": losses, "lines": lines, "initial_loss": at_start,
            "polyfit": (float(m_fit), float(b_fit)), "final": (m, b), "plots": saved}


if __name__ == "__main__":
    main()
