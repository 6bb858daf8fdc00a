"""W0 -- one scalar weight: fit ``x * A`` to the constant target 10.

The tutorial draws 100 samples ``x ~ N(1, 0.1)``, starts ``A ~ N(0, 1)`` and runs 100 steps
of plain gradient descent (learning rate 0.02) on the loss ``(x*A - 10)^2`` of ONE randomly
chosen sample per step. A approaches 10 (the tutorial ends at A ~ 10.08 with a loss below 1).

symgrad compiles loss + gradient + update into one generated function; for a scalar model
that function is a handful of Python float operations, so a step costs about one call.

Run::

    python examples/w0_scalar.py               # 100 steps, as the tutorial
    python examples/w0_scalar.py --quick       # 10 steps (used by the tests)
    python examples/w0_scalar.py --plots DIR   # where to save the loss plot (needs matplotlib)
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

import symgrad as sg  # noqa: E402
from _common import _function_body, _pyplot  # noqa: E402
from symgrad import workloads  # noqa: E402


def build():
    """The model: inputs ``x`` and ``target`` (scalars), parameter ``A``, squared error."""
    x = sg.input("x")
    target = sg.input("target")
    a = sg.param("A")
    output = x * a
    loss = (output - target) ** 2
    return loss, a


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and A")
    parser.add_argument("--plots", type=Path, default=HERE / "out",
                        help="directory for the plots (default examples/out/)")
    parser.add_argument("--quick", action="store_true", help="10 steps (for the tests)")
    args = parser.parse_args(argv)
    print(_common.blas_threads())

    d = workloads.w0(seed=args.seed)
    steps = args.steps or (10 if args.quick else d["steps"])
    loss, a = build()

    print("W0: fit x*A to target 10, one random sample per step")
    print(f"  x: {d['x'].shape[0]} samples from N(1, 0.1), mean {d['x'].mean():.4f}")
    print(f"  initial A = {float(d['A']):.4f}, learning rate {d['lr']}, {steps} steps")
    grad_a = sg.compile({"loss": loss, "dloss_dA": sg.grad(loss, [a])[0]})
    print(f"  loss      = {grad_a.formulas['loss']}")
    print(f"  dloss/dA  = {grad_a.formulas['dloss_dA']}")

    step = sg.train_step(loss, sg.optim.SGD(d["lr"]))
    print("\nThe generated training step (cached at", step.path, "):")
    print(_function_body(step.source))
    print()

    state = step.init({"A": d["A"]})
    losses, values = [], []
    start = time.perf_counter()
    for i in range(steps):
        xi = d["x"][d["indices"][i]]
        losses.append(float(step(state, x=xi, target=d["target"])))
        values.append(float(state.params["A"]))
    elapsed = time.perf_counter() - start
    every = max(1, steps // 10)
    for i in range(steps):
        if (i + 1) % every == 0 or i == 0:
            print(f"Step #{i + 1:3d}  A = {values[i]:8.4f}  Loss = {losses[i]:10.4f}")
    final_a = float(state.params["A"])
    print(f"\nfinal A = {final_a:.4f} (target 10; the tutorial ends at 10.08), "
          f"last loss {losses[-1]:.4f}")
    print(f"{elapsed / steps * 1e6:.1f} us per step, including the Python loop")

    saved = []
    plt = _pyplot()
    if plt is None:
        print("matplotlib is not installed: no plots")
    else:
        args.plots.mkdir(parents=True, exist_ok=True)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.plot(range(1, steps + 1), losses)
        ax1.set_xlabel("step")
        ax1.set_ylabel("loss of the step's sample")
        ax1.set_yscale("log")
        ax1.set_title("W0: loss over steps")
        ax2.plot(range(1, steps + 1), values)
        ax2.axhline(10.0, color="gray", linestyle="--")
        ax2.set_xlabel("step")
        ax2.set_ylabel("A")
        ax2.set_title("W0: A over steps")
        fig.tight_layout()
        path = args.plots / "w0_loss.png"
        fig.savefig(path)
        plt.close(fig)
        saved.append(path)
        print("saved", path)
    return {"A": final_a, "losses": losses, "values": values, "plots": saved,
            "source": step.source}


if __name__ == "__main__":
    main()
