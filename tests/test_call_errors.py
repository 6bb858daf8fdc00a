"""Bad input at call time (issue 6, point 8) and the expression-size caps (point 7).

Each bad call raises a clear TypeError/ValueError naming the argument (the user's own name)
and what was expected; the inputs, the cache on disk and the in-process memo are left as
they were, and the next good call is right.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.runtime import cache

#: every test gets a fresh private cache (conftest's ``cache_env``)
pytestmark = pytest.mark.usefixtures("cache_env")


def _model(check_finite=False, names=("x", "w", "y")):
    xn, wn, yn = names
    x = sg.input(xn, shape=("N", 3))
    w = sg.param(wn, shape=(3,))
    y = sg.input(yn, shape=("N",))
    loss = sg.sum((x @ w - y) ** 2)
    f = sg.compile({"loss": loss, "grad": sg.grad(loss, [w])[0]}, inputs=[xn, wn, yn],
                   check_finite=check_finite)
    return f


X = np.arange(12.0).reshape(4, 3) / 10
W = np.array([0.5, -1.0, 2.0])
Y = np.array([1.0, 0.0, -1.0, 2.0])


def _want():
    r = X @ W - Y
    return float(np.sum(r**2)), 2 * X.T @ r


def _snapshot(d):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.rglob("*")) if p.is_file()}


# (description, call(f), exception type, regexes the message must match)
BAD_CALLS = [
    ("wrong shape", lambda f: f(x=np.ones((4, 2)), w=W, y=Y), ValueError,
     [r"'x'", r"\(N, 3\)", r"\(4, 2\)"]),
    ("wrong rank", lambda f: f(x=np.ones(3), w=W, y=Y), ValueError,
     [r"'x'", r"\(N, 3\)", r"\(3,\)"]),
    ("wrong param shape", lambda f: f(x=X, w=np.ones(4), y=Y), ValueError,
     [r"'w'", r"\(3,\)", r"\(4,\)"]),
    ("inconsistent symbolic dim", lambda f: f(x=X, w=W, y=np.ones(5)), ValueError,
     [r"'y'", r"'x'", r"\bN\b", r"\b5\b", r"\b4\b"]),
    ("wrong dtype float32", lambda f: f(x=X.astype(np.float32), w=W, y=Y), TypeError,
     [r"'x'", r"float64", r"float32"]),
    ("wrong dtype int", lambda f: f(x=X, w=W.astype(np.int64), y=Y), TypeError,
     [r"'w'", r"float64", r"int64"]),
    ("missing argument", lambda f: f(x=X, w=W), TypeError, [r"missing", r"'y'"]),
    ("missing positional", lambda f: f(X), TypeError, [r"missing", r"'w'", r"'y'"]),
    ("unknown argument", lambda f: f(x=X, w=W, y=Y, z=Y), TypeError,
     [r"unknown", r"'z'", r"\['x', 'w', 'y'\]"]),
    ("argument twice", lambda f: f(X, W, Y, x=X), TypeError, [r"'x'", r"twice"]),
    ("too many positional", lambda f: f(X, W, Y, Y), TypeError, [r"3 inputs", r"got 4"]),
    ("a list", lambda f: f(x=X.tolist(), w=W, y=Y), TypeError,
     [r"'x'", r"numpy array", r"float64", r"\(N, 3\)", r"list"]),
    ("a string", lambda f: f(x=X, w="0.5, -1, 2", y=Y), TypeError,
     [r"'w'", r"numpy array", r"str"]),
    ("None", lambda f: f(x=X, w=W, y=None), TypeError, [r"'y'", r"numpy array", r"NoneType"]),
    ("a dict", lambda f: f(x={"a": 1}, w=W, y=Y), TypeError, [r"'x'", r"numpy array", r"dict"]),
    ("a float for an array", lambda f: f(x=X, w=0.5, y=Y), TypeError,
     [r"'w'", r"numpy array", r"\(3,\)"]),
    ("a bool", lambda f: f(x=X, w=True, y=Y), TypeError, [r"'w'", r"bool"]),
]

NON_FINITE = [
    ("nan in an input", lambda f: f(x=np.where(X > 0.5, np.nan, X), w=W, y=Y), "x"),
    ("inf in a param", lambda f: f(x=X, w=np.array([0.5, np.inf, 1.0]), y=Y), "w"),
    ("-inf in an input", lambda f: f(x=X, w=W, y=np.array([1.0, -np.inf, 0, 0])), "y"),
]


@pytest.mark.parametrize("what,call,exc,patterns", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_call_is_a_clear_error(what, call, exc, patterns, cache_env):
    f = _model()
    before = _snapshot(cache_env)
    memo = dict(cache.MODULES.memo)
    x0, w0, y0 = X.copy(), W.copy(), Y.copy()
    with pytest.raises(exc) as err:
        call(f)
    msg = str(err.value)
    for pat in patterns:
        assert re.search(pat, msg), f"{what}: {pat!r} not in {msg!r}"
    # nothing left modified: inputs, disk, memo; the next good call is right
    assert np.array_equal(X, x0) and np.array_equal(W, w0) and np.array_equal(Y, y0)
    assert _snapshot(cache_env) == before
    assert cache.MODULES.memo == memo
    out = f(x=X, w=W, y=Y)
    loss, grad = _want()
    assert out["loss"] == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(out["grad"], grad, rtol=1e-14)


@pytest.mark.parametrize("what,call,name", NON_FINITE, ids=[n[0] for n in NON_FINITE])
def test_non_finite_inputs_with_check_finite(what, call, name, cache_env):
    f = _model(check_finite=True)
    before = _snapshot(cache_env)
    with pytest.raises(ValueError, match=rf"input '{name}' contains nan or inf"):
        call(f)
    assert _snapshot(cache_env) == before
    # without check_finite the call goes through (the documented default)
    with np.errstate(all="ignore"):
        out = call(_model(check_finite=False))
    assert not np.isfinite(out["loss"])
    loss, _ = _want()
    assert f(x=X, w=W, y=Y)["loss"] == pytest.approx(loss, rel=1e-14)


def test_errors_use_the_users_names(cache_env):
    """Inputs whose names are not identifiers: errors name them as the user wrote them."""
    names = ("my input", "weights (w)", "y\u2019")
    f = _model(names=names)
    with pytest.raises(TypeError, match=re.escape("'weights (w)'")):
        f(**{"my input": X, "y\u2019": Y})
    with pytest.raises(ValueError, match=re.escape("'my input'")):
        f(**{"my input": np.ones((4, 4)), "weights (w)": W, "y\u2019": Y})
    with pytest.raises(TypeError, match=re.escape("'w'")):
        f(**{"my input": X, "weights (w)": W, "y\u2019": Y, "w": W})
    out = f(**{"my input": X, "weights (w)": W, "y\u2019": Y})
    assert out["loss"] == pytest.approx(_want()[0], rel=1e-14)


def test_scalar_inputs_accept_python_numbers(cache_env):
    a = sg.input("a", shape=())
    f = sg.compile(a * 2.0)
    assert f(3) == 6.0 and f(2.5) == 5.0
    with pytest.raises(TypeError, match="'a'.*bool"):
        f(True)
    with pytest.raises(TypeError, match="'a'"):
        f("3")


# ---------------------------------------------------------------------------------------
# Expression swell: max_nodes / max_lines (point 7)
# ---------------------------------------------------------------------------------------


def _mlp(depth, width=4):
    x = sg.input("x", shape=("N", width))
    h = x
    params = []
    for i in range(depth):
        w = sg.param(f"w{i}", shape=(width, width))
        b = sg.param(f"b{i}", shape=(width,))
        params += [w, b]
        h = sg.tanh(h @ w + b)
    loss = sg.mean(h**2)
    return loss, params


def test_max_nodes_names_the_output_and_its_size(cache_env):
    loss, params = _mlp(3)
    outputs = {"the loss": loss, "gradient of w0": sg.grad(loss, [params[0]])[0]}
    with pytest.raises(sg.ExpressionTooLarge) as err:
        sg.compile(outputs, max_nodes=10)
    msg = str(err.value)
    m = re.search(r"output '([^']+)' has (\d+) expression nodes, more than max_nodes=10", msg)
    assert m, msg
    assert m.group(1) in outputs and int(m.group(2)) > 10
    assert isinstance(err.value, ValueError)
    assert list(cache_env.rglob("*.py")) == []  # nothing cached for a refused compile
    f = sg.compile(outputs, max_nodes=10_000)  # a generous cap compiles
    assert f.path.exists()


def test_max_lines_names_the_module_size(cache_env):
    loss, params = _mlp(4)
    outputs = [loss, *sg.grad(loss, params)]
    with pytest.raises(sg.ExpressionTooLarge) as err:
        sg.compile(outputs, max_lines=20)
    msg = str(err.value)
    m = re.search(r"the generated module has (\d+) lines, more than max_lines=20 "
                  r"\(largest output: '([^']+)'\)", msg)
    assert m, msg
    lines = int(m.group(1))
    assert lines > 20
    assert list(cache_env.rglob("*.py")) == []
    f = sg.compile(outputs, max_lines=lines)  # exactly at the cap is fine
    assert f.source.count("\n") <= lines + 1


def test_caps_are_part_of_the_key(cache_env):
    """A module compiled under a generous cap is not served to a compile with a tight one."""
    loss, params = _mlp(2)
    f = sg.compile(loss)
    assert f.path.exists()
    with pytest.raises(sg.ExpressionTooLarge):
        sg.compile(loss, max_nodes=3)
    with pytest.raises(sg.ExpressionTooLarge):
        sg.compile(loss, max_lines=5)
    assert sg.compile(loss).key == f.key


def test_default_caps_allow_a_deep_chain(cache_env):
    """The defaults do not get in the way of ordinary models (a depth-8 MLP)."""
    loss, params = _mlp(8)
    f = sg.compile([loss, *sg.grad(loss, params)])
    x = np.random.default_rng(0).normal(size=(5, 4))
    vals = {"x": x}
    rng = np.random.default_rng(1)
    for p in params:
        vals[p.expr.name] = rng.normal(size=p.shape) * 0.5
    out = f(**vals)
    assert all(np.isfinite(o).all() for o in out)
