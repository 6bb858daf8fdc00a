"""Correctness of every implementation against the hand-written reference.

Every implementation starts from the same initial values and takes the same read-only
batches for ``workload.steps`` steps; :func:`judge` compares its loss curve, its final loss
(evaluated in float64 by a plain numpy oracle) and its final parameters with those of the
reference run. Errors are relative to the largest reference loss; beyond :data:`RTOL` of the
workload's dtype an implementation is ``WRONG``, however fast it is.
"""

from __future__ import annotations

import math
import traceback
from pathlib import Path

import numpy as np

from .config import REFERENCE
from .impl_base import NUMPY_OPS, OptimizerSpec
from .progress import Progress
from .workloads import Workload

#: Relative tolerance of the check, by the workload's dtype.
RTOL = {"float32": 1e-4, "float64": 1e-9}


def error_text(err: BaseException) -> str:
    """An exception as one line: its type, message and where it was raised.

    Parameters
    ----------
    err : BaseException

    Returns
    -------
    str
        E.g. ``"ValueError: bad shape at hand.py:42"``.
    """
    tb = traceback.extract_tb(err.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(err).__name__}: {err}{where}"


def read_only(batches: list) -> list:
    """The batches with every array made read-only: an implementation that writes into
    its inputs fails loudly instead of corrupting the next one's data.

    Parameters
    ----------
    batches : list of tuple
        The workload's batches; their arrays are changed in place.

    Returns
    -------
    list of tuple
        ``batches`` itself.
    """
    for batch in batches:
        for a in batch:
            if isinstance(a, np.ndarray):
                a.setflags(write=False)
    return batches


def oracle_loss(wl: Workload, params: dict, batch: tuple) -> float:
    """The workload's loss in float64 numpy.

    Parameters
    ----------
    wl : Workload
    params : dict
        ``{name: array}`` of the parameters.
    batch : tuple
        One batch, in ``wl.inputs`` order.

    Returns
    -------
    float
    """
    p = {n: np.asarray(v, dtype=np.float64) for n, v in params.items()}
    b = {n: np.asarray(a, dtype=np.float64) for n, a in zip(wl.input_names, batch)}
    return float(wl.loss(NUMPY_OPS, p, b))


def correctness_run(wl: Workload, cls: type, init: dict, batches: list,
                    opt: OptimizerSpec) -> dict:
    """Train a fresh instance of one implementation for ``wl.steps`` steps.

    Parameters
    ----------
    wl : Workload
    cls : type
        The adapter class.
    init : dict
        The initial parameters.
    batches : list of tuple
        Step ``i`` takes ``batches[i % len(batches)]``.
    opt : OptimizerSpec

    Returns
    -------
    dict
        ``{"curve", "params", "error"}``: the loss of every step, the final parameters, and
        the error text of a failed run (its curve and parameters ``None``).
    """
    try:
        impl = cls()
        impl.setup(wl, init, opt)
        curve = [float(impl.step(batches[i % len(batches)])) for i in range(wl.steps)]
        run = {"curve": curve, "params": impl.params(), "error": None}
        impl.close()
        return run
    except Exception as err:
        return {"curve": None, "params": None, "error": error_text(err)}


def run_correctness(wl: Workload, classes: dict, names: list, init: dict, batches: list,
                    opt: OptimizerSpec, progress: Progress) -> dict:
    """Train a fresh instance of each implementation for ``wl.steps`` steps.

    Parameters
    ----------
    wl : Workload
    classes : dict
        ``{name: adapter class}``.
    names : list of str
        The implementations to run; the reference is always run, first.
    init : dict
        The initial parameters.
    batches : list of tuple
        Step ``i`` takes ``batches[i % len(batches)]``.
    opt : OptimizerSpec
    progress : Progress

    Returns
    -------
    dict
        ``{name: run}``, each as from :func:`correctness_run`.
    """
    runs = {}
    for name in [REFERENCE] + [n for n in names if n != REFERENCE]:
        progress.update(f"correctness [{name}]")
        runs[name] = correctness_run(wl, classes[name], init, batches, opt)
    return runs


def judge(wl: Workload, runs: dict, batches: list) -> dict:
    """Compare every run with the reference run.

    Parameters
    ----------
    wl : Workload
    runs : dict
        As returned by :func:`run_correctness`; must hold the reference.
    batches : list of tuple
        The final losses are evaluated on ``batches[0]``.

    Returns
    -------
    dict
        ``{name: check}``, a check holding ``status`` (OK / WRONG / ERROR / UNCHECKED, the
        last when the reference run failed), ``error``, ``final_loss``,
        ``reference_final_loss``, ``loss_err``, ``param_err``, ``curve_err`` and ``rtol``.
    """
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
                check["error"] = f"cannot compare with {REFERENCE}: {error_text(err)}"
    return out


def _flat_params(wl: Workload, params: dict) -> np.ndarray:
    """All parameters of ``wl`` as one float64 vector."""
    return np.concatenate([np.ravel(np.asarray(params[n], dtype=np.float64))
                           for n in wl.param_shapes])


def _compare(wl, run, ref, batches, check) -> None:
    """Fill ``check`` for one run against the reference run ``ref`` (None: unusable)."""
    check["final_loss"] = oracle_loss(wl, run["params"], batches[0])
    if ref is None:
        check["status"] = "UNCHECKED"
        return
    ref_curve = np.asarray(ref["curve"], dtype=np.float64)
    ref_final = oracle_loss(wl, ref["params"], batches[0])
    scale = max(float(np.max(np.abs(ref_curve))), abs(ref_final), 1e-30)
    mine, theirs = _flat_params(wl, run["params"]), _flat_params(wl, ref["params"])
    if mine.shape != theirs.shape or len(run["curve"]) != len(ref_curve):
        raise ValueError("parameter or loss-curve sizes differ from the reference")
    check["reference_final_loss"] = ref_final
    check["curve_err"] = float(np.max(np.abs(np.asarray(run["curve"]) - ref_curve))) / scale
    check["loss_err"] = abs(check["final_loss"] - ref_final) / scale
    check["param_err"] = float(np.linalg.norm(mine - theirs)) / max(
        float(np.linalg.norm(theirs)), 1e-30)
    errors = (check["curve_err"], check["loss_err"], check["param_err"])
    good = all(math.isfinite(e) and e <= check["rtol"] for e in errors)
    check["status"] = "OK" if good else "WRONG"
