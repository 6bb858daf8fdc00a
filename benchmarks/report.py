"""Rendering a benchmark report: the terminal text, the Markdown file, the legend.

Both renderings show the same tables from the same rows (:func:`workload_rows`,
:func:`sweep_tables`): one table per main workload, one per sweep, the legend of the
columns (:data:`LEGEND`), notes where the timings were unsteady, and with ``--targets``
the performance goals as a checklist. :func:`failures` lists the implementations that are
not correct; the command line's exit status depends on it.
"""

from __future__ import annotations

import textwrap
from typing import Optional

from .config import PROJECT_IMPLS, REFERENCE
from .workloads import GRID, GRID_TITLE, SWEEP_TITLES, SWEEPS

HEADERS = ["impl", "median", "min", "max", "IQR", "med/hand", "tape/med", "peak mem", "check"]

#: What the columns of the tables mean (printed under them).
LEGEND = (
    "median, min, max, IQR: time per training step over the interleaved repetitions "
    "(IQR: spread between the 25th and 75th percentiles); with --isolated over the passes, "
    "each pass one new process per implementation, its value that process's median",
    "med/hand: this row's median / hand's median (below 1.00x: faster than hand-written "
    "numpy)",
    "tape/med: symgrad.tape's median / this row's median (how many times faster than the "
    "tape)",
    "peak mem: tracemalloc peak of setup + a few steps in a new process (n/a: the "
    "framework's buffers are invisible to tracemalloc; -: not measured)",
    "check: OK/WRONG and the largest relative error against hand (loss curve, final loss, "
    "final parameters); a WRONG row gets no ratio",
    "sweeps: median time per step at each point; symgrad/hand is the ratio of the medians",
    f"{GRID} (width x batch grid): hand's median time per step in each cell, then one table "
    "per implementation of its median / hand's median in each cell (WRONG/ERROR: not "
    "correct there; -: not run)",
)

#: How far the paired per-repetition ratio may stray from the ratio of the medians before a
#: table says the timings were unsteady.
UNSTEADY = 1.25

# -- numbers ---------------------------------------------------------------------------------

def fmt_time(s: Optional[float]) -> str:
    """Seconds as ``812 ns``, ``3.52 µs``, ``724 µs``, ``12.3 ms`` or ``1.20 s``.

    Parameters
    ----------
    s : float or None
        Seconds; ``None`` shows as ``-``.

    Returns
    -------
    str
    """
    if s is None:
        return "-"
    for scale, unit in ((1e-6, "ns"), (1e-3, "µs"), (1.0, "ms")):
        if abs(s) < scale:
            v = s / scale * 1e3
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{s:.3g} s"


def fmt_bytes(n: Optional[int]) -> str:
    """Bytes as ``512 B``, ``3.5 KiB``, ``12.0 MiB`` or ``1.2 GiB`` (``None``: ``n/a``).

    Parameters
    ----------
    n : int or None

    Returns
    -------
    str
    """
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_x(v: Optional[float]) -> str:
    """A ratio as ``0.93x`` or ``120x`` (``None``: ``-``).

    Parameters
    ----------
    v : float or None

    Returns
    -------
    str
    """
    return "-" if v is None else f"{v:.2f}x" if v < 100 else f"{v:.0f}x"


# -- rows and tables -------------------------------------------------------------------------

def _check_text(entry: dict, name: str) -> str:
    """The check column: the status and the largest relative error."""
    status = entry["status"]
    if status == "ERROR":
        return "ERROR"
    if name == REFERENCE:
        return "OK (ref)"
    err = max((entry["check"][k] or 0.0) for k in ("curve_err", "loss_err", "param_err"))
    return f"{status} {err:.1e}" if status in ("OK", "WRONG") else status


def workload_rows(w: dict) -> list:
    """Table rows of one workload.

    Parameters
    ----------
    w : dict
        One entry of the report's ``workloads``.

    Returns
    -------
    list of list
        Per implementation: impl, median, min, max, IQR, x hand, vs tape, memory, check. A
        WRONG implementation's speed is not reported as a ratio.
    """
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


def _text_table(headers: list, rows: list, indent: str = "  ") -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
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
    """A Markdown table, the columns after the first right-aligned."""
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _compile_line(w: dict) -> Optional[str]:
    """symgrad's compile times of one workload, as a sentence (None: not measured)."""
    c = w.get("compile")
    if w.get("compile_error"):
        return f"compile (symgrad): ERROR {w['compile_error']}"
    if not c:
        return None
    hit = "" if c["warm_was_cache_hit"] else " (NOT a cache hit)"
    return (f"compile (symgrad, new process): cold {fmt_time(c['cold_s'])}, warm "
            f"{fmt_time(c['warm_s'])}{hit} beyond import symgrad ({fmt_time(c['import_s'])}); "
            f"{c['module_lines']} generated lines")


def _sweep_columns(points: list) -> tuple:
    """``(names, has symgrad, memory column, compile columns, headers)`` of a sweep."""
    axis = points[0]["group"]
    names = list(points[0]["results"])
    sg = "symgrad" in names
    memory = sg and "hand" in names and any(w.get("memory_measured") for w in points)
    compiled = any(w.get("compile") for w in points)
    headers = [axis] + names + (["symgrad/hand"] if sg else []) + (
        ["mem sg/hand"] if memory else []) + (
        ["compile cold", "warm"] if compiled else [])
    return names, sg, memory, compiled, headers


def _sweep_row(w: dict, names: list, sg: bool, memory: bool, compiled: bool) -> list:
    """One point of a sweep: the medians, then the columns its table has."""
    row = [w["sweep"]["value"]]
    for n in names:
        e = w["results"][n]
        cell = fmt_time((e["time"] or {}).get("median_s"))
        row.append(cell if e["status"] == "OK" or n == REFERENCE else f"{e['status']} {cell}")
    if sg:
        e = w["results"]["symgrad"]
        row.append(fmt_x(e["ratio_to_hand"]) if e["status"] == "OK" else e["status"])
    if memory:
        mine, hand = (w["results"][n]["peak_memory_bytes"] for n in ("symgrad", "hand"))
        row.append(fmt_x(mine / hand) if mine and hand else "-")
    if compiled:
        c = w.get("compile") or {}
        row += [fmt_time(c.get("cold_s")), fmt_time(c.get("warm_s"))]
    return row


def sweep_tables(report: dict) -> list:
    """The tables of the sweeps in a report.

    Parameters
    ----------
    report : dict

    Returns
    -------
    list of tuple
        ``(axis, headers, rows)`` per sweep that ran: median per-step time of each
        implementation at each point, symgrad's time and peak memory relative to hand, and
        its compile times where they were measured.
    """
    out = []
    for axis in SWEEPS:
        points = [w for w in report["workloads"] if w["group"] == axis]
        if points:
            names, sg, memory, compiled, headers = _sweep_columns(points)
            out.append((axis, headers,
                        [_sweep_row(w, names, sg, memory, compiled) for w in points]))
    return out


def _grid_cell(e: Optional[dict], name: str) -> str:
    """One cell of a grid table: hand's time, another implementation's ratio to it."""
    if e is None:
        return "-"
    if e["status"] != "OK" and name != REFERENCE:
        return e["status"]
    if name == REFERENCE:
        return fmt_time((e["time"] or {}).get("median_s"))
    return fmt_x(e["ratio_to_hand"])


def grid_tables(report: dict) -> list:
    """The tables of the width x batch grid (:data:`benchmarks.workloads.GRID`), if it ran.

    Parameters
    ----------
    report : dict

    Returns
    -------
    list of tuple
        ``(title, headers, rows)``: first hand's median time per step, then per other
        implementation its ratio to hand; a row per hidden width H, a column per batch B.
        Every H and B that ran has its row and column; a cell that did not run shows ``-``.
    """
    points = [w for w in report["workloads"] if w["group"] == GRID]
    if not points:
        return []
    cells = {(w["sweep"]["value"]["H"], w["sweep"]["value"]["B"]): w["results"]
             for w in points}
    widths = sorted({h for h, _ in cells})
    batches = sorted({b for _, b in cells})
    names = list(dict.fromkeys(n for results in cells.values() for n in results))
    headers = ["H \\ B"] + [str(b) for b in batches]
    out = []
    for name in names:
        title = (f"{name}: median time per step" if name == REFERENCE
                 else f"{name}/{REFERENCE}: ratio of the median times per step")
        rows = [[h] + [_grid_cell(cells.get((h, b), {}).get(name), name) for b in batches]
                for h in widths]
        out.append((title, headers, rows))
    return out


def unsteady_notes(w: dict) -> list:
    """Where the timings of one workload were unsteady.

    That is where the median of the per-repetition paired ratios strays from the ratio of
    the medians by more than :data:`UNSTEADY`: the step times moved a lot during the run
    (load on the machine), and both ratios are worth reading with care.

    Parameters
    ----------
    w : dict
        One entry of the report's ``workloads``.

    Returns
    -------
    list of str
        One note per pair of implementations, each pair once.
    """
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
    """``[status, goal, measured (note)]`` per performance goal."""
    rows = []
    for t in report["targets"]:
        value = t["measured"]
        shown = "-" if value is None else (fmt_time(value) if t["unit"] == "s"
                                           else fmt_x(value))
        note = f" ({t['note']})" if t["note"] else ""
        rows.append([t["status"], t["target"], shown + note])
    return rows


def _repeats(w: dict) -> int:
    """How many timing repetitions ran (the most of any implementation)."""
    return max([(e["time"] or {}).get("repeats", 0) for e in w["results"].values()] or [0])


def _how_timed(w: dict) -> str:
    """``5 interleaved repetitions``, or with --isolated ``3 passes of one process per
    implementation``."""
    n = _repeats(w)
    if any((e["time"] or {}).get("isolated") for e in w["results"].values()):
        return f"{n} passes of one process per implementation"
    return f"{n} interleaved repetitions"


def _describe(w: dict) -> str:
    """The heading sentence of a workload's table."""
    return f"{w['name']}: {w['title']}, {w['optimizer']}, {w['steps_checked']} steps checked"


def _errors(w: dict) -> list:
    """``(impl, error)`` of every implementation of a workload that failed."""
    return [(name, e["error"]) for name, e in w["results"].items() if e["error"]]


def _main_workloads(report: dict) -> list:
    """The workloads of a report that are not sweep points."""
    return [w for w in report["workloads"] if w["sweep"] is None]


def failures(report: dict, all_impls: bool = False) -> list:
    """The implementations that are not correct.

    Parameters
    ----------
    report : dict
    all_impls : bool
        List every implementation, not only this project's own (:data:`PROJECT_IMPLS`).

    Returns
    -------
    list of str
        ``"W3/symgrad WRONG"`` for every implementation that is WRONG or failed.
    """
    out = []
    for w in report["workloads"]:
        for name, e in w["results"].items():
            if e["status"] in ("WRONG", "ERROR") and (all_impls or name in PROJECT_IMPLS):
                out.append(f"{w['name']}/{name} {e['status']}")
    return out


# -- the terminal ----------------------------------------------------------------------------

def _text_header(report: dict) -> list:
    """The first line (mode, machine, BLAS threads) and the skipped implementations."""
    m, cfg = report["machine"], report["config"]
    threads = m.get("blas_threads") or m.get("thread_env", {}).get("OPENBLAS_NUM_THREADS",
                                                                    "default")
    mode = "quick run (--full: every sweep point, longer timings)" if cfg["quick"] \
        else "full run"
    if cfg.get("isolated"):
        mode += f", isolated ({cfg['passes']} passes of one process per implementation)"
    out = [f"symgrad benchmarks, {mode} -- {m['platform']}, Python {m['python']}, numpy "
           f"{m['numpy']}, {m['cpu_count']} CPUs ({m['processor']}), BLAS threads: "
           f"{threads}" + _affinity_text(m)]
    if report["skipped"]:
        out.append("skipped: " + ", ".join(f"{n} ({r})" for n, r in report["skipped"].items()))
    return out


def _affinity_text(m: dict) -> str:
    """``, pinned to CPU 1`` when the run could use fewer CPUs than the machine has."""
    cpus = m.get("cpu_affinity")
    if not cpus or len(cpus) >= (m.get("cpu_count") or 0):
        return ""
    return f", pinned to CPU{'s' if len(cpus) > 1 else ''} {', '.join(map(str, cpus))}"


def _text_workload(w: dict) -> list:
    """One main workload: heading, table, notes, compile line, errors."""
    out = ["", _describe(w) + f"; {_how_timed(w)}",
           _text_table(HEADERS, workload_rows(w))]
    out += ["  note: " + note for note in unsteady_notes(w)]
    line = _compile_line(w)
    if line:
        out.append("  " + line)
    if w.get("memory_error"):
        out.append(f"  peak memory: ERROR {w['memory_error']}")
    out += [f"  {name}: {error}" for name, error in _errors(w)]
    return out


def _text_sweeps(report: dict) -> list:
    """One table per sweep, then the errors of its points."""
    out = []
    for axis, headers, rows in sweep_tables(report):
        out += ["", f"Sweep: {SWEEP_TITLES[axis]} (median time per step)",
                _text_table(headers, rows)]
        for w in report["workloads"]:
            if w["group"] == axis:
                out += [f"  {w['name']} {name}: {error}" for name, error in _errors(w)]
    return out


def _text_grid(report: dict) -> list:
    """The width x batch grid: one small table per implementation, then its errors."""
    tables = grid_tables(report)
    if not tables:
        return []
    out = ["", f"Grid: {GRID_TITLE} (rows H, columns B)"]
    for title, headers, rows in tables:
        out += [f"  {title}", _text_table(headers, rows, indent="    ")]
    for w in report["workloads"]:
        if w["group"] == GRID:
            out += [f"  {w['name']} {name}: {error}" for name, error in _errors(w)]
    return out


def _text_targets(report: dict) -> list:
    """The goals as a checklist with ``--targets``, else a line saying how to get it."""
    if not report["config"].get("targets"):
        return ["(--targets lists the performance goals of the generated-code issue as "
                "PASS/MISS)"]
    out = ["Performance goals of the generated-code issue (PASS: met in this run; "
           "MISS: not met on this machine in this run, a goal and not an error; "
           "SKIP: not measured)"]
    out += [f"  [{status:4}] {text}: {value}" for status, text, value in _target_rows(report)]
    return out


def render_text(report: dict) -> str:
    """The terminal report.

    Parameters
    ----------
    report : dict
        The report of :func:`benchmarks.suite.run`.

    Returns
    -------
    str
    """
    out = _text_header(report)
    for w in _main_workloads(report):
        out += _text_workload(w)
    out += _text_sweeps(report)
    out += _text_grid(report)
    out += ["", "Columns"]
    out += [textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="    ")
            for line in LEGEND]
    out.append("")
    out += _text_targets(report)
    wrong = failures(report, all_impls=True)
    if wrong:
        out += ["", "NOT CORRECT: " + ", ".join(wrong)]
    out.append(f"\n{len(report['workloads'])} workloads in {report['elapsed_s']:.1f} s")
    return "\n".join(out)


# -- Markdown --------------------------------------------------------------------------------

def _md_machine(m: dict) -> list:
    """The machine as a two-column table."""
    out = ["| machine | |", "|---|---|"]
    for key in ("platform", "processor", "cpu_count", "cpus_usable", "python", "numpy",
                "sympy", "symgrad", "blas", "thread_env", "load_average_at_start"):
        if key in m:
            value = m[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "(not set)"
            out.append(f"| {key} | {value} |")
    return out


def _md_method(cfg: dict) -> list:
    """How the numbers were measured, in one paragraph."""
    if cfg.get("isolated"):
        timing = (f"Per-step times: isolated, {cfg['passes']} passes round-robin over the "
                  "implementations, each pass one new process per implementation timing up "
                  f"to {cfg['repeat']} blocks of steps; the median over the passes of each "
                  "process's median")
    else:
        timing = (f"Per-step times: up to {cfg['repeat']} repetitions interleaved across "
                  "implementations (shuffled order each repetition)")
    return ["", f"{timing}; ratios are ratios of the "
            "medians shown. Correctness: same initial values and batches as `hand`, "
            "errors relative to the largest reference loss, rtol 1e-4 (float32) / 1e-9 "
            "(float64). Peak memory: tracemalloc over "
            f"setup + {cfg['memory_steps']} steps in a new process (what setup keeps plus "
            "the steps' high-water mark; n/a where tracemalloc cannot see the buffers)."]


def _md_implementations(impls: dict) -> list:
    """The implementations: version and description, or why one was skipped."""
    out = ["", "| implementation | version | |", "|---|---|---|"]
    for name, info in impls.items():
        about = info["description"] if info["available"] else f"skipped: {info['skipped']}"
        out.append(f"| {name} | {info['version'] or '-'} | {about} |")
    return out


def _md_workload(w: dict) -> list:
    """One main workload: heading, table, notes, compile line, errors."""
    out = ["", f"## {w['name']}", "",
           _describe(w) + f"; {_how_timed(w)}.", "",
           _md_table(HEADERS, workload_rows(w))]
    notes = unsteady_notes(w)
    if notes:
        out += [""] + [f"Note: {n}" for n in notes]
    line = _compile_line(w)
    if line:
        out += ["", line[0].upper() + line[1:] + "."]
    for name, error in _errors(w):
        out += ["", f"`{name}`: `{error}`"]
    return out


def _md_targets(report: dict) -> list:
    """The goals as a Markdown checklist (only with ``--targets``)."""
    if not report["config"].get("targets"):
        return []
    out = ["", "## Performance goals of the generated-code issue", "",
           "PASS: met in this run; MISS: not met on this machine in this run (a goal, "
           "not an error); SKIP: not measured.", ""]
    for status, text, value in _target_rows(report):
        mark = "x" if status == "PASS" else " "
        out.append(f"- [{mark}] **{status}** {text}: {value}")
    return out


def render_markdown(report: dict) -> str:
    """The ``--markdown`` report: the command, the machine, every table.

    Parameters
    ----------
    report : dict
        The report of :func:`benchmarks.suite.run`.

    Returns
    -------
    str
    """
    out = ["# symgrad benchmarks", "",
           f"Produced by `{report['command']}` on {report['created']}.", ""]
    out += _md_machine(report["machine"])
    out += _md_method(report["config"])
    out += _md_implementations(report["implementations"])
    for w in _main_workloads(report):
        out += _md_workload(w)
    for axis, headers, rows in sweep_tables(report):
        out += ["", f"## Sweep over {axis}", "", f"{SWEEP_TITLES[axis]}; median time per step.",
                "", _md_table(headers, rows)]
    tables = grid_tables(report)
    if tables:
        out += ["", f"## Sweep over width x batch ({GRID})", "",
                f"{GRID_TITLE}; rows H, columns B."]
        for title, headers, rows in tables:
            out += ["", f"{title[0].upper()}{title[1:]}:", "", _md_table(headers, rows)]
    out += ["", "## Columns", ""] + [f"- {line}" for line in LEGEND]
    out += _md_targets(report)
    wrong = failures(report, all_impls=True)
    if wrong:
        out += ["", "**NOT CORRECT:** " + ", ".join(wrong)]
    return "\n".join(out) + "\n"
