"""Checkpoints of a training state: ``state.save`` / ``TrainState.load`` (numpy .npz, no
pickle), ``pickle`` and ``copy.deepcopy``, and a resume in a new process that continues a
run bit for bit (Adam: the step counter and both slots matter)."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad import workloads
from symgrad.train import TrainState

ROOT = Path(__file__).resolve().parent.parent


def build_w1(opt):
    x = sg.input("x", ("N", 2))
    y = sg.input("y", ("N", 1))
    w1 = sg.param("w1", (2, 3))
    w2 = sg.param("w2", (3, 1))
    loss = sg.mean(((x @ w1) @ w2 - y) ** 2)
    return sg.train_step(loss, opt)


def run(step, state, start, stop):
    d = workloads.w1()
    for i in range(start, stop):
        xb, yb = workloads.w1_batch(d, i)
        step(state, x=xb, y=yb)


def fresh(step):
    d = workloads.w1()
    return step.init({"w1": d["w1"], "w2": d["w2"]})


def assert_states_equal(a: TrainState, b: TrainState):
    assert a.step == b.step
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
        for slot in a.slots[name]:
            np.testing.assert_array_equal(a.slots[name][slot], b.slots[name][slot],
                                          err_msg=f"{name}/{slot}")


RESUME = textwrap.dedent("""
    import sys
    import numpy as np
    import symgrad as sg
    from symgrad import workloads
    from symgrad.train import TrainState
    x = sg.input("x", ("N", 2))
    y = sg.input("y", ("N", 1))
    w1 = sg.param("w1", (2, 3))
    w2 = sg.param("w2", (3, 1))
    step = sg.train_step(sg.mean(((x @ w1) @ w2 - y) ** 2), sg.optim.Adam(0.05))
    step.optimizer.lr = 123.0  # the checkpoint's lr must come back
    state = TrainState.load(sys.argv[1], step)
    assert step.optimizer.lr == 0.01, step.optimizer.lr
    d = workloads.w1()
    for i in range(100, 200):
        xb, yb = workloads.w1_batch(d, i)
        step(state, x=xb, y=yb)
    state.save(sys.argv[2])
""")


def test_resume_in_a_new_process_equals_the_straight_run_bit_for_bit(tmp_path):
    step = build_w1(sg.optim.Adam(0.05))
    step.optimizer.lr = 0.01  # a schedule's value: saved with the state
    straight = fresh(step)
    run(step, straight, 0, 200)

    first = fresh(step)
    run(step, first, 0, 100)
    first.save(tmp_path / "at100.npz")
    script = tmp_path / "resume.py"
    script.write_text(RESUME)
    subprocess.run([sys.executable, str(script), str(tmp_path / "at100.npz"),
                    str(tmp_path / "at200.npz")], check=True, cwd=ROOT, timeout=300,
                   env=None)
    resumed = TrainState.load(tmp_path / "at200.npz", step)
    assert resumed.step == 200
    assert_states_equal(resumed, straight)
    assert not np.array_equal(straight.params["w1"], fresh(step).params["w1"])  # it trained


def test_checkpoint_is_plain_npz_without_pickles(tmp_path):
    step = build_w1(sg.optim.Adam(0.05))
    state = fresh(step)
    run(step, state, 0, 3)
    path = tmp_path / "ckpt"  # used exactly as given: no .npz appended
    state.save(path)
    assert path.exists()
    with np.load(path, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
        meta = json.loads(str(f["meta"][()]))
    assert meta["format"] == "symgrad-train-state" and meta["version"] == 1
    assert meta["step"] == 3 and meta["optimizer"] == "Adam"
    assert meta["hyper"]["lr"] == 0.05 and meta["slot_names"] == ["m", "v"]
    loaded = TrainState.load(path, step)
    assert_states_equal(loaded, state)
    loaded.params["w1"][...] = 0  # a copy, not a view of the other state
    assert not np.array_equal(state.params["w1"], 0)


def test_load_refuses_a_mismatched_step(tmp_path):
    step = build_w1(sg.optim.Adam(0.05))
    state = fresh(step)
    state.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"update rule.*Adam.*SGD"):
        TrainState.load(tmp_path / "c.npz", build_w1(sg.optim.SGD(0.1)))
    with pytest.raises(ValueError, match=r"update rule.*weight|wd=0.0.*wd=0.1"):
        TrainState.load(tmp_path / "c.npz", build_w1(sg.optim.Adam(0.05, weight_decay=0.1)))
    x = sg.input("x", ("N", 2))
    w1 = sg.param("w1", (2, 4))
    w2 = sg.param("w2", (4, 1))
    other = sg.train_step(sg.sum((x @ w1) @ w2), sg.optim.Adam(0.05))
    with pytest.raises(ValueError, match=r"parameter 'w1' is \(2, 3\) float64.*\(2, 4\)"):
        TrainState.load(tmp_path / "c.npz", other)
    v = sg.param("v", (2, 3))
    renamed = sg.train_step(sg.sum((x @ v) @ sg.param("w2", (3, 1))), sg.optim.Adam(0.05))
    with pytest.raises(ValueError, match=r"parameters \['w1', 'w2'\].*\['v', 'w2'\]"):
        TrainState.load(tmp_path / "c.npz", renamed)


def test_load_refuses_files_that_are_not_checkpoints(tmp_path):
    step = build_w1(sg.optim.Adam(0.05))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        TrainState.load(tmp_path / "junk.npz", step)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a symgrad training checkpoint"):
        TrainState.load(tmp_path / "other.npz", step)
    fresh(step).save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"][()]))
    meta["version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match="format version 99"):
        TrainState.load(tmp_path / "future.npz", step)
    arrays["meta"] = np.array(json.dumps(dict(meta, version=1)))
    arrays["slot_1"] = np.zeros((3, 3))
    np.savez(tmp_path / "bad_slot.npz", **arrays)
    with pytest.raises(ValueError, match=r"slot 'v' of 'w1'.*\(3, 3\)"):
        TrainState.load(tmp_path / "bad_slot.npz", step)


def test_pickle_round_trip_continues_identically():
    step = build_w1(sg.optim.Adam(0.05))
    state = fresh(step)
    run(step, state, 0, 7)
    clone = pickle.loads(pickle.dumps(state))
    assert_states_equal(clone, state)
    assert clone.optimizer is not step.optimizer and clone.optimizer.lr == 0.05
    run(step, state, 7, 20)
    run(step, clone, 7, 20)
    assert_states_equal(clone, state)
    # after bind, the clone follows the step's optimizer
    step.optimizer.lr = 0.0
    clone.bind(step)
    before = clone.params["w1"].copy()
    run(step, clone, 20, 21)
    np.testing.assert_array_equal(clone.params["w1"], before)


def test_deepcopy_copies_the_arrays_and_keeps_following_the_step():
    step = build_w1(sg.optim.Adam(0.05))
    state = fresh(step)
    run(step, state, 0, 5)
    twin = copy.deepcopy(state)
    assert_states_equal(twin, state)
    assert twin.params["w1"] is not state.params["w1"]
    assert twin.optimizer is step.optimizer
    run(step, twin, 5, 6)
    assert twin.step == 6 and state.step == 5
    assert not np.array_equal(twin.params["w1"], state.params["w1"])
    shallow = copy.copy(state)  # never two states over one set of arrays
    assert shallow.params["w2"] is not state.params["w2"]
    assert_states_equal(shallow, state)


def test_bind_refuses_another_model():
    step = build_w1(sg.optim.Adam(0.05))
    clone = pickle.loads(pickle.dumps(fresh(step)))
    with pytest.raises(ValueError, match="update rule"):
        clone.bind(build_w1(sg.optim.Momentum(0.05)))
