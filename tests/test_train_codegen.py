"""The code a train step is made of: the template writes the state token and the
hyperparameter read around the generated body (templates/module.py.j2), and defines
``_F64`` only for a step that computes with numpy scalars (templates/helpers.py.j2)."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg


def _function(source: str) -> list:
    """The lines of ``def train_step`` (or ``def compute``), to its last line."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("def train_step(",
                                                                         "def compute(")))
    end = next((i for i in range(start + 1, len(lines))
                if lines[i] and not lines[i][0].isspace()), len(lines))
    return [line for line in lines[start:end] if line.strip()]


def w0_loss():
    x, t, a = sg.input("x"), sg.input("target"), sg.param("A", shared=True)
    return (x * a - t) ** 2


def test_the_body_runs_holding_the_token_that_carries_the_hyperparameters():
    step = sg.train_step(w0_loss(), sg.optim.Adam(1e-3), target="numpy")  # its template
    fn = _function(step.source)
    body = [line.strip() for line in fn]
    take = body.index("_held = _turn.pop()")
    read = body.index("lr, beta1, beta2, eps = _hyper")
    first_state_read = next(i for i, line in enumerate(body) if "_state._param_list" in line)
    checks_end = max(i for i, line in enumerate(body) if "_check_inputs(" in line)
    # the input checks run before the state is held; every read of it after
    assert checks_end < take < first_state_read < read
    assert body[-2:] == ["finally:", "_turn.append(_held)"]
    assert sum("_turn.pop()" in line for line in body) == 1
    # the step looks up no update-rule signature: the state knows the rule it follows
    assert "Adam(wd=" not in "\n".join(fn)


def test_compiled_functions_hold_no_state():
    loss = w0_loss()
    source = sg.compile(loss, inputs=["x", "target", "A"]).source
    assert "_state" not in source and "_turn" not in source and "_F64" not in source


def test_numpy_scalars_are_defined_by_the_template_only_where_used():
    plain = sg.train_step(w0_loss(), sg.optim.SGD(0.1), target="numpy").source
    assert "_F64" not in plain
    x, p = sg.input("x"), sg.param("p", shared=True)
    step = sg.train_step(p / x, sg.optim.SGD(0.5), target="numpy")
    divided = step.source
    assert divided.count("_F64 = np.float64") == 1
    assert divided.index("_F64 = np.float64") < divided.index("def train_step(")
    # exactly the unboxing statements use it: inputs, then the parameter
    unboxed = [line.strip() for line in _function(divided) if "_F64(" in line]
    assert unboxed == ["x = _F64(x)", "p = _F64(_boxp)"]
    s = step.init({"p": 1.0})
    with np.errstate(divide="ignore"):
        assert step(s, x=0.0) == np.inf  # numpy's rule, not ZeroDivisionError


def test_adam_divides_in_the_scratch_buffer_and_matches_the_out_of_place_step():
    # the update p += c*m/(sqrt(v*c2) + eps) runs in the dead gradient's buffer: m is
    # divided there and then scaled, with no full-size temporary for c*m
    import re
    for dtype, scales in (("float64", (1e-30, 1.0, 1e30)), ("float32", (1e-15, 1.0, 1e15))):
        x, y = sg.input("x", ("N", 3), dtype), sg.input("y", ("N", 1), dtype)
        w = sg.param("w", (3, 64 * 64), dtype, shared=True)  # big enough to split
        small = sg.param("small", (3, 1), dtype, shared=True)  # a temporary is cheaper
        loss = sg.mean((sg.tanh(x @ w) - y) ** 2) + sg.sum(small * small)
        fast = sg.train_step(loss, sg.optim.Adam(1e-2))
        plain = sg.train_step(loss, sg.optim.Adam(1e-2), inplace=False)
        body = "\n".join(_function(fast.source))
        assert re.search(r"np\.divide\(m_w, (_u\d+), out=\1\)", body), body
        assert "np.divide(m_w*" not in body and "np.divide(m_small*" in body
        rng = np.random.default_rng(0)
        for scale in scales:
            init = {"w": (rng.standard_normal((3, 64 * 64)) * scale).astype(dtype),
                    "small": (rng.standard_normal((3, 1)) * scale).astype(dtype)}
            a, b = fast.init(init), plain.init(init)
            for _ in range(4):
                xb = (rng.standard_normal((6, 3)) * scale).astype(dtype)
                yb = rng.standard_normal((6, 1)).astype(dtype)
                with np.errstate(all="ignore"):
                    la, lb = fast(a, x=xb, y=yb), plain(b, x=xb, y=yb)
                np.testing.assert_allclose(la, lb, rtol=1e-5 if dtype == "float32" else 1e-12)
            rtol = 1e-5 if dtype == "float32" else 1e-12
            for k in init:  # (elements near 0: to the array's magnitude)
                for got, want in ((a.params[k], b.params[k]), (a.slots[k]["m"], b.slots[k]["m"]),
                                  (a.slots[k]["v"], b.slots[k]["v"])):
                    np.testing.assert_allclose(got, want, rtol=rtol,
                                               atol=rtol * float(np.max(np.abs(want))))


def test_a_last_reader_moves_first_so_the_scaling_runs_in_place():
    # W1: t = e*c, then s = vdot(e, e): the vdot moves up and e's buffer takes e*c
    x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
    w1, w2 = sg.param("w1", (2, 3), shared=True), sg.param("w2", (3, 1), shared=True)
    loss = sg.mean(((x @ w1) @ w2 - y) ** 2)
    outputs = [loss, *sg.grad(loss, [w1, w2])]
    fast, plain = sg.compile(outputs), sg.compile(outputs, inplace=False)
    body = [line.strip() for line in _function(fast.source)]
    vdot = next(i for i, line in enumerate(body) if "np.vdot(" in line)
    (scaled,) = [i for i, line in enumerate(body) if line.startswith("_t") and "np.multiply(" in line]
    assert vdot < scaled and ", out=" in body[scaled]
    rng = np.random.default_rng(1)
    for scale in (1e-30, 1.0, 1e30):
        args = [rng.standard_normal(s) * scale for s in ((8, 2), (8, 1), (2, 3), (3, 1))]
        for got, want in zip(fast(*args), plain(*args)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_symbolic_dims_are_checked_from_one_read_of_each_shape():
    import pytest
    x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
    w = sg.param("w", (2, 1), shared=True)
    f = sg.compile(sg.mean((x @ w - y) ** 2))
    body = [line.strip() for line in _function(f.source)]
    assert "N, _x1 = x.shape" in body and not any("x.ndim" in line for line in body)
    xv, yv, wv = np.ones((4, 2)), np.ones((4, 1)), np.ones((2, 1))
    assert f(xv, yv, wv) == 1.0
    assert f(np.ma.masked_array(xv), yv, wv) == 1.0  # converted by the slow path, N read again
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(N, 2\), got \(4,\)"):
        f(np.ones(4), yv, wv)
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(N, 2\), got \(4, 3\)"):
        f(np.ones((4, 3)), yv, wv)
    with pytest.raises(ValueError, match=r"input 'y' has 3 along axis 0, but dimension N is 4"):
        f(xv, np.ones((3, 1)), wv)
    with pytest.raises(TypeError, match="input 'y' must have dtype float64"):
        f(xv, np.ones((4, 1), np.float32), wv)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        assert np.isnan(f(np.ones((0, 2)), np.ones((0, 1)), wv))  # numpy's mean of nothing


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
@pytest.mark.parametrize("target", ["numpy", "scalar"])
def test_adam_step_follows_torchs_formula_at_extreme_magnitudes(scale, target):
    # the step computes (lr*c2/(1-b1**t)) * m / (sqrt(v) + eps*c2); torch writes
    # lr/(1-b1**t) * m / (sqrt(v)/c2 + eps): the same number up to rounding, at any scale
    x = sg.input("x", (3,))
    w = sg.param("w", (3,))
    opt = sg.optim.Adam(0.01, beta1=0.8, beta2=0.99, eps=1e-8)
    step = sg.train_step(sg.sum(w * x), opt, target=target)  # d/dw = x, exactly
    assert step.target == target
    rng = np.random.default_rng(5)
    p = rng.standard_normal(3) * scale
    state = step.init({"w": p})
    m, v = np.zeros(3), np.zeros(3)
    for t in range(1, 6):
        g = rng.standard_normal(3) * scale
        step(state, g)
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g * g
        p = p - 0.01 / (1 - 0.8 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.99 ** t) + 1e-8)
        np.testing.assert_allclose(state.params["w"], p, rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(state.slots["w"]["v"], v, rtol=1e-12)
