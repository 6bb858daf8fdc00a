"""Tests of the benchmarks, ``python -m benchmarks`` (the modules of ``benchmarks/``).

A quick run on a tiny configuration must finish and write a report with the documented
fields; the correctness check must flag an implementation whose update is off by a factor
(or whose reported loss is off) as WRONG, not fast; a failing or missing implementation is
reported, never a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``benchmarks`` is not installed: import it from the tree
    sys.path.insert(0, str(ROOT))

from benchmarks import cli  # noqa: E402
from benchmarks.check import judge  # noqa: E402
from benchmarks.config import Config  # noqa: E402
from benchmarks.machine import blas_threads, limit_blas_threads  # noqa: E402
from benchmarks.plots import write_plots  # noqa: E402
from benchmarks.report import failures, render_markdown, render_text, unsteady_notes  # noqa: E402
from benchmarks.suite import SCHEMA, run  # noqa: E402
from benchmarks.targets import evaluate_targets  # noqa: E402
from benchmarks.workloads import find_workload  # noqa: E402
from benchmarks.impl_base import Implementation  # noqa: E402
from benchmarks.impl_hand import HandImpl  # noqa: E402


#: the tests of this module share one private cache (conftest's ``module_cache_env``)
pytestmark = pytest.mark.usefixtures("module_cache_env")


# ---------------------------------------------------------------------------------------------
# Implementations that misbehave on purpose
# ---------------------------------------------------------------------------------------------

class OffByFactor(HandImpl):
    """The hand-written step with a learning rate 1.5 times too large: a wrong update."""

    name = "offbyfactor"

    def setup(self, workload, init, optimizer):
        super().setup(workload, init, type(optimizer)(optimizer.kind, optimizer.lr * 1.5,
                                                      optimizer.hyper))


class LossLiar(HandImpl):
    """Right updates, but the loss it reports is 1 % off."""

    name = "lossliar"

    def step(self, batch):
        return 1.01 * super().step(batch)


class Crashes(HandImpl):
    """Fails at the third step."""

    name = "crashes"

    def setup(self, workload, init, optimizer):
        super().setup(workload, init, optimizer)
        self._calls = 0

    def step(self, batch):
        self._calls += 1
        if self._calls == 3:
            raise FloatingPointError("boom")
        return super().step(batch)


class WritesInput(HandImpl):
    """Scribbles over its batch (the runner's batches are read-only)."""

    name = "writesinput"

    def step(self, batch):
        batch[0][...] = 0.0
        return super().step(batch)


class Dies(HandImpl):
    """Kills its own process at the first step, as a crash in C code would: no traceback,
    no result (in-process it would take the run down, so it runs only isolated)."""

    name = "dies"

    def step(self, batch):
        os._exit(3)


class NotInstalled(Implementation):
    name = "notinstalled"

    @classmethod
    def version(cls):
        raise ImportError("No module named 'notinstalled'")


EXTRA = {c.name: c for c in (OffByFactor, LossLiar, Crashes, WritesInput, NotInstalled)}


# ---------------------------------------------------------------------------------------------
# A quick run on a tiny configuration
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """``main --quick`` on W3 (with compile and memory, new processes) and W4."""
    out = tmp_path_factory.mktemp("quick")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMGRAD_CACHE_DIR", str(out / "cache"))
        status = cli.main(["--quick", "--only", "W3,W4", "--impl", "hand,symgrad,tape",
                           "--repeat", "3", "--no-progress", "--targets",
                           "--json", str(out / "r.json"),
                           "--markdown", str(out / "r.md")])
    return status, json.loads((out / "r.json").read_text()), (out / "r.md").read_text()


def test_quick_run_finishes_with_documented_json(quick_report):
    status, report, _ = quick_report
    assert status == 0
    assert report["schema"] == SCHEMA
    assert report["command"].startswith("python -m benchmarks --quick")
    for key in ("platform", "python", "numpy", "cpu_count"):
        assert report["machine"][key]
    assert set(report["config"]) >= {"quick", "repeat", "only", "impls", "optimizer"}
    assert report["implementations"]["symgrad"]["available"]
    assert [w["name"] for w in report["workloads"]] == ["W3", "W4"]
    for w in report["workloads"]:
        assert set(w) >= {"name", "group", "title", "dtype", "sweep", "optimizer",
                          "steps_checked", "reference", "tolerance", "results", "compile"}
        assert list(w["results"]) == ["hand", "symgrad", "tape"]
        for name, e in w["results"].items():
            assert e["status"] == "OK", (w["name"], name, e)
            t = e["time"]
            assert set(t) >= {"median_s", "min_s", "max_s", "iqr_s", "mad_s", "per_rep_s",
                              "steps_per_block", "repeats"}
            assert t["min_s"] <= t["median_s"] <= t["max_s"]
            assert t["repeats"] == 3 == len(t["per_rep_s"])
            assert e["ratio_to_hand"] > 0 and e["speedup_vs_tape"] > 0
            assert len(e["loss_curve"]) == w["steps_checked"]
            assert set(e["check"]) >= {"final_loss", "reference_final_loss", "loss_err",
                                       "param_err", "curve_err", "rtol"}
        assert w["results"]["hand"]["ratio_to_hand"] == 1.0
        # the ratios shown are ratios of the medians shown: a table cannot contradict itself
        hand, tape = (w["results"][n]["time"]["median_s"] for n in ("hand", "tape"))
        for name, e in w["results"].items():
            med = e["time"]["median_s"]
            assert e["ratio_to_hand"] == pytest.approx(med / hand, rel=1e-12)
            assert e["speedup_vs_tape"] == pytest.approx(tape / med, rel=1e-12)
            assert e["paired_ratio_to_hand"] > 0 and e["paired_speedup_vs_tape"] > 0
    w3 = report["workloads"][0]
    assert w3["tolerance"]["rtol"] == 1e-4 and report["workloads"][1]["tolerance"]["rtol"] == 1e-9
    c = w3["compile"]
    assert c["cold_s"] > 0 and c["warm_s"] > 0 and c["import_s"] > 0
    assert c["warm_was_cache_hit"]
    assert all(w3["results"][n]["peak_memory_bytes"] > 0 for n in ("hand", "symgrad", "tape"))
    ids = {t["id"]: t for t in report["targets"]}
    assert ids["W3-hand"]["status"] in ("PASS", "MISS")
    assert ids["W3-cold"]["measured"] == c["cold_s"]
    assert ids["W0-hand"]["status"] == "SKIP"  # W0 was not run


def test_markdown_states_command_and_machine(quick_report):
    _, report, md = quick_report
    assert f"`{report['command']}`" in md
    for key in ("platform", "python", "numpy", "cpu_count"):
        assert f"| {key} | {report['machine'][key]} |" in md
    assert "## W3" in md and "## Columns" in md and "med/hand" in md
    assert "Performance goals of the generated-code issue" in md  # --targets was given


def test_plots_or_a_clear_message(quick_report, tmp_path):
    _, report, _ = quick_report
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pytest.skip("matplotlib is not installed")
    files = write_plots(report, tmp_path)
    names = {f.name for f in files}
    assert {"time_per_step.png", "loss_W3.png", "loss_W4.png"} <= names
    assert all(f.stat().st_size > 1000 for f in files)


def test_plots_without_matplotlib_print_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    status = cli.main(["--quick", "--only", "W4", "--impl", "hand", "--repeat", "1",
                       "--no-compile", "--no-memory", "--no-progress",
                       "--plots", str(tmp_path / "plots")])
    assert status == 0
    assert "matplotlib is not installed: skipping --plots" in capsys.readouterr().out


def test_cli_quick_exits_zero(tmp_path):
    """What CI runs, cut down: ``python -m benchmarks --quick --json PATH``; and the
    default (no flag) is that same quick run, on one BLAS thread."""
    out = tmp_path / "out.json"
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(var, None)
    for flags in (["--quick"], []):
        proc = subprocess.run([sys.executable, "-m", "benchmarks", *flags, "--only", "W4",
                               "--impl", "hand,symgrad,jax", "--no-compile", "--no-memory",
                               "--json", str(out)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(out.read_text())
        assert report["config"]["quick"] is True
        assert report["machine"]["thread_env"]["OPENBLAS_NUM_THREADS"] == "1"
        assert "BLAS threads: 1" in proc.stdout and "quick run" in proc.stdout
        if len(os.sched_getaffinity(0)) > 1 if hasattr(os, "sched_getaffinity") else False:
            # one thread everywhere: pinned to one CPU, which is what limits XLA's threads
            assert len(report["machine"]["cpu_affinity"]) == 1
            assert "pinned to CPU" in proc.stdout
    assert report["workloads"][0]["results"]["symgrad"]["status"] == "OK"
    assert "Columns" in proc.stdout and "med/hand:" in proc.stdout  # the legend
    assert "[MISS]" not in proc.stdout and "[PASS]" not in proc.stdout  # behind --targets
    assert "--targets" in proc.stdout
    if "jax" in report["skipped"]:  # an absent framework is listed, not an error
        assert "jax" not in report["workloads"][0]["results"]


def test_cli_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--only", "W9"])
    with pytest.raises(SystemExit):
        cli.main(["--impl", "tensorflow"])


# ---------------------------------------------------------------------------------------------
# Correctness: a fast wrong answer is WRONG, not fast
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def misbehaving_report():
    cfg = Config(quick=True, only=["W1", "W4"], repeat=2, compile=False, memory=False,
                 progress=False, impls=["hand", "floats", "symgrad", *EXTRA], extra_impls=EXTRA)
    return run(cfg)


def test_update_off_by_a_factor_is_wrong(misbehaving_report):
    for w in misbehaving_report["workloads"]:
        e = w["results"]["offbyfactor"]
        assert e["status"] == "WRONG", w["name"]
        assert e["check"]["param_err"] > w["tolerance"]["rtol"]
        assert e["time"] is not None  # it was timed, but its speed is not reported as such
        assert w["results"]["symgrad"]["status"] == "OK"
        assert w["results"]["hand"]["status"] == "OK"
    text = render_text(misbehaving_report)
    row = next(line for line in text.splitlines() if line.strip().startswith("offbyfactor"))
    assert "WRONG" in row
    assert "NOT CORRECT" in text and "W1/offbyfactor WRONG" in text
    assert "**NOT CORRECT:**" in render_markdown(misbehaving_report)


def test_wrong_reported_loss_is_wrong(misbehaving_report):
    for w in misbehaving_report["workloads"]:
        e = w["results"]["lossliar"]
        assert e["status"] == "WRONG"
        assert e["check"]["param_err"] == 0.0 and e["check"]["curve_err"] > 1e-3


def test_failures_are_reported_not_raised(misbehaving_report):
    assert misbehaving_report["skipped"]["notinstalled"].startswith("not installed")
    for w in misbehaving_report["workloads"]:
        assert "notinstalled" not in w["results"]
        crash = w["results"]["crashes"]
        assert crash["status"] == "ERROR" and "FloatingPointError" in crash["error"]
        writes = w["results"]["writesinput"]
        assert writes["status"] == "ERROR" and "read-only" in writes["error"]
    # only this project's own implementations decide the exit status
    assert failures(misbehaving_report) == []


def test_python_floats_run_where_they_apply(misbehaving_report):
    """The Python-float floor is checked like every implementation on W4 and left out of W1
    (it has no W1 step): not an error there."""
    w1, w4 = misbehaving_report["workloads"]
    assert "floats" not in w1["results"]
    e = w4["results"]["floats"]
    assert e["status"] == "OK" and e["time"]["median_s"] > 0
    assert max(e["check"][k] for k in ("curve_err", "loss_err", "param_err")) < 1e-12


def _fake_runs(curve, params, error=None):
    return {"curve": curve, "params": params, "error": error}


@pytest.mark.parametrize("dtype, rel, status", [
    ("float32", 1e-6, "OK"), ("float32", 1e-3, "WRONG"),
    ("float64", 1e-12, "OK"), ("float64", 1e-7, "WRONG"),
])
def test_tolerance_by_dtype(dtype, rel, status):
    wl = find_workload("W4")
    wl.dtype = dtype
    init, batches = wl.data()
    w = np.asarray(init["weights"], dtype=np.float64)
    curve = [10.0, 5.0, 2.0]
    runs = {"hand": _fake_runs(curve, {"weights": w}),
            "other": _fake_runs([c * (1 + rel) for c in curve], {"weights": w * (1 + rel)}),
            "nan": _fake_runs([np.nan] * 3, {"weights": w})}
    checks = judge(wl, runs, batches)
    assert checks["hand"]["status"] == "OK"
    assert checks["other"]["status"] == status
    assert checks["nan"]["status"] == "WRONG"


def test_wrong_symgrad_misses_its_targets():
    fast = {"time": {"median_s": 1e-9}, "ratio_to_hand": 0.1, "speedup_vs_tape": 100.0,
            "peak_memory_bytes": 1, "status": "WRONG"}
    report = {"workloads": [{"name": "W0", "results": {"symgrad": fast}, "compile": None}]}
    rows = {t["id"]: t for t in evaluate_targets(report)}
    assert rows["W0-hand"]["status"] == "MISS" and "WRONG" in rows["W0-hand"]["note"]
    assert rows["W0-tape10"]["status"] == "MISS"
    assert rows["W3-hand"]["status"] == "SKIP"


def test_every_implementation_gets_the_same_batches():
    """The sweeps' and the main workloads' data are deterministic and shared."""
    a = find_workload("W3", quick=True).data()
    b = find_workload("W3", quick=True).data()
    assert all(np.array_equal(x, y) for bx, by in zip(a[1], b[1]) for x, y in zip(bx, by))
    assert all(np.array_equal(a[0][k], b[0][k]) for k in a[0])


def test_full_is_the_whole_sweep_and_quick_the_default(capsys):
    assert cli.main(["--list"]) == 0
    quick = capsys.readouterr().out
    assert cli.main(["--full", "--list"]) == 0
    full = capsys.readouterr().out
    assert "W3 batch=4096" in full and "W3 batch=4096" not in quick
    assert "W3 batch=128" in quick
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["--quick", "--full"])


def test_unsteady_timings_are_noted():
    """When the paired per-repetition ratio and the ratio of the medians disagree (as under
    load: medians 26.9 ms and 93.1 ms but a paired ratio of 1.04x), the table says so."""
    def entry(med, paired):
        return {"status": "OK", "time": {"median_s": med}, "ratio_to_hand": med / 26.9e-3,
                "paired_ratio_to_hand": paired, "speedup_vs_tape": None,
                "paired_speedup_vs_tape": None}
    w = {"results": {"hand": entry(26.9e-3, 1.0), "symgrad": entry(93.1e-3, 1.04)}}
    notes = unsteady_notes(w)
    assert len(notes) == 1 and "symgrad/hand" in notes[0]
    assert "3.46x" in notes[0] and "1.04x" in notes[0] and "unsteady" in notes[0]
    w["results"]["symgrad"] = entry(28.0e-3, 1.04)
    assert unsteady_notes(w) == []
    # the same pair of implementations is noted once (tape/hand is hand's speed-up too)
    tape = dict(entry(2.0, 100.0), speedup_vs_tape=1.0, paired_speedup_vs_tape=1.0)
    hand = dict(entry(26.9e-3, 1.0), speedup_vs_tape=2.0 / 26.9e-3,
                paired_speedup_vs_tape=100.0)
    notes = unsteady_notes({"results": {"hand": hand, "tape": tape}})
    assert len(notes) == 1 and notes[0].startswith("tape/hand")


def test_runner_limits_threads_through_threadpoolctl_when_installed(monkeypatch):
    import types
    calls = []
    fake = types.ModuleType("threadpoolctl")
    fake.threadpool_limits = lambda **kw: calls.append(kw) or object()
    fake.threadpool_info = lambda: [{"user_api": "blas", "num_threads": 1},
                                    {"user_api": "openmp", "num_threads": 2}]
    monkeypatch.setitem(sys.modules, "threadpoolctl", fake)
    assert limit_blas_threads(2) is True
    assert calls == [{"limits": 2}]
    assert blas_threads() == "1 (threadpoolctl)"
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # not installed
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert limit_blas_threads(1) is False
    assert blas_threads() == "1 (OPENBLAS_NUM_THREADS)"


# ---------------------------------------------------------------------------------------------
# The width x batch grid (W3sweep)
# ---------------------------------------------------------------------------------------------

def test_grid_is_every_width_and_batch_in_full_and_opt_in_when_quick():
    from benchmarks.workloads import GRID, catalogue, select
    for quick in (True, False):
        cells = [wl for wl in catalogue(quick) if wl.group == GRID]
        assert sorted((wl.sweep[1]["H"], wl.sweep[1]["B"]) for wl in cells) == [
            (h, b) for h in (64, 256, 1024, 2048) for b in (1, 8, 64, 128)]
        for wl in cells:  # MLP 784-H-H/2-10 at batch B
            h, b = wl.sweep[1]["H"], wl.sweep[1]["B"]
            assert wl.param_shapes["w1"] == (784, h) and wl.param_shapes["w2"] == (h, h // 2)
            assert wl.name == f"{GRID} H={h} B={b}" and not wl.compile and not wl.memory
        narrow = [wl for wl in cells if wl.sweep[1]["H"] == 64]  # cheap data: batch B
        assert [wl.data()[1][0][0].shape for wl in narrow] == [(b, 784) for b in (1, 8, 64, 128)]
        chosen = {wl.name for wl in select(catalogue(quick), None)}
        assert any(wl.name in chosen for wl in cells) is not quick  # in --full only
        assert {wl.name for wl in select(catalogue(quick), [GRID])} == {wl.name for wl in cells}


@pytest.fixture(scope="module")
def grid_report():
    """The grid at toy sizes (H in 8, 16; B in 1, 4, 8), hand, symgrad and a crashing impl;
    the widths and batches are module constants read when the catalogue is made."""
    from benchmarks import workloads
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(workloads, "GRID_WIDTHS", (8, 16))
        mp.setattr(workloads, "GRID_BATCHES", (1, 4, 8))
        cfg = Config(quick=True, only=["W3sweep"], repeat=1, block_time=1e-4, compile=False,
                     memory=False, progress=False, impls=["hand", "symgrad", "crashes"],
                     extra_impls=EXTRA)
        return run(cfg)


def test_grid_table_has_every_cell(grid_report):
    from benchmarks.report import grid_tables
    tables = {title.split(":")[0]: (headers, rows) for title, headers, rows in
              grid_tables(grid_report)}
    assert list(tables) == ["hand", "symgrad/hand", "crashes/hand"]
    for name, (headers, rows) in tables.items():
        assert headers[1:] == ["1", "4", "8"]
        assert [r[0] for r in rows] == [8, 16]
        for row in rows:
            assert len(row) == 4 and "-" not in row[1:], (name, row)
    assert all(c.endswith(("µs", "ms", "ns")) for r in tables["hand"][1] for c in r[1:])
    assert all(c.endswith("x") for r in tables["symgrad/hand"][1] for c in r[1:])
    assert all(c == "ERROR" for r in tables["crashes/hand"][1] for c in r[1:])
    text, md = render_text(grid_report), render_markdown(grid_report)
    assert "Grid: W3 MLP 784-H-H/2-10 over hidden width H x batch B" in text
    assert "## Sweep over width x batch (W3sweep)" in md and "Symgrad/hand: ratio" in md


def test_grid_table_marks_a_cell_that_did_not_run(grid_report):
    from benchmarks.report import grid_tables
    partial = dict(grid_report, workloads=grid_report["workloads"][1:])  # no H=8, B=1
    hand_rows = grid_tables(partial)[0][2]
    assert hand_rows[0][1] == "-" and "-" not in hand_rows[1][1:]


# ---------------------------------------------------------------------------------------------
# --isolated: every implementation in its own processes
# ---------------------------------------------------------------------------------------------

ISOLATED_EXTRA = {c.name: c for c in (Dies, NotInstalled)}


@pytest.fixture(scope="module")
def isolated_report():
    """W4 isolated, one pass (a process costs ~1 s, mostly ``import symgrad``; the passes are
    tested without processes below): the three floors, one implementation whose process
    dies, one that is not installed (one that raises: the child's test below)."""
    cfg = Config(quick=True, only=["W4"], repeat=2, block_time=1e-4, compile=False,
                 memory=False, progress=False, isolated=True, passes=1, threads=1,
                 impls=["hand", "floats", "symgrad", *ISOLATED_EXTRA],
                 extra_impls=ISOLATED_EXTRA)
    return run(cfg)


def test_isolated_mode_times_every_implementation_in_its_own_processes(isolated_report):
    (w,) = isolated_report["workloads"]
    assert isolated_report["config"]["isolated"] and isolated_report["config"]["passes"] == 1
    assert w["phase_s"]["correctness"] is None  # the checks ran in the timed processes
    for name in ("hand", "floats", "symgrad"):
        e = w["results"][name]
        assert e["status"] == "OK", (name, e)  # checked against hand, from its process
        assert len(e["loss_curve"]) == w["steps_checked"]
        t = e["time"]
        assert t["isolated"] and t["passes"] == t["repeats"] == 1 == len(t["per_rep_s"])
        assert len(t["process_s"]) == 1 and len(t["per_pass_blocks_s"][0]) == 2
        # the reported values are the per-pass medians of each process's blocks
        assert t["per_rep_s"] == [float(np.median(b)) for b in t["per_pass_blocks_s"]]
        assert t["median_s"] > 0 and e["ratio_to_hand"] > 0
        assert t["blas_threads"].startswith("1 ")  # the child ran on one BLAS thread
    assert w["results"]["hand"]["ratio_to_hand"] == 1.0
    assert w["results"]["floats"]["check"]["param_err"] < 1e-12
    assert "Python" in w["results"]["floats"]["time"]["version"]
    text = render_text(isolated_report)
    assert "isolated (1 passes of one process per implementation)" in text
    assert "1 passes of one process per implementation" in render_markdown(isolated_report)


def test_isolated_failures_are_reported_not_fatal(isolated_report):
    (w,) = isolated_report["workloads"]
    died = w["results"]["dies"]
    assert died["status"] == "ERROR" and "exit status 3" in died["error"]
    assert died["time"] is None and died["loss_curve"] is None
    assert "notinstalled" in isolated_report["skipped"] and "notinstalled" not in w["results"]
    assert failures(isolated_report) == []  # neither is this project's own


def test_isolated_child_prints_one_structured_line(capsys, tmp_path):
    """A child's whole answer is one marked JSON line, an error included; its correctness
    run leaves the final parameters in the file it was given."""
    from benchmarks.isolated import MARKER, adapter_spec, isolated_child
    spec = {"workload": "W0", "quick": True, "optimizer": "sgd", "impl": "hand",
            "adapter": adapter_spec(HandImpl), "params_file": str(tmp_path / "p.npz"),
            "time": True, "repeat": 2, "block_time": 1e-4, "time_budget": None, "seed": 0,
            "threads": None}
    assert isolated_child(json.dumps(spec)) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(MARKER)
    out = json.loads(line[len(MARKER):])
    assert out["impl"] == "hand" and len(out["per_rep_s"]) == 2 and out["steps_per_block"] >= 1
    assert out["check"]["error"] is None and len(out["check"]["curve"]) == 100
    with np.load(tmp_path / "p.npz") as saved:
        assert saved["A"].shape == () and abs(float(saved["A"]) - 10) < 0.5  # W0 trained
    assert isolated_child(json.dumps(dict(spec, workload="W9"))) == 1
    out = json.loads(capsys.readouterr().out[len(MARKER):])
    assert out == {"error": out["error"]} and "W9" in out["error"]
    # an implementation that raises (at its third step): both runs report it, structured
    assert isolated_child(json.dumps(dict(spec, impl="crashes",
                                          adapter=adapter_spec(Crashes)))) == 1
    out = json.loads(capsys.readouterr().out[len(MARKER):])
    assert "FloatingPointError: boom" in out["check"]["error"]
    assert "FloatingPointError: boom" in out["error"] and "per_rep_s" not in out


def test_isolated_passes_go_round_robin_and_take_the_median(monkeypatch, tmp_path):
    """Three passes without processes (run_isolated replaced): pass p starts at the p-th
    implementation, the first pass also checks (and checks hand, untimed, for symgrad), an
    implementation that fails gets no more processes, the time is the median of the
    per-pass medians."""
    from benchmarks import isolated
    calls = []
    block_times = {"symgrad": [[3.0, 1.0, 2.0], [5.0, 4.0, 6.0], [1.0, 1.0, 9.0]],
                   "tape": [[7.0, 7.0, 7.0]]}

    def fake(wl, name, cls, cfg, params_file=None, timed=True):
        calls.append((name, params_file is not None, timed))
        if params_file:
            np.savez(params_file, weights=np.full((2, 1), 0.5))
        if name == "tape" and len(calls) > 3:
            return {"error": "isolated process died (exit status -11) without a result"}
        r = {"check": {"curve": [1.0, 0.5], "error": None}, "version": "v", "blas_threads": "1"}
        if timed:
            r.update(per_rep_s=block_times[name].pop(0), steps_per_block=10)
        return r

    monkeypatch.setattr(isolated, "run_isolated", fake)
    cfg = Config(quick=True, passes=3, progress=False, isolated=True)
    wl = find_workload("W4")
    runs, stats, errors = isolated.measure_isolated(
        wl, {n: HandImpl for n in ("hand", "symgrad", "tape")}, ["symgrad", "tape"], cfg,
        isolated.Progress(1, enabled=False))
    assert calls == [("hand", True, False), ("symgrad", True, True), ("tape", True, True),
                     ("tape", False, True),  # pass 2 starts at the 2nd; tape fails there
                     ("symgrad", False, True), ("symgrad", False, True)]
    assert set(runs) == {"hand", "symgrad", "tape"}
    assert runs["hand"]["params"]["weights"].shape == (2, 1)
    assert errors == {"tape": "isolated process died (exit status -11) without a result"}
    assert list(stats) == ["symgrad"]
    assert stats["symgrad"]["per_rep_s"] == [2.0, 5.0, 1.0]
    assert stats["symgrad"]["median_s"] == 2.0 and stats["symgrad"]["passes"] == 3


def test_cli_passes_needs_isolated():
    with pytest.raises(SystemExit):
        cli.main(["--passes", "3"])


def test_peer_targets_are_ratios_of_medians_in_the_same_run():
    """W5's goals against PyTorch and JAX divide symgrad's median by the peer's; a peer that
    did not run (or was wrong) leaves its goal unmeasured rather than passed."""
    def entry(median, status="OK"):
        return {"time": {"median_s": median}, "ratio_to_hand": None,
                "speedup_vs_tape": None, "peak_memory_bytes": None, "status": status}
    report = {"workloads": [{"name": "W5", "compile": None, "results": {
        "symgrad": entry(2.0), "torch": entry(1.0), "jax": entry(4.0, "WRONG")}}]}
    rows = {t["id"]: t for t in evaluate_targets(report)}
    assert rows["W5-torch"]["status"] == "MISS" and rows["W5-torch"]["measured"] == 2.0
    assert rows["W5-jax"]["status"] == "SKIP"
    report["workloads"][0]["results"]["jax"]["status"] = "OK"
    rows = {t["id"]: t for t in evaluate_targets(report)}
    assert rows["W5-jax"]["status"] == "PASS" and rows["W5-jax"]["measured"] == 0.5
