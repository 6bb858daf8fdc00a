"""``sg.compile``: output structures, input order, calls, input errors, the generated source,
and the on-disk cache seen from a second process.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg

ROOT = Path(__file__).resolve().parents[1]


def _model(dtype="float64"):
    x = sg.input("x", shape=("N", 3), dtype=dtype)
    w = sg.param("w", shape=(3,), dtype=dtype)
    b = sg.param("b", shape=(), dtype=dtype)
    loss = sg.mean((x @ w + b) ** 2)
    return x, w, b, loss


#: the default parameter order of a function of _model(): inputs, then params by name
ORDER = ["x", "b", "w"]


def _values(dtype=np.float64, n=4) -> dict:
    return {"x": np.linspace(-1.0, 1.0, n * 3, dtype=dtype).reshape(n, 3),
            "w": np.array([0.5, -1.0, 2.0], dtype=dtype),
            "b": np.asarray(0.25, dtype=dtype)}


def _args(dtype=np.float64, n=4) -> list:
    """The values of _model() in the default parameter order."""
    vals = _values(dtype, n)
    return [vals[name] for name in ORDER]


def _hand(x, w, b, **_):
    r = x @ w + b
    return np.mean(r**2), 2.0 * x.T @ r / len(r), 2.0 * np.mean(r)


# ---------------------------------------------------------------------------------------
# Output structures
# ---------------------------------------------------------------------------------------


def test_single_output_returns_an_array():
    x, w, b, loss = _model()
    f = sg.compile(loss)
    assert f.inputs == ORDER
    got = f(*_args())
    assert np.ndim(got) == 0 and not isinstance(got, (list, tuple, dict))
    assert float(got) == pytest.approx(_hand(**_values())[0], rel=1e-14)


def test_list_output_returns_a_list_in_order():
    x, w, b, loss = _model()
    gw, gb = sg.grad(loss, [w, b])
    got = sg.compile([loss, gw, gb])(*_args())
    assert isinstance(got, list) and len(got) == 3
    for a, e in zip(got, _hand(**_values())):
        np.testing.assert_allclose(a, e, rtol=1e-14)
    assert got[1].shape == (3,)


def test_dict_output_returns_a_dict_with_the_same_keys():
    x, w, b, loss = _model()
    grads = sg.grad(loss, {"dw": w, "db": b})  # dict in, dict out
    assert set(grads) == {"dw", "db"}
    f = sg.compile({"loss": loss, "grad w": grads["dw"], "grad b": grads["db"]})
    got = f(**_values())
    assert list(got) == ["loss", "grad w", "grad b"]
    loss_e, gw_e, gb_e = _hand(**_values())
    assert float(got["loss"]) == pytest.approx(loss_e, rel=1e-14)
    np.testing.assert_allclose(got["grad w"], gw_e, rtol=1e-14)
    assert float(got["grad b"]) == pytest.approx(gb_e, rel=1e-14)


def test_grad_of_a_single_source_returns_a_single_tensor():
    x, w, b, loss = _model()
    g = sg.grad(loss, w)
    assert isinstance(g, sg.Tensor) and g.shape == (3,)


# ---------------------------------------------------------------------------------------
# Inputs: the default order, explicit orders, positional and keyword calls
# ---------------------------------------------------------------------------------------


def test_default_input_order_is_inputs_then_params_each_by_name():
    z, a = sg.input("z", shape=(2,)), sg.input("a", shape=(2,))
    q, p = sg.param("q", shape=(2,)), sg.param("p", shape=(2,))
    f = sg.compile(sg.sum(q * z + p * a * 10.0 + 100.0 * z * z))
    assert f.inputs == ["a", "z", "p", "q"]
    one, two = np.ones(2), np.full(2, 2.0)
    # positional arguments follow f.inputs: a=1, z=2, p=1, q=2
    assert f(one, two, one, two) == pytest.approx(2 * (2 * 2 + 1 * 1 * 10 + 100 * 4))


def test_explicit_inputs_fix_the_order_by_tensor_or_name():
    x, w, b, loss = _model()
    f = sg.compile(loss, inputs=[w, "b", x])
    assert f.inputs == ["w", "b", "x"]
    v = _values()
    assert f(v["w"], v["b"], v["x"]) == pytest.approx(_hand(**v)[0], rel=1e-14)


def test_explicit_inputs_must_cover_every_leaf():
    x, w, b, loss = _model()
    with pytest.raises(ValueError, match=r"'b'"):
        sg.compile(loss, inputs=[x, w])


def test_keyword_and_mixed_calls_agree_with_positional():
    x, w, b, loss = _model()
    f = sg.compile(loss)
    xv, bv, wv = _args()
    want = f(xv, bv, wv)
    assert want == pytest.approx(_hand(**_values())[0], rel=1e-14)
    assert f(x=xv, w=wv, b=bv) == want
    assert f(b=bv, x=xv, w=wv) == want
    assert f(xv, w=wv, b=bv) == want


def test_symbolic_dimension_takes_any_size():
    x, w, b, loss = _model()
    f = sg.compile(loss)
    for n in (1, 4, 7):
        assert f(**_values(n=n)) == pytest.approx(_hand(**_values(n=n))[0], rel=1e-14)


# ---------------------------------------------------------------------------------------
# Input errors name the argument
# ---------------------------------------------------------------------------------------


def _f32():
    x, w, b, loss = _model("float32")
    v = _values(np.float32)
    return sg.compile(loss, inputs=[x, w, b]), (v["x"], v["w"], v["b"])


@pytest.mark.parametrize("make_call,error,pattern", [
    # wrong shape
    (lambda f, x, w, b: f(x.reshape(3, 4), w, b), ValueError, r"'x'.*\(N, 3\).*\(3, 4\)"),
    (lambda f, x, w, b: f(x, w[:2], b), ValueError, r"'w'.*\(3,\).*\(2,\)"),
    (lambda f, x, w, b: f(x, w.reshape(3, 1), b), ValueError, r"'w'.*\(3,\).*\(3, 1\)"),
    # wrong dtype
    (lambda f, x, w, b: f(x.astype(np.float64), w, b), TypeError, r"'x'.*float32.*float64"),
    (lambda f, x, w, b: f(x, w.astype(np.int64), b), TypeError, r"'w'.*float32.*int64"),
    # missing, unknown, twice
    (lambda f, x, w, b: f(x, w), TypeError, r"missing.*'b'"),
    (lambda f, x, w, b: f(x=x, b=b), TypeError, r"missing.*'w'"),
    (lambda f, x, w, b: f(x, w, b, bias=b), TypeError, r"unknown.*'bias'"),
    (lambda f, x, w, b: f(x, w, b, w=w), TypeError, r"'w' twice"),
    (lambda f, x, w, b: f(x, w, b, b), TypeError, r"3 inputs.*4 positional"),
    # not an array
    (lambda f, x, w, b: f(x.tolist(), w, b), TypeError, r"'x'.*numpy array.*list"),
    (lambda f, x, w, b: f(x, "w", b), TypeError, r"'w'.*numpy array.*str"),
    (lambda f, x, w, b: f(x, w, None), TypeError, r"'b'.*numpy array.*NoneType"),
])
def test_bad_arguments_raise_an_error_naming_the_argument(make_call, error, pattern):
    f, (x, w, b) = _f32()
    with pytest.raises(error, match=pattern):
        make_call(f, x, w, b)


def test_inconsistent_symbolic_dimension_names_both_inputs():
    x = sg.input("x", shape=("N", 3))
    y = sg.input("y", shape=("N",))
    f = sg.compile(sg.sum(x, axis=1) * y)
    with pytest.raises(ValueError, match=r"'y'.*dimension N is 4 from input 'x'"):
        f(np.ones((4, 3)), np.ones(5))


def test_a_python_float_is_accepted_for_a_scalar_input():
    x, w, b, loss = _model()
    v = _values()
    assert sg.compile(loss)(x=v["x"], w=v["w"], b=0.25) == pytest.approx(_hand(**v)[0], rel=1e-14)


# ---------------------------------------------------------------------------------------
# The generated source
# ---------------------------------------------------------------------------------------


def test_generated_source_imports_only_numpy_and_runs_on_its_own():
    x, w, b, loss = _model()
    outputs = [loss, *sg.grad(loss, [w, b])]
    f = sg.compile(outputs)
    tree = ast.parse(f.source)
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert imports, "the module imports numpy"
    for node in imports:
        assert isinstance(node, ast.Import), ast.dump(node)
        assert [(a.name, a.asname) for a in node.names] == [("numpy", "np")]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"sympy", "symgrad", "__import__", "eval", "exec", "open"}
    # the module runs without symgrad: execute its text in a bare namespace
    namespace: dict = {"__name__": "standalone"}
    exec(compile(f.source, "standalone.py", "exec"), namespace)  # noqa: S102
    got = namespace["compute"](*_args())
    for a, e in zip(got, f(*_args())):
        np.testing.assert_array_equal(a, e)


def test_cached_module_lives_in_the_test_cache_dir():
    x, w, b, loss = _model()
    f = sg.compile(loss)
    assert f.path is not None and Path(f.path).is_file()
    cache = Path(os.environ["SYMGRAD_CACHE_DIR"]).resolve()
    assert cache in Path(f.path).resolve().parents  # never the user's cache
    assert f.source in Path(f.path).read_text()


# ---------------------------------------------------------------------------------------
# A second process hits the cache and does not differentiate
# ---------------------------------------------------------------------------------------

BUILD = textwrap.dedent("""
    import numpy as np
    import symgrad as sg
    x = sg.input("x", shape=("N", 3))
    w = sg.param("w", shape=(3, 2))
    b = sg.param("b", shape=(2,))
    loss = sg.mean(sg.softplus(x @ w + b) ** 2) * SCALE
    outputs = [loss, *sg.grad(loss, [w, b])]
    args = dict(x=np.linspace(-1, 1, 12).reshape(4, 3), w=np.linspace(0, 1, 6).reshape(3, 2),
                b=np.array([0.1, -0.2]))
""")

CHILD = textwrap.dedent("""
    import json
    import symgrad.api, symgrad.compiler.diff

    def refuse(*args, **kwargs):
        raise AssertionError("the second process differentiated: the cache missed")

    # no differentiation and no code generation in this process
    symgrad.compiler.diff.gradients = symgrad.api.gradients = refuse
    symgrad.api.plan = symgrad.api.render = refuse
    SCALE = @SCALE@
""") + BUILD + textwrap.dedent("""
    f = sg.compile(outputs)
    print(json.dumps({"key": f.key, "path": str(f.path),
                      "values": [np.asarray(v).tolist() for v in f(**args)]}))
""")


def _child(scale: float) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    code = CHILD.replace("@SCALE@", repr(scale))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_second_process_loads_from_the_cache_without_differentiating():
    ns: dict = {"SCALE": 1.0}
    exec(BUILD, ns)  # noqa: S102 - the same build, in this process
    f = sg.compile(ns["outputs"])
    want = [np.asarray(v).tolist() for v in f(**ns["args"])]

    run = _child(1.0)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["key"] == f.key  # no process-dependent names in the key
    assert got["path"] == str(f.path)
    np.testing.assert_allclose(np.concatenate([np.ravel(v) for v in got["values"]]),
                               np.concatenate([np.ravel(v) for v in want]), rtol=0, atol=0)


def test_the_second_process_check_would_catch_a_miss():
    """Control: a function not in the cache makes the patched child fail."""
    run = _child(3.0)  # not compiled by anyone: a miss
    assert run.returncode != 0
    assert "the cache missed" in run.stderr


def test_a_weak_scalar_adjoint_is_spread_in_the_models_dtype():
    # mean of per-example losses: the adjoint 1/N is a weak Python scalar, spread over the
    # batch; np.broadcast_to(1/N, (N,)) is float64 and took a float32 model's backward pass
    # into float64 (2x slower on the W5 CNN)
    x = sg.input("x", ("N", 4), "float32")
    w = sg.param("w", (4, 3), "float32")
    loss = sg.logsumexp(x @ w, axis=1).mean()
    f = sg.compile([loss, *sg.grad(loss, [w])])
    body = f.source.split("def compute")[1]
    spread = [line for line in body.split("\n") if "np.full(" in line or "broadcast_to(" in line]
    assert spread and all("np.full(" in line and "np.float32" in line for line in spread), spread
    value, grad = f(np.ones((5, 4), np.float32), np.ones((4, 3), np.float32))
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, np.full((4, 3), 1 / 3, np.float32), rtol=1e-6)
