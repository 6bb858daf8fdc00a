"""The command line of ``python -m benchmarks``: parse, run, print, write.

:func:`main` checks the arguments, limits BLAS to ``--threads`` threads, runs the
benchmarks (:func:`benchmarks.suite.run`), prints the terminal report and writes the
``--json``, ``--markdown`` and ``--plots`` outputs. Its exit status is 1 when one of this
project's implementations is WRONG or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

from . import THREAD_VARS
from .config import IMPLEMENTATIONS, PROJECT_IMPLS, Config, impl_classes, probe
from .impl_base import OptimizerSpec
from .machine import limit_blas_threads
from .plots import write_plots
from .report import failures, render_markdown, render_text
from .suite import run
from .workloads import GRID, MAIN_WORKLOADS, SWEEPS, catalogue


def _csv(text: str) -> list:
    """A comma-separated list, blanks dropped."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_mode(p: argparse.ArgumentParser) -> None:
    """``--quick`` / ``--full``."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="the default: short runs, a few sweep points, compile time and "
                           "memory for W3 only, no width x batch grid (well under a minute "
                           "on 2 cores)")
    mode.add_argument("--full", action="store_true",
                      help="the full sweep: every sweep point and the width x batch grid, "
                           "longer timings, compile time and memory on every workload")


def _add_selection(p: argparse.ArgumentParser) -> None:
    """What to run and how: workloads, implementations, repetitions, optimizer."""
    p.add_argument("--only", type=_csv, metavar="LIST",
                   help=f"comma-separated workloads/sweeps, e.g. W0,W3,depth or {GRID} (the "
                        "width x batch grid, not in the quick run by default)")
    p.add_argument("--impl", type=_csv, metavar="LIST",
                   help="comma-separated implementations, e.g. symgrad,hand")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="interleaved timing repetitions (default 15, quick 5); with "
                        "--isolated the blocks each process times")
    p.add_argument("--optimizer", choices=sorted(OptimizerSpec.DEFAULTS), default="sgd",
                   help="update rule for every workload (default sgd, as the tutorials)")
    p.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    p.add_argument("--no-compile", action="store_true",
                   help="skip the compile-time measurements (new processes)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurements (new processes)")
    p.add_argument("--isolated", action="store_true",
                   help="time every implementation in its own process (one per workload and "
                        "pass, round-robin, same --threads) and report the median over the "
                        "passes; the default times them side by side in this process")
    p.add_argument("--passes", type=int, metavar="N",
                   help="--isolated: processes per implementation and workload (default 5, "
                        "quick 3); each times up to --repeat blocks")


def _add_outputs(p: argparse.ArgumentParser) -> None:
    """Where the results go, threads, and the rest."""
    p.add_argument("--json", type=Path, metavar="PATH", help="write the full report as JSON")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="write a Markdown report")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots (matplotlib)")
    p.add_argument("--threads", type=int, metavar="N", default=None,
                   help="BLAS/OpenMP threads and CPUs (default 1, steadier on a busy machine; "
                        "the process and its children are pinned to that many CPUs, which is "
                        "what limits XLA's threads; BLAS threads are set with threadpoolctl "
                        "when installed and through OPENBLAS_NUM_THREADS, "
                        "OMP_NUM_THREADS, ... set before numpy is imported)")
    p.add_argument("--targets", action="store_true",
                   help="also print the performance goals of the generated-code issue as a "
                        "PASS/MISS checklist")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--list", action="store_true", help="list workloads and implementations")


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m benchmarks``.

    Returns
    -------
    argparse.ArgumentParser
    """
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark symgrad's generated train step against the tape baseline, "
                    "hand-written numpy, Python floats (W0, W4) and (when installed) PyTorch, "
                    "JAX, HIPS autograd and "
                    "PyTensor: time per step, compile time, peak memory, correctness.",
        epilog=f"Workloads: {', '.join(MAIN_WORKLOADS)}; sweeps: {', '.join(SWEEPS)} "
               f"('sweeps' = all three); {GRID}: hidden width x batch grid of W3 (in --full, "
               f"or --only {GRID}). Implementations: {', '.join(IMPLEMENTATIONS)}. "
               "Exit status 1 when one of this project's implementations "
               f"({', '.join(PROJECT_IMPLS)}) is WRONG or fails.")
    _add_mode(p)
    _add_selection(p)
    _add_outputs(p)
    return p


def _list(quick: bool) -> int:
    """``--list``: the workloads, then every implementation and its version."""
    for wl in catalogue(quick):
        print(f"{wl.name:16} [{wl.group}] {wl.title}")
    available, skipped = probe(impl_classes(), list(IMPLEMENTATIONS))
    for name in IMPLEMENTATIONS:
        print(f"{name:10} " + (available[name] if name in available else
                                f"skipped: {skipped[name]}"))
    return 0


def _validate(p: argparse.ArgumentParser, args: argparse.Namespace, quick: bool) -> None:
    """Exit through ``p.error`` on an unknown name or a count below 1."""
    known = set(MAIN_WORKLOADS) | set(SWEEPS) | {"sweeps", GRID}
    names = {wl.name for wl in catalogue(quick)}
    bad = [o for o in args.only or [] if o not in known and o not in names]
    if bad:
        p.error(f"--only: unknown {bad}; choose from {sorted(known)}")
    bad = [i for i in args.impl or [] if i not in IMPLEMENTATIONS]
    if bad:
        p.error(f"--impl: unknown {bad}; choose from {list(IMPLEMENTATIONS)}")
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    if args.passes is not None and (args.passes < 1 or not args.isolated):
        p.error("--passes needs --isolated and must be at least 1")


def _set_threads(threads: int) -> None:
    """Limit BLAS to ``threads`` here (threadpoolctl) and in the child processes (the
    environment variables). (``python -m benchmarks`` also pins itself to that many CPUs
    first: :func:`benchmarks.machine.pin_cpus`.)"""
    if not limit_blas_threads(threads) and any(os.environ.get(v) != str(threads)
                                               for v in THREAD_VARS):
        # numpy is loaded already (main() called in-process, no threadpoolctl): the
        # variables reach the child processes only
        print(f"note: {threads} BLAS thread(s) applies to this process only when run as "
              "`python -m benchmarks` or with threadpoolctl installed", file=sys.stderr)
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (parent folders created) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


def _write_outputs(args: argparse.Namespace, report: dict) -> None:
    """``--json``, ``--markdown`` and ``--plots``."""
    if args.json:
        _write_text(args.json, json.dumps(report, indent=1, allow_nan=True) + "\n")
    if args.markdown:
        _write_text(args.markdown, render_markdown(report))
    if args.plots:
        try:
            files = write_plots(report, args.plots)
            print(f"wrote {len(files)} plots to {args.plots}")
        except ImportError:
            print("matplotlib is not installed: skipping --plots "
                  "(pip install matplotlib, or pip install 'symgrad[plots]')")


def main(argv: Optional[list] = None) -> int:
    """``python -m benchmarks``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 1 when one of this project's implementations is WRONG or fails.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    args = p.parse_args(argv)
    quick = not args.full
    if args.list:
        return _list(quick)
    _validate(p, args, quick)
    threads = 1 if args.threads is None else args.threads
    _set_threads(threads)
    cfg = Config(quick=quick, repeat=args.repeat, only=args.only, impls=args.impl,
                 optimizer=args.optimizer, seed=args.seed, compile=not args.no_compile,
                 memory=not args.no_memory,
                 progress=not args.no_progress, targets=args.targets,
                 command=shlex.join(["python", "-m", "benchmarks", *argv]),
                 isolated=args.isolated, passes=args.passes, threads=threads)
    report = run(cfg)
    print(render_text(report))
    _write_outputs(args, report)
    return 1 if failures(report) else 0
