"""The benchmark runner behind ``python -m benchmarks``.

For every workload (W0, W1, W3, W4 of ``docs/workloads.md`` and the scaling sweeps) and every
implementation that is available (see :data:`IMPLEMENTATIONS`), it measures:

* **correctness** -- every implementation starts from the same initial values, takes the
  same batches (read-only arrays, the same objects) for ``workload.steps`` steps, and is
  compared with the hand-written numpy floor (``hand``, always run as the reference).
  Errors are relative to the largest loss of the reference run: the per-step losses, the
  final loss (evaluated in float64 by a plain numpy oracle at the final parameters, on the
  first batch) and the final parameters (``||p - p_ref|| / ||p_ref||`` over all of them).
  Beyond ``rtol`` (1e-4 for float32, 1e-9 for float64) the implementation is ``WRONG``,
  however fast it is;
* **time per step** -- repetitions interleaved across implementations: in each repetition
  every implementation runs one block of steps, in a freshly shuffled order, so machine
  drift hits all alike. Reported: median, min, max, IQR and MAD of the per-step time over
  the repetitions; the ratio to ``hand`` and the speed-up over ``tape`` are ratios of the
  medians shown (so they cannot contradict them); the medians of the per-repetition paired
  ratios are kept too, and a table notes where the two disagree (unsteady timings);
* **peak memory** -- the tracemalloc peak over a few training steps of a fresh instance,
  in a fresh tracemalloc session that starts after ``setup`` (so the parameters are not
  counted; work buffers a step allocates, even once, are). numpy's buffers are traced;
  PyTorch's and XLA's are not (reported as n/a);
* **compile time** (symgrad) -- in a *new* Python process with ``SYMGRAD_CACHE_DIR`` set to
  a fresh empty directory: the time to build the expression and compile the train step
  (cold), then in another new process on the same cache (warm: a cache hit); each
  process also times its own ``import symgrad``, which is not included.

The default run is the quick one (short runs, a few sweep points: well under a minute on
2 cores); ``--full`` runs every sweep point with longer timings (about 12 minutes). BLAS
runs on one thread unless ``--threads N`` (threadpoolctl when installed, else the
environment variables of :data:`benchmarks.THREAD_VARS`, set before numpy is imported).

Results go to the terminal (tables and a legend of their columns; with ``--targets`` the
performance goals of the generated-code issue as a PASS/MISS checklist), and optionally to
JSON, Markdown and PNG plots.

The JSON report (``--json``; times in seconds, memory in bytes, ``null`` = not measured)::

    schema            "symgrad-benchmarks/1" (:data:`SCHEMA`)
    command           the command line that produced it
    created           local time, ISO 8601
    machine           platform, python, implementation, numpy, sympy, symgrad, cpu_count,
                      cpus_usable, processor, blas, blas_threads, thread_env,
                      load_average_at_start
    config            quick, repeat, only, impls, optimizer, seed, block_time_s,
                      time_budget_s, memory_steps, compile, memory, compile_repeat
    implementations   {name: {available, version, skipped (reason or null), description}}
    skipped           {name: reason} of the requested implementations that are missing
    workloads         [one per workload, in run order:
        name, group ("W0".."W4", "batch", "width", "depth"), title, dtype, optimizer,
        sweep ({axis, value} or null), steps_checked, reference ("hand"),
        tolerance {rtol}, phase_s {compile, correctness, timing, memory},
        compile {cold_s, warm_s, import_s, cold_runs_s, warm_runs_s, warm_was_cache_hit,
                 module_lines, repeats} or null, compile_error, memory_measured,
        memory_error, reference_run {loss_curve, error} (only when hand is not timed),
        results {impl: {
            status        "OK" | "WRONG" | "ERROR" | "UNCHECKED"
            error         message or null
            check         {final_loss, reference_final_loss, loss_err, param_err,
                           curve_err, rtol}
            time          {median_s, min_s, max_s, iqr_s, mad_s, per_rep_s,
                           steps_per_block, repeats} or null
            ratio_to_hand     median time of impl / median time of hand
            speedup_vs_tape   median time of tape / median time of impl
            paired_ratio_to_hand    median of per-repetition ratios impl / hand
            paired_speedup_vs_tape  median of per-repetition ratios tape / impl
            peak_memory_bytes
            loss_curve    the loss of every step of the correctness run}}]
    targets           [{id, target, measured, limit, unit, status "PASS" | "MISS" | "SKIP",
                        note}]
    elapsed_s         wall time of the whole run
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import THREAD_VARS
from .impl_base import NUMPY_OPS, Implementation, OptimizerSpec

__all__ = ["Workload", "Config", "IMPLEMENTATIONS", "PROJECT_IMPLS", "SCHEMA", "catalogue",
           "find_workload", "run", "main", "evaluate_targets", "render_text",
           "render_markdown", "write_plots"]

ROOT = Path(__file__).resolve().parents[1]

#: Identifier of the JSON layout written by ``--json`` (bump on incompatible changes).
SCHEMA = "symgrad-benchmarks/1"

#: ``--impl`` name -> adapter class ("module:Class" under ``benchmarks``), in report order.
IMPLEMENTATIONS = {
    "hand": "impl_hand:HandImpl",
    "symgrad": "impl_symgrad:SymgradImpl",
    "tape": "impl_tape:TapeImpl",
    "torch": "impl_torch:TorchImpl",
    "jax": "impl_jax:JaxImpl",
    "autograd": "impl_autograd:AutogradImpl",
    "pytensor": "impl_pytensor:PytensorImpl",
}

#: This project's own implementations: a WRONG or failing one makes the run exit 1.
PROJECT_IMPLS = ("hand", "symgrad", "tape")

#: The implementation every other one is checked against.
REFERENCE = "hand"

RTOL = {"float32": 1e-4, "float64": 1e-9}

MAIN_WORKLOADS = ("W0", "W1", "W3", "W4")
SWEEPS = ("batch", "width", "depth")
SWEEP_TITLES = {"batch": "W3 MLP 784-256-128-10 over the batch size",
                "width": "MLP 784-w-w/2-10 over the hidden width w, batch 128",
                "depth": "MLP of depth d (hidden layers of 128), batch 128"}


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------

@dataclass
class Workload:
    """One benchmark problem, described once for every implementation.

    ``inputs`` lists the per-step batch arrays as ``(name, shape, dtype)``, ``"N"`` marking
    the batch axis; ``loss(ops, params, batch)`` builds the loss with Python operators and
    ``ops.mean``/``ops.sum``/``ops.relu``; ``hand`` names the class in
    :mod:`benchmarks.hand`; ``data()`` returns ``(initial params, list of batches)``, the
    batches used in turn (step ``i`` takes ``batches[i % len(batches)]``). ``steps`` is the
    length of the correctness run; ``compile`` and ``memory`` say whether to measure
    symgrad's compile time and the peak memory (each costs new processes).
    """

    name: str
    group: str
    title: str
    dtype: str
    inputs: tuple
    param_shapes: dict
    loss: Callable
    hand: str
    lr: float
    steps: int
    data: Callable[[], tuple]
    sweep: Optional[tuple] = None
    compile: bool = True
    memory: bool = True

    @property
    def input_names(self) -> tuple:
        return tuple(name for name, _, _ in self.inputs)


def loss_w0(ops, p, b):
    """W0: ``(x A - target)^2`` on one sample."""
    return (b["x"] * p["A"] - b["target"]) ** 2


def loss_w1(ops, p, b):
    """W1: ``mean(((x @ w1) @ w2 - y)^2)``."""
    return ops.mean((b["x"] @ p["w1"] @ p["w2"] - b["y"]) ** 2)


def loss_mlp(ops, p, b):
    """W3 and the sweeps: relu MLP ``w1, b1, ..., wL, bL``, loss ``mean((onehot - out)^2)``."""
    depth = len(p) // 2
    h = b["x"]
    for i in range(1, depth + 1):
        h = h @ p[f"w{i}"] + p[f"b{i}"]
        if i < depth:
            h = ops.relu(h)
    return ops.mean((b["onehot"] - h) ** 2)


def loss_w4(ops, p, b):
    """W4: ``sum((input @ weights - target)^2) / 2``."""
    return ops.sum((b["input"] @ p["weights"] - b["target"]) ** 2) / 2


def _w0(quick: bool) -> Workload:
    def data():
        from symgrad import workloads
        d = workloads.w0()
        batches = [(float(d["x"][i]), float(d["target"])) for i in d["indices"]]
        return {"A": d["A"]}, batches
    return Workload("W0", "W0", "one scalar weight, one sample per step, float64", "float64",
                    (("x", (), "float64"), ("target", (), "float64")), {"A": ()}, loss_w0,
                    "W0Step", 0.02, 100, data, compile=not quick, memory=not quick)


def _w1(quick: bool) -> Workload:
    def data():
        from symgrad import workloads
        d = workloads.w1()
        return {"w1": d["w1"], "w2": d["w2"]}, [workloads.w1_batch(d, i) for i in range(4)]
    return Workload("W1", "W1", "two-layer linear net 2-3-1, batch 8, float64", "float64",
                    (("x", ("N", 2), "float64"), ("y", ("N", 1), "float64")),
                    {"w1": (2, 3), "w2": (3, 1)}, loss_w1, "W1Step", 0.001,
                    300 if quick else 3000, data, compile=not quick, memory=not quick)


def _w4(quick: bool) -> Workload:
    def data():
        from symgrad import workloads
        d = workloads.w4()
        return {"weights": d["weights"]}, [(d["input"], d["target"])]
    return Workload("W4", "W4", "linear regression with a bias column, 5 points, float64",
                    "float64", (("input", ("N", 2), "float64"), ("target", ("N", 1), "float64")),
                    {"weights": (2, 1)}, loss_w4, "W4Step", 0.002, 50, data,
                    compile=not quick, memory=not quick)


def _mlp(name: str, group: str, batch: int, hidden: tuple, steps: int, n_batches: int,
         sweep: Optional[tuple] = None, compile: bool = True, memory: bool = True) -> Workload:
    sizes = (784, *hidden, 10)
    shapes = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        shapes[f"w{i}"] = (n_in, n_out)
        shapes[f"b{i}"] = (n_out,)

    def data():
        from symgrad import workloads
        params = workloads.mlp_params(sizes, seed=0, dtype="float32")
        d = workloads.synthetic_mnist(batch * n_batches, seed=1, dtype="float32")
        batches = [(d["x"][i * batch:(i + 1) * batch], d["onehot"][i * batch:(i + 1) * batch])
                   for i in range(n_batches)]
        return params, batches

    arch = "-".join(map(str, sizes))
    return Workload(name, group, f"MLP {arch}, batch {batch}, synthetic MNIST, float32",
                    "float32", (("x", ("N", 784), "float32"), ("onehot", ("N", 10), "float32")),
                    shapes, loss_mlp, "W3Step", 0.001, steps, data, sweep, compile, memory)


def sweep_grid(axis: str, quick: bool) -> tuple:
    """The values of a scaling sweep."""
    if axis == "batch":
        return (16, 128, 1024) if quick else tuple(2 ** k for k in range(4, 13))
    if axis == "width":
        return (64, 512) if quick else tuple(2 ** k for k in range(5, 11))
    if axis == "depth":
        return (1, 4, 8) if quick else tuple(range(1, 9))
    raise ValueError(f"unknown sweep {axis!r}")


def catalogue(quick: bool = False) -> list:
    """Every workload, main ones first, then the sweeps. Cheap: no data is made until
    ``workload.data()`` is called. ``quick``: shorter runs, fewer sweep points, compile
    time and memory measured for W3 only."""
    steps, sweep_steps = (5, 3) if quick else (20, 5)
    out = [_w0(quick), _w1(quick), _mlp("W3", "W3", 128, (256, 128), steps, 8), _w4(quick)]
    for b in sweep_grid("batch", quick):
        # the batch axis is symbolic: every point runs W3's compiled module
        out.append(_mlp(f"W3 batch={b}", "batch", b, (256, 128), sweep_steps,
                        2 if b > 512 else 4, ("batch", b), compile=False, memory=not quick))
    for w in sweep_grid("width", quick):
        out.append(_mlp(f"W3 width={w}", "width", 128, (w, w // 2), sweep_steps, 4,
                        ("width", w), compile=not quick, memory=not quick))
    for d in sweep_grid("depth", quick):
        out.append(_mlp(f"MLP depth={d}", "depth", 128, (128,) * (d - 1), sweep_steps, 4,
                        ("depth", d), compile=not quick, memory=not quick))
    return out


def find_workload(name: str, quick: bool = False) -> Workload:
    """The workload of that name (used by the compile-time child processes)."""
    for wl in catalogue(quick):
        if wl.name == name:
            return wl
    raise KeyError(f"no workload named {name!r}")


def select(workloads: list, only: Optional[list]) -> list:
    """Workloads whose name or group is in ``only`` (``sweeps`` means all three sweeps)."""
    if not only:
        return list(workloads)
    wanted = set()
    for item in only:
        wanted |= set(SWEEPS) if item == "sweeps" else {item}
    return [wl for wl in workloads if wl.name in wanted or wl.group in wanted]


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    """What to run and how long. ``None`` fields take the defaults of the mode.

    ``repeat``: interleaved timing repetitions (15; quick 5, stopping after
    ``time_budget`` seconds of timing); ``block_time``: seconds of steps per block (50 ms;
    quick 5 ms); ``memory_steps``: steps under tracemalloc; ``compile_repeat``: pairs of
    cold/warm processes per main workload; ``targets``: print the generated-code issue's
    performance goals as a PASS/MISS checklist; ``extra_impls``: more adapter classes by name
    (tests use it for deliberately wrong implementations; they run in-process only).
    """

    quick: bool = False
    repeat: Optional[int] = None
    only: Optional[list] = None
    impls: Optional[list] = None
    optimizer: str = "sgd"
    seed: int = 0
    compile: bool = True
    memory: bool = True
    block_time: Optional[float] = None
    memory_steps: Optional[int] = None
    compile_repeat: Optional[int] = None
    time_budget: Optional[float] = None
    progress: bool = True
    targets: bool = False
    command: str = "python -m benchmarks"
    extra_impls: dict = field(default_factory=dict)

    def __post_init__(self):
        q = self.quick
        if self.time_budget is None and q and self.repeat is None:
            self.time_budget = 1.5  # quick: stop repeating after ~1.5 s (3 repetitions at least)
        defaults = {"repeat": 5 if q else 15, "block_time": 0.005 if q else 0.05,
                    "memory_steps": 2 if q else 5, "compile_repeat": 1 if q else 3}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.repeat < 1 or self.compile_repeat < 1 or self.memory_steps < 1:
            raise ValueError("repeat, compile_repeat and memory_steps must be at least 1")


def impl_classes(cfg: Config) -> dict:
    """Name -> adapter class of every known implementation (plus ``cfg.extra_impls``)."""
    out = {}
    for name, target in IMPLEMENTATIONS.items():
        module, cls = target.split(":")
        out[name] = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    out.update(cfg.extra_impls)
    return out


def probe(classes: dict, wanted: list) -> tuple:
    """``(available {name: version}, skipped {name: reason})`` among ``wanted``."""
    available, skipped = {}, {}
    for name in wanted:
        try:
            available[name] = str(classes[name].version())
        except ImportError as err:
            skipped[name] = f"not installed ({err})"
        except Exception as err:  # a broken install is a skip, not a crash
            skipped[name] = f"unusable ({type(err).__name__}: {err})"
    return available, skipped


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------

class Progress:
    """A single status line on stderr (rewritten in place on a terminal; one line per
    workload otherwise)."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total, self.done_count = total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.current = ""

    def workload(self, name: str) -> None:
        self.done_count += 1
        self.current = name
        if self.enabled and not self.tty:
            print(f"[{self.done_count}/{self.total}] {name}", file=self.stream, flush=True)
        self.update("")

    def update(self, text: str) -> None:
        if not self.tty:
            return
        elapsed = time.perf_counter() - self.start
        line = f"[{self.done_count}/{self.total} {elapsed:5.0f}s] {self.current}: {text}"
        cols = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K" + line[:cols])
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

def _error_text(err: BaseException) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(err).__name__}: {err}{where}"


def _read_only(batches: list) -> list:
    """The batches with every array made read-only: an implementation that writes into
    its inputs fails loudly instead of corrupting the next one's data."""
    for batch in batches:
        for a in batch:
            if isinstance(a, np.ndarray):
                a.setflags(write=False)
    return batches


def oracle_loss(wl: Workload, params: dict, batch: tuple) -> float:
    """The workload's loss in float64 numpy at ``params`` on ``batch``."""
    p = {n: np.asarray(v, dtype=np.float64) for n, v in params.items()}
    b = {n: np.asarray(a, dtype=np.float64) for n, a in zip(wl.input_names, batch)}
    return float(wl.loss(NUMPY_OPS, p, b))


def run_correctness(wl: Workload, classes: dict, names: list, init: dict, batches: list,
                    opt: OptimizerSpec, progress: Progress) -> dict:
    """Train a fresh instance of each implementation for ``wl.steps`` steps.

    Returns ``{name: {"curve", "params", "error"}}``; the reference is always included.
    """
    runs = {}
    for name in [REFERENCE] + [n for n in names if n != REFERENCE]:
        progress.update(f"correctness [{name}]")
        try:
            impl = classes[name]()
            impl.setup(wl, init, opt)
            curve = [float(impl.step(batches[i % len(batches)])) for i in range(wl.steps)]
            runs[name] = {"curve": curve, "params": impl.params(), "error": None}
            impl.close()
        except Exception as err:
            runs[name] = {"curve": None, "params": None, "error": _error_text(err)}
    return runs


def judge(wl: Workload, runs: dict, batches: list) -> dict:
    """Compare every run with the reference: ``{name: check dict}`` (status OK / WRONG /
    ERROR / UNCHECKED, the errors, the final losses)."""
    rtol = RTOL[wl.dtype]
    ref = runs[REFERENCE]
    ref_ok = ref["error"] is None and bool(np.all(np.isfinite(ref["curve"])))
    out = {}
    for name, r in runs.items():
        check = {"status": "ERROR", "error": r["error"], "final_loss": None,
                 "reference_final_loss": None, "loss_err": None, "param_err": None,
                 "curve_err": None, "rtol": rtol}
        out[name] = check
        if r["error"] is None:
            try:
                with np.errstate(all="ignore"):  # a diverged run is WRONG, not noisy
                    _compare(wl, r, ref if ref_ok else None, batches, check)
            except Exception as err:  # e.g. a parameter missing or of the wrong shape
                check["error"] = f"cannot compare with {REFERENCE}: {_error_text(err)}"
    return out


def _compare(wl, run, ref, batches, check) -> None:
    """Fill ``check`` for one run against the reference run ``ref`` (None: unusable)."""
    check["final_loss"] = oracle_loss(wl, run["params"], batches[0])
    if ref is None:
        check["status"] = "UNCHECKED"
        return
    ref_curve = np.asarray(ref["curve"], dtype=np.float64)
    ref_final = oracle_loss(wl, ref["params"], batches[0])
    scale = max(float(np.max(np.abs(ref_curve))), abs(ref_final), 1e-30)
    flat = [np.concatenate([np.ravel(np.asarray(p[n], dtype=np.float64)) for n in
                            wl.param_shapes]) for p in (run["params"], ref["params"])]
    if flat[0].shape != flat[1].shape or len(run["curve"]) != len(ref_curve):
        raise ValueError("parameter or loss-curve sizes differ from the reference")
    check["reference_final_loss"] = ref_final
    check["curve_err"] = float(np.max(np.abs(np.asarray(run["curve"]) - ref_curve))) / scale
    check["loss_err"] = abs(check["final_loss"] - ref_final) / scale
    check["param_err"] = float(np.linalg.norm(flat[0] - flat[1])) / max(
        float(np.linalg.norm(flat[1])), 1e-30)
    errors = (check["curve_err"], check["loss_err"], check["param_err"])
    good = all(math.isfinite(e) and e <= check["rtol"] for e in errors)
    check["status"] = "OK" if good else "WRONG"


def peak_memory(wl: Workload, classes: dict, names: list, opt: OptimizerSpec,
                steps: int) -> dict:
    """Peak traced memory (bytes) of ``setup`` + ``steps`` training steps, per
    implementation: what ``setup`` keeps (parameters, buffers, optimizer state) plus the
    high-water mark of the steps. Run in a fresh process (:func:`measure_memory`), so that
    caches a step fills once (e.g. generated code's zeros for relu) are counted.

    Each implementation is first set up once outside the measurement (imports, compiled
    modules, SymPy's caches), then measured in a fresh tracemalloc session that starts
    before its ``setup`` and whose peak is reset after it (transient setup garbage, such as
    an expression being built, does not count). ``None`` where tracemalloc cannot see the
    framework's buffers.
    """
    init, batches = wl.data()
    batches = _read_only(list(batches))
    out = {}
    for name in names:
        cls = classes[name]
        if not cls.memory_visible:
            out[name] = None
            continue
        try:
            dry = cls()
            dry.setup(wl, init, opt)
            dry.close()
            del dry
            gc.collect()
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                impl = cls()
                impl.setup(wl, init, opt)
                gc.collect()
                tracemalloc.reset_peak()
                for i in range(steps):
                    impl.step(batches[i % len(batches)])
                out[name] = int(tracemalloc.get_traced_memory()[1] - base)
                impl.close()
                del impl
            finally:
                tracemalloc.stop()
        except Exception:
            out[name] = None
    return out


_MEMORY_CHILD = r"""
import sys
from benchmarks.runner import memory_child
memory_child(sys.argv[1])
"""


def memory_child(spec_json: str) -> None:
    """Body of the memory-measuring process: prints ``{impl: bytes or null}`` as JSON."""
    spec = json.loads(spec_json)
    wl = find_workload(spec["workload"], spec["quick"])
    opt = OptimizerSpec.make(spec["optimizer"], wl.lr)
    classes = impl_classes(Config())
    print(json.dumps(peak_memory(wl, classes, spec["impls"], opt, spec["steps"])))


def measure_memory(wl: Workload, cfg: Config, names: list) -> dict:
    """:func:`peak_memory` of the registered implementations among ``names``, in a new
    process (implementations added through ``cfg.extra_impls`` get ``None``)."""
    registered = [n for n in names if n in IMPLEMENTATIONS]
    spec = json.dumps({"workload": wl.name, "quick": cfg.quick, "optimizer": cfg.optimizer,
                       "impls": registered, "steps": cfg.memory_steps})
    env = _child_env(os.environ.get("SYMGRAD_CACHE_DIR"))
    proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, spec], cwd=str(ROOT),
                          env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory child failed (exit {proc.returncode}): {tail}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return {n: found.get(n) for n in names}


def _stats(values: list) -> dict:
    a = np.asarray(values)
    med = float(np.median(a))
    q25, q75 = np.percentile(a, [25, 75])
    return {"median_s": med, "min_s": float(a.min()), "max_s": float(a.max()),
            "iqr_s": float(q75 - q25), "mad_s": float(np.median(np.abs(a - med))),
            "per_rep_s": [float(v) for v in a]}


@dataclass
class _Contender:
    """One implementation in the timing: its instance, steps per block, next batch."""

    impl: Implementation
    block: int
    position: int
    per_rep: list = field(default_factory=list)

    def run_block(self, batches: list) -> float:
        """Time one block of steps on the next batches; returns seconds per step."""
        nb, step = len(batches), self.impl.step
        seq = [batches[(self.position + j) % nb] for j in range(self.block)]
        self.position += self.block
        t0 = time.perf_counter()
        for b in seq:
            step(b)
        return (time.perf_counter() - t0) / self.block


def _calibrate(impl: Implementation, batches: list, block_time: float) -> _Contender:
    """Warm up (first calls allocate buffers, jit-compile) and size a block of steps to
    about ``block_time``."""
    for i in range(2):
        impl.step(batches[i % len(batches)])
    probe = _Contender(impl, 1, 2)
    while True:
        per_step = probe.run_block(batches)
        if per_step * probe.block >= block_time / 4 or probe.block >= 1 << 16:
            break
        probe.block *= 4
    return _Contender(impl, max(1, min(int(block_time / per_step), 1 << 18)), probe.position)


def measure_time(wl: Workload, classes: dict, names: list, init: dict, batches: list,
                 opt: OptimizerSpec, cfg: Config, progress: Progress) -> tuple:
    """Interleaved per-step timing. Returns ``({name: stats}, {name: error})``.

    In each of ``cfg.repeat`` repetitions every implementation runs one block of steps,
    in an order shuffled anew (seeded by ``cfg.seed``), after a garbage collection, so
    that none pays for another's garbage and drift of the machine hits all alike. With a
    ``cfg.time_budget`` the repetitions stop once it is spent (after three at least).
    """
    contenders, errors = {}, {}
    for name in names:
        progress.update(f"timing: warm-up [{name}]")
        try:
            impl = classes[name]()
            impl.setup(wl, init, opt)
            contenders[name] = _calibrate(impl, batches, cfg.block_time)
        except Exception as err:
            errors[name] = _error_text(err)
    rng = random.Random(cfg.seed)
    gc.collect()
    gc.freeze()  # what exists now is never scanned again: the collect before a block is cheap
    start = time.perf_counter()
    try:
        for rep in range(cfg.repeat):
            if (cfg.time_budget is not None and rep >= 3
                    and time.perf_counter() - start > cfg.time_budget):
                break
            order = [n for n in contenders if n not in errors]
            rng.shuffle(order)
            progress.update(f"timing rep {rep + 1}/{cfg.repeat}")
            for name in order:
                gc.collect()
                try:
                    contenders[name].per_rep.append(contenders[name].run_block(batches))
                except Exception as err:
                    errors[name] = _error_text(err)
    finally:
        gc.unfreeze()
    stats = {}
    for name, c in contenders.items():
        if name not in errors and c.per_rep:
            stats[name] = dict(_stats(c.per_rep), steps_per_block=c.block,
                               repeats=len(c.per_rep))
        c.impl.close()
    return stats, errors


def _median_ratio(num: list, den: list) -> float:
    return float(np.median(np.asarray(num) / np.asarray(den)))


# -- compile time, in new processes ----------------------------------------------------------

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import symgrad
t1 = time.perf_counter()
from benchmarks.runner import find_workload
from benchmarks.impl_base import OptimizerSpec
from benchmarks.impl_symgrad import build_step
spec = json.loads(sys.argv[1])
wl = find_workload(spec["workload"], spec["quick"])
opt = OptimizerSpec.make(spec["optimizer"], wl.lr)
t2 = time.perf_counter()
step = build_step(wl, opt)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "build_s": t3 - t2,
                  "lines": step.source.count(chr(10)), "path": str(step.path)}))
"""


def _child_env(cache_dir: Optional[str]) -> dict:
    """The environment of a child process: this tree and symgrad's on the path, the cache
    directory (``None``: the parent's setting)."""
    import symgrad
    env = dict(os.environ)
    paths = [str(ROOT), str(Path(symgrad.__file__).resolve().parents[1])]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if cache_dir is not None:
        env["SYMGRAD_CACHE_DIR"] = cache_dir
    env.pop("SYMGRAD_CACHE_DEBUG", None)
    return env


def _run_child(wl: Workload, cfg: Config, cache_dir: str) -> dict:
    spec = json.dumps({"workload": wl.name, "quick": cfg.quick, "optimizer": cfg.optimizer})
    proc = subprocess.run([sys.executable, "-c", _CHILD, spec], cwd=str(ROOT),
                          env=_child_env(cache_dir), capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"compile child failed (exit {proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cache_files(directory: str) -> set:
    return {str(p.relative_to(directory)) + f":{p.stat().st_mtime_ns}"
            for p in Path(directory).rglob("*") if p.is_file()}


def measure_compile(wl: Workload, cfg: Config, progress: Progress) -> dict:
    """Cold compile (fresh cache, new process) and warm load (same cache, new process);
    ``cfg.compile_repeat`` pairs of processes for the main workloads, one for a sweep."""
    colds, warms, hits = [], [], []
    repeats = cfg.compile_repeat if wl.sweep is None else 1
    for r in range(repeats):
        cache = tempfile.mkdtemp(prefix="symgrad-bench-cache-")
        try:
            progress.update(f"compile: cold, new process ({r + 1}/{repeats})")
            colds.append(_run_child(wl, cfg, cache))
            before = _cache_files(cache)
            progress.update(f"compile: warm, new process ({r + 1}/{repeats})")
            warms.append(_run_child(wl, cfg, cache))
            hits.append(_cache_files(cache) == before and bool(before))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    med = statistics.median
    return {"cold_s": med(c["build_s"] for c in colds),
            "warm_s": med(w["build_s"] for w in warms),
            "import_s": med(x["import_s"] for x in colds + warms),
            "cold_runs_s": [c["build_s"] for c in colds],
            "warm_runs_s": [w["build_s"] for w in warms],
            "warm_was_cache_hit": all(hits), "module_lines": colds[0]["lines"],
            "repeats": len(colds)}


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def machine_info() -> dict:
    """Platform, Python, numpy/sympy/symgrad versions, CPUs, BLAS, load."""
    import sympy

    import symgrad
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "numpy": np.__version__,
            "sympy": sympy.__version__, "symgrad": symgrad.__version__,
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["processor"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        info["blas"] = None
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    info["thread_env"] = {v: os.environ[v] for v in THREAD_VARS if v in os.environ}
    info["blas_threads"] = blas_threads()
    return info


def limit_blas_threads(n: int) -> bool:
    """Limit this process's BLAS/OpenMP pools to ``n`` threads with threadpoolctl (an
    optional dependency; True when it was applied). The environment variables, set by
    ``python -m benchmarks`` before numpy is imported, cover the case without it and reach
    the child processes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    global _LIMITER
    _LIMITER = threadpool_limits(limits=n)  # kept: the limit lasts as long as the object
    return True


_LIMITER = None


def blas_threads() -> str:
    """How many threads BLAS uses in this process, and who said so."""
    try:
        from threadpoolctl import threadpool_info
        counts = sorted({p["num_threads"] for p in threadpool_info()
                         if p.get("user_api") == "blas"})
        if counts:
            return "/".join(map(str, counts)) + " (threadpoolctl)"
    except ImportError:
        pass
    for var in THREAD_VARS[:3]:
        if os.environ.get(var):
            return f"{os.environ[var]} ({var})"
    return "the BLAS default (not limited)"


def run_workload(wl: Workload, cfg: Config, classes: dict, names: list,
                 progress: Progress) -> dict:
    """Every measurement of one workload, as a JSON-ready dict."""
    opt = OptimizerSpec.make(cfg.optimizer, wl.lr)
    init, batches = wl.data()
    batches = _read_only(list(batches))
    result = {"name": wl.name, "group": wl.group, "title": wl.title, "dtype": wl.dtype,
              "sweep": None if wl.sweep is None else {"axis": wl.sweep[0],
                                                      "value": wl.sweep[1]},
              "optimizer": opt.describe(), "steps_checked": wl.steps,
              "reference": REFERENCE, "tolerance": {"rtol": RTOL[wl.dtype]},
              "results": {}, "compile": None, "compile_error": None, "memory_error": None}

    phases = result["phase_s"] = {}
    t0 = time.perf_counter()
    if cfg.compile and wl.compile and "symgrad" in names:
        try:
            result["compile"] = measure_compile(wl, cfg, progress)
        except Exception as err:
            result["compile_error"] = _error_text(err)
    phases["compile"], t0 = time.perf_counter() - t0, time.perf_counter()
    runs = run_correctness(wl, classes, names, init, batches, opt, progress)
    checks = judge(wl, runs, batches)
    phases["correctness"], t0 = time.perf_counter() - t0, time.perf_counter()
    times, time_errors = measure_time(wl, classes, names, init, batches, opt, cfg, progress)
    phases["timing"], t0 = time.perf_counter() - t0, time.perf_counter()
    memory = {}
    result["memory_measured"] = bool(cfg.memory and wl.memory)
    if result["memory_measured"]:
        progress.update("peak memory, new process")
        try:
            memory = measure_memory(wl, cfg, names)
        except Exception as err:
            result["memory_error"] = _error_text(err)
    phases["memory"] = time.perf_counter() - t0

    for name in names:
        check = checks[name]
        error = check["error"] or time_errors.get(name)
        status = "ERROR" if error else check["status"]
        entry = {"status": status, "error": error,
                 "check": {k: v for k, v in check.items() if k not in ("status", "error")},
                 "time": times.get(name), "ratio_to_hand": None, "speedup_vs_tape": None,
                 "paired_ratio_to_hand": None, "paired_speedup_vs_tape": None,
                 "peak_memory_bytes": memory.get(name),
                 "loss_curve": runs[name]["curve"]}
        t = times.get(name)
        # The shown ratios are ratios of the shown medians, so a table never contradicts
        # itself; the paired per-repetition ratios (robust to drift) are kept beside them.
        if t and "hand" in times:
            entry["ratio_to_hand"] = t["median_s"] / times["hand"]["median_s"]
            entry["paired_ratio_to_hand"] = _median_ratio(t["per_rep_s"],
                                                          times["hand"]["per_rep_s"])
        if t and "tape" in times:
            entry["speedup_vs_tape"] = times["tape"]["median_s"] / t["median_s"]
            entry["paired_speedup_vs_tape"] = _median_ratio(times["tape"]["per_rep_s"],
                                                            t["per_rep_s"])
        result["results"][name] = entry
    if REFERENCE not in names:  # the reference ran for the check only: keep its curve
        result["reference_run"] = {"loss_curve": runs[REFERENCE]["curve"],
                                   "error": runs[REFERENCE]["error"]}
    return result


def run(cfg: Config) -> dict:
    """Run the benchmarks of ``cfg``; returns the report (the ``--json`` document)."""
    t_start = time.perf_counter()
    classes = impl_classes(cfg)
    wanted = list(cfg.impls) if cfg.impls else list(classes)
    unknown = [n for n in wanted if n not in classes]
    if unknown:
        raise ValueError(f"unknown implementation(s) {unknown}; known: {list(classes)}")
    available, skipped = probe(classes, wanted)
    if REFERENCE not in classes or REFERENCE not in probe(classes, [REFERENCE])[0]:
        raise RuntimeError("the reference implementation 'hand' is not available")
    names = [n for n in wanted if n in available]
    workloads = select(catalogue(cfg.quick), cfg.only)
    if not workloads:
        raise ValueError(f"--only {cfg.only} selects no workload; choose from "
                         f"{list(MAIN_WORKLOADS) + list(SWEEPS)}")

    progress = Progress(len(workloads), cfg.progress)
    results = []
    try:
        for wl in workloads:
            progress.workload(wl.name)
            results.append(run_workload(wl, cfg, classes, names, progress))
    finally:
        progress.finish()

    report = {
        "schema": SCHEMA,
        "command": cfg.command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "config": {"quick": cfg.quick, "repeat": cfg.repeat, "only": cfg.only,
                   "impls": wanted, "optimizer": cfg.optimizer, "seed": cfg.seed,
                   "block_time_s": cfg.block_time, "time_budget_s": cfg.time_budget,
                   "memory_steps": cfg.memory_steps,
                   "compile": cfg.compile, "memory": cfg.memory,
                   "compile_repeat": cfg.compile_repeat, "targets": cfg.targets},
        "implementations": {n: {"available": n in available, "version": available.get(n),
                                "skipped": skipped.get(n),
                                "description": classes[n].description}
                            for n in wanted},
        "skipped": skipped,
        "workloads": results,
    }
    report["targets"] = evaluate_targets(report)
    report["elapsed_s"] = time.perf_counter() - t_start
    return report


# ---------------------------------------------------------------------------------------------
# Targets of the generated-code issue
# ---------------------------------------------------------------------------------------------

def _get(report: dict, workload: str) -> Optional[dict]:
    for w in report["workloads"]:
        if w["name"] == workload:
            return w
    return None


def evaluate_targets(report: dict) -> list:
    """The issue's targets as ``{id, target, measured, unit, status, note}``; status PASS,
    MISS, or SKIP when not measured. A WRONG or failing symgrad misses every target of its
    workload."""

    def sg_entry(wl_name):
        w = _get(report, wl_name)
        return (w, None if w is None else w["results"].get("symgrad"))

    def target(tid, text, wl_name, value_fn, op, limit, unit):
        w, e = sg_entry(wl_name)
        row = {"id": tid, "target": text, "measured": None, "limit": limit, "unit": unit,
               "status": "SKIP", "note": None}
        if w is None:
            row["note"] = f"{wl_name} not run"
            return row
        if e is None:
            row["note"] = "symgrad not run"
            return row
        try:
            value = value_fn(w, e)
        except (KeyError, TypeError):
            value = None
        if value is None:
            row["note"] = "not measured"
            return row
        row["measured"] = value
        ok = value <= limit if op == "<=" else value < limit if op == "<" else value >= limit
        if e["status"] != "OK":
            ok, row["note"] = False, f"symgrad is {e['status']} on {wl_name}"
        row["status"] = "PASS" if ok else "MISS"
        return row

    def ratio(w, e):
        return e["ratio_to_hand"]

    def speedup(w, e):
        return e["speedup_vs_tape"]

    def memory(w, e):
        hand = w["results"].get("hand", {}).get("peak_memory_bytes")
        mine = e["peak_memory_bytes"]
        return None if not hand or mine is None else mine / hand

    return [
        target("W3-hand", "W3 symgrad <= 1.0x hand", "W3", ratio, "<=", 1.0, "x hand"),
        target("W0-hand", "W0 symgrad <= 1.0x hand", "W0", ratio, "<=", 1.0, "x hand"),
        target("W1-hand", "W1 symgrad <= 1.0x hand", "W1", ratio, "<=", 1.0, "x hand"),
        target("W0-tape10", "W0 symgrad >= 10x faster than tape", "W0", speedup, ">=", 10.0,
               "x tape"),
        target("W1-tape10", "W1 symgrad >= 10x faster than tape", "W1", speedup, ">=", 10.0,
               "x tape"),
        target("W0-tape3", "W0 symgrad vs tape >= 3x", "W0", speedup, ">=", 3.0, "x tape"),
        target("W1-tape3", "W1 symgrad vs tape >= 3x", "W1", speedup, ">=", 3.0, "x tape"),
        target("W3-tape", "W3 symgrad vs tape >= 1.2x", "W3", speedup, ">=", 1.2, "x tape"),
        target("W3-cold", "cold compile of the W3 step < 1 s (new process, empty cache)", "W3",
               lambda w, e: w["compile"]["cold_s"], "<", 1.0, "s"),
        target("W3-warm", "warm cache hit in a new process < 50 ms beyond importing symgrad",
               "W3", lambda w, e: w["compile"]["warm_s"], "<", 0.05, "s"),
        target("W3-memory", "peak memory of W3 within 10% of hand", "W3", memory, "<=", 1.10,
               "x hand"),
    ]


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def fmt_time(s: Optional[float]) -> str:
    """Seconds as ``812 ns``, ``3.52 µs``, ``724 µs``, ``12.3 ms`` or ``1.20 s``."""
    if s is None:
        return "-"
    for scale, unit in ((1e-6, "ns"), (1e-3, "µs"), (1.0, "ms")):
        if abs(s) < scale:
            v = s / scale * 1e3
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{s:.3g} s"


def fmt_bytes(n: Optional[int]) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_x(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}x" if v < 100 else f"{v:.0f}x"


def _check_text(entry: dict, name: str) -> str:
    status = entry["status"]
    if status == "ERROR":
        return "ERROR"
    if name == REFERENCE:
        return "OK (ref)"
    err = max((entry["check"][k] or 0.0) for k in ("curve_err", "loss_err", "param_err"))
    return f"{status} {err:.1e}" if status in ("OK", "WRONG") else status


def workload_rows(w: dict) -> list:
    """Table rows of one workload: impl, median, min, max, IQR, x hand, vs tape, memory,
    check. A WRONG implementation's speed is not reported as a ratio."""
    rows = []
    for name, e in w["results"].items():
        memory = fmt_bytes(e["peak_memory_bytes"]) if w.get("memory_measured") else "-"
        t = e["time"] or {}
        wrong = e["status"] != "OK"
        rows.append([name, fmt_time(t.get("median_s")), fmt_time(t.get("min_s")),
                     fmt_time(t.get("max_s")), fmt_time(t.get("iqr_s")),
                     "WRONG" if e["status"] == "WRONG" else
                     ("-" if wrong else fmt_x(e["ratio_to_hand"])),
                     "-" if wrong else fmt_x(e["speedup_vs_tape"]),
                     memory, _check_text(e, name)])
    return rows


HEADERS = ["impl", "median", "min", "max", "IQR", "med/hand", "tape/med", "peak mem", "check"]

#: What the columns of the tables mean (printed under them).
LEGEND = (
    "median, min, max, IQR: time per training step over the interleaved repetitions "
    "(IQR: spread between the 25th and 75th percentiles)",
    "med/hand: this row's median / hand's median (below 1.00x: faster than hand-written "
    "numpy)",
    "tape/med: symgrad.tape's median / this row's median (how many times faster than the "
    "tape)",
    "peak mem: tracemalloc peak of setup + a few steps in a new process (n/a: the "
    "framework's buffers are invisible to tracemalloc; -: not measured)",
    "check: OK/WRONG and the largest relative error against hand (loss curve, final loss, "
    "final parameters); a WRONG row gets no ratio",
    "sweeps: median time per step at each point; symgrad/hand is the ratio of the medians",
)

#: How far the paired per-repetition ratio may stray from the ratio of the medians before a
#: table says the timings were unsteady.
UNSTEADY = 1.25


def _text_table(headers: list, rows: list, indent: str = "  ") -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    lines = []
    for i, row in enumerate([headers] + rows):
        cells = [str(c).ljust(wd) if j == 0 else str(c).rjust(wd)
                 for j, (c, wd) in enumerate(zip(row, widths))]
        lines.append(indent + "  ".join(cells).rstrip())
        if i == 0:
            lines.append(indent + "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def _md_table(headers: list, rows: list) -> str:
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _compile_line(w: dict) -> Optional[str]:
    c = w.get("compile")
    if w.get("compile_error"):
        return f"compile (symgrad): ERROR {w['compile_error']}"
    if not c:
        return None
    hit = "" if c["warm_was_cache_hit"] else " (NOT a cache hit)"
    return (f"compile (symgrad, new process): cold {fmt_time(c['cold_s'])}, warm "
            f"{fmt_time(c['warm_s'])}{hit} beyond import symgrad ({fmt_time(c['import_s'])}); "
            f"{c['module_lines']} generated lines")


def sweep_tables(report: dict) -> list:
    """``(axis, headers, rows)`` per sweep: median per-step time of each implementation at
    each point, symgrad's time and peak memory relative to hand, and its compile times
    where they were measured."""
    out = []
    for axis in SWEEPS:
        points = [w for w in report["workloads"] if w["group"] == axis]
        if not points:
            continue
        names = list(points[0]["results"])
        sg = "symgrad" in names
        memory = sg and "hand" in names and any(w.get("memory_measured") for w in points)
        compiled = any(w.get("compile") for w in points)
        headers = [axis] + names + (["symgrad/hand"] if sg else []) + (
            ["mem sg/hand"] if memory else []) + (
            ["compile cold", "warm"] if compiled else [])
        rows = []
        for w in points:
            row = [w["sweep"]["value"]]
            for n in names:
                e = w["results"][n]
                cell = fmt_time((e["time"] or {}).get("median_s"))
                row.append(cell if e["status"] == "OK" or n == REFERENCE
                           else f"{e['status']} {cell}")
            if sg:
                e = w["results"]["symgrad"]
                row.append(fmt_x(e["ratio_to_hand"]) if e["status"] == "OK" else e["status"])
            if memory:
                mine, hand = (w["results"][n]["peak_memory_bytes"] for n in ("symgrad", "hand"))
                row.append(fmt_x(mine / hand) if mine and hand else "-")
            if compiled:
                c = w.get("compile") or {}
                row += [fmt_time(c.get("cold_s")), fmt_time(c.get("warm_s"))]
            rows.append(row)
        out.append((axis, headers, rows))
    return out


def unsteady_notes(w: dict) -> list:
    """Where the median of the per-repetition paired ratios strays from the ratio of the
    medians by more than :data:`UNSTEADY`: the step times moved a lot during the run (load
    on the machine), and both ratios are worth reading with care."""
    out, seen = [], set()
    for name, e in w["results"].items():
        for key, paired, base, pair in (
                ("ratio_to_hand", "paired_ratio_to_hand", REFERENCE, f"{name}/hand"),
                ("speedup_vs_tape", "paired_speedup_vs_tape", "tape", f"tape/{name}")):
            a, b = e.get(key), e.get(paired)
            if pair in seen:  # tape's ratio to hand is hand's speed-up over the tape
                continue
            seen.add(pair)
            if name != base and a and b and e["status"] == "OK" and max(a / b, b / a) > UNSTEADY:
                out.append(f"{pair}: {fmt_x(a)} from the medians but {fmt_x(b)} as the "
                           f"median of per-repetition paired ratios -- the timings were "
                           f"unsteady (machine load?); rerun on a quieter machine")
    return out


def _target_rows(report: dict) -> list:
    rows = []
    for t in report["targets"]:
        value = t["measured"]
        shown = "-" if value is None else (fmt_time(value) if t["unit"] == "s"
                                           else fmt_x(value))
        note = f" ({t['note']})" if t["note"] else ""
        rows.append([t["status"], t["target"], shown + note])
    return rows


def _repeats(w: dict) -> int:
    return max([(e["time"] or {}).get("repeats", 0) for e in w["results"].values()] or [0])


def _describe(w: dict) -> str:
    return f"{w['name']}: {w['title']}, {w['optimizer']}, {w['steps_checked']} steps checked"


def render_text(report: dict) -> str:
    """The terminal report."""
    out = []
    m, cfg = report["machine"], report["config"]
    threads = m.get("blas_threads") or m.get("thread_env", {}).get("OPENBLAS_NUM_THREADS",
                                                                    "default")
    mode = "quick run (--full: every sweep point, longer timings)" if cfg["quick"] \
        else "full run"
    out.append(f"symgrad benchmarks, {mode} -- {m['platform']}, Python {m['python']}, numpy "
               f"{m['numpy']}, {m['cpu_count']} CPUs ({m['processor']}), BLAS threads: "
               f"{threads}")
    if report["skipped"]:
        out.append("skipped: " + ", ".join(f"{n} ({r})" for n, r in report["skipped"].items()))
    for w in report["workloads"]:
        if w["sweep"] is not None:
            continue
        out.append("")
        out.append(_describe(w) + f"; {_repeats(w)} interleaved repetitions")
        out.append(_text_table(HEADERS, workload_rows(w)))
        for note in unsteady_notes(w):
            out.append("  note: " + note)
        line = _compile_line(w)
        if line:
            out.append("  " + line)
        if w.get("memory_error"):
            out.append(f"  peak memory: ERROR {w['memory_error']}")
        for name, e in w["results"].items():
            if e["error"]:
                out.append(f"  {name}: {e['error']}")
    for axis, headers, rows in sweep_tables(report):
        out.append("")
        out.append(f"Sweep: {SWEEP_TITLES[axis]} (median time per step)")
        out.append(_text_table(headers, rows))
        for w in report["workloads"]:
            if w["group"] == axis:
                for name, e in w["results"].items():
                    if e["error"]:
                        out.append(f"  {w['name']} {name}: {e['error']}")
    out.append("")
    out.append("Columns")
    out += [textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="    ")
            for line in LEGEND]
    out.append("")
    if cfg.get("targets"):
        out.append("Performance goals of the generated-code issue (PASS: met in this run; "
                   "MISS: not met on this machine in this run, a goal and not an error; "
                   "SKIP: not measured)")
        for status, text, value in _target_rows(report):
            out.append(f"  [{status:4}] {text}: {value}")
    else:
        out.append("(--targets lists the performance goals of the generated-code issue as "
                   "PASS/MISS)")
    wrong = _failures(report, all_impls=True)
    if wrong:
        out.append("")
        out.append("NOT CORRECT: " + ", ".join(wrong))
    out.append(f"\n{len(report['workloads'])} workloads in {report['elapsed_s']:.1f} s")
    return "\n".join(out)


def render_markdown(report: dict) -> str:
    """The ``--markdown`` report: the command, the machine, every table."""
    m, cfg = report["machine"], report["config"]
    out = ["# symgrad benchmarks", "",
           f"Produced by `{report['command']}` on {report['created']}.", "",
           "| machine | |", "|---|---|"]
    for key in ("platform", "processor", "cpu_count", "cpus_usable", "python", "numpy",
                "sympy", "symgrad", "blas", "thread_env", "load_average_at_start"):
        if key in m:
            value = m[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "(not set)"
            out.append(f"| {key} | {value} |")
    out += ["", f"Per-step times: up to {cfg['repeat']} repetitions interleaved across "
            "implementations (shuffled order each repetition); ratios are ratios of the "
            "medians shown. Correctness: same initial values and batches as `hand`, "
            "errors relative to the largest reference loss, rtol 1e-4 (float32) / 1e-9 "
            "(float64). Peak memory: tracemalloc over "
            f"setup + {cfg['memory_steps']} steps in a new process (what setup keeps plus "
            "the steps' high-water mark; n/a where tracemalloc cannot see the buffers)."]
    impls = report["implementations"]
    out += ["", "| implementation | version | |", "|---|---|---|"]
    for name, info in impls.items():
        about = info["description"] if info["available"] else f"skipped: {info['skipped']}"
        out.append(f"| {name} | {info['version'] or '-'} | {about} |")
    for w in report["workloads"]:
        if w["sweep"] is not None:
            continue
        out += ["", f"## {w['name']}", "",
                _describe(w) + f"; {_repeats(w)} interleaved repetitions.", "",
                _md_table(HEADERS, workload_rows(w))]
        notes = unsteady_notes(w)
        if notes:
            out += [""] + [f"Note: {n}" for n in notes]
        line = _compile_line(w)
        if line:
            out += ["", line[0].upper() + line[1:] + "."]
        for name, e in w["results"].items():
            if e["error"]:
                out += ["", f"`{name}`: `{e['error']}`"]
    for axis, headers, rows in sweep_tables(report):
        out += ["", f"## Sweep over {axis}", "", f"{SWEEP_TITLES[axis]}; median time per step.",
                "",
                _md_table(headers, rows)]
    out += ["", "## Columns", ""] + [f"- {line}" for line in LEGEND]
    if cfg.get("targets"):
        out += ["", "## Performance goals of the generated-code issue", "",
                "PASS: met in this run; MISS: not met on this machine in this run (a goal, "
                "not an error); SKIP: not measured.", ""]
        for status, text, value in _target_rows(report):
            mark = "x" if status == "PASS" else " "
            out.append(f"- [{mark}] **{status}** {text}: {value}")
    wrong = _failures(report, all_impls=True)
    if wrong:
        out += ["", "**NOT CORRECT:** " + ", ".join(wrong)]
    return "\n".join(out) + "\n"


def _failures(report: dict, all_impls: bool = False) -> list:
    """``"W3/symgrad WRONG"`` for every implementation that is not OK (only this
    project's own unless ``all_impls``)."""
    out = []
    for w in report["workloads"]:
        for name, e in w["results"].items():
            if e["status"] in ("WRONG", "ERROR") and (all_impls or name in PROJECT_IMPLS):
                out.append(f"{w['name']}/{name} {e['status']}")
    return out


def write_plots(report: dict, directory: Path) -> list:
    """PNG plots: per-step time by implementation (bars), scaling curves (log axes), loss
    curves of all implementations overlaid. Returns the files written; raises ImportError
    without matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {n: palette[i % len(palette)] for i, n in enumerate(report["implementations"])}
    main = [w for w in report["workloads"] if w["sweep"] is None]
    if main:
        fig, axes = plt.subplots(1, len(main), figsize=(4 * len(main), 3.6), squeeze=False)
        for ax, w in zip(axes[0], main):
            names = [n for n, e in w["results"].items() if e["time"]]
            med = [w["results"][n]["time"]["median_s"] * 1e6 for n in names]
            lo = [m - w["results"][n]["time"]["min_s"] * 1e6 for n, m in zip(names, med)]
            hi = [w["results"][n]["time"]["max_s"] * 1e6 - m for n, m in zip(names, med)]
            bars = ax.bar(names, med, yerr=[lo, hi], color=[color[n] for n in names],
                          capsize=3)
            for bar, n in zip(bars, names):
                if w["results"][n]["status"] != "OK":
                    bar.set_hatch("xx")
                    bar.set_edgecolor("tab:red")
            ax.set_yscale("log")
            ax.set_title(w["name"])
            ax.set_ylabel("µs per step (median, min-max)")
            ax.tick_params(axis="x", rotation=30)
            for i, n in enumerate(names):
                if w["results"][n]["status"] != "OK":
                    ax.annotate(w["results"][n]["status"], (i, med[i]), ha="center",
                                va="bottom", color="tab:red")
        fig.tight_layout()
        written.append(directory / "time_per_step.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    for axis in SWEEPS:
        points = [w for w in report["workloads"] if w["group"] == axis]
        if not points:
            continue
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        xs = [w["sweep"]["value"] for w in points]
        for name in points[0]["results"]:
            ys = [(w["results"][name]["time"] or {}).get("median_s") for w in points]
            pts = [(x, y * 1e6) for x, y in zip(xs, ys) if y]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name, color=color[name])
            rs = [(x, w["results"][name]["ratio_to_hand"]) for x, w in zip(xs, points)
                  if w["results"][name]["ratio_to_hand"]]
            if rs and name != REFERENCE:
                ax2.plot(*zip(*rs), marker="o", label=name, color=color[name])
        for a in (ax, ax2):
            a.set_xscale("log", base=2)
            a.set_yscale("log")
            a.set_xlabel(axis)
            a.legend()
            a.grid(True, which="both", alpha=0.3)
        ax.set_ylabel("µs per step (median)")
        ax2.set_ylabel("time / hand")
        ax2.axhline(1.0, color="gray", lw=0.8)
        fig.suptitle(f"Scaling: {SWEEP_TITLES[axis]} (float32)")
        fig.tight_layout()
        written.append(directory / f"scaling_{axis}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))]
    for w in main:
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, (name, e) in enumerate(w["results"].items()):
            if e["loss_curve"]:
                ax.plot(e["loss_curve"], linestyle=styles[i % len(styles)], lw=1.5,
                        color=color[name], label=f"{name} ({e['status']})")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (before the update)")
        ax.set_title(f"{w['name']}: loss curves, all implementations")
        ax.legend()
        fig.tight_layout()
        written.append(directory / f"loss_{w['name']}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def _csv(text: str) -> list:
    return [t.strip() for t in text.split(",") if t.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark symgrad's generated train step against the tape baseline, "
                    "hand-written numpy and (when installed) PyTorch, JAX, HIPS autograd and "
                    "PyTensor: time per step, compile time, peak memory, correctness.",
        epilog=f"Workloads: {', '.join(MAIN_WORKLOADS)}; sweeps: {', '.join(SWEEPS)} "
               f"('sweeps' = all three). Implementations: {', '.join(IMPLEMENTATIONS)}. "
               "Exit status 1 when one of this project's implementations "
               f"({', '.join(PROJECT_IMPLS)}) is WRONG or fails.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="the default: short runs, a few sweep points, compile time and "
                           "memory for W3 only (well under a minute on 2 cores)")
    mode.add_argument("--full", action="store_true",
                      help="the full sweep: every sweep point, longer timings, compile time "
                           "and memory on every workload (about 12 minutes on 2 cores)")
    p.add_argument("--only", type=_csv, metavar="LIST",
                   help="comma-separated workloads/sweeps, e.g. W0,W3,depth")
    p.add_argument("--impl", type=_csv, metavar="LIST",
                   help="comma-separated implementations, e.g. symgrad,hand")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="interleaved timing repetitions (default 15, quick 5)")
    p.add_argument("--optimizer", choices=sorted(OptimizerSpec.DEFAULTS), default="sgd",
                   help="update rule for every workload (default sgd, as the tutorials)")
    p.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    p.add_argument("--no-compile", action="store_true",
                   help="skip the compile-time measurements (new processes)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurements (new processes)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the full report as JSON")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="write a Markdown report")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots (matplotlib)")
    p.add_argument("--threads", type=int, metavar="N", default=None,
                   help="BLAS/OpenMP threads (default 1, steadier on a busy machine; applied "
                        "with threadpoolctl when installed and through OPENBLAS_NUM_THREADS, "
                        "OMP_NUM_THREADS, ... set before numpy is imported)")
    p.add_argument("--targets", action="store_true",
                   help="also print the performance goals of the generated-code issue as a "
                        "PASS/MISS checklist")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--list", action="store_true", help="list workloads and implementations")
    return p


def main(argv: Optional[list] = None) -> int:
    """``python -m benchmarks``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    quick = not args.full
    if args.list:
        for wl in catalogue(quick):
            print(f"{wl.name:16} [{wl.group}] {wl.title}")
        cfg = Config()
        available, skipped = probe(impl_classes(cfg), list(IMPLEMENTATIONS))
        for name in IMPLEMENTATIONS:
            print(f"{name:10} " + (available[name] if name in available else
                                    f"skipped: {skipped[name]}"))
        return 0
    known = set(MAIN_WORKLOADS) | set(SWEEPS) | {"sweeps"}
    names = {wl.name for wl in catalogue(quick)}
    bad = [o for o in args.only or [] if o not in known and o not in names]
    if bad:
        parser().error(f"--only: unknown {bad}; choose from {sorted(known)}")
    bad = [i for i in args.impl or [] if i not in IMPLEMENTATIONS]
    if bad:
        parser().error(f"--impl: unknown {bad}; choose from {list(IMPLEMENTATIONS)}")
    if args.repeat is not None and args.repeat < 1:
        parser().error("--repeat must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser().error("--threads must be at least 1")
    threads = 1 if args.threads is None else args.threads
    if not limit_blas_threads(threads) and any(os.environ.get(v) != str(threads)
                                               for v in THREAD_VARS):
        # numpy is loaded already (main() called in-process, no threadpoolctl): the
        # variables reach the child processes only
        print(f"note: {threads} BLAS thread(s) applies to this process only when run as "
              "`python -m benchmarks` or with threadpoolctl installed", file=sys.stderr)
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    cfg = Config(quick=quick, repeat=args.repeat, only=args.only, impls=args.impl,
                 optimizer=args.optimizer, seed=args.seed, compile=not args.no_compile,
                 memory=not args.no_memory,
                 progress=not args.no_progress, targets=args.targets,
                 command=shlex.join(["python", "-m", "benchmarks", *argv]))
    report = run(cfg)
    print(render_text(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
        print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(report))
        print(f"wrote {args.markdown}")
    if args.plots:
        try:
            files = write_plots(report, args.plots)
            print(f"wrote {len(files)} plots to {args.plots}")
        except ImportError:
            print("matplotlib is not installed: skipping --plots "
                  "(pip install matplotlib, or pip install 'symgrad[plots]')")
    return 1 if _failures(report) else 0
