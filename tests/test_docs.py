"""The docs folder matches the code.

* docs/ops.md and docs/api.md are what ``docs/make_docs.py`` generates now (a docstring
  changed without regenerating them fails here);
* the generated-code samples in README.md are what ``docs/make_sample.py`` generates now,
  cache key aside;
* docs/workloads.md covers W0 to W5; the ```python blocks of docs/tape_vs_symbolic.md run;
* the README's commands behind them: ``python -m symgrad show`` on a function returning
  ``(loss, *params)`` shows its gradients, an unknown name lists the built-ins, and LaTeX
  prints matmul with a visible operator.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import symgrad as sg  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: every test gets a fresh private cache (conftest's ``cache_env``)
pytestmark = pytest.mark.usefixtures("cache_env")


def _env() -> dict:
    """This process's environment (with the test's private cache) and the checkout on the
    path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


# ---------------------------------------------------------------------------------------
# Generated reference pages
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["ops.md", "api.md"])
def test_generated_page_is_current(page):
    make_docs = _load("make_docs")
    current = (DOCS / page).read_text(encoding="utf-8")
    assert current == make_docs.TARGETS[page](), (
        f"docs/{page} is stale: run `python docs/make_docs.py`")


def test_ops_page_lists_every_public_op_with_its_docstring():
    text = (DOCS / "ops.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|", text, re.M)
    assert rows == list(sg.PUBLIC_OPS)
    assert "Elementwise ``max(x, 0)``" in text  # relu's docstring, first line
    assert "`a @ b`" in text and "`sg.matmul(a, b)`" in text


def test_api_page_covers_the_exports():
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    ops = set(sg.PUBLIC_OPS)
    for name in sg.__all__:
        if name in ops or name in ("__version__", "PUBLIC_OPS", "optim"):
            continue
        assert f"### `sg.{name}" in text, name
    for name in sg.optim.__all__:
        assert f"### `sg.optim.{name}" in text, name
    assert " at 0x" not in text  # nothing that changes from run to run


def test_a_changed_docstring_makes_the_page_stale(monkeypatch):
    make_docs = _load("make_docs")
    before = make_docs.render_ops()
    monkeypatch.setattr(sg.relu, "__doc__", "Something else entirely.")
    after = make_docs.render_ops()
    assert before != after and "Something else entirely." in after


# ---------------------------------------------------------------------------------------
# The README's generated-code samples
# ---------------------------------------------------------------------------------------

def test_readme_samples_match_what_symgrad_generates(tmp_path):
    proc = subprocess.run([sys.executable, str(DOCS / "make_sample.py"), "--check"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_sample_comparison_ignores_the_key_only():
    make_sample = _load("make_sample")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = make_sample.blocks(readme)
    assert set(found) == set(make_sample.SAMPLES)
    assert "def compute(" in found["w3-grads"] and "def train_step(" in found["w0-adam"]
    assert re.search(r"cache key: [0-9a-f]{8}\.\.\.", found["w3-grads"])
    other_key = re.sub(r"cache key: [0-9a-f]+", "cache key: 0123abcd", found["w3-grads"])
    assert make_sample.stale(readme, {**found, "w3-grads": other_key}) == []
    edited = found["w3-grads"].replace("np.add(", "np.subtract(", 1)
    assert edited != found["w3-grads"]
    assert make_sample.stale(readme, {**found, "w3-grads": edited}) == ["w3-grads"]


# ---------------------------------------------------------------------------------------
# The other pages
# ---------------------------------------------------------------------------------------

def test_workloads_page():
    text = (DOCS / "workloads.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (W\d)", text, re.M)
    assert headings == ["W0", "W1", "W2", "W3", "W4", "W5"]
    w5 = text.split("## W5", 1)[1]
    assert "sg.conv2d" in w5 and "not implemented" not in text  # W5 exists now
    assert (ROOT / "examples" / "w5_cnn.py").exists()
    assert "TensorFlow" in text and "PyTorch" in text
    for number in ("10.08", "5.13", "0.39", "[-4, -25]", "polyfit"):  # expected results
        assert number in text, number


def test_tape_vs_symbolic_blocks_run(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from test_readme import run_blocks
    finally:
        sys.path.pop(0)
    proc = run_blocks(DOCS / "tape_vs_symbolic.md", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ALL BLOCKS RAN" in proc.stdout


# ---------------------------------------------------------------------------------------
# Commands the README shows
# ---------------------------------------------------------------------------------------

def test_show_a_function_returning_loss_and_params():
    proc = subprocess.run([sys.executable, "-m", "symgrad", "show",
                           "examples/w1_two_layer.py:build"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    formulas = proc.stdout.split("# generated source", 1)[0]
    names = re.findall(r"^(\w+) = ", formulas, re.M)
    assert names == ["loss", "grad_w1", "grad_w2"], formulas
    assert "w1 = w1" not in proc.stdout
    assert "return {'loss': loss, 'grad_w1': grad_w1, 'grad_w2': grad_w2}" in proc.stdout


def test_shown_gradients_are_the_gradients(rng):
    """What ``show`` compiles for ``(loss, w1, w2)``, against central differences."""
    from symgrad.__main__ import _loss_and_sources, _with_gradients
    spec = importlib.util.spec_from_file_location("ex_w1", ROOT / "examples/w1_two_layer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build()
    f = sg.compile(_with_gradients(*_loss_and_sources(built)))
    args = {"x": rng.standard_normal((5, 2)), "y": rng.standard_normal((5, 1)),
            "w1": rng.standard_normal((2, 3)), "w2": rng.standard_normal((3, 1))}
    out = f(**args)
    for name in ("w1", "w2"):
        direction = rng.standard_normal(args[name].shape)
        h = 1e-6
        plus = dict(args, **{name: args[name] + h * direction})
        minus = dict(args, **{name: args[name] - h * direction})
        numeric = (f(**plus)["loss"] - f(**minus)["loss"]) / (2 * h)
        assert np.vdot(out[f"grad_{name}"], direction) == pytest.approx(numeric, rel=1e-6)


def test_show_unknown_name_lists_the_builtins():
    proc = subprocess.run([sys.executable, "-m", "symgrad", "show", "w9"], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "w9" in proc.stderr and "w0, w1, w2, w3, w4" in proc.stderr


def test_latex_matmul_has_a_visible_operator():
    x, w = sg.input("x", ("N", 3)), sg.param("w1", (3, 2))
    assert sg.latex(x @ w) == r"x \mathbin{@} w_{1}"
    text = sg.latex(x * 2.0)  # an elementwise product stays juxtaposition
    assert "@" not in text
