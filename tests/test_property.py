"""Property test: symbolic gradients == tape gradients == finite differences, on random graphs.

Hypothesis writes random expression-graph programs over symgrad's op set (random shapes
with broadcasting, up to 8 op steps deep, several leaves; see :mod:`strategies`). Each
program is built twice from the same instruction list -- as a symgrad expression (its
gradients derived by ``sg.grad`` and compiled once by ``sg.compile``) and on the tape
(``symgrad.tape``) -- and evaluated a third time in plain numpy. For the scalar
``sum_k sum(out_k * u_k)`` (random weights ``u_k``), in float64:

* the compiled loss, the tape's loss and numpy's agree (relative 1e-10);
* compiled symbolic gradient == tape gradient, elementwise, relative ``RTOL_AD`` = 1e-9
  (each element measured against ``|tape| + 1e-3 * largest gradient element + 1e-5 *
  loss scale``, so roundoff in an element far smaller than the rest -- or in a gradient
  that is exactly 0 on one side -- is judged against the scale of the computation);
* both == central finite differences of the numpy forward along a random unit direction
  per leaf and one joint direction over all leaves (Richardson-extrapolated, relative
  ``RTOL_FD`` = 1e-6 of the largest of |fd|, 1e-3 * ||g|| * ||v|| and 1e-4 * the loss
  scale, which is 30x the roundoff of the difference quotient). A direction whose
  finite difference crosses a kink (the branch signature of relu/abs/max/where/... changes)
  is skipped and counted; the generator keeps kinks at least ``MARGIN`` away.

Environment:

* ``SYMGRAD_PROPERTY_EXAMPLES``: number of graphs (default 500);
* ``SYMGRAD_PROPERTY_REPORT``: a file to write the count and worst errors to;
* ``SYMGRAD_PROPERTY_SHRINK=0``: do not shrink a failing graph (faster to report).

The count and the worst errors are printed at the end of the run (with pytest's output
capture suspended, so they show in every run).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

import symgrad as sg
from symgrad import tape as tp

from strategies import (OPS, SG, TP, COVERED_PUBLIC_OPS, Leaf, NumpyBackend, Program,
                        numpy_eval, programs, run)

N_EXAMPLES = int(os.environ.get("SYMGRAD_PROPERTY_EXAMPLES", "500"))
#: SYMGRAD_PROPERTY_SHRINK=0: report the first failing graph as found (shrinking compiles
#: many graphs and can take minutes)
PHASES = tuple(p for p in Phase if p != Phase.shrink
               or os.environ.get("SYMGRAD_PROPERTY_SHRINK", "1") != "0")
RTOL_AD = 1e-9
RTOL_FD = 1e-6
FD_STEP = 2e-4

STATS: dict = {}


#: the tests of this module share one private cache (conftest's ``module_cache_env``)
pytestmark = pytest.mark.usefixtures("module_cache_env")


def _reset_stats():
    STATS.clear()
    STATS.update(graphs=0, leaves=0, steps=0, max_depth=0, fallbacks=0, fd_checks=0,
                 fd_skipped=0, worst_ad=0.0, worst_fd=0.0, worst_fwd=0.0, worst_ad_graph="",
                 worst_fd_graph="", ops={name: 0 for name in OPS}, seconds_compile=0.0)


# ------------------------------------------------------------------------------------------
# One program, three ways
# ------------------------------------------------------------------------------------------


def symbolic(prog: Program):
    """The compiled function returning (loss, *grads); its arguments are all the leaves."""
    leaves = {}
    for leaf in prog.leaves:
        if leaf.kind == "param":
            leaves[leaf.name] = sg.param(leaf.name, leaf.shape, "float64")
        elif leaf.kind == "labels":
            leaves[leaf.name] = sg.input(leaf.name, leaf.shape, "int64")
        else:
            leaves[leaf.name] = sg.input(leaf.name, leaf.shape, "float64")
    loss, _ = run(prog, SG, lambda leaf: leaves[leaf.name])
    grads = sg.grad(loss, [leaves[leaf.name] for leaf in prog.diff_leaves])
    f = sg.compile([loss, *grads], inputs=[leaves[leaf.name] for leaf in prog.leaves])
    return f


def taped(prog: Program):
    """(loss, grads) from the tape."""
    variables = {leaf.name: tp.Variable(prog.values[leaf.name]) for leaf in prog.diff_leaves}

    def leaf_value(leaf: Leaf):
        return variables.get(leaf.name, prog.values[leaf.name])

    with tp.GradientTape() as tape:
        loss, _ = run(prog, TP, leaf_value)
    grads = tape.gradient(loss, [variables[leaf.name] for leaf in prog.diff_leaves])
    return float(np.asarray(loss.value)), grads


def finite_difference(prog: Program, base_sig, frozen, direction: dict):
    """Richardson-extrapolated central difference of the numpy loss along ``direction``
    (leaf name -> array); None when a step crosses a kink."""
    def at(t):
        vals = dict(prog.values)
        for name, v in direction.items():
            vals[name] = prog.values[name] + t * v
        loss, sig, _ = numpy_eval(prog, vals, frozen)
        if len(sig) != len(base_sig) or any(a != b for a, b in zip(sig, base_sig)):
            raise _Kink
        return loss

    h = FD_STEP
    try:
        d1 = (at(h) - at(-h)) / (2 * h)
        d2 = (at(h / 2) - at(-h / 2)) / h
    except _Kink:
        return None
    return (4 * d2 - d1) / 3


class _Kink(Exception):
    pass


def _verdict(prog, base_sig, frozen, leaf, gs, gt) -> str:
    """Which side finite differences agree with, along a random direction of ``leaf``."""
    v = np.random.default_rng(1).standard_normal(leaf.shape)
    v = v / max(np.sqrt(np.sum(v * v)), 1e-300)
    fd = finite_difference(prog, base_sig, frozen, {leaf.name: v})
    if fd is None:
        return "finite differences cross a kink"
    ds, dt = float(np.sum(gs * v)), float(np.sum(gt * v))
    side = "symbolic" if abs(ds - fd) < abs(dt - fd) else "tape"
    return (f"finite differences side with the {side} gradient (directional derivative: "
            f"symbolic {ds:.10g}, tape {dt:.10g}, finite differences {fd:.10g})")


def check_program(prog: Program) -> None:
    STATS["graphs"] += 1
    STATS["leaves"] += len(prog.diff_leaves)
    STATS["steps"] += len(prog.steps)
    STATS["max_depth"] = max(STATS["max_depth"], prog.depth())
    STATS["fallbacks"] += prog.fallbacks
    for step in prog.steps:
        STATS["ops"][step.op] += 1

    ref_loss, base_sig, frozen = numpy_eval(prog, prog.values)
    _, ref_vals = run(prog, NumpyBackend(), lambda leaf: prog.values[leaf.name])
    scale = 1.0 + sum(float(np.sum(np.abs(ref_vals[i] * ref_vals[j]))) for i, j in prog.outputs)

    t0 = time.perf_counter()
    f = symbolic(prog)
    out = f(*[prog.values[leaf.name] for leaf in prog.leaves])
    STATS["seconds_compile"] += time.perf_counter() - t0
    sym_loss, sym_grads = float(out[0]), out[1:]
    tape_loss, tape_grads = taped(prog)

    # forward: compiled == tape == numpy
    fwd = max(abs(sym_loss - ref_loss), abs(tape_loss - ref_loss)) / scale
    STATS["worst_fwd"] = max(STATS["worst_fwd"], fwd)
    assert fwd <= 1e-10, (f"forward values differ: compiled {sym_loss!r}, tape {tape_loss!r},"
                          f" numpy {ref_loss!r}\n{prog.describe()}\n{f.source}")

    # compiled symbolic gradients == tape gradients
    big = max([float(np.max(np.abs(g))) for g in tape_grads if g.size] + [0.0])
    for leaf, gs, gt in zip(prog.diff_leaves, sym_grads, tape_grads):
        gs = np.asarray(gs)
        assert gs.shape == leaf.shape and gs.dtype == np.float64, (leaf, gs.shape, gs.dtype)
        assert np.all(np.isfinite(gs)), f"non-finite symbolic gradient for {leaf.name}"
        denom = np.abs(gt) + 1e-3 * big + 1e-5 * scale
        err = float(np.max(np.abs(gs - gt) / denom)) if gs.size else 0.0
        if err > STATS["worst_ad"]:
            STATS["worst_ad"], STATS["worst_ad_graph"] = err, prog.describe()
        if err > RTOL_AD:
            raise AssertionError(
                f"symbolic and tape gradients differ for {leaf.name} (relative {err:.3g}); "
                f"{_verdict(prog, base_sig, frozen, leaf, gs, gt)}\n"
                f"symbolic:\n{gs}\ntape:\n{gt}\nprogram:\n{prog.describe()}\n{f.source}")

    # both == finite differences, along one direction per leaf and one joint direction
    rng = np.random.default_rng(len(prog.instrs))
    names = [leaf.name for leaf in prog.diff_leaves]
    directions = [{n: rng.standard_normal(prog.values[n].shape)} for n in names]
    directions.append({n: rng.standard_normal(prog.values[n].shape) for n in names})
    for direction in directions:
        total = np.sqrt(sum(float(np.sum(v * v)) for v in direction.values()))
        if total == 0:
            continue
        direction = {n: v / total for n, v in direction.items()}
        fd = finite_difference(prog, base_sig, frozen, direction)
        if fd is None:
            STATS["fd_skipped"] += 1
            continue
        STATS["fd_checks"] += 1
        for label, grads in (("symbolic", sym_grads), ("tape", tape_grads)):
            g = dict(zip(names, grads))
            ad = sum(float(np.sum(g[n] * v)) for n, v in direction.items())
            gnorm = np.sqrt(sum(float(np.sum(g[n] ** 2)) for n in direction))
            # floor: the roundoff of the difference quotient, ~3 eps scale / h = 3e-12 scale
            denom = max(abs(fd), abs(ad), 1e-3 * gnorm, 1e-4 * scale)
            err = abs(ad - fd) / denom
            if err > STATS["worst_fd"]:
                STATS["worst_fd"], STATS["worst_fd_graph"] = err, prog.describe()
            assert err <= RTOL_FD, (
                f"{label} gradient disagrees with finite differences along "
                f"{sorted(direction)}: {ad!r} vs {fd!r} (relative {err:.3g})\n"
                f"{prog.describe()}")


# ------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------


def test_programs_cover_the_ops_they_can_draw():
    """The ops written out in the strategies exist, and every smooth elementwise op of one
    operand is drawn from its record (the others are checked by their spec rows)."""
    from symgrad.ops import RECORDS
    assert COVERED_PUBLIC_OPS <= set(sg.PUBLIC_OPS), COVERED_PUBLIC_OPS - set(sg.PUBLIC_OPS)
    drawable = {n for n, r in RECORDS.items()
                if r.kind == "elementwise" and r.arity == 1 and r.smooth}
    assert drawable <= COVERED_PUBLIC_OPS, drawable - COVERED_PUBLIC_OPS
    # binary ops, reductions and shape ops come from the records too: the detection by
    # arity/smooth and by signature finds the ones declared today (a new one joins them)
    import strategies as S
    binary = {n for n, r in RECORDS.items() if r.kind == "elementwise" and r.arity == 2
              and r.smooth and n not in S._WRITTEN_PUBLIC}
    assert binary == set(S.RECORD_BINARY), binary ^ set(S.RECORD_BINARY)
    assert {"min", "amax", "prod", "var", "std", "average"} <= set(S.RECORD_REDUCTIONS)
    assert {"argmax", "argmin"}.isdisjoint(S.RECORD_REDUCTIONS)  # integer valued
    assert {"flip", "flipud", "rot90", "sort", "diff", "diagonal", "trace", "tril",
            "ravel"} <= set(S.RECORD_SHAPE)
    assert "argsort" not in S.RECORD_SHAPE
    assert S.ORDERING >= {"sort", "min", "amax", "std"} and "prod" not in S.ORDERING


@settings(max_examples=N_EXAMPLES, deadline=None, derandomize=True, database=None,
          print_blob=True, phases=PHASES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(max_ops=8))
def _agree(prog):
    try:
        check_program(prog)
    except AssertionError:
        raise
    except Exception as err:  # name the program (and keep one failure type for shrinking)
        raise AssertionError(f"{type(err).__name__}: {str(err)[:2000]}\nprogram:\n"
                             f"{prog.describe()}") from err


def _report() -> str:
    s = STATS
    lines = [
        f"property test: {s['graphs']} graphs ({s['steps']} op steps, {s['leaves']} "
        f"differentiated leaves, max depth {s['max_depth']}, {s['fallbacks']} ops replaced "
        f"by tanh), {s['fd_checks']} finite-difference directions ({s['fd_skipped']} "
        f"skipped at kinks)",
        f"  worst relative error: symbolic vs tape {s['worst_ad']:.3g} (tolerance {RTOL_AD}),"
        f" AD vs finite differences {s['worst_fd']:.3g} (tolerance {RTOL_FD}),"
        f" forward {s['worst_fwd']:.3g}",
        f"  symbolic build+grad+compile+call: {s['seconds_compile']:.1f} s in total",
        "  ops used: " + ", ".join(f"{k} {v}" for k, v in sorted(s["ops"].items())),
    ]
    return "\n".join(lines)


def test_symbolic_tape_and_finite_differences_agree(capsys):
    _reset_stats()
    t0 = time.perf_counter()
    _agree()
    elapsed = time.perf_counter() - t0
    text = _report() + f"\n  wall time: {elapsed:.1f} s"
    with capsys.disabled():  # shown in every run, not only when the test fails
        print("\n" + text)
    path = os.environ.get("SYMGRAD_PROPERTY_REPORT")
    if path:
        with open(path, "w") as fh:
            fh.write(text + "\n\nworst symbolic-vs-tape graph:\n" + STATS["worst_ad_graph"]
                     + "\n\nworst finite-difference graph:\n" + STATS["worst_fd_graph"] + "\n")
    assert STATS["graphs"] >= N_EXAMPLES, STATS["graphs"]
    if N_EXAMPLES >= 200:  # a long enough run must have exercised every op
        _top_up_unary_ops()
        unused = [op for op, n in STATS["ops"].items() if n == 0]
        assert not unused, f"the generator never produced {unused}"


def _top_up_unary_ops() -> None:
    """Every unary op the run did not draw, checked once in a graph of its own.

    The draws are derandomized: with ~100 unary ops, adding one can leave another undrawn
    in a run of 500 graphs. The op's lambda maps its operand into the op's test domain, so
    one graph ``sum(op(p) * u)`` of any values checks it like the drawn ones."""
    import strategies as S
    rng = np.random.default_rng(0)
    for op in [op for op, n in STATS["ops"].items() if n == 0 and op in S.UNARY]:
        prog = S.Program([S.Leaf("p0", (3,), "param"), S.Step(op, (0,)),
                          S.Leaf("u0", (3,), "weight")],
                         {"p0": rng.uniform(-1.5, 1.5, 3), "u0": rng.standard_normal(3)},
                         [(1, 2)])
        check_program(prog)
