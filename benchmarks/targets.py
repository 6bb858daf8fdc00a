"""The performance goals of the generated-code issue, checked against a report.

Each goal (:data:`TARGETS`) reads one number of symgrad's results on one workload and
compares it with a limit: PASS when met, MISS when not, SKIP when it was not measured. A
WRONG or failing symgrad misses every goal of its workload, however fast it was.
"""

from __future__ import annotations

import operator
from typing import Callable, NamedTuple, Optional

_COMPARE = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


def _ratio(w: dict, e: dict) -> Optional[float]:
    return e["ratio_to_hand"]


def _speedup(w: dict, e: dict) -> Optional[float]:
    return e["speedup_vs_tape"]


def _memory(w: dict, e: dict) -> Optional[float]:
    hand = w["results"].get("hand", {}).get("peak_memory_bytes")
    mine = e["peak_memory_bytes"]
    return None if not hand or mine is None else mine / hand


def _ratio_to(impl: str) -> Callable:
    """symgrad's median step time over implementation ``impl``'s, in the same run."""
    def value(w: dict, e: dict) -> Optional[float]:
        other = w["results"].get(impl)
        if other is None or other["status"] != "OK":
            return None
        return e["time"]["median_s"] / other["time"]["median_s"]
    return value


def _cold(w: dict, e: dict) -> Optional[float]:
    return w["compile"]["cold_s"]


def _warm(w: dict, e: dict) -> Optional[float]:
    return w["compile"]["warm_s"]


class Target(NamedTuple):
    """One goal: ``value(workload, impl's entry) <op> limit``; ``impl`` is symgrad's default
    step or the one built with ``check_inputs=False``."""

    id: str
    text: str
    workload: str
    value: Callable
    op: str
    limit: float
    unit: str
    impl: str = "symgrad"


TARGETS = (
    Target("W3-hand", "W3 symgrad <= 1.0x hand", "W3", _ratio, "<=", 1.0, "x hand"),
    Target("W0-hand", "W0 symgrad <= 1.0x hand", "W0", _ratio, "<=", 1.0, "x hand"),
    Target("W1-hand", "W1 symgrad <= 1.0x hand", "W1", _ratio, "<=", 1.0, "x hand"),
    Target("W4-hand", "W4 symgrad <= 1.0x hand", "W4", _ratio, "<=", 1.0, "x hand"),
    Target("W0-floats", "W0 symgrad <= 1.5x hand-written Python floats", "W0",
           _ratio_to("floats"), "<=", 1.5, "x floats"),
    Target("W4-floats", "W4 symgrad <= 1.5x hand-written Python floats", "W4",
           _ratio_to("floats"), "<=", 1.5, "x floats"),
    Target("W1-pytensor", "W1 symgrad < 1.0x PyTensor trust_input", "W1",
           _ratio_to("pytensor-trust"), "<", 1.0, "x pytensor-trust"),
    Target("W4-pytensor", "W4 symgrad < 1.0x PyTensor trust_input", "W4",
           _ratio_to("pytensor-trust"), "<", 1.0, "x pytensor-trust"),
    Target("W1-hand-unchecked", "W1 symgrad check_inputs=False <= 1.0x hand", "W1", _ratio,
           "<=", 1.0, "x hand", "symgrad-unchecked"),
    Target("W0-floats-unchecked", "W0 symgrad check_inputs=False <= 1.5x Python floats",
           "W0", _ratio_to("floats"), "<=", 1.5, "x floats", "symgrad-unchecked"),
    Target("W4-floats-unchecked", "W4 symgrad check_inputs=False <= 1.5x Python floats",
           "W4", _ratio_to("floats"), "<=", 1.5, "x floats", "symgrad-unchecked"),
    Target("W5-torch", "W5 symgrad <= 1.0x PyTorch eager", "W5", _ratio_to("torch"), "<=",
           1.0, "x torch"),
    Target("W5-jax", "W5 symgrad <= 1.0x JAX jit", "W5", _ratio_to("jax"), "<=", 1.0,
           "x jax"),
    Target("W0-tape10", "W0 symgrad >= 10x faster than tape", "W0", _speedup, ">=", 10.0,
           "x tape"),
    Target("W1-tape10", "W1 symgrad >= 10x faster than tape", "W1", _speedup, ">=", 10.0,
           "x tape"),
    Target("W0-tape3", "W0 symgrad vs tape >= 3x", "W0", _speedup, ">=", 3.0, "x tape"),
    Target("W1-tape3", "W1 symgrad vs tape >= 3x", "W1", _speedup, ">=", 3.0, "x tape"),
    Target("W3-tape", "W3 symgrad vs tape >= 1.2x", "W3", _speedup, ">=", 1.2, "x tape"),
    Target("W3-cold", "cold compile of the W3 step < 1 s (new process, empty cache)", "W3",
           _cold, "<", 1.0, "s"),
    Target("W3-warm", "warm cache hit in a new process < 50 ms beyond importing symgrad",
           "W3", _warm, "<", 0.05, "s"),
    Target("W3-memory", "peak memory of W3 within 10% of hand", "W3", _memory, "<=", 1.10,
           "x hand"),
)


def _find(report: dict, workload: str) -> Optional[dict]:
    """The report's entry of the workload of that name (None: not run)."""
    for w in report["workloads"]:
        if w["name"] == workload:
            return w
    return None


def _measured(t: Target, w: dict, e: dict) -> Optional[float]:
    """The target's number (None: not measured)."""
    try:
        return t.value(w, e)
    except (KeyError, TypeError):
        return None


def evaluate(t: Target, report: dict) -> dict:
    """One goal against a report.

    Parameters
    ----------
    t : Target
    report : dict
        The report of :func:`benchmarks.suite.run` (``workloads`` is all it reads).

    Returns
    -------
    dict
        ``{id, target, measured, limit, unit, status, note}``.
    """
    row = {"id": t.id, "target": t.text, "measured": None, "limit": t.limit, "unit": t.unit,
           "status": "SKIP", "note": None}
    w = _find(report, t.workload)
    e = None if w is None else w["results"].get(t.impl)
    value = None if e is None else _measured(t, w, e)
    if w is None:
        row["note"] = f"{t.workload} not run"
    elif e is None:
        row["note"] = f"{t.impl} not run"
    elif value is None:
        row["note"] = "not measured"
    else:
        row["measured"] = value
        ok = _COMPARE[t.op](value, t.limit)
        if e["status"] != "OK":
            ok, row["note"] = False, f"{t.impl} is {e['status']} on {t.workload}"
        row["status"] = "PASS" if ok else "MISS"
    return row


def evaluate_targets(report: dict) -> list:
    """Every goal of :data:`TARGETS` against a report.

    Parameters
    ----------
    report : dict

    Returns
    -------
    list of dict
        One row per goal, as :func:`evaluate` returns it, status PASS, MISS or SKIP.
    """
    return [evaluate(t, report) for t in TARGETS]
