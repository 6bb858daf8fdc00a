"""symgrad's array API module on a GPU (CuPy) against PyTorch on the same GPU.

    python benchmarks/gpu.py                 # CUDA + CuPy (cupy-cuda12x) + PyTorch with CUDA
    python benchmarks/gpu.py --device cpu    # the same logic on the CPU (torch CPU tensors)

For W3 and W5, the script compiles the training step (loss, gradients and SGD update) once
with ``sg.train_step(..., backend="array_api")``, trains from the same initial values on the
same batches as PyTorch eager (``loss.backward()`` and ``torch.optim.SGD``), checks that both give the same losses and parameters (float32, to
1e-4 relative), then times a step of each (median over ``--repeat`` steps, the device
synchronized around each) and prints the times side by side.

``--device cuda`` (the default) runs the symgrad module on CuPy arrays; PyTorch runs on
``cuda`` when it was built with CUDA (otherwise the check compares with the symgrad module
on numpy, and no PyTorch time is printed). Without CuPy or a CUDA device the script says why
and exits 0. ``--device cpu`` is a dry run of the same code path: the symgrad module on torch
CPU tensors (through the array API namespace of torch) against PyTorch eager on the CPU.

Exit status: 0 when every workload that ran agreed (or there is no GPU), 1 when one
disagreed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: python benchmarks/gpu.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.impl_base import make_ops  # noqa: E402
from benchmarks.workloads import _mlp, find_workload  # noqa: E402

#: float32 agreement between the two frameworks after a few steps (reduction orders differ)
RTOL = 1e-4


# ---------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------


class Device:
    """Where the symgrad module runs (``xp``: CuPy, torch or numpy) and where torch runs."""

    def __init__(self, name, to_array, to_numpy, sync, torch_device, label):
        self.name, self.to_array, self.to_numpy = name, to_array, to_numpy
        self.sync, self.torch_device, self.label = sync, torch_device, label


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def cuda_device():
    """The CuPy device, or ``(None, reason)`` when this machine cannot run on a GPU."""
    try:
        import cupy
    except ImportError as err:
        return None, f"CuPy is not installed ({err}); pip install cupy-cuda12x"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # noqa: BLE001 - no driver, no device: CuPy raises its own
        return None, f"CuPy finds no CUDA device ({type(err).__name__}: {err})"
    if count < 1:
        return None, "CuPy finds no CUDA device"
    torch = _torch()
    torch_device = "cuda" if torch is not None and torch.cuda.is_available() else None
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name

    def sync():
        cupy.cuda.Device().synchronize()
        if torch_device:
            torch.cuda.synchronize()

    return Device("cuda", cupy.asarray, cupy.asnumpy, sync, torch_device,
                  f"CUDA device 0 ({name}), CuPy {cupy.__version__}"), ""


def cpu_device():
    """The dry run: the symgrad module on torch CPU tensors, PyTorch eager on the CPU."""
    torch = _torch()
    if torch is None:
        return None, "the CPU dry run needs PyTorch (pip install torch)"
    return Device("cpu", torch.from_numpy, lambda t: t.detach().cpu().numpy(), lambda: None,
                  "cpu", f"CPU, torch {torch.__version__} tensors through the array API"), ""


# ---------------------------------------------------------------------------------------
# The two implementations
# ---------------------------------------------------------------------------------------


def _sg_ops():
    import symgrad as sg
    return make_ops(sg.mean, sg.sum, sg.relu, conv2d=sg.conv2d, max_pool2d=sg.max_pool2d,
                    reshape=sg.reshape, softmax_cross_entropy=sg.softmax_cross_entropy)


def symgrad_step(workload):
    """The workload's training step as one array API module: loss, gradients and the SGD
    update compiled together by ``sg.train_step(..., backend="array_api")``.

    Returns ``step(params, batch) -> loss``, updating the dict ``params`` (arrays of any
    array API namespace) with the step's new values.

    Raises NotImplementedError (symgrad's UnsupportedOpError) when the target cannot
    compile an op of the workload.
    """
    import symgrad as sg
    inputs = {n: sg.input(n, shape, dtype) for n, shape, dtype in workload.inputs}
    params = {n: sg.param(n, shape, workload.dtype, shared=True)
              for n, shape in workload.param_shapes.items()}
    loss = workload.loss(_sg_ops(), params, inputs)
    train = sg.train_step(loss, sg.optim.SGD(workload.lr), backend="array_api")
    states = {}  # one training state per params dict the caller trains

    def step(values, batch):
        state = states.get(id(values))
        if state is None:
            state = states[id(values)] = train.init(values)
        value = train(state, **dict(zip(workload.input_names, batch)))
        values.update(state.params)
        return value

    return step


def torch_step(workload, device):
    """PyTorch eager on ``device``: ``step(params, batch) -> loss`` with ``torch.optim.SGD``
    (params: a dict of leaf tensors that require grad, updated in place)."""
    import torch
    F = torch.nn.functional

    def softmax_cross_entropy(logits, onehot):
        return -(onehot * F.log_softmax(logits, dim=-1)).sum(dim=-1)

    ops = make_ops(torch.mean, torch.sum, torch.relu, conv2d=F.conv2d,
                   max_pool2d=F.max_pool2d, reshape=torch.reshape,
                   softmax_cross_entropy=softmax_cross_entropy)
    optimizers = {}

    def step(values, batch):
        opt = optimizers.get(id(values))
        if opt is None:
            opt = optimizers[id(values)] = torch.optim.SGD(list(values.values()),
                                                           lr=workload.lr)
        opt.zero_grad(set_to_none=True)
        loss = workload.loss(ops, values, dict(zip(workload.input_names, batch)))
        loss.backward()
        opt.step()
        return loss.detach()

    return step


# ---------------------------------------------------------------------------------------
# Running, checking, timing
# ---------------------------------------------------------------------------------------


def _train(step, values, batches, steps, sync) -> tuple:
    """``steps`` steps (batch i % len), then ``(losses, seconds per step)``."""
    losses, times = [], []
    for i in range(steps):
        sync()
        t0 = time.perf_counter()
        losses.append(step(values, batches[i % len(batches)]))
        sync()
        times.append(time.perf_counter() - t0)
    return [float(v) for v in losses], times


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1e-30, float(np.max(np.abs(b)))))


def _reference(workload, device):
    """``(name, make params, batches, step, to numpy)`` of the run symgrad is checked
    against: PyTorch on the device, else (no CUDA PyTorch) symgrad's module on numpy."""
    if device.torch_device is not None:
        import torch
        dev = torch.device(device.torch_device)

        def make(init):
            return {n: torch.tensor(np.array(v), device=dev, requires_grad=True)
                    for n, v in init.items()}
        return ("PyTorch", make, lambda bs: [tuple(torch.as_tensor(a, device=dev) for a in b)
                                             for b in bs],
                torch_step(workload, dev), lambda t: t.detach().cpu().numpy())
    return ("symgrad module on numpy", lambda init: {n: np.array(v) for n, v in init.items()},
            lambda bs: bs, symgrad_step(workload), np.asarray)


def run_workload(workload, device, steps: int, repeat: int) -> tuple:
    """Check and time one workload; ``(ok, report line)``."""
    try:
        sg_step = symgrad_step(workload)
    except NotImplementedError as err:
        return True, f"{workload.name} skipped: {err}"
    init, batches = workload.data()
    ref_name, make_ref, ref_batches, ref_step, ref_numpy = _reference(workload, device)
    ours = {n: device.to_array(np.array(v)) for n, v in init.items()}
    theirs = make_ref(init)
    dev_batches = [tuple(device.to_array(np.ascontiguousarray(a)) for a in b) for b in batches]
    their_batches = ref_batches(batches)
    # the check: same steps from the same start
    our_losses, _ = _train(sg_step, ours, dev_batches, steps, device.sync)
    their_losses, _ = _train(ref_step, theirs, their_batches, steps, device.sync)
    errors = [_max_rel(our_losses, their_losses)]
    errors += [_max_rel(device.to_numpy(ours[n]), ref_numpy(theirs[n])) for n in init]
    ok = max(errors) <= RTOL
    # the timing: further steps, interleaved in blocks (medians)
    our_times, their_times = [], []
    for _ in range(repeat):
        our_times += _train(sg_step, ours, dev_batches, 3, device.sync)[1]
        their_times += _train(ref_step, theirs, their_batches, 3, device.sync)[1]
    ms = 1e3 * statistics.median(our_times)
    line = (f"{workload.name:<6} {'agree' if ok else 'DISAGREE'} (max rel diff "
            f"{max(errors):.1e} after {steps} steps)   symgrad array API {ms:8.3f} ms/step")
    if device.torch_device is not None:
        theirs_ms = 1e3 * statistics.median(their_times)
        line += f"   PyTorch {theirs_ms:8.3f} ms/step   symgrad/PyTorch {ms / theirs_ms:.2f}x"
    else:
        line += f"   (checked against the {ref_name}; PyTorch has no CUDA here)"
    return ok, line


def workloads_for(batch: int) -> list:
    """W3 (at ``batch`` rows) and W5."""
    w3 = find_workload("W3", quick=True) if batch == 128 else \
        _mlp(f"W3 batch={batch}", "W3", batch, (256, 128), 5, 2)
    return [w3, find_workload("W5", quick=True)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda: CuPy and PyTorch on the GPU (default); cpu: the dry run")
    p.add_argument("--steps", type=int, default=5, help="steps of the agreement check")
    p.add_argument("--repeat", type=int, default=10,
                   help="timing blocks of 3 steps per implementation (default 10)")
    p.add_argument("--batch", type=int, default=128, help="W3's batch size (default 128)")
    p.add_argument("--only", choices=("W3", "W5"), help="one workload")
    args = p.parse_args(argv)
    device, reason = cuda_device() if args.device == "cuda" else cpu_device()
    if device is None:
        print(f"benchmarks/gpu.py: nothing to run: {reason}. "
              f"(`--device cpu` runs the same checks on the CPU.)")
        return 0
    print(f"symgrad array API module vs PyTorch on {device.label}")
    ok = True
    for wl in workloads_for(args.batch):
        if args.only and not wl.name.startswith(args.only):
            continue
        good, line = run_workload(wl, device, args.steps, args.repeat)
        ok &= good
        print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
