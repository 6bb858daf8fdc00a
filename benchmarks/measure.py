"""The measurements of a benchmark run: time per step, peak memory, compile time.

* **time per step** (:func:`measure_time`): repetitions interleaved across
  implementations; in each repetition every implementation runs one block of steps, in a
  freshly shuffled order, so drift of the machine hits all alike;
* **peak memory** (:func:`measure_memory`): the tracemalloc peak of ``setup`` and a few
  steps of a fresh instance, in a new process;
* **compile time** (:func:`measure_compile`, symgrad): in a new process with an empty
  cache (cold), then in another new process on the same cache (warm: a cache hit), each
  process timing its own ``import symgrad`` apart.

The child processes run this module's :func:`memory_child` and :func:`compile_child`.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .check import error_text, read_only
from .config import IMPLEMENTATIONS, Config, impl_classes
from .impl_base import Implementation, OptimizerSpec
from .progress import Progress
from .workloads import Workload, find_workload

ROOT = Path(__file__).resolve().parents[1]


# -- time per step, interleaved --------------------------------------------------------------

def _stats(values: list) -> dict:
    """Median, min, max, IQR and MAD of per-step times (seconds), and the values."""
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
    trial = _Contender(impl, 1, 2)
    while True:
        per_step = trial.run_block(batches)
        if per_step * trial.block >= block_time / 4 or trial.block >= 1 << 16:
            break
        trial.block *= 4
    return _Contender(impl, max(1, min(int(block_time / per_step), 1 << 18)), trial.position)


def _warm_up(wl, classes, names, init, batches, opt, cfg, progress) -> tuple:
    """Set up and calibrate every implementation: ``({name: contender}, {name: error})``."""
    contenders, errors = {}, {}
    for name in names:
        progress.update(f"timing: warm-up [{name}]")
        try:
            impl = classes[name]()
            impl.setup(wl, init, opt)
            contenders[name] = _calibrate(impl, batches, cfg.block_time)
        except Exception as err:
            errors[name] = error_text(err)
    return contenders, errors


def _interleave(contenders: dict, errors: dict, batches: list, cfg: Config,
                progress: Progress) -> None:
    """Run the repetitions, each contender one block per repetition in a shuffled order;
    a contender that fails gets its error in ``errors`` and runs no more."""
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
                    errors[name] = error_text(err)
    finally:
        gc.unfreeze()


def measure_time(wl: Workload, classes: dict, names: list, init: dict, batches: list,
                 opt: OptimizerSpec, cfg: Config, progress: Progress) -> tuple:
    """Interleaved per-step timing.

    In each of ``cfg.repeat`` repetitions every implementation runs one block of steps,
    in an order shuffled anew (seeded by ``cfg.seed``), after a garbage collection, so
    that none pays for another's garbage and drift of the machine hits all alike. With a
    ``cfg.time_budget`` the repetitions stop once it is spent (after three at least).

    Parameters
    ----------
    wl : Workload
    classes : dict
        ``{name: adapter class}``.
    names : list of str
        The implementations to time.
    init : dict
        The initial parameters.
    batches : list of tuple
    opt : OptimizerSpec
    cfg : Config
    progress : Progress

    Returns
    -------
    tuple of dict
        ``({name: stats}, {name: error})``; stats hold ``median_s``, ``min_s``, ``max_s``,
        ``iqr_s``, ``mad_s``, ``per_rep_s``, ``steps_per_block`` and ``repeats``.
    """
    contenders, errors = _warm_up(wl, classes, names, init, batches, opt, cfg, progress)
    _interleave(contenders, errors, batches, cfg, progress)
    stats = {}
    for name, c in contenders.items():
        if name not in errors and c.per_rep:
            stats[name] = dict(_stats(c.per_rep), steps_per_block=c.block,
                               repeats=len(c.per_rep))
        c.impl.close()
    return stats, errors


def median_ratio(num: list, den: list) -> float:
    """The median of the element-wise ratios ``num / den`` (paired per repetition).

    Parameters
    ----------
    num, den : list of float
        Per-repetition times, of equal length.

    Returns
    -------
    float
    """
    return float(np.median(np.asarray(num) / np.asarray(den)))


# -- child processes -------------------------------------------------------------------------

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


def _run_child(what: str, script: str, spec: dict, cache_dir: Optional[str],
               timeout: float):
    """Run ``script`` in a new Python process with ``spec`` as JSON in ``argv[1]``;
    returns the JSON of its last line of output."""
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(spec)], cwd=str(ROOT),
                          env=_child_env(cache_dir), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{what} child failed (exit {proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child_workload(spec_json: str) -> tuple:
    """``(spec, workload, optimizer)`` of a child process's JSON argument."""
    spec = json.loads(spec_json)
    wl = find_workload(spec["workload"], spec["quick"])
    return spec, wl, OptimizerSpec.make(spec["optimizer"], wl.lr)


# -- peak memory -----------------------------------------------------------------------------

def _traced_peak(cls, wl: Workload, init: dict, batches: list, opt: OptimizerSpec,
                 steps: int) -> int:
    """Bytes: what a fresh ``setup`` keeps plus the high-water mark of ``steps`` steps."""
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
        peak = int(tracemalloc.get_traced_memory()[1] - base)
        impl.close()
        del impl
    finally:
        tracemalloc.stop()
    return peak


def peak_memory(wl: Workload, classes: dict, names: list, opt: OptimizerSpec,
                steps: int) -> dict:
    """Peak traced memory of ``setup`` + ``steps`` training steps, per implementation.

    What ``setup`` keeps (parameters, buffers, optimizer state) plus the high-water mark
    of the steps. Run in a fresh process (:func:`measure_memory`), so that caches a step
    fills once (e.g. generated code's zeros for relu) are counted. Each implementation is
    first set up once outside the measurement (imports, compiled modules, SymPy's caches),
    then measured in a fresh tracemalloc session that starts before its ``setup`` and whose
    peak is reset after it (transient setup garbage, such as an expression being built,
    does not count).

    Parameters
    ----------
    wl : Workload
    classes : dict
        ``{name: adapter class}``.
    names : list of str
    opt : OptimizerSpec
    steps : int

    Returns
    -------
    dict
        ``{name: bytes}``; ``None`` where tracemalloc cannot see the framework's buffers
        or the measurement failed.
    """
    init, batches = wl.data()
    batches = read_only(list(batches))
    out = {}
    for name in names:
        cls = classes[name]
        out[name] = None
        if cls.memory_visible:
            try:
                out[name] = _traced_peak(cls, wl, init, batches, opt, steps)
            except Exception:
                pass  # reported as not measured
    return out


_MEMORY_CHILD = r"""
import sys
from benchmarks.measure import memory_child
memory_child(sys.argv[1])
"""


def memory_child(spec_json: str) -> None:
    """Body of the memory-measuring process: prints ``{impl: bytes or null}`` as JSON.

    Parameters
    ----------
    spec_json : str
        JSON of ``{workload, quick, optimizer, impls, steps}``.
    """
    spec, wl, opt = _child_workload(spec_json)
    print(json.dumps(peak_memory(wl, impl_classes(), spec["impls"], opt, spec["steps"])))


def measure_memory(wl: Workload, cfg: Config, names: list) -> dict:
    """:func:`peak_memory` of the registered implementations among ``names``, in a new
    process.

    Parameters
    ----------
    wl : Workload
    cfg : Config
    names : list of str

    Returns
    -------
    dict
        ``{name: bytes or None}`` for every name (implementations added through
        ``cfg.extra_impls`` get ``None``).
    """
    registered = [n for n in names if n in IMPLEMENTATIONS]
    spec = {"workload": wl.name, "quick": cfg.quick, "optimizer": cfg.optimizer,
            "impls": registered, "steps": cfg.memory_steps}
    found = _run_child("memory", _MEMORY_CHILD, spec, os.environ.get("SYMGRAD_CACHE_DIR"),
                       900)
    return {n: found.get(n) for n in names}


# -- compile time ----------------------------------------------------------------------------

# ``import symgrad`` is timed first, before anything else loads numpy or SymPy.
_COMPILE_CHILD = r"""
import sys, time
t0 = time.perf_counter()
import symgrad
t1 = time.perf_counter()
from benchmarks.measure import compile_child
compile_child(sys.argv[1], t1 - t0)
"""


def compile_child(spec_json: str, import_s: float) -> None:
    """Body of the compile-timing process: builds the workload's symgrad train step and
    prints ``{import_s, build_s, lines, path}`` as JSON.

    Parameters
    ----------
    spec_json : str
        JSON of ``{workload, quick, optimizer}``.
    import_s : float
        How long ``import symgrad`` took in this process.
    """
    from .impl_symgrad import build_step
    _, wl, opt = _child_workload(spec_json)
    t0 = time.perf_counter()
    step = build_step(wl, opt)
    t1 = time.perf_counter()
    print(json.dumps({"import_s": import_s, "build_s": t1 - t0,
                      "lines": step.source.count(chr(10)), "path": str(step.path)}))


def _cache_files(directory: str) -> set:
    """Every file under ``directory`` with its modification time."""
    return {str(p.relative_to(directory)) + f":{p.stat().st_mtime_ns}"
            for p in Path(directory).rglob("*") if p.is_file()}


def _cold_and_warm(wl: Workload, cfg: Config, progress: Progress, label: str) -> tuple:
    """One cold and one warm compile process on a fresh cache: ``(cold, warm, hit)``."""
    spec = {"workload": wl.name, "quick": cfg.quick, "optimizer": cfg.optimizer}
    cache = tempfile.mkdtemp(prefix="symgrad-bench-cache-")
    try:
        progress.update(f"compile: cold, new process ({label})")
        cold = _run_child("compile", _COMPILE_CHILD, spec, cache, 600)
        before = _cache_files(cache)
        progress.update(f"compile: warm, new process ({label})")
        warm = _run_child("compile", _COMPILE_CHILD, spec, cache, 600)
        return cold, warm, _cache_files(cache) == before and bool(before)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def measure_compile(wl: Workload, cfg: Config, progress: Progress) -> dict:
    """Cold compile (fresh cache, new process) and warm load (same cache, new process).

    Parameters
    ----------
    wl : Workload
    cfg : Config
        ``cfg.compile_repeat`` pairs of processes for a main workload, one for a sweep.
    progress : Progress

    Returns
    -------
    dict
        ``cold_s``, ``warm_s`` and ``import_s`` (medians), ``cold_runs_s``,
        ``warm_runs_s``, ``warm_was_cache_hit``, ``module_lines`` and ``repeats``.
    """
    repeats = cfg.compile_repeat if wl.sweep is None else 1
    pairs = [_cold_and_warm(wl, cfg, progress, f"{r + 1}/{repeats}") for r in range(repeats)]
    colds = [c for c, _, _ in pairs]
    warms = [w for _, w, _ in pairs]
    med = statistics.median
    return {"cold_s": med(c["build_s"] for c in colds),
            "warm_s": med(w["build_s"] for w in warms),
            "import_s": med(x["import_s"] for x in colds + warms),
            "cold_runs_s": [c["build_s"] for c in colds],
            "warm_runs_s": [w["build_s"] for w in warms],
            "warm_was_cache_hit": all(hit for _, _, hit in pairs),
            "module_lines": colds[0]["lines"],
            "repeats": len(colds)}
