"""The buffer plan is correct by construction, and the verifier proves it on every compile.

* :mod:`symgrad.compiler.verify` on hand-written functions: each way of reading a buffer after it was
  overwritten (through ``out=``, ``+=``, ``x[...] =``, ``np.add.at``, through a view) is
  refused, naming the value and both lines; writes into the caller's arrays are refused
  unless allowed (a train step's state); correct in-place chains pass.
* The patterns that went wrong on main, as named regressions, at the magnitudes where the
  wrong code shows (``exp(exp(z))`` overflowing), against numpy and the tape.
* Train steps, in place and with no buffer reuse, agree step after step (compiled functions
  are compared with their twins by ``tests/conftest.py`` for the whole suite).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import symgrad as sg
from symgrad import tape as tp
from symgrad.compiler.verify import VerificationError, verify_source


def _verify(body: str, params="x, y", writable=("temp",)):
    source = f"import numpy as np\n\ndef f({params}):\n" + textwrap.indent(
        textwrap.dedent(body), "    ")
    verify_source(source, "f", writable)


# ---------------------------------------------------------------------------------------
# The verifier on hand-written functions
# ---------------------------------------------------------------------------------------


def test_correct_in_place_chain_passes():
    _verify("""
        a = x.dot(y)
        t = np.add(a, 1.0, out=a)
        np.exp(t, out=t)
        np.multiply(t, x, out=t)
        return t.sum()
    """)


def test_read_after_out_overwrite_is_refused_naming_both_lines():
    # the shape of the bug found on main: the rest of a step still reads the old value
    with pytest.raises(VerificationError) as err:
        _verify("""
            a = x.dot(y)
            t = np.add(a, 1.0, out=a)
            np.exp(t, out=t)
            u = np.multiply(t, np.exp(-a), out=t)
            return u
        """)
    msg = str(err.value)
    # the name, the last write into its memory, and the read
    assert "reads 'a'" in msg and "written at line 7: np.exp(t, out=t)" in msg
    assert "read at line 8: u = np.multiply(t, np.exp(-a), out=t)" in msg


def test_read_through_a_view_after_overwrite_is_refused():
    with pytest.raises(VerificationError, match="'v'"):
        _verify("""
            a = x.dot(y)
            v = a.T
            t = np.exp(a, out=a)
            return v.sum() + t.sum()
        """)
    with pytest.raises(VerificationError, match="'r'"):
        _verify("""
            a = x + y
            r = a.reshape((-1,))
            a += 1.0
            return r
        """)


def test_a_view_of_a_new_array_does_not_alias_what_made_it():
    # cumsum's gradient prints as np.flip(np.cumsum(np.flip(g))): a view of the array
    # cumsum made, so overwriting g afterwards is safe (was refused: sg.cumsum or
    # sg.cumprod followed by an in-place step failed to compile)
    _verify("""
        a = x + y
        r = np.flip(np.cumsum(np.flip(a, 0), axis=0), 0)
        t = np.exp(a, out=a)
        return r + t
    """)
    with pytest.raises(VerificationError, match="'r'"):  # a view of a itself still counts
        _verify("""
            a = x + y
            r = np.flip(np.add(a, 1.0, out=a), 0)
            a += 1.0
            return r
        """)


def test_a_cumsum_gradient_before_an_in_place_step_compiles_and_is_right():
    x = sg.input("xc", (3,), "float64")
    p = sg.param("pc", (), "float64")
    u = np.array([0.52, 1.11, 0.68])
    for op, tape_op in ((sg.cumsum, tp.cumsum), (sg.cumprod, tp.cumprod)):
        loss = sg.sum(sg.mod(op(sg.log(sg.square(x) + 1.0)) * 3.0, sg.square(p) + 0.5) * u)
        f = sg.compile([loss, *sg.grad(loss, [x, p])])
        xv, pv = np.array([0.85, 0.42, 0.15]), np.array(-0.65)
        got = f(xv, pv)
        with tp.GradientTape() as tape:
            xt, pt = tp.Variable(xv), tp.Variable(pv)
            lt = tp.sum(tp.mod(tape_op(tp.log(tp.square(xt) + 1.0)) * 3.0,
                               tp.square(pt) + 0.5) * u)
        want = tape.gradient(lt, [xt, pt])
        np.testing.assert_allclose(got[1], want[0], rtol=1e-12)
        np.testing.assert_allclose(got[2], want[1], rtol=1e-12)


def test_augmented_and_subscript_and_scatter_writes_count():
    with pytest.raises(VerificationError, match="'b'"):
        _verify("""
            a = x + y
            b = a[0]
            a[...] = 0.0
            return b
        """)
    with pytest.raises(VerificationError, match="'b'"):
        _verify("""
            a = x * 2.0
            b = a[1:]
            np.add.at(a, [0], 1.0)
            return b
        """)


def test_writing_into_an_input_is_refused_unless_allowed():
    with pytest.raises(VerificationError, match="writes into 'x'"):
        _verify("""
            np.exp(x, out=x)
            return x
        """)
    with pytest.raises(VerificationError, match="writes into 'x'"):
        _verify("""
            x += 1.0
            return x
        """)
    _verify("""
        w, = _state._params
        w -= 0.1 * x
        return 0.0
    """, params="_state, x", writable=("temp", "param:_state"))


def test_a_rebound_name_is_a_new_value():
    # y = y + 1 makes a new array; the old binding of y is no longer read
    _verify("""
        a = x * 1.0
        y = a + 1.0
        np.exp(a, out=a)
        return y
    """)


def test_unknown_statements_are_refused_rather_than_trusted():
    with pytest.raises(VerificationError, match="does not know"):
        _verify("""
            for i in range(3):
                x = x + 1
            return x
        """)


# ---------------------------------------------------------------------------------------
# Regressions from main, at the magnitudes where they show
# ---------------------------------------------------------------------------------------


def _exp_model():
    x = sg.input("x", (4, 3))
    y = sg.input("y", (4, 2))
    w = sg.param("w", (3, 2))
    b = sg.param("b", (2,))
    loss = sg.mean(y * sg.exp(x @ w + b))
    return (x, y, w, b), loss


@pytest.mark.parametrize("shift", [0.0, 5.0, 8.0, 50.0, 300.0, 700.0])
def test_mean_y_exp_affine_is_right_at_every_magnitude(shift):
    (x, y, w, b), loss = _exp_model()
    gw, gb = sg.grad(loss, [w, b])
    f = sg.compile([loss, gw, gb], [x, y, w, b])
    rng = np.random.default_rng(1)
    X, Y = rng.uniform(-1, 1, (4, 3)), rng.normal(size=(4, 2))
    W, B = rng.uniform(-0.1, 0.1, (3, 2)), np.full(2, shift)
    got = f(X, Y, W, B)
    with tp.GradientTape() as tape:
        tw, tb = tp.Variable(W), tp.Variable(B)
        tl = tp.mean(Y * tp.exp(tp.constant(X) @ tw + tb))
    want = [tl.numpy(), *tape.gradient(tl, [tw, tb])]
    e = np.exp(X @ W + B)
    np.testing.assert_allclose(got[0], np.mean(Y * e), rtol=1e-12)
    for g, t in zip(got, want):
        assert np.all(np.isfinite(g)), f"non-finite at shift {shift}: {g}"
        np.testing.assert_allclose(g, t, rtol=1e-12)


def test_the_printed_step_never_reads_the_dying_buffer():
    (x, y, w, b), loss = _exp_model()
    gw, gb = sg.grad(loss, [w, b])
    src = sg.compile([loss, gw, gb], [x, y, w, b], target="numpy").source
    # exp(-a)*exp(a) never reaches the code, and the matmul's buffer is named once consumed
    assert "np.exp(-" not in src
    lines = [ln.strip() for ln in src.splitlines()]
    (start,) = [i for i, ln in enumerate(lines) if "out=_matmul" in ln]
    after = "\n".join(lines[start + 1:])
    assert "_matmul1" not in after.replace("out=_matmul1", "")


def test_an_operand_computed_in_place_is_not_read_by_another_operand():
    # (t + 1) @ (t * 2).T with t a dying matmul result: the first operand may not overwrite
    # t while the second still reads it
    a = sg.input("a", (3, 4))
    c = sg.input("c", (4, 3))
    t = a @ c
    out = sg.sum((t + 1.0) @ (t * 2.0).T)
    f = sg.compile([out, sg.grad(out, a)])
    rng = np.random.default_rng(2)
    A, Cv = rng.normal(size=(3, 4)), rng.normal(size=(4, 3))
    T = A @ Cv
    np.testing.assert_allclose(f(a=A, c=Cv)[0], np.sum((T + 1) @ (T * 2).T), rtol=1e-12)


def test_train_step_in_place_equals_no_reuse_twin_step_after_step():
    rng = np.random.default_rng(3)
    x = sg.input("x", (sg.Dim("N"), 5))
    y = sg.input("y", (sg.Dim("N"), 2))
    w1 = sg.param("w1", (5, 4), shared=True) if _has_shared() else sg.param("w1", (5, 4))
    w2 = sg.param("w2", (4, 2), shared=True) if _has_shared() else sg.param("w2", (4, 2))
    h = sg.tanh(sg.exp(x @ w1) * 0.5)
    loss = sg.mean((h @ w2 - y) ** 2)
    values = {"w1": rng.normal(size=(5, 4)) * 0.3, "w2": rng.normal(size=(4, 2)) * 0.3}
    steps = [sg.train_step(loss, sg.optim.Adam(lr=0.01), inplace=flag) for flag in (True,
                                                                                  False)]
    states = [s.init({k: v.copy() for k, v in values.items()}) for s in steps]
    for _ in range(20):
        X, Y = rng.normal(size=(8, 5)) + 2.0, rng.normal(size=(8, 2))
        losses = [s(st, x=X, y=Y) for s, st in zip(steps, states)]
        assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    for name in values:
        np.testing.assert_allclose(states[0].params[name], states[1].params[name], rtol=1e-10)
    assert steps[0].source != steps[1].source  # the twin really reuses no buffer
    assert "out=" not in steps[1].source.split("def train_step")[1].split("_counter")[0]


def _has_shared() -> bool:
    import inspect
    return "shared" in inspect.signature(sg.param).parameters


def test_attributes_of_an_object_are_objects_of_their_own():
    # writing the step counter does not disturb the state's other members ...
    _verify("""
        _counter = _state._counter
        _turn = _state._token
        _counter[0] = 1
        _turn.append(True)
        return 0.0
    """, params="_state, x", writable=("temp", "param:_state"))
    # ... but two reads of the same member are the same memory
    with pytest.raises(VerificationError, match="'again'"):
        _verify("""
            first = _state._counter
            again = _state._counter
            first[0] = 1
            return again
        """, params="_state, x", writable=("temp", "param:_state"))
    # and .T is a view of its array, not a new object
    with pytest.raises(VerificationError, match="'t'"):
        _verify("""
            a = x + y
            t = a.T
            a[...] = 0.0
            return t
        """)


# ---------------------------------------------------------------------------------------
# Optimizer updates evaluated in the dead gradient buffers
# ---------------------------------------------------------------------------------------


def _mlp_loss(prefix: str):
    x = sg.input("x", (16, 6))
    y = sg.input("y", (16, 3))
    w = sg.param(f"{prefix}w", (6, 5), shared=True) if _has_shared() else sg.param(
        f"{prefix}w", (6, 5))
    v = sg.param(f"{prefix}v", (5, 3), shared=True) if _has_shared() else sg.param(
        f"{prefix}v", (5, 3))
    return sg.mean((sg.tanh(x @ w) @ v - y) ** 2), w, v


@pytest.mark.parametrize("opt", ["Adam", "Momentum", "RMSProp"])
def test_updates_in_gradient_buffers_equal_the_plain_form(opt):
    loss, w, v = _mlp_loss(opt)
    make = {"Adam": lambda: sg.optim.Adam(lr=0.01),
            "Momentum": lambda: sg.optim.Momentum(lr=0.01, momentum=0.9),
            "RMSProp": lambda: sg.optim.RMSProp(lr=0.01)}[opt]
    fused, plain = (sg.train_step(loss, make(), inplace=flag) for flag in (True, False))
    if opt == "Adam":  # w += m*c/(sqrt(v*c2) + eps) runs in the gradient's memory
        assert f"out=grad_{opt}w)" in fused.source and "out=" not in plain.source.split(
            "_counter")[-1]
    rng = np.random.default_rng(5)
    init = {f"{opt}w": rng.normal(size=(6, 5)) * 0.5, f"{opt}v": rng.normal(size=(5, 3)) * 0.5}
    states = [s.init({k: a.copy() for k, a in init.items()}) for s in (fused, plain)]
    for _ in range(15):
        X, Y = rng.normal(size=(16, 6)), rng.normal(size=(16, 3))
        fused(states[0], x=X, y=Y)
        plain(states[1], x=X, y=Y)
    for name in init:
        np.testing.assert_allclose(states[0].params[name], states[1].params[name], rtol=1e-12)


def test_a_gradient_that_is_an_input_is_never_scratch():
    # d/dw sum(w * x) is x itself: the update must not be evaluated in the caller's array
    x = sg.input("x", (4, 3))
    w = sg.param("w_scratch", (4, 3))
    step = sg.train_step(sg.sum(w * x), sg.optim.Adam(lr=0.1))
    state = step.init({"w_scratch": np.zeros((4, 3))})
    X = np.arange(12.0).reshape(4, 3)
    before = X.copy()
    for _ in range(3):
        step(state, x=X)
    np.testing.assert_array_equal(X, before)
