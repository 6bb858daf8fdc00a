"""A wheel built from the repository, installed in a fresh virtual environment, compiles and
runs a function from another directory (so the templates really ship inside the wheel)."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import numpy as np, symgrad as sg, pathlib
assert 'site-packages' in sg.__file__, sg.__file__
x = sg.input('x', shape=('N', 3)); w = sg.param('w', shape=(3,))
loss = sg.mean((x @ w - 1.0) ** 2)
f = sg.compile([loss, *sg.grad(loss, [w])])
xv = np.arange(6.0).reshape(2, 3); wv = np.ones(3)
value, gw = f(xv, wv)
r = xv @ wv - 1.0
assert np.isclose(value, np.mean(r ** 2)), value
assert np.allclose(gw, 2 * xv.T @ r / 2), gw
assert pathlib.Path(f.path).exists()
from symgrad import tape as tp  # the tape is a package: it must ship too
with tp.GradientTape() as t:
    v = tp.Variable(wv); y = tp.sum(tp.square(v))
assert np.allclose(t.gradient(y, v), 2 * wv) and 'site-packages' in tp.rules.__file__
print('wheel ok')
"""


@pytest.mark.skipif(os.environ.get("SYMGRAD_SKIP_WHEEL") == "1", reason="SYMGRAD_SKIP_WHEEL=1")
def test_wheel_installs_and_runs_from_another_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(dist), str(ROOT)], check=True, capture_output=True)
    wheels = list(dist.glob("symgrad-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    # system site packages provide numpy/sympy/jinja2; symgrad itself comes from the wheel
    venv.EnvBuilder(with_pip=True, system_site_packages=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheels[0])],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH="")
    out = subprocess.run([str(py), "-c", SCRIPT], cwd=elsewhere, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "wheel ok" in out.stdout
