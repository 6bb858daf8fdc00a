"""W3 trained data-parallel with symgrad.dask on 1, 2, ... local worker processes.

    python benchmarks/dask_w3.py                  # 8192 rows, 4 chunks, 1 and 2 workers
    python benchmarks/dask_w3.py --rows 32768 --chunks 8 --workers 1,2

The dataset is W3's synthetic MNIST (float32, 784 features, one-hot targets), trained with
SGD full-batch. For each worker count a ``LocalCluster`` of that many processes (one thread
each, BLAS on one thread) is started, a :class:`symgrad.dask.DataParallel` trainer is made,
and the median time of a step (after two warm-up steps) is printed next to one process
running ``sg.train_step`` on the whole batch, with the load average (``os.getloadavg``).
The losses of the first step are checked against the single process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads BLAS; the workers inherit it

if __package__ in (None, ""):  # run as a script: python benchmarks/dask_w3.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(sizes=(784, 256, 128, 10)):
    """W3's loss (mean squared error of a relu MLP) and its parameters, symbolically."""
    import symgrad as sg
    x = sg.input("x", ("N", sizes[0]), "float32")
    onehot = sg.input("onehot", ("N", sizes[-1]), "float32")
    h, params = x, []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        w, bias = sg.param(f"w{i}", (a, b), "float32"), sg.param(f"b{i}", (b,), "float32")
        params += [w, bias]
        h = h @ w + bias
        if i < len(sizes) - 1:
            h = sg.relu(h)
    return sg.mean((onehot - h) ** 2), params


def _median_step(step, steps: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    args = p.parse_args(argv)

    import warnings

    import dask.array as da
    from distributed import Client, LocalCluster

    # from_array puts the dataset in the graph sent once to the workers, and Dask warns about
    # that graph's size; a real run would load the data on the workers (dask.array.from_zarr)
    warnings.filterwarnings("ignore", message="Sending large graph")

    import symgrad as sg
    import symgrad.dask as sgd
    from symgrad import workloads

    loss, params = build()
    init = workloads.mlp_params((784, 256, 128, 10), seed=0, dtype="float32")
    d = workloads.synthetic_mnist(args.rows, seed=1, dtype="float32")
    lr = 0.001
    single = sg.train_step(loss, sg.optim.SGD(lr))
    state = single.init(init)
    first = float(single(state, x=d["x"], onehot=d["onehot"]))
    t_single = _median_step(lambda: single(state, x=d["x"], onehot=d["onehot"]), args.steps)
    print(f"W3 MLP 784-256-128-10, float32, {args.rows} rows in {args.chunks} chunks, SGD; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"  1 process, sg.train_step on the whole batch: {1e3 * t_single:8.1f} ms/step "
          f"({1 / t_single:.2f} steps/s)")
    rows = -(-args.rows // args.chunks)
    for n in [int(k) for k in args.workers.split(",")]:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            data = {"x": da.from_array(d["x"], chunks=(rows, -1)),
                    "onehot": da.from_array(d["onehot"], chunks=(rows, -1))}
            with sgd.DataParallel(loss, sg.optim.SGD(lr), data, reduction="mean",
                                  client=client) as trainer:
                st = trainer.init(init)
                got = trainer.step(st)
                t = _median_step(lambda: trainer.step(st), args.steps)
                print(f"  {n} worker process{'es' if n > 1 else ''}, symgrad.dask: "
                      f"{1e3 * t:8.1f} ms/step ({1 / t:.2f} steps/s)   first loss "
                      f"{got:.6f} vs {first:.6f}   load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
