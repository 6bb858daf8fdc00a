"""Deep graphs at Python's default recursion limit (issue 9, item 2).

Build, differentiate, optimize, print (numpy source, formula header, ``str``, ``repr``,
``sg.latex``), cache key and load must all walk iteratively. On the previous main, an MLP of
depth 88 or an RNN unrolled 88 steps raised RecursionError while printing the header.

The models are compiled in a fresh subprocess whose recursion limit is set to 1000
explicitly (pytest's own frames and a raised limit cannot hide a recursion there), and their
gradients are checked against the tape (``symgrad.tape``) and against float64 central
differences along a random direction. The default sizes (MLP depth 150, RNN 300 steps) are
well past the old crash point; the sizes of the issue (MLP depth 500, RNN 1,000 steps) are
marked ``slow`` and run with ``SYMGRAD_SLOW_TESTS=1`` or ``-m slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import symgrad as sg

REPO = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(r'''
    import json, sys, warnings
    sys.setrecursionlimit(1000)  # Python's default, whatever the parent process set
    import numpy as np
    import symgrad as sg
    from symgrad import tape as tp
    from symgrad.runtime import cache

    kind, n = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    width, batch, d_in = 4, 3, 3

    def build(lib, values, leaf):
        """The model in symgrad (lib=sg) or on the tape (lib=tp), over the same values."""
        if kind == "mlp":
            h = leaf("x")
            for i in range(n):
                h = lib.tanh(lib.matmul(h, leaf(f"w{i}")) + leaf(f"b{i}"))
            return lib.mean(h * h)
        if kind == "rnn":
            W, U = leaf("W"), leaf("U")
            h = lib.tanh(lib.matmul(leaf("x0"), U))
            for t in range(1, n):
                h = lib.tanh(lib.matmul(h, W) + lib.matmul(leaf(f"x{t}"), U))
            return lib.mean(h * h)
        # "chain": an elementwise chain that reuses its value (its tree doubles per link)
        y = leaf("x")
        for _ in range(n):
            y = lib.sin(y) * 0.5 + y * leaf("a")
        return lib.sum(y)

    values, params = {}, []
    if kind == "mlp":
        values["x"] = rng.normal(size=(batch, width))
        for i in range(n):
            # orthogonal-ish weights of gain 1.2: the signal neither dies nor saturates
            q, _ = np.linalg.qr(rng.normal(size=(width, width)))
            values[f"w{i}"], values[f"b{i}"] = 1.2 * q, 0.1 * rng.normal(size=width)
            params += [f"w{i}", f"b{i}"]
    elif kind == "rnn":
        q, _ = np.linalg.qr(rng.normal(size=(width, width)))
        values["W"], values["U"] = 1.1 * q, 0.5 * rng.normal(size=(d_in, width))
        params = ["W", "U"]
        for t in range(n):
            values[f"x{t}"] = rng.normal(size=(batch, d_in))
    else:
        values["x"], values["a"] = rng.normal(size=(5,)), np.array(0.6)
        params = ["x", "a"]

    sym = {}
    def sg_leaf(name):
        if name not in sym:
            v = values[name]
            make = sg.param if name in params else sg.input
            sym[name] = make(name, v.shape)
        return sym[name]

    loss = build(sg, values, sg_leaf)
    grads = sg.grad(loss, [sym[p] for p in params])
    f = sg.compile([loss] + grads)
    out = f(**values)
    # a cache hit in this process (the key and the load walk the same graph)
    cache.MODULES.memo.clear()
    f2 = sg.compile([loss] + sg.grad(loss, [sym[p] for p in params]))
    out2 = f2(**values)
    printed = {"str": len(str(loss)), "repr": len(repr(loss)), "latex": len(sg.latex(loss)),
               "grad_str": len(str(grads[-1])),
               "header": "#   out = " in f.source and " where t1 = " in f.source}

    # the tape, an independent implementation
    tvars = {}
    def tp_leaf(name):
        if name not in tvars:
            tvars[name] = tp.Variable(values[name]) if name in params \
                else tp.constant(values[name])
        return tvars[name]
    with tp.GradientTape() as tape:
        tloss = build(tp, values, tp_leaf)
    tgrads = tape.gradient(tloss, [tvars[p] for p in params])

    # float64 central differences along a random direction
    direction = {p: rng.normal(size=np.shape(values[p])) for p in params}
    def shifted(eps):
        v = dict(values)
        for p in params:
            v[p] = values[p] + eps * direction[p]
        return float(f(**v)[0])
    eps = 1e-6
    fd = (shifted(eps) - shifted(-eps)) / (2 * eps)
    analytic = float(sum(np.vdot(g, direction[p]) for g, p in zip(out[1:], params)))

    worst = 0.0
    for g, tg in zip(out[1:], tgrads):
        scale = max(1e-12, float(np.max(np.abs(tg))))
        worst = max(worst, float(np.max(np.abs(np.asarray(g) - tg))) / scale)
    print(json.dumps({
        "loss": float(out[0]), "tape_loss": float(tloss.numpy()
                                                  if hasattr(tloss, "numpy") else tloss.value),
        "worst_rel_vs_tape": worst, "fd": fd, "analytic": analytic,
        "hit_same": all(np.array_equal(a, b) for a, b in zip(out, out2)),
        "same_key": f.key == f2.key, "printed": printed,
        "limit": sys.getrecursionlimit()}))
''')


def _run(kind: str, n: int, cache_dir: Path) -> dict:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(cache_dir),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, str(n)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "RecursionError" not in proc.stderr, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check(r: dict):
    assert r["limit"] == 1000
    assert abs(r["loss"] - r["tape_loss"]) <= 1e-12 * max(1.0, abs(r["tape_loss"]))
    assert r["worst_rel_vs_tape"] < 1e-9, r
    assert abs(r["fd"] - r["analytic"]) <= 1e-6 * max(1.0, abs(r["analytic"])), r
    assert r["hit_same"] and r["same_key"], r
    p = r["printed"]
    assert p["header"] and min(p["str"], p["repr"], p["latex"], p["grad_str"]) > 0


CASES = [("mlp", 150), ("rnn", 300), ("chain", 300),
         pytest.param("mlp", 500, marks=pytest.mark.slow),
         pytest.param("rnn", 1000, marks=pytest.mark.slow)]


@pytest.mark.parametrize("kind,n", CASES)
def test_deep_model_compiles_at_the_default_recursion_limit(kind, n, cache_env):
    _check(_run(kind, n, cache_env))


def _deep_mlp(depth, width=4):
    x = sg.input("x", (3, width))
    h = x
    for i in range(depth):
        h = sg.tanh(h @ sg.param(f"w{i}", (width, width)) + sg.param(f"b{i}", (width,)))
    return sg.mean(h * h)


@pytest.fixture
def default_recursion_limit():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def test_str_repr_latex_of_a_deep_model_use_let_bound_names(default_recursion_limit):
    loss = _deep_mlp(300)
    text = str(loss)
    assert " where t1 = " in text and "w299" in text and "w0" in text
    # every name used is defined exactly once
    defined = [part.split(" = ", 1)[0] for part in text.split(" where ", 1)[1].split("; ")]
    assert len(defined) == len(set(defined))
    assert repr(loss).startswith("Tensor(") and "shape=()" in repr(loss)
    tex = sg.latex(loss)
    assert r"\text{where}" in tex and "t_{1}" in tex
    # a shallow formula prints as before, plainly
    x = sg.input("x", (3,))
    assert str(sg.tanh(x) * 2 + x) in ("x + 2*tanh(x)", "2*tanh(x) + x")


def test_formula_limit_abbreviates(default_recursion_limit):
    from symgrad.compiler.printer import formula
    loss = _deep_mlp(200)
    short = formula(loss.expr, limit=300)
    assert short.endswith("...") and len(short) < 1000
    full = formula(loss.expr)
    assert len(full) > 3000 and "w0)" in full and "w199)" in full and not full.endswith("...")


def test_sympy_cse_and_diff_on_the_region_of_a_deep_chain(default_recursion_limit):
    """What the pipeline hands SymPy is depth-bounded: let-bindings cut the chain into
    regions, and the planner and the differentiator see each region with the structural
    nodes it reads replaced by symbols. cse and diff on such a region stay far from the
    recursion limit, however long the chain."""
    import sympy

    from symgrad.nodes import TensorSymbol, subexpressions, xreplace_dag
    x = sg.input("x", (4,))
    y = x
    for _ in range(400):
        y = sg.sin(y) * 0.5 + y
    lets = [e for e in subexpressions([y.expr]) if type(e).__name__ == "Let"]
    assert len(lets) > 5
    for k, let in enumerate(lets[:10]):
        region = let.args[0]
        inner = {e: TensorSymbol(f"_q{i}", (4,), "float64", "placeholder")
                 for i, e in enumerate(subexpressions([region]))
                 if type(e).__name__ == "Let"}
        local = xreplace_dag(region, inner)
        sympy.cse([local])
        for q in inner.values():
            sympy.diff(local, q)
    g = sg.grad(sg.sum(y), [x])[0]
    assert len(str(g)) > 0


# ---------------------------------------------------------------------------------------
# Size caps: refused before the expensive stages, and remembered
# ---------------------------------------------------------------------------------------


def test_over_the_caps_is_refused_before_differentiating_and_remembered(cache_env):
    from symgrad import api
    loss = _deep_mlp(40)
    params = sorted((leaf for leaf in api.leaves_of([loss]) if leaf.role == "param"),
                    key=lambda s: s.name)
    for cap, limit in (({"max_nodes": 50}, "max_nodes=50"), ({"max_lines": 30}, "max_lines=30")):
        grads = sg.grad(loss, [sg.Tensor(p, p.shape, p.dtype) for p in params])
        with pytest.raises(sg.ExpressionTooLarge, match=limit) as err:
            sg.compile([loss, *grads], **cap)
        assert "before differentiating" in str(err.value)
        assert all(g.is_lazy for g in grads)  # the gradients were never derived
        # the same compile again: the remembered answer, without generating anything
        calls = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(api, "_generate", lambda *a, **k: calls.append(a))
            with pytest.raises(sg.ExpressionTooLarge, match=limit):
                sg.compile([loss, *grads], **cap)
        assert calls == []


def test_gradients_over_the_node_cap_are_refused_before_planning(cache_env, monkeypatch):
    from symgrad import api
    loss = _deep_mlp(6)
    forward = api.count_nodes(loss.expr)
    params = [leaf for leaf in api.leaves_of([loss]) if leaf.role == "param"]
    grads = sg.grad(loss, [sg.Tensor(p, p.shape, p.dtype) for p in params])
    planned = []
    real_plan = api.plan
    monkeypatch.setattr(api, "plan", lambda *a, **k: planned.append(1) or real_plan(*a, **k))
    with pytest.raises(sg.ExpressionTooLarge, match=f"max_nodes={forward + 5}") as err:
        sg.compile([loss, *grads], max_nodes=forward + 5)  # the forward fits, not the rest
    assert "before planning" in str(err.value) and planned == []
    f = sg.compile([loss, *grads], max_nodes=10 * forward)
    assert planned == [1] and f.path is not None
