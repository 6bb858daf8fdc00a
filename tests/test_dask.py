"""symgrad.dask: data-parallel training on a LocalCluster of two worker processes equals
single-process full-batch training with sg.train_step (float64, to 1e-10), on W1 and on an
MLP shaped like W3 (smaller), for mean and sum losses, uneven and empty chunks included.

One cluster serves the module (started and stopped by the fixture, on loopback, dashboard
off); the whole file takes about 15 s on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from distributed import Client, LocalCluster  # noqa: E402

import symgrad as sg  # noqa: E402
from symgrad import workloads  # noqa: E402
from symgrad.dask import DataParallel, fit  # noqa: E402

TOL = 1e-10


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, on 127.0.0.1; shut down even on failure."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def w1_model():
    x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
    w1, w2 = sg.param("w1", (2, 3)), sg.param("w2", (3, 1))
    return x, y, sg.mean(((x @ w1) @ w2 - y) ** 2)


def w1_data(rows=60, seed=3):
    rng = np.random.default_rng(seed)
    d = workloads.w1()
    return {"w1": d["w1"], "w2": d["w2"]}, rng.standard_normal((rows, 2)), \
        rng.standard_normal((rows, 1))


def assert_params_close(got, want):
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=TOL, atol=TOL, err_msg=name)


def test_w1_adam_equals_full_batch_training_with_uneven_and_empty_chunks(client):
    _, _, loss = w1_model()
    init, xv, yv = w1_data()
    X = da.from_array(xv, chunks=((7, 30, 0, 23), (2,)))    # uneven, one chunk empty
    Y = da.from_array(yv, chunks=(25, 1))                    # other chunks: follows X's
    ref = sg.train_step(loss, sg.optim.Adam(0.05))
    ref_state = ref.init(init)
    with DataParallel(loss, sg.optim.Adam(0.05), {"x": X, "y": Y}, reduction="mean",
                      client=client) as trainer:
        assert trainer.rows == 60 and trainer.chunks == 4 and len(trainer.workers) == 2
        state = trainer.init(init)
        for i in range(6):
            if i == 3:  # a schedule: the next step reads the new rate, as sg.train_step's
                trainer.optimizer.lr = ref.optimizer.lr = 0.01
            got, want = trainer.step(state), float(ref(ref_state, x=xv, y=yv))
            assert abs(got - want) <= TOL * max(1.0, abs(want))
        assert state.step == 6
        assert_params_close(state.params, ref_state.params)
        assert_params_close({"w1": state.slots["w1"]["v"]}, {"w1": ref_state.slots["w1"]["v"]})
        # evaluate: the loss over the whole dataset, against numpy's formula
        p = state.params
        want = np.mean(((xv @ p["w1"]) @ p["w2"] - yv) ** 2)
        assert abs(trainer.evaluate(state) - want) <= TOL * want
        assert abs(trainer.evaluate(dict(p)) - want) <= TOL * want


def test_the_workers_never_import_symgrad(client):
    _, _, loss = w1_model()
    init, xv, yv = w1_data(rows=20)
    state, losses = fit(loss, sg.optim.SGD(0.1), init,
                        {"x": da.from_array(xv, chunks=5), "y": da.from_array(yv, chunks=5)},
                        steps=2, reduction="mean", client=client)
    assert len(losses) == 2 and losses[1] < losses[0]
    # eval is a builtin, pickled by reference: the probe itself imports nothing
    imported = client.run(eval, "'symgrad' in __import__('sys').modules")
    assert imported and not any(imported.values()), imported


def mlp_model(sizes):
    x = sg.input("x", ("N", sizes[0]))
    onehot = sg.input("onehot", ("N", sizes[-1]))
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"w{i}"], params[f"b{i}"] = sg.param(f"w{i}", (a, b)), sg.param(f"b{i}", (b,))
    h = x
    depth = len(sizes) - 1
    for i in range(1, depth + 1):
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < depth:
            h = sg.relu(h)
    return sg.mean((onehot - h) ** 2)


def test_w3_shaped_mlp_sgd_equals_full_batch_training(client):
    sizes = (48, 32, 16, 10)   # W3's 784-256-128-10, narrower
    loss = mlp_model(sizes)
    init = workloads.mlp_params(sizes, seed=0, dtype="float64")
    d = workloads.synthetic_mnist(300, seed=1, dtype="float64", features=48)
    xv, yv = d["x"], d["onehot"]
    ref = sg.train_step(loss, sg.optim.SGD(0.5))
    ref_state = ref.init(init)
    with DataParallel(loss, sg.optim.SGD(0.5), {"x": da.from_array(xv, chunks=(70, -1)),
                                                "onehot": da.from_array(yv, chunks=(70, -1))},
                      reduction="mean", client=client) as trainer:
        state = trainer.init(init)
        for _ in range(4):
            got, want = trainer.step(state), float(ref(ref_state, x=xv, onehot=yv))
            assert abs(got - want) <= TOL * want
        assert_params_close(state.params, ref_state.params)
        # the parameters moved: equality is not two untouched copies
        assert np.abs(state.params["w1"] - init["w1"]).max() > 1e-4


def test_sum_loss_with_a_constant_input_and_momentum(client):
    x, t = sg.input("x", ("N", 3)), sg.input("t", ("N", 1))
    scale = sg.input("scale", (1,))                         # no batch axis: sent whole
    w = sg.param("w", (3, 1))
    loss = sg.sum((x @ w - t) ** 2 * scale) / 2
    rng = np.random.default_rng(5)
    xv, tv = rng.standard_normal((41, 3)), rng.standard_normal((41, 1))
    sv, w0 = np.array([0.5]), rng.standard_normal((3, 1))
    ref = sg.train_step(loss, sg.optim.Momentum(0.01, nesterov=True, weight_decay=0.1))
    ref_state = ref.init({"w": w0})
    data = {"x": da.from_array(xv, chunks=((10, 11, 20), (3,))),
            "t": da.from_array(tv, chunks=((10, 11, 20), (1,))), "scale": sv}
    with DataParallel(loss, sg.optim.Momentum(0.01, nesterov=True, weight_decay=0.1), data,
                      reduction="sum", client=client) as trainer:
        state = trainer.init({"w": w0})
        for _ in range(4):
            got, want = trainer.step(state), float(ref(ref_state, x=xv, t=tv, scale=sv))
            assert abs(got - want) <= TOL * want
        assert_params_close(state.params, ref_state.params)
        want = np.sum((xv @ state.params["w"] - tv) ** 2 * sv) / 2
        assert abs(trainer.evaluate(state) - want) <= TOL * want


def test_float32_data_trains_in_float32(client):
    x, y = sg.input("x", ("N", 2), "float32"), sg.input("y", ("N", 1), "float32")
    w = sg.param("w", (2, 1), "float32")
    loss = sg.mean((x @ w - y) ** 2)
    rng = np.random.default_rng(2)
    xv = rng.standard_normal((30, 2)).astype(np.float32)
    yv = rng.standard_normal((30, 1)).astype(np.float32)
    with DataParallel(loss, sg.optim.SGD(0.1), {"x": da.from_array(xv, chunks=8),
                                                "y": da.from_array(yv, chunks=8)},
                      reduction="mean", client=client) as trainer:
        state = trainer.init({"w": np.zeros((2, 1), np.float32)})
        trainer.step(state)
        assert state.params["w"].dtype == np.float32
        g = 2 * xv.T.astype(np.float64) @ (0 - yv.astype(np.float64)) / 30
        np.testing.assert_allclose(state.params["w"], -0.1 * g, rtol=1e-5)


def test_clear_errors(client):
    _, _, loss = w1_model()
    _, xv, yv = w1_data(rows=12)
    X, Y = da.from_array(xv, chunks=(6, 2)), da.from_array(yv, chunks=(6, 1))
    opt = sg.optim.SGD(0.1)
    with pytest.raises(ValueError, match=r"input 'x' .* chunked along axis 1.*batch axis "
                                         r"\(axis 0\) only"):
        DataParallel(loss, opt, {"x": da.from_array(xv, chunks=(6, 1)), "y": Y},
                     reduction="mean", client=client)
    with pytest.raises(ValueError, match="reduction must be one of"):
        DataParallel(loss, opt, {"x": X, "y": Y}, reduction="average", client=client)
    with pytest.raises(ValueError, match=r"no data for input\(s\) \['y'\]"):
        DataParallel(loss, opt, {"x": X}, reduction="mean", client=client)
    with pytest.raises(TypeError, match="input 'x' must be float64, got float32"):
        DataParallel(loss, opt, {"x": X.astype(np.float32), "y": Y}, reduction="mean",
                     client=client)
    with pytest.raises(ValueError, match="input 'y' has 11 rows but 'x' has 12"):
        DataParallel(loss, opt, {"x": X, "y": Y[:11]}, reduction="mean", client=client)
    fixed = sg.mean((sg.input("xf", (12, 2)) @ sg.param("w1", (2, 3))) ** 2)
    with pytest.raises(ValueError, match="declare its batch axis symbolic"):
        DataParallel(fixed, opt, {"xf": X}, reduction="mean", client=client)


def test_a_single_process_checkpoint_resumes_on_the_cluster_and_back(client, tmp_path):
    _, _, loss = w1_model()
    init, xv, yv = w1_data(rows=40)
    ref = sg.train_step(loss, sg.optim.Adam(0.05))
    ref_state = ref.init(init)
    for _ in range(3):
        ref(ref_state, x=xv, y=yv)
    ref_state.save(tmp_path / "single.npz")
    data = {"x": da.from_array(xv, chunks=(15, -1)), "y": da.from_array(yv, chunks=(15, -1))}
    with DataParallel(loss, sg.optim.Adam(0.05), data, reduction="mean",
                      client=client) as trainer:
        state = sg.TrainState.load(tmp_path / "single.npz", trainer.update_step)
        assert state.step == 3
        for _ in range(2):
            trainer.step(state)
            ref(ref_state, x=xv, y=yv)
        assert_params_close(state.params, ref_state.params)
        state.save(tmp_path / "cluster.npz")
    back = sg.TrainState.load(tmp_path / "cluster.npz", ref)
    assert back.step == 5
    assert_params_close(back.params, ref_state.params)


def test_the_worker_namespace_admits_numpy_only():
    from symgrad.dask import _worker_namespace
    load = _worker_namespace()["load_function"]
    fn = load("import numpy as np\ndef f(a):\n    return np.sum(_DATA['c']) * a\n",
              {"c": np.ones(3)}, "f")
    assert fn(2.0) == 6.0
    with pytest.raises(ImportError, match="may import only numpy, not 'os'"):
        load("import os\ndef f():\n    pass\n", {}, "f")


def test_a_loss_that_is_not_what_reduction_says_is_refused_at_the_first_step(client):
    x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
    w = sg.param("w", (2, 1))
    _, xv, yv = w1_data(rows=20)
    data = {"x": da.from_array(xv, chunks=(8, -1)), "y": da.from_array(yv, chunks=(8, -1))}
    init = {"w": np.ones((2, 1))}
    sum_loss = sg.sum((x @ w - y) ** 2)
    with DataParallel(sum_loss, sg.optim.SGD(0.01), data, reduction="mean",
                      client=client) as trainer:
        state = trainer.init(init)
        with pytest.raises(ValueError, match=r"reduction='mean', but the loss is a sum over "
                                             r"them.*use reduction='sum'"):
            trainer.step(state)
        assert state.step == 0 and np.array_equal(state.params["w"], init["w"])
    # a sum plus a regularizer is counted once per chunk: not a sum over the rows
    regularized = sum_loss + 0.5 * sg.sum(w ** 2)
    with DataParallel(regularized, sg.optim.SGD(0.01), data, reduction="sum",
                      client=client) as trainer:
        with pytest.raises(ValueError, match="neither a mean nor a sum"):
            trainer.evaluate(init)
    # a mean plus a regularizer is a mean over the rows: exact, and accepted
    mean_reg = sg.mean((x @ w - y) ** 2) + 0.5 * sg.sum(w ** 2)
    with DataParallel(mean_reg, sg.optim.SGD(0.01), data, reduction="mean",
                      client=client) as trainer:
        want = np.mean((xv @ init["w"] - yv) ** 2) + 0.5 * np.sum(init["w"] ** 2)
        assert abs(trainer.evaluate(init) - want) <= TOL * want
    # the check can be turned off: then each chunk's value is weighted by its rows, whatever
    # the loss is (here a sum per chunk: not the full-batch sum)
    with DataParallel(sum_loss, sg.optim.SGD(0.01), data, reduction="mean", client=client,
                      check_reduction=False) as trainer:
        r = (xv @ init["w"] - yv) ** 2
        chunk_sums = [r[:8].sum(), r[8:16].sum(), r[16:].sum()]
        want = (8 * chunk_sums[0] + 8 * chunk_sums[1] + 4 * chunk_sums[2]) / 20
        assert abs(trainer.evaluate(init) - want) <= TOL * want


def test_parameter_values_are_checked_on_the_client(client):
    _, _, loss = w1_model()
    init, xv, yv = w1_data(rows=10)
    data = {"x": da.from_array(xv, chunks=5), "y": da.from_array(yv, chunks=5)}
    with DataParallel(loss, sg.optim.SGD(0.1), data, reduction="mean",
                      client=client) as trainer:
        with pytest.raises(ValueError, match=r"parameter 'w2' must have shape \(3, 1\)"):
            trainer.evaluate({"w1": init["w1"], "w2": np.ones(3)})
        with pytest.raises(ValueError, match=r"missing initial value\(s\) for parameter\(s\) "
                                             r"\['w2'\]"):
            trainer.evaluate({"w1": init["w1"]})
        with pytest.raises(TypeError, match="give a TrainState or a dict"):
            trainer.evaluate([init["w1"], init["w2"]])
    with pytest.raises(RuntimeError, match="DataParallel: closed"):
        trainer.evaluate(init)
    trainer.close()  # closing again is harmless
