"""Hostile names: user text never becomes code (issue 6, point 5).

A property test feeds well over 1,000 names (keywords, dunders, builtins and numpy shadows,
symgrad's own helper and temporary names, quotes, newlines, ``#``, backslashes, code
payloads, names equal after NFKC normalisation, zero-width and bidi characters, lone
surrogates, empty and 100,000-character names) as input, parameter and output names. No
payload ever runs (sentinel files), every module parses and passes the allowlist, and the
results are bit-identical to the same model with plain names. Hand-tampered modules that
import ``os``, call ``eval`` or reach a builtin by shadowing are refused before they run.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import os
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.runtime import cache
from symgrad.runtime.safety import UnsafeModuleError, check_module_source

#: per example: K inputs + K params + 2K output keys
K = 16
MIN_NAMES = 1000
EXAMPLES = int(os.environ.get("SYMGRAD_NAME_EXAMPLES",
                              "300" if os.environ.get("SYMGRAD_STRESS") else "50"))
#: every test gets a fresh private cache (conftest's ``cache_env``)
pytestmark = pytest.mark.usefixtures("cache_env")


# ---------------------------------------------------------------------------------------
# The names
# ---------------------------------------------------------------------------------------

#: every distinct name compiled by the tests of this module (as input, param or output)
TRIED: set = set()

SENTINEL_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / f"symgrad-sentinel-{os.getpid()}"
SENTINEL = SENTINEL_DIR / "PWNED"


def _payloads(target: str) -> list:
    return [
        f"__import__('os').system('touch {target}')",
        f"x'); __import__('os').system('touch {target}'); ('",
        f'x"); __import__("os").system("touch {target}"); ("',
        f"x\n__import__('os').system('touch {target}')\n",
        f"x\\\n__import__('os').system('touch {target}')",
        f"a=open('{target}', 'w')",
        f"\"\"\"\nopen('{target}', 'w')\n\"\"\"",
        f"'''\nopen('{target}', 'w')\n'''",
        f"# \nopen('{target}', 'w')",
        f"np.save('{target}', 1)",
        f"{{0.__class__.__mro__}} {{% include '{target}' %}} {{{{ key }}}}",
        f"$(touch {target})",
        f"`touch {target}`",
        f"eval(\"open('{target}', 'w')\")",
        f"exec(compile(\"open('{target}','w')\", 's', 'exec'))",
    ]


HOSTILE = sorted(set(
    keyword.kwlist + list(getattr(keyword, "softkwlist", []))
    + ["__import__", "__builtins__", "__class__", "__init__", "__name__", "__file__",
       "__dict__", "__globals__", "__", "___", "_", "__x", "x__"]
    + ["numpy", "np", "float", "len", "int", "print", "eval", "exec", "open", "input",
       "sum", "max", "abs", "range", "type", "object", "getattr", "compile", "globals",
       "compute", "train_step", "self", "cls", "N", "M"]
    + ["_check_inputs", "_INPUTS", "_DT_float64", "_DT_float32", "_ok", "_show", "_finalize",
       "_logsumexp", "_zeros_like", "_ZEROS", "_argmax_mask", "_scatter", "_t1", "_t2",
       "_t3", "_t7", "_matmul1", "_sum1", "_sum2", "_out1", "_const", "_constx", "out",
       "out1", "out2", "grad_x", "grad_w", "v_", "v__2", "x_2", "class_", "np_"]
    + ["'", '"', "'''", '"""', "\\", "\\n", "\n", "\r\n", "\r", "#", "# comment", "\x00",
       "\t", " ", "", "\x1b[31m", "\f", "\v", "\x85", "\u2028", "\u2029"]
    + ["\ufb01", "fi", "\uff58", "x", "\u210c", "H", "\u212b", "\u00c5", "e\u0301", "\u00e9",
       "\U0001d431", "\u00b2", "2", "\u2168", "IX", "\u01c4", "D\u017d"]
    + ["\u200b", "a\u200bb", "ab", "\u202e", "abc\u202edef", "\u2066x\u2069", "\ufeff",
       "\u200d", "\u034f", "\ud800", "\udfff", "a\ud83db"]
    + ["1abc", "123", "0", "-", "+", "a-b", "a b", "a_b", "a.b", "os.system", "a\x00b",
       "x" * 40, "x" * 41, "x" * 42, "y" * 1000, "z" * 100_000, "\u00e9" * 100_000]
    + _payloads("PWNED") + _payloads(str(SENTINEL))))

WEIRD = ("'\"\\#\n\r\t\x00 _-.:;()[]{}%$`\u200b\u202e\u2066\ufeff\ufb01\uff58\u212b\u00e9"
         "\ud800\udfff" + string.ascii_letters[:6] + string.digits[:3])

NAME = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=24),
    st.text(alphabet=st.sampled_from(list(WEIRD)), max_size=12),
    st.builds(lambda a, b: a + b, st.sampled_from(HOSTILE), st.text(alphabet=WEIRD, max_size=4)),
    st.from_regex(r"\A_?[a-z]{1,3}[0-9]?\Z"),
)
LEAF_NAMES = st.lists(NAME, min_size=2 * K, max_size=2 * K, unique=True)
OUT_NAMES = st.lists(NAME, min_size=2 * K, max_size=2 * K, unique=True)


# ---------------------------------------------------------------------------------------
# The model: the same structure under any names
# ---------------------------------------------------------------------------------------


def _model(leaf_names, out_names, dtype="float64"):
    xs = [sg.input(n, shape=(3,), dtype=dtype) for n in leaf_names[:K]]
    ws = [sg.param(n, shape=(3,), dtype=dtype) for n in leaf_names[K:]]
    outs = [sg.sum(sg.exp(w) * x * x) for x, w in zip(xs, ws)]
    grads = [sg.grad(out, [w])[0] for out, w in zip(outs, ws)]
    return dict(zip(out_names, outs + grads))


RNG = np.random.default_rng(20240601)
VALUES = [RNG.normal(size=3) for _ in range(2 * K)]
PLAIN_LEAVES = [f"x{i}" for i in range(K)] + [f"w{i}" for i in range(K)]
PLAIN_OUTS = [f"k{i}" for i in range(2 * K)]


def _plain_results():
    f = sg.compile(_model(PLAIN_LEAVES, PLAIN_OUTS))
    return f(**dict(zip(PLAIN_LEAVES, VALUES)))


def _no_sentinels(cwd: Path):
    assert not SENTINEL.exists(), f"a payload ran: {SENTINEL} was created"
    assert not (cwd / "PWNED").exists(), "a payload ran: ./PWNED was created"
    assert not list(cwd.glob("PWNED*")), "a payload ran"


# ---------------------------------------------------------------------------------------
# The property test
# ---------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
def test_hostile_names_never_run_and_give_plain_results(tmp_path, monkeypatch):
    SENTINEL_DIR.mkdir(exist_ok=True)
    if SENTINEL.exists():
        SENTINEL.unlink()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    plain = _plain_results()
    tried: set = set()
    per_example = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(leaf_names=LEAF_NAMES, out_names=OUT_NAMES)
    def run(leaf_names, out_names):
        f = sg.compile(_model(leaf_names, out_names))
        source = f.source
        ast.parse(source)  # no SyntaxError, whatever the names
        check_module_source(source)
        # user text appears only inside string literals and comments: every identifier
        # the module binds is ASCII and none is a keyword, builtin or np
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                assert node.id.isascii() and node.id.isidentifier()
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                assert node.id not in dir(builtins) and node.id not in ("np", "numpy")
        # by keyword, under the user's own names
        got = f(**dict(zip(leaf_names, VALUES)))
        assert list(got) == list(out_names)
        for hk, pk in zip(out_names, PLAIN_OUTS):
            np.testing.assert_array_equal(got[hk], plain[pk])
        # positionally, in the documented order
        by_name = dict(zip(leaf_names, VALUES))
        got2 = f(*[by_name[n] for n in f.inputs])
        for hk in out_names:
            np.testing.assert_array_equal(got2[hk], got[hk])
        # errors name the user's input, verbatim
        bad = leaf_names[0]
        with pytest.raises(ValueError) as err:
            f(**{**by_name, bad: np.zeros(4)})
        assert repr(bad)[:50] in str(err.value)
        _no_sentinels(work)
        tried.update(leaf_names)
        tried.update(out_names)
        per_example.append(len(leaf_names) + len(out_names))

    try:
        run()
        _no_sentinels(work)
    finally:
        try:
            SENTINEL_DIR.rmdir()  # empty unless a payload ran (then the assertion says so)
        except OSError:
            pass
    total = sum(per_example)
    TRIED.update(tried)
    print(f"\nhostile names: {total} names tried ({len(tried)} distinct) in "
          f"{len(per_example)} compiled models, 0 failures")
    assert total >= MIN_NAMES, f"only {total} names were tried"
    assert len(tried) >= MIN_NAMES // 2, "the name strategy produced too few distinct names"


def test_every_listed_hostile_name_compiles(tmp_path, monkeypatch):
    """Each of the hand-picked names, in groups, as input, param and output names."""
    monkeypatch.chdir(tmp_path)
    plain = _plain_results()
    # each hand-picked name, and the same behind a bidi override and before a zero-width space
    names = sorted(set(HOSTILE) | {"\u202e" + h for h in HOSTILE} | {h + "\u200b" for h in HOSTILE})
    groups = [names[i:i + 2 * K] for i in range(0, len(names) - 2 * K + 1, 2 * K)]
    groups.append(names[-2 * K:])
    for i, group in enumerate(groups):
        outs = names[(i * 7) % len(names):][:2 * K]
        outs = (outs + [n for n in names if n not in outs])[:2 * K]
        f = sg.compile(_model(group, outs))
        got = f(**dict(zip(group, VALUES)))
        for hk, pk in zip(outs, PLAIN_OUTS):
            np.testing.assert_array_equal(got[hk], plain[pk])
        TRIED.update(group)
        TRIED.update(outs)
    _no_sentinels(tmp_path)
    assert not SENTINEL.exists()
    assert set(HOSTILE) <= TRIED


def test_at_least_1000_distinct_names_were_tried():
    if not TRIED:
        pytest.skip("run the whole module")
    print(f"\nhostile names: {len(TRIED)} distinct names compiled without a side effect")
    assert len(TRIED) >= MIN_NAMES


def test_names_equal_after_nfkc_stay_distinct():
    """'\ufb01' and 'fi' (or fullwidth 'x' and 'x') are different inputs, as the user wrote."""
    a, b = sg.input("\ufb01", shape=(2,)), sg.input("fi", shape=(2,))
    c, d = sg.param("\uff58", shape=(2,)), sg.param("x", shape=(2,))
    f = sg.compile({"fi": a * 1.0, "\ufb01": b * 2.0, "x": c * 3.0, "\uff58": d * 4.0})
    one, two = np.array([1.0, 1.0]), np.array([2.0, 2.0])
    r = f(**{"\ufb01": one, "fi": two, "\uff58": one, "x": two})
    np.testing.assert_array_equal(r["fi"], one)
    np.testing.assert_array_equal(r["\ufb01"], 2 * two)
    np.testing.assert_array_equal(r["x"], 3 * one)
    np.testing.assert_array_equal(r["\uff58"], 4 * two)


def test_function_name_is_validated():
    x = sg.input("x", shape=(2,))
    for bad in ["np", "_check_inputs", "class", "\ufb01", "f(a=open('PWNED','w')):\n pass\ndef g",
                "", "1f", "print"]:
        with pytest.raises(ValueError, match="identifier"):
            sg.compile(sg.sum(x), name=bad)
    f = sg.compile(sg.sum(x), name="loss_fn")
    assert f(np.ones(2)) == 2.0


# ---------------------------------------------------------------------------------------
# The allowlist: hand-tampered modules never run
# ---------------------------------------------------------------------------------------

TAMPERED = {
    "import os": "import os\nos.system('touch {s}')\n",
    "import os as np": "import os as np\n",
    "from import": "from os import system\nsystem('touch {s}')\n",
    "eval": "eval(\"open('{s}', 'w')\")\n",
    "exec": "exec(\"open('{s}', 'w')\")\n",
    "__import__": "__import__('os').system('touch {s}')\n",
    "open": "open('{s}', 'w')\n",
    "getattr": "getattr(np, 'save')('{s}', 1)\n",
    "dunder attribute": "np.__dict__['save']('{s}', 1)\n",
    "dunder via subclasses": "().__class__.__base__.__subclasses__()\n",
    "np.save": "np.save('{s}', np.zeros(1))\n",
    "np.lib": "np.lib.npyio.save('{s}', np.zeros(1))\n",
    "tofile": "_a = np.zeros(1)\n_a.tofile('{s}')\n",
    "np private": "np._core.multiarray.array(1)\n",
    "format traversal": "'{{0.__class__}}'.format(np)\n",
    "shadowed builtin": "open('{s}', 'w')\nopen = np.sum\n",
    "builtin as argument": "def f(open=None):\n    return open\n",
    "def eval": "def eval(x):\n    return x\n",
    "class": "class A:\n    pass\n",
    "global": "def f():\n    global np\n    np = 1\n",
    "breakpoint": "breakpoint()\n",
    "lambda default": "f = lambda a=exec('1'): a\n",
    "decorator": "@print\ndef f():\n    pass\n",
    "annotation": "x: print('{s}') = 1\n",
    "unknown name": "y = os\n",
    "except as builtin": "try:\n    pass\nexcept ValueError as open:\n    pass\n",
}


@pytest.mark.parametrize("what", sorted(TAMPERED))
def test_allowlist_refuses_tampered_module(what, tmp_path):
    good = sg.compile(sg.sum(sg.input("x", shape=(2,)) ** 2)).source
    check_module_source(good)  # the real module passes
    sentinel = tmp_path / "PWNED"
    evil = good + "\n" + TAMPERED[what].format(s=sentinel)
    with pytest.raises(UnsafeModuleError):
        check_module_source(evil)
    with pytest.raises(UnsafeModuleError):
        cache.execute("0" * 64, evil, None)
    assert not sentinel.exists()


def test_tampered_entry_with_valid_checksum_is_refused_and_rebuilt(cache_env, tmp_path):
    """Even a tampered entry whose checksum was updated never runs: the allowlist stops it,
    the entry is rebuilt with a CacheWarning and the result is right."""
    x = sg.input("x", shape=(3,))
    f = sg.compile(sg.sum(x * x))
    path, key = f.path, f.key
    sentinel = tmp_path / "PWNED"
    source = path.read_text().partition("\n")[2]
    for payload in [f"import os\nos.system('touch {sentinel}')\n",
                    f"eval(\"open('{sentinel}', 'w')\")\n",
                    f"np.save('{sentinel}', 1)\n"]:
        path.write_text(cache._entry_text(key, source + payload))
        assert cache.check_entry(key, path.read_bytes())[0] is not None  # checksum is "right"
        cache.MODULES.memo.clear()
        with pytest.warns(cache.CacheWarning, match="refused"):
            g = sg.compile(sg.sum(x * x))
        assert not sentinel.exists()
        assert g(np.array([1.0, 2.0, 3.0])) == 14.0
        assert "os.system" not in g.source and "eval(" not in g.source
        assert cache.check_entry(key, path.read_bytes())[0] == g.source


@pytest.mark.parametrize("names", [("state", "self", "params"), ("state", "y", "w"),
                                   ("_state", "lr", "step"), ("x y", "state", "\u202e")])
def test_train_step_with_hostile_names(names):
    """The train step's own parameter (the state) never collides with a user's input."""
    def run(ns):
        x = sg.input(ns[0], shape=(3,))
        y = sg.input(ns[1], shape=(3,))
        w = sg.param(ns[2], shape=(3,))
        step = sg.train_step(sg.sum((x * w - y) ** 2), sg.optim.SGD(0.1))
        state = step.init({ns[2]: np.array([1.0, 2.0, 3.0])})
        losses = [step(state, **{ns[0]: VALUES[0], ns[1]: VALUES[1]}) for _ in range(3)]
        return losses, np.array(state.params[ns[2]])
    got, want = run(names), run(("x", "y", "w"))
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_user_names_that_are_module_names_the_generated_code_reads(backend):
    # np, xp (the array API namespace), math and array_api_compat are read by generated
    # code on some target; a user's tensor of that name is renamed, never shadows them
    if backend == "array_api":
        pytest.importorskip("array_api_compat")
    leaves = [sg.input(n, (3,)) for n in ("np", "xp", "math", "array_api_compat")]
    total = leaves[0] * leaves[1] + leaves[2] * leaves[3]
    f = sg.compile([sg.sum(total), *sg.grad(sg.sum(total), leaves)], inputs=leaves,
                   backend=backend)
    vals = [np.arange(3.0) + k for k in range(4)]
    out = f(*vals)
    assert float(out[0]) == pytest.approx(float(np.sum(vals[0] * vals[1] + vals[2] * vals[3])))
    np.testing.assert_allclose(np.asarray(out[1]), vals[1])
