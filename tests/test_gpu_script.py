"""benchmarks/gpu.py runs unchanged everywhere: without a GPU it says why and exits 0; its
CPU dry run (the array API module on torch CPU tensors against PyTorch eager) agrees; and
its CUDA code path, driven by a stand-in ``cupy`` module over numpy, agrees too.

Each case runs the script in a new process, as a user would. ``cupy`` is replaced by a
module on ``PYTHONPATH`` so that the outcome does not depend on the machine's GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"

#: a cupy that cannot be imported (as on a machine without it)
NO_CUPY = "raise ImportError('no CUDA toolkit here (test stand-in)')\n"

#: a cupy with no device: CuPy raises its own error from the runtime
NO_DEVICE = """
import types
class CUDARuntimeError(RuntimeError):
    pass
def _count():
    raise CUDARuntimeError('cudaErrorNoDevice: no CUDA-capable device is detected')
cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=_count))
__version__ = '0-test'
"""

#: a cupy whose one "device" is numpy: exercises the CUDA code path on any machine
NUMPY_CUPY = """
import types
import numpy as np
asarray = np.asarray
asnumpy = np.asarray
class _Device:
    def synchronize(self):
        pass
cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1,
                                  getDeviceProperties=lambda i: {'name': b'numpy stand-in'}),
    Device=_Device)
__version__ = '0-test'
"""


def run_script(tmp_path, *args, cupy=None):
    env = dict(os.environ)
    if cupy is not None:
        fake = tmp_path / "fake"
        fake.mkdir(exist_ok=True)
        (fake / "cupy.py").write_text(cupy)
        env["PYTHONPATH"] = os.pathsep.join([str(fake), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("cupy, why", [(NO_CUPY, "CuPy is not installed"),
                                       (NO_DEVICE, "CuPy finds no CUDA device")])
def test_without_a_gpu_it_says_why_and_exits_0(tmp_path, cupy, why):
    proc = run_script(tmp_path, cupy=cupy)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to run" in proc.stdout and why in proc.stdout, proc.stdout


def test_cpu_dry_run_agrees_with_pytorch_on_w3_and_w5(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")
    proc = run_script(tmp_path, "--device", "cpu", "--batch", "16", "--steps", "3",
                      "--repeat", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    w3 = [line for line in proc.stdout.splitlines() if line.startswith("W3")]
    assert len(w3) == 1 and " agree " in w3[0] and "PyTorch" in w3[0], proc.stdout
    w5 = [line for line in proc.stdout.splitlines() if line.startswith("W5")]
    assert len(w5) == 1 and " agree " in w5[0], proc.stdout


def test_the_cuda_path_on_a_stand_in_device(tmp_path):
    pytest.importorskip("array_api_compat")
    proc = run_script(tmp_path, "--batch", "16", "--steps", "3", "--repeat", "1",
                      "--only", "W3", cupy=NUMPY_CUPY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "numpy stand-in" in proc.stdout, proc.stdout
    w3 = [line for line in proc.stdout.splitlines() if line.startswith("W3")]
    assert len(w3) == 1 and " agree " in w3[0], proc.stdout
