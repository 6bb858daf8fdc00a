"""W2 -- gradients you can check by hand, each computed by symgrad and by the tape.

1. ``Y = w * X``, vector cost ``Y[1] * Y``: one gradient step (learning rate 1) takes w from
   [2, 3] to [-4, -25] (a non-scalar target is differentiated as the sum of its elements).
2. ``f(x, y) = x^2 y + y + 2`` at (3, 4): df/dx = 2xy = 24, df/dy = x^2 + 1 = 10.
3. ``f(x) = sin(x)^2``: f(pi/2) = 1, f'(x) = 2 sin(x) cos(x), f'(pi/2) = 0.
4. A custom gradient: ``sign(x)`` forward, the straight-through gradient of hard-tanh
   backward (1 where -1 <= x <= 1, else 0).
5. Clipping by global norm; gradients of several targets with given output cotangents
   (``grad_ys``); ``stop_gradient``.

Every symbolic result is checked against :mod:`symgrad.tape` (an independent tape-based
autodiff) and against the value worked out by hand; a mismatch raises.

Run::

    python examples/w2_by_hand.py
"""

from __future__ import annotations

import argparse
import importlib.util
import math
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
from symgrad import tape as tp  # noqa: E402
from symgrad import workloads  # noqa: E402


def _check(name: str, got, expected, atol: float = 1e-12) -> None:
    """Raise if ``got`` differs from ``expected``; print both otherwise."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-12, atol=atol):
        raise AssertionError(f"{name}: got {got}, expected {expected}")
    print(f"  {name:<40s} {np.array2string(got, precision=6, suppress_small=True)}")


def part1() -> np.ndarray:
    """W2.1: one SGD(1.0) step on the vector cost ``Y[1] * Y`` through ``sg.train_step``."""
    d = workloads.w2_1()
    print("W2.1  Y = w * X, cost = Y[1] * Y, one gradient step with learning rate 1")
    w = sg.param("w", (2,))
    x = sg.constant(d["X"], name="X")
    y = w * x
    cost = y[1] * y
    f = sg.compile({"cost": cost, "grad_w": sg.grad(cost, [w])[0]})
    out = f(w=d["w"])
    _check("cost at w = [2, 3]", out["cost"], [12.0, 36.0])
    _check("d sum(cost)/dw  (by hand: [6, 28])", out["grad_w"], d["expected_grad"])

    step = sg.train_step(cost, sg.optim.SGD(d["lr"]))
    state = step.init({"w": d["w"]})
    total = step(state)
    _check("sum of the cost before the step", total, 48.0)
    _check("w after one step  (by hand: [-4, -25])", state.params["w"], d["expected_w"])

    tw = tp.Variable(d["w"])
    with tp.GradientTape() as t:
        ty = tw * d["X"]
        tcost = ty[1] * ty
    _check("tape: d sum(cost)/dw", t.gradient(tcost, tw), d["expected_grad"])
    return state.params["w"].copy()


def part2() -> dict:
    """W2.2: ``x^2 y + y + 2`` and its symbolic partial derivatives."""
    print("\nW2.2  f(x, y) = x^2*y + y + 2 at x = 3, y = 4")
    x, y = sg.param("x"), sg.param("y")
    f = x**2 * y + y + 2
    dfdx, dfdy = sg.grad(f, [x, y])
    fn = sg.compile({"f": f, "df_dx": dfdx, "df_dy": dfdy})
    out = fn(x=3.0, y=4.0)
    for name, text in fn.formulas.items():
        print(f"  {name} = {text}")
    print(f"  LaTeX of df/dx: {sg.latex(dfdx)}    of df/dy: {sg.latex(dfdy)}")
    _check("f(3, 4)", out["f"], 42.0)
    _check("df/dx = 2xy", out["df_dx"], 24.0)
    _check("df/dy = x^2 + 1", out["df_dy"], 10.0)

    tx, ty = tp.Variable(3.0), tp.Variable(4.0)
    with tp.GradientTape() as t:
        tf_ = tx * tx * ty + ty + 2.0
    gx, gy = t.gradient(tf_, [tx, ty])
    _check("tape: (df/dx, df/dy)", [gx, gy], [24.0, 10.0])
    return {"f": float(out["f"]), "df_dx": float(out["df_dx"]), "df_dy": float(out["df_dy"]),
            "formulas": fn.formulas}


def part3() -> dict:
    """W2.3: ``sin(x)^2`` at pi/2."""
    print("\nW2.3  f(x) = sin(x)^2")
    x = sg.input("x")
    f = sg.sin(x) ** 2
    fn = sg.compile({"f": f, "df": sg.grad(f, [x])[0]})
    print(f"  f'(x) = {fn.formulas['df']}")
    out = fn(x=math.pi / 2)
    _check("f(pi/2)", out["f"], 1.0)
    _check("f'(pi/2) (zero up to rounding)", out["df"], 0.0, atol=1e-15)
    xs = np.linspace(-2.0, 2.0, 5)
    grid = [float(fn(x=float(v))["df"]) for v in xs]
    _check("f'(x) = 2 sin cos on [-2, 2]", grid, 2 * np.sin(xs) * np.cos(xs))

    tx = tp.Variable(math.pi / 2)
    with tp.GradientTape() as t:
        ts = tp.square(tp.sin(tx))
    _check("tape: f'(pi/2)", t.gradient(ts, tx), 0.0, atol=1e-15)
    return {"f": float(out["f"]), "df": float(out["df"]), "formula": fn.formulas["df"]}


def part4() -> dict:
    """W2.4: sign forward, straight-through (hard-tanh) gradient backward."""
    print("\nW2.4  custom gradient: sign(x) forward, 1 where |x| <= 1 backward")

    @sg.custom_gradient
    def ste_sign(x):
        def grad(dy):
            return dy * sg.where(sg.abs(x) <= 1, 1.0, 0.0)
        return sg.sign(x), grad

    values = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    x = sg.input("x", (values.size,))
    y = ste_sign(x)
    fn = sg.compile({"y": y, "dy_dx": sg.grad(sg.sum(y), [x])[0]})
    out = fn(x=values)
    print(f"  x                                  {values}")
    _check("sign(x)", out["y"], np.sign(values))
    _check("straight-through gradient", out["dy_dx"], (np.abs(values) <= 1).astype(float))

    @tp.custom_gradient
    def tape_ste_sign(x):
        def grad_fn(dy):
            return dy * (np.abs(x.value) <= 1)
        return np.sign(x.value), grad_fn

    tx = tp.Variable(values)
    with tp.GradientTape() as t:
        ty = tp.sum(tape_ste_sign(tx))
    _check("tape: straight-through gradient", t.gradient(ty, tx),
           (np.abs(values) <= 1).astype(float))
    return {"y": out["y"], "grad": out["dy_dx"]}


def part5() -> dict:
    """W2.5: clip by global norm, grad_ys over several targets, stop_gradient."""
    print("\nW2.5a clipping by global norm: loss = l2_loss(u) + l2_loss(v), u = [3, 4], "
          "v = [12]")
    u, v = sg.param("u", (2,)), sg.param("v", (1,))
    loss = sg.l2_loss(u) + sg.l2_loss(v)
    gu, gv = sg.grad(loss, [u, v])  # = u, v: global norm sqrt(9 + 16 + 144) = 13
    clip = 6.5
    norm = sg.sqrt(sg.sum(gu**2) + sg.sum(gv**2))
    scale = clip / sg.maximum(norm, clip)  # tf.clip_by_global_norm's factor
    fn = sg.compile({"norm": norm, "u": gu * scale, "v": gv * scale})
    out = fn(u=np.array([3.0, 4.0]), v=np.array([12.0]))
    _check("global norm of the gradients", out["norm"], 13.0)
    _check("clipped gradient of u (norm 6.5)", out["u"], [1.5, 2.0])
    _check("clipped gradient of v", out["v"], [6.0])
    step = sg.train_step(loss, sg.optim.SGD(1.0, clip_global_norm=clip))
    state = step.init({"u": np.array([3.0, 4.0]), "v": np.array([12.0])})
    step(state)
    _check("u after SGD(1, clip_global_norm=6.5)", state.params["u"], [1.5, 2.0], atol=1e-6)
    _check("v after SGD(1, clip_global_norm=6.5)", state.params["v"], [6.0], atol=1e-6)

    print("\nW2.5b grad_ys: res = w1 @ [[2], [1]] with w1 = [[1, 2]], output cotangent [[5]]")
    w1 = sg.param("w1", (1, 2))
    res = w1 @ sg.constant(np.array([[2.0], [1.0]]), name="c")
    g_plain = sg.grad(res, [w1])[0]
    g_five = sg.grad(res, [w1], grad_ys=[sg.constant(np.array([[5.0]]), name="dy")])[0]
    fn = sg.compile({"plain": g_plain, "five": g_five})
    out_b = fn(w1=np.array([[1.0, 2.0]]))
    _check("d res/d w1", out_b["plain"], [[2.0, 1.0]])
    _check("d res/d w1 with grad_ys [[5]]", out_b["five"], [[10.0, 5.0]])

    print("\nW2.5c two targets a = 3*w1, b = a*w2 at w1 = w2 = 2, grad_ys = (1, 2); "
          "then b' = stop_gradient(a)*w2")
    p, q = sg.param("p"), sg.param("q")
    a = 3.0 * p
    b = a * q
    both = sg.grad([a, b], [p, q], grad_ys=[1.0, 2.0])      # (3 + 2*3*q, 2*a)
    stopped = sg.grad(sg.stop_gradient(a) * q, [p, q])       # (0, a)
    fn = sg.compile({"dp": both[0], "dq": both[1], "stop_dp": stopped[0],
                     "stop_dq": stopped[1]})
    out_c = fn(p=2.0, q=2.0)
    _check("d(a + 2b)/d(w1, w2)  (by hand 15, 12)", [out_c["dp"], out_c["dq"]], [15.0, 12.0])
    _check("with stop_gradient  (by hand 0, 6)", [out_c["stop_dp"], out_c["stop_dq"]],
           [0.0, 6.0])

    tp_, tq = tp.Variable(2.0), tp.Variable(2.0)
    with tp.GradientTape(persistent=True) as t:
        ta = 3.0 * tp_
        tb = ta * tq
        tstop = tp.stop_gradient(ta) * tq
    _check("tape: grad_ys (1, 2)", t.gradient([ta, tb], [tp_, tq], output_gradients=[1.0, 2.0]),
           [15.0, 12.0])
    _check("tape: stop_gradient", t.gradient(tstop, [tp_, tq]), [0.0, 6.0])
    return {"clipped_u": out["u"], "clipped_v": out["v"], "grad_ys": out_b["five"],
            "targets": [float(out_c["dp"]), float(out_c["dq"])],
            "stopped": [float(out_c["stop_dp"]), float(out_c["stop_dq"])]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots", type=Path, default=HERE / "out",
                        help="accepted for symmetry with the other examples (no plots here)")
    parser.add_argument("--quick", action="store_true", help="accepted; W2 is always quick")
    parser.parse_args(argv)
    print(_common.blas_threads())
    results = {"w2_1": part1(), "w2_2": part2(), "w2_3": part3(), "w2_4": part4(),
               "w2_5": part5()}
    print("\nall W2 values match the hand-derived ones and the tape")
    return results


if __name__ == "__main__":
    main()
