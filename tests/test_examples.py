"""The examples in ``examples/`` run to completion and report what their tutorials report.

Each example is imported from its file and its ``main(["--quick", "--plots", tmpdir])``
called; its returned results are checked against values computed here independently, and
its plots are checked when matplotlib is installed. One example is also run as a script,
the way a user runs it from a source checkout.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from symgrad import workloads  # noqa: E402

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


#: the tests of this module share one private cache (conftest's ``module_cache_env``)
pytestmark = pytest.mark.usefixtures("module_cache_env")


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_plots(result: dict, out: str, names: list[str], tmp_path: Path) -> None:
    """With matplotlib: the named PNGs were written to tmp_path. Without: it said so."""
    if HAVE_MATPLOTLIB:
        assert sorted(p.name for p in result["plots"]) == sorted(names)
        for name in names:
            head = (tmp_path / name).read_bytes()[:8]
            assert head == b"\x89PNG\r\n\x1a\n", name
    else:
        assert result["plots"] == []
        assert "matplotlib is not installed" in out


def test_w0_scalar(tmp_path, capsys):
    result = load_example("w0_scalar").main(["--quick", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    # the same 10 steps written out with Python floats
    d = workloads.w0()
    a, values = float(d["A"]), []
    for i in d["indices"][:10]:
        x = float(d["x"][i])
        a -= d["lr"] * 2 * (x * a - 10.0) * x
        values.append(a)
    np.testing.assert_allclose(result["values"], values, rtol=1e-12)
    assert result["A"] == pytest.approx(values[-1], rel=1e-12)
    assert "dloss/dA" in out and "def train_step(" in out and "Step # 10" in out
    check_plots(result, out, ["w0_loss.png"], tmp_path)


def test_w1_two_layer(tmp_path, capsys):
    result = load_example("w1_two_layer").main(["--quick", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    steps = [i for i, _ in result["logged"]]
    losses = [v for _, v in result["logged"]]
    assert steps == [0, 10, 20, 30]
    assert losses[0] == pytest.approx(5.10, abs=0.01)  # the documented first log line
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert result["final_loss"] < losses[-1]
    assert re.search(r"After 0 training step\(s\), loss on all data is 5\.\d", out)
    # the plot reaches the last step: the logged points, then the final loss
    assert result["plotted"][:-1] == result["logged"]
    assert result["plotted"][-1] == (39, result["final_loss"])
    check_plots(result, out, ["w1_loss_sgd.png"], tmp_path)


def test_w1_two_layer_adam(tmp_path, capsys):
    module = load_example("w1_two_layer")
    result = module.main(["--quick", "--optimizer", "adam", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Adam(" in out
    sgd = module.main(["--quick", "--plots", str(tmp_path)])
    assert not np.allclose(result["params"]["w1"], sgd["params"]["w1"])


def test_w2_by_hand(tmp_path, capsys):
    result = load_example("w2_by_hand").main(["--quick", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    np.testing.assert_array_equal(result["w2_1"], [-4.0, -25.0])
    assert (result["w2_2"]["df_dx"], result["w2_2"]["df_dy"]) == (24.0, 10.0)
    assert result["w2_2"]["formulas"]["df_dx"] == "2*x*y"
    assert result["w2_3"]["f"] == pytest.approx(1.0) and abs(result["w2_3"]["df"]) < 1e-15
    np.testing.assert_array_equal(result["w2_4"]["grad"], [0, 1, 1, 1, 1, 1, 0])
    np.testing.assert_allclose(result["w2_5"]["clipped_u"], [1.5, 2.0])
    np.testing.assert_allclose(result["w2_5"]["grad_ys"], [[10.0, 5.0]])
    assert result["w2_5"]["targets"] == [15.0, 12.0]
    assert result["w2_5"]["stopped"] == [0.0, 6.0]
    assert "all W2 values match" in out


def test_w3_mnist_mlp_default_data(tmp_path, capsys):
    result = load_example("w3_mnist_mlp").main(["--quick", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    assert result["batch_sizes"] == [128, 128, 128, 116]  # 500 rows: a smaller last batch
    assert len(result["losses"]) == 4 and np.all(np.isfinite(result["losses"]))
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["params"]["w1"].dtype == np.float32
    assert ("scikit-learn handwritten digits" in out) or ("synthetic MNIST-shaped" in out)
    assert "epoch  1/1" in out and "final test accuracy" in out
    check_plots(result, out, ["w3_training.png"], tmp_path)


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_w3_mnist_mlp_reads_idx_files(tmp_path, capsys, rng):
    """``--mnist DIR`` trains on the IDX files found there (here: tiny random ones)."""
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    _write_idx(mnist / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (300, 28, 28)), True)
    _write_idx(mnist / "train-labels-idx1-ubyte", rng.integers(0, 10, 300), False)
    _write_idx(mnist / "t10k-images-idx3-ubyte", rng.integers(0, 256, (40, 28, 28)), False)
    _write_idx(mnist / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 40), True)
    result = load_example("w3_mnist_mlp").main(
        ["--quick", "--mnist", str(mnist), "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    assert "MNIST from IDX files" in out and "300 training and 40 test images" in out
    assert result["params"]["w1"].shape == (784, 256)
    assert result["batch_sizes"] == [128, 128, 44]


def test_w4_linear_regression(tmp_path, capsys):
    result = load_example("w4_linear_regression").main(["--quick", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    d = workloads.w4()
    w = d["weights"].copy()
    for _ in range(10):  # the same steps written out in numpy
        w -= d["lr"] * d["input"].T @ (d["input"] @ w - d["target"])
    np.testing.assert_allclose(result["lines"][-1], (w[0, 0], w[1, 0]), rtol=1e-12)
    assert len(result["losses"]) == len(result["lines"]) == 10
    assert result["losses"][0] < result["initial_loss"]
    assert all(a >= b for a, b in zip(result["losses"], result["losses"][1:]))
    m_fit, b_fit = np.polyfit(d["x"], d["y"], 1)
    assert result["polyfit"] == pytest.approx((m_fit, b_fit))
    assert result["final"][0] == pytest.approx(m_fit, abs=0.01)  # the slope is there already
    assert "np.polyfit" in out
    check_plots(result, out, ["w4_fit.png", "w4_loss.png", "w4_lines.png"], tmp_path)


def test_examples_run_as_scripts_from_a_checkout(tmp_path):
    """``python examples/w2_by_hand.py`` works without installing symgrad, on one BLAS
    thread unless the user chose another number, and says so."""
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    probe = ("import os, numpy; print('threads', os.environ.get('OPENBLAS_NUM_THREADS'))")
    script = (f"import runpy, sys; sys.argv = [{str(EXAMPLES / 'w2_by_hand.py')!r}]; "
              f"runpy.run_path(sys.argv[0], run_name='__main__'); {probe}")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "all W2 values match" in proc.stdout
    assert "BLAS threads: 1 (" in proc.stdout and "threads 1" in proc.stdout
    proc = subprocess.run([sys.executable, str(EXAMPLES / "w2_by_hand.py")], cwd=tmp_path,
                          env=dict(env, OPENBLAS_NUM_THREADS="2"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "BLAS threads: 2 (your OPENBLAS_NUM_THREADS)" in proc.stdout


def test_importing_an_example_leaves_the_threads_alone(monkeypatch):
    """Only a script's entry point limits the threads; importing it (as the tests do)
    must not change the environment of the importing program."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    load_example("w4_linear_regression")
    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_blas_threads_through_threadpoolctl_when_installed(monkeypatch):
    """With threadpoolctl importable, the scripts limit the loaded BLAS through it (here a
    stand-in module records the call) instead of setting the environment."""
    import types
    calls = []
    fake = types.ModuleType("threadpoolctl")
    fake.threadpool_limits = lambda **kw: calls.append(kw) or object()
    monkeypatch.setitem(sys.modules, "threadpoolctl", fake)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    sys.path.insert(0, str(EXAMPLES))
    try:
        import _common
    finally:
        sys.path.remove(str(EXAMPLES))
    monkeypatch.setattr(_common, "_STATE", {"how": None, "limiter": None})
    assert _common.limit_blas_threads(1) == "1 (threadpoolctl)"
    assert calls == [{"limits": 1, "user_api": "blas"}]
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    assert _common.blas_threads().startswith("BLAS threads: 1 (threadpoolctl)")
    # a number the user chose wins
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _common.limit_blas_threads(1) == "3 (your OMP_NUM_THREADS)"
    assert len(calls) == 1
