"""Isolated timing (``--isolated``): every implementation in its own process.

The default, in-process mode (:func:`benchmarks.measure.measure_time`) times all
implementations side by side in one process. Frameworks sharing a process can disturb each
other: JIT caches, thread pools, allocator state, the garbage one leaves for the next. Here,
as the peers' harnesses measure, each implementation gets a new Python process per workload
and pass, started with the same environment (the ``--threads`` settings of
:data:`benchmarks.THREAD_VARS`, applied again with threadpoolctl in the child when it is
installed). The passes go round-robin over the implementations, pass ``p`` starting at the
``p``-th, so drift of the machine hits all alike.

The parent never runs an implementation itself. A process (:func:`isolated_child`) builds
the workload's data; in the first pass it first makes the correctness run of a fresh
instance (:func:`benchmarks.check.correctness_run`: the loss curve in its JSON, the final
parameters in an ``.npz`` file), which the parent judges against ``hand`` as usual (``hand``
gets a process of its own for it when it is not timed). It then sets a fresh instance up,
warms it up and sizes a block of steps as the in-process mode does, times up to ``repeat``
blocks, and prints one line ``MARKER + JSON`` on stdout: its per-block times, or the error it
caught. A process that dies without that line (a crash in C code, ``os._exit``), or runs
past the timeout, is reported as that implementation's error, and it gets no more
processes; the run goes on with the others.

The reported time per step of an implementation is the median over the passes of each
process's median; ``per_rep_s`` holds the per-pass medians, so the paired ratios to hand
pair processes of the same pass.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from . import THREAD_VARS
from .check import correctness_run, error_text, read_only
from .config import REFERENCE, Config
from .impl_base import OptimizerSpec
from .machine import blas_threads, limit_blas_threads
from .measure import ROOT, _child_env, _interleave, _stats, _warm_up
from .progress import Progress
from .workloads import Workload, find_workload

__all__ = ["MARKER", "measure_isolated", "isolated_child", "adapter_spec"]

#: The prefix of the result line a child prints (anything else on stdout is ignored).
MARKER = "symgrad-benchmarks-isolated: "

_CHILD = r"""
import sys
from benchmarks.isolated import isolated_child
sys.exit(isolated_child(sys.argv[1]))
"""


def adapter_spec(cls: type) -> dict:
    """Where a child process finds an adapter class: its module, qualified name and the
    folder to put on ``sys.path`` (adapters defined outside ``benchmarks``, such as test
    doubles, are imported from their own file's folder)."""
    module = sys.modules[cls.__module__]
    folder = str(Path(module.__file__).resolve().parent) if getattr(module, "__file__", None) \
        else None
    if cls.__module__.startswith(f"{__package__}."):
        folder = None  # on the child's path already (measure._child_env)
    return {"module": cls.__module__, "qualname": cls.__qualname__, "path": folder}


def _load_adapter(spec: dict) -> type:
    """The adapter class named by :func:`adapter_spec`."""
    if spec["path"] and spec["path"] not in sys.path:
        sys.path.insert(0, spec["path"])
    obj = importlib.import_module(spec["module"])
    for part in spec["qualname"].split("."):
        obj = getattr(obj, part)
    return obj


# -- the child -------------------------------------------------------------------------------

def _check_here(wl, cls, init, batches, opt, params_file: str) -> dict:
    """The correctness run: its curve and error for the JSON, its parameters to a file."""
    run = correctness_run(wl, cls, init, batches, opt)
    if run["error"] is None:
        np.savez(params_file, **run["params"])
    return {"curve": run["curve"], "error": run["error"]}


def _time_here(wl, name, cls, init, batches, opt, spec) -> dict:
    """Warm up and time a fresh instance: per-block times, or ``{"error": text}``."""
    cfg = Config(quick=spec["quick"], repeat=spec["repeat"], block_time=spec["block_time"],
                 time_budget=spec["time_budget"], seed=spec["seed"], progress=False,
                 compile=False, memory=False)
    quiet = Progress(1, enabled=False)
    contenders, errors = _warm_up(wl, {name: cls}, [name], init, batches, opt, cfg, quiet)
    if not errors:
        _interleave(contenders, errors, batches, cfg, quiet)
    if errors:
        return {"error": errors[name]}
    c = contenders[name]
    c.impl.close()
    return {"per_rep_s": c.per_rep, "steps_per_block": c.block}


def _in_this_process(spec: dict) -> dict:
    """What one isolated process measures, as a JSON-ready dict."""
    wl = find_workload(spec["workload"], spec["quick"])
    opt = OptimizerSpec.make(spec["optimizer"], wl.lr)
    if spec["threads"]:
        limit_blas_threads(spec["threads"])
    name, cls = spec["impl"], _load_adapter(spec["adapter"])
    out = {"impl": name, "version": str(cls.version()), "pid": os.getpid(),
           "blas_threads": blas_threads()}
    init, batches = wl.data()
    batches = read_only(list(batches))
    if spec["params_file"]:
        out["check"] = _check_here(wl, cls, init, batches, opt, spec["params_file"])
    if spec["time"]:
        out.update(_time_here(wl, name, cls, init, batches, opt, spec))
    return out


def isolated_child(spec_json: str) -> int:
    """Body of an isolated process: prints ``MARKER + JSON`` and returns the exit status
    (0; 1 when something failed, its error in the JSON).

    Parameters
    ----------
    spec_json : str
        JSON of ``{workload, quick, optimizer, impl, adapter, params_file (null: no
        correctness run), time, repeat, block_time, time_budget, seed, threads}``.

    Returns
    -------
    int
    """
    try:
        out = _in_this_process(json.loads(spec_json))
    except Exception as err:  # reported to the parent, which goes on with the others
        out = {"error": error_text(err)}
    print(MARKER + json.dumps(out), flush=True)
    failed = "error" in out or (out.get("check") or {}).get("error")
    return 1 if failed else 0


# -- the parent ------------------------------------------------------------------------------

def _result_line(stdout: str):
    """The JSON after the last ``MARKER`` line of a child's output, or None."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
    return json.loads(lines[-1][len(MARKER):]) if lines else None


def run_isolated(wl: Workload, name: str, cls: type, cfg: Config,
                 params_file: Optional[str] = None, timed: bool = True) -> dict:
    """One new process for one implementation.

    Parameters
    ----------
    wl : Workload
    name : str
        The implementation's name in the report.
    cls : type
        Its adapter class (importable by the child: :func:`adapter_spec`).
    cfg : Config
    params_file : str, optional
        Make the correctness run first, its final parameters saved to this ``.npz``.
    timed : bool
        Time it.

    Returns
    -------
    dict
        The child's result: ``version``, ``pid``, ``blas_threads``, ``check`` (``{curve,
        error}``, with ``params_file``), ``per_rep_s`` and ``steps_per_block`` (when
        timed); ``error`` when it failed, crashed or timed out.
    """
    spec = {"workload": wl.name, "quick": cfg.quick, "optimizer": cfg.optimizer,
            "impl": name, "adapter": adapter_spec(cls), "params_file": params_file,
            "time": timed, "repeat": cfg.repeat, "block_time": cfg.block_time,
            "time_budget": cfg.time_budget, "seed": cfg.seed, "threads": cfg.threads}
    env = _child_env(None)
    if cfg.threads:  # the same threads for every process, whoever called (not only the CLI)
        env.update({var: str(cfg.threads) for var in THREAD_VARS})
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], cwd=str(ROOT),
                              env=env, capture_output=True, text=True,
                              timeout=cfg.process_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"isolated process timed out after {cfg.process_timeout:g} s"}
    found = _result_line(proc.stdout)
    if found is not None:
        return found
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"isolated process died (exit status {proc.returncode}) without a "
                     f"result: {tail}"}


def _pass_order(names: list, p: int) -> list:
    """Round-robin: pass ``p`` starts at the ``p``-th implementation."""
    k = p % len(names) if names else 0
    return names[k:] + names[:k]


def _correctness_of(r: dict, params_file: str) -> dict:
    """The correctness run of a first-pass result, as :func:`benchmarks.check.judge` takes
    it (``{curve, params, error}``)."""
    check = r.get("check") or {"curve": None, "error": r.get("error") or "no correctness run"}
    if check["error"] is not None:
        return {"curve": None, "params": None, "error": check["error"]}
    with np.load(params_file) as saved:
        return {"curve": check["curve"], "params": {k: saved[k] for k in saved.files},
                "error": None}


def _stats_of(runs: list, walls: list) -> dict:
    """The time entry of one implementation from its passes' results."""
    medians = [statistics.median(r["per_rep_s"]) for r in runs]
    return dict(_stats(medians), steps_per_block=runs[-1]["steps_per_block"],
                repeats=len(medians), isolated=True, passes=len(medians),
                per_pass_blocks_s=[r["per_rep_s"] for r in runs], process_s=walls,
                version=runs[-1]["version"], blas_threads=runs[-1]["blas_threads"])


def measure_isolated(wl: Workload, classes: dict, names: list, cfg: Config,
                     progress: Progress) -> tuple:
    """Correctness runs and per-step timing, every implementation in its own processes.

    Parameters
    ----------
    wl : Workload
    classes : dict
        ``{name: adapter class}``; holds the reference.
    names : list of str
        The implementations to time.
    cfg : Config
        ``cfg.passes`` passes, each up to ``cfg.repeat`` blocks per process.
    progress : Progress

    Returns
    -------
    tuple of dict
        ``(runs, stats, errors)``: ``runs`` as :func:`benchmarks.check.run_correctness`
        (the reference included), then ``({name: stats}, {name: error})`` as
        :func:`benchmarks.measure.measure_time`, the stats over the per-pass medians
        (``per_rep_s``; ``repeats`` = passes) plus ``isolated`` (true), ``passes``,
        ``per_pass_blocks_s``, ``process_s`` (wall time of each process), ``version`` and
        ``blas_threads`` as the last process saw them.
    """
    results = {n: [] for n in names}
    walls = {n: [] for n in names}
    runs, errors = {}, {}
    folder = tempfile.mkdtemp(prefix="symgrad-bench-isolated-")
    try:
        checked = names if REFERENCE in names else [REFERENCE] + names
        for p in range(cfg.passes):
            for name in _pass_order(checked if p == 0 else names, p):
                if name in errors:
                    continue  # failed once: no more processes for it
                progress.update(f"isolated pass {p + 1}/{cfg.passes} [{name}], new process")
                params_file = os.path.join(folder, f"{name}.npz") if p == 0 else None
                t0 = time.perf_counter()
                r = run_isolated(wl, name, classes[name], cfg, params_file, name in names)
                if name not in names:  # the reference, for the check only
                    runs[name] = _correctness_of(r, params_file)
                    continue
                walls[name].append(time.perf_counter() - t0)
                if p == 0:
                    runs[name] = _correctness_of(r, params_file)
                if "error" in r or not r.get("per_rep_s"):
                    errors[name] = r.get("error") or "isolated process timed no block"
                else:
                    results[name].append(r)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    stats = {name: _stats_of(rs, walls[name]) for name, rs in results.items()
             if name not in errors and rs}
    return runs, stats, errors
