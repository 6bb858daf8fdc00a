"""A benchmark run: every selected workload, every available implementation, one report.

For each workload, :func:`run_workload` measures, in this order, symgrad's compile time
(new processes), the correctness of every implementation against ``hand``, the interleaved
time per step and the peak memory (a new process), and puts the numbers of each
implementation side by side with its ratio to ``hand`` and speed-up over ``tape``.
:func:`run` adds the machine, the settings and the performance goals: the document that
``--json`` writes.

The JSON report (``--json``; times in seconds, memory in bytes, ``null`` = not measured)::

    schema            "symgrad-benchmarks/1" (:data:`SCHEMA`)
    command           the command line that produced it
    created           local time, ISO 8601
    machine           platform, python, implementation, numpy, sympy, symgrad, cpu_count,
                      cpus_usable, processor, blas, blas_threads, thread_env,
                      load_average_at_start
    config            quick, repeat, only, impls, optimizer, seed, block_time_s,
                      time_budget_s, memory_steps, compile, memory, compile_repeat,
                      targets, isolated, passes (null unless isolated), threads
    implementations   {name: {available, version, skipped (reason or null), description}}
    skipped           {name: reason} of the requested implementations that are missing
    workloads         [one per workload, in run order:
        name, group ("W0".."W4", "batch", "width", "depth", "W3sweep"), title, dtype,
        optimizer, sweep ({axis, value} or null; W3sweep: value {H, B}), steps_checked,
        reference ("hand"),
        tolerance {rtol}, phase_s {compile, correctness, timing, memory} (--isolated:
        correctness null, its runs are part of the timing processes),
        compile {cold_s, warm_s, import_s, cold_runs_s, warm_runs_s, warm_was_cache_hit,
                 module_lines, repeats} or null, compile_error, memory_measured,
        memory_error, reference_run {loss_curve, error} (only when hand is not timed),
        results {impl: {
            status        "OK" | "WRONG" | "ERROR" | "UNCHECKED"
            error         message or null
            check         {final_loss, reference_final_loss, loss_err, param_err,
                           curve_err, rtol}
            time          {median_s, min_s, max_s, iqr_s, mad_s, per_rep_s,
                           steps_per_block, repeats} or null; --isolated: over the
                           per-pass medians (per_rep_s; repeats = passes), plus
                           isolated, passes, per_pass_blocks_s, process_s, version,
                           blas_threads
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

import time
from contextlib import contextmanager
from typing import Optional

from .check import RTOL, error_text, judge, read_only, run_correctness
from .config import REFERENCE, Config, impl_classes, probe
from .impl_base import OptimizerSpec
from .isolated import measure_isolated
from .machine import machine_info
from .measure import measure_compile, measure_memory, measure_time, median_ratio
from .progress import Progress
from .targets import evaluate_targets
from .workloads import GRID, MAIN_WORKLOADS, SWEEPS, Workload, catalogue, select

#: Identifier of the JSON layout written by ``--json`` (bump on incompatible changes).
SCHEMA = "symgrad-benchmarks/1"


@contextmanager
def _phase(phases: dict, name: str):
    """Time the ``with`` block into ``phases[name]`` (seconds)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - t0


def _header(wl: Workload, opt: OptimizerSpec) -> dict:
    """The fields of a workload's result that describe it, the measurements empty."""
    return {"name": wl.name, "group": wl.group, "title": wl.title, "dtype": wl.dtype,
            "sweep": None if wl.sweep is None else {"axis": wl.sweep[0],
                                                    "value": wl.sweep[1]},
            "optimizer": opt.describe(), "steps_checked": wl.steps,
            "reference": REFERENCE, "tolerance": {"rtol": RTOL[wl.dtype]},
            "results": {}, "compile": None, "compile_error": None, "memory_error": None}


def _ratios(entry: dict, t: Optional[dict], times: dict) -> None:
    """Fill the ratios to hand and the speed-ups over tape of one entry.

    The shown ratios are ratios of the shown medians, so a table never contradicts itself;
    the paired per-repetition ratios (robust to drift) are kept beside them.
    """
    if t and "hand" in times:
        entry["ratio_to_hand"] = t["median_s"] / times["hand"]["median_s"]
        entry["paired_ratio_to_hand"] = median_ratio(t["per_rep_s"],
                                                     times["hand"]["per_rep_s"])
    if t and "tape" in times:
        entry["speedup_vs_tape"] = times["tape"]["median_s"] / t["median_s"]
        entry["paired_speedup_vs_tape"] = median_ratio(times["tape"]["per_rep_s"],
                                                       t["per_rep_s"])


def _entry(check: dict, time_error: Optional[str], times: dict, name: str,
           memory: dict, curve: Optional[list]) -> dict:
    """The result of one implementation on one workload."""
    error = check["error"] or time_error
    entry = {"status": "ERROR" if error else check["status"], "error": error,
             "check": {k: v for k, v in check.items() if k not in ("status", "error")},
             "time": times.get(name), "ratio_to_hand": None, "speedup_vs_tape": None,
             "paired_ratio_to_hand": None, "paired_speedup_vs_tape": None,
             "peak_memory_bytes": memory.get(name), "loss_curve": curve}
    _ratios(entry, times.get(name), times)
    return entry


def _compile_phase(wl: Workload, cfg: Config, names: list, progress: Progress,
                   result: dict) -> None:
    """symgrad's compile time, when asked for and symgrad runs."""
    if cfg.compile and wl.compile and "symgrad" in names:
        try:
            result["compile"] = measure_compile(wl, cfg, progress)
        except Exception as err:
            result["compile_error"] = error_text(err)


def _memory_phase(wl: Workload, cfg: Config, names: list, progress: Progress,
                  result: dict) -> dict:
    """The peak memory of every implementation, when asked for (``{}`` otherwise)."""
    result["memory_measured"] = bool(cfg.memory and wl.memory)
    if not result["memory_measured"]:
        return {}
    progress.update("peak memory, new process")
    try:
        return measure_memory(wl, cfg, names)
    except Exception as err:
        result["memory_error"] = error_text(err)
        return {}


def run_workload(wl: Workload, cfg: Config, classes: dict, names: list,
                 progress: Progress) -> dict:
    """Every measurement of one workload.

    Parameters
    ----------
    wl : Workload
    cfg : Config
    classes : dict
        ``{name: adapter class}``; must hold the reference.
    names : list of str
        The implementations to measure (all available); those that do not support ``wl``
        (``Implementation.supports``) are left out of its results.
    progress : Progress

    Returns
    -------
    dict
        The workload's entry of the report's ``workloads``, JSON-ready.
    """
    names = [n for n in names if classes[n].supports(wl)]
    opt = OptimizerSpec.make(cfg.optimizer, wl.lr)
    init, batches = wl.data()
    batches = read_only(list(batches))
    result = _header(wl, opt)
    phases = result["phase_s"] = {}
    with _phase(phases, "compile"):
        _compile_phase(wl, cfg, names, progress, result)
    if cfg.isolated:  # the correctness runs happen in the first pass's processes
        phases["correctness"] = None
        with _phase(phases, "timing"):
            runs, times, time_errors = measure_isolated(wl, classes, names, cfg, progress)
    else:
        with _phase(phases, "correctness"):
            runs = run_correctness(wl, classes, names, init, batches, opt, progress)
        with _phase(phases, "timing"):
            times, time_errors = measure_time(wl, classes, names, init, batches, opt, cfg,
                                              progress)
    checks = judge(wl, runs, batches)
    with _phase(phases, "memory"):
        memory = _memory_phase(wl, cfg, names, progress, result)
    for name in names:
        result["results"][name] = _entry(checks[name], time_errors.get(name), times, name,
                                         memory, runs[name]["curve"])
    if REFERENCE not in names:  # the reference ran for the check only: keep its curve
        result["reference_run"] = {"loss_curve": runs[REFERENCE]["curve"],
                                   "error": runs[REFERENCE]["error"]}
    return result


def _implementations(cfg: Config) -> tuple:
    """``(classes, wanted, available, skipped)`` of a run; raises on an unknown name or
    when the reference cannot run."""
    classes = impl_classes(cfg.extra_impls)
    wanted = list(cfg.impls) if cfg.impls else list(classes)
    unknown = [n for n in wanted if n not in classes]
    if unknown:
        raise ValueError(f"unknown implementation(s) {unknown}; known: {list(classes)}")
    available, skipped = probe(classes, wanted)
    if REFERENCE not in classes or REFERENCE not in probe(classes, [REFERENCE])[0]:
        raise RuntimeError("the reference implementation 'hand' is not available")
    return classes, wanted, available, skipped


def _workloads(cfg: Config) -> list:
    """The workloads of a run; raises when ``cfg.only`` selects none."""
    workloads = select(catalogue(cfg.quick), cfg.only)
    if not workloads:
        raise ValueError(f"--only {cfg.only} selects no workload; choose from "
                         f"{list(MAIN_WORKLOADS) + list(SWEEPS) + [GRID]}")
    return workloads


def _config_section(cfg: Config, wanted: list) -> dict:
    """The report's ``config``: the settings the run used."""
    return {"quick": cfg.quick, "repeat": cfg.repeat, "only": cfg.only,
            "impls": wanted, "optimizer": cfg.optimizer, "seed": cfg.seed,
            "block_time_s": cfg.block_time, "time_budget_s": cfg.time_budget,
            "memory_steps": cfg.memory_steps,
            "compile": cfg.compile, "memory": cfg.memory,
            "compile_repeat": cfg.compile_repeat, "targets": cfg.targets,
            "isolated": cfg.isolated, "passes": cfg.passes if cfg.isolated else None,
            "threads": cfg.threads}


def run(cfg: Config) -> dict:
    """Run the benchmarks of ``cfg``.

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    dict
        The report (the ``--json`` document).

    Raises
    ------
    ValueError
        An unknown implementation, or ``cfg.only`` selects no workload.
    RuntimeError
        The reference implementation cannot run.
    """
    t_start = time.perf_counter()
    classes, wanted, available, skipped = _implementations(cfg)
    names = [n for n in wanted if n in available]
    workloads = _workloads(cfg)
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
        "config": _config_section(cfg, wanted),
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
