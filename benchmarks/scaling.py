"""Compile-cost scaling: cold compile and cache-hit time against model size (issue 9).

Each measurement runs in a fresh process with its own cache directory:

* **cold**: build the model and its gradients, then time ``sg.compile`` with an empty cache
  (differentiate, optimize, generate, verify, write);
* **hit**: a second new process builds the same model and times ``sg.compile`` again: the
  key is computed from the expressions and the module is loaded from disk, no SymPy work.
  Both times are measured inside the process, after ``import symgrad`` (not counting it).

Models: an MLP of tanh layers (width 4) by depth; an RNN ``h = tanh(h @ W + x_t @ U)`` by
length (gradients w.r.t. W and U); a polynomial ``sum_k c_k * x**k`` with K terms (gradient
w.r.t. every c_k); a sum of M separate terms ``sum_m sum(tanh(p_m * x))`` (gradient w.r.t.
every p_m). Every model's loss is output with all its gradients.

Usage::

    python -m benchmarks.scaling            # the full table (a few minutes)
    python -m benchmarks.scaling --quick    # small sizes only (under a minute)
    python -m benchmarks.scaling --json out.json

It prints a markdown table: model, size, distinct expression nodes, generated lines, cold
compile seconds, cache-hit milliseconds (and the part of it spent loading the module: the
integrity and allowlist checks, byte-compiling and running it; the rest is the key), and the
cold time per node (flat = linear growth).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

FULL = {"mlp": [8, 32, 128, 512], "rnn": [10, 100, 1000], "poly": [10, 100, 2000],
        "sum": [10, 100, 2000]}
QUICK = {"mlp": [8, 32, 128], "rnn": [10, 100], "poly": [10, 100], "sum": [10, 100]}

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import symgrad as sg
from symgrad.api import count_nodes_together

kind, n, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
width = 4
if kind == "mlp":
    h = sg.input("x", ("N", width))
    params = []
    for i in range(n):
        w = sg.param(f"w{i}", (width, width))
        b = sg.param(f"b{i}", (width,))
        params += [w, b]
        h = sg.tanh(h @ w + b)
    loss = sg.mean(h * h)
elif kind == "rnn":
    W, U = sg.param("W", (width, width)), sg.param("U", (3, width))
    params = [W, U]
    h = sg.tanh(sg.input("x0", ("N", 3)) @ U)
    for t in range(1, n):
        h = sg.tanh(h @ W + sg.input(f"x{t}", ("N", 3)) @ U)
    loss = sg.mean(h * h)
elif kind == "poly":
    x = sg.input("x", ("N",))
    params = [sg.param(f"c{k}") for k in range(n)]
    loss = sg.mean(sum(c * x ** k for k, c in enumerate(params)))
else:
    x = sg.input("x", ("N", 3))
    params = [sg.param(f"p{m}", (3,)) for m in range(n)]
    loss = sum(sg.mean(sg.tanh(x * p)) for p in params)
outputs = [loss, *sg.grad(loss, params)]
# the load (integrity and allowlist checks, byte-compile, run) is timed apart from the key
loaded = []
lookup = sg.runtime.cache.MODULES.lookup
def timed_lookup(key):
    t = time.perf_counter()
    mod = lookup(key)
    loaded.append((time.perf_counter() - t, mod is not None))
    return mod
sg.runtime.cache.MODULES.lookup = timed_lookup
t0 = time.perf_counter()
f = sg.compile(outputs, max_lines=200_000)
seconds = time.perf_counter() - t0
out = {"seconds": seconds, "lines": f.source.count("\n"), "load": sum(t for t, _ in loaded),
       "found": all(hit for _, hit in loaded)}
if phase == "cold":
    out["nodes"] = count_nodes_together([t.expr for t in outputs])[-1]
print(json.dumps(out))
"""


def _child(kind: str, n: int, phase: str, cache: str) -> dict:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=cache,
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, str(n), phase], env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {n} {phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(kind: str, n: int) -> dict:
    """Cold compile and cache hit of one model, each in a new process."""
    for _ in range(2):  # a source file edited between the two runs changes the key: again
        with tempfile.TemporaryDirectory(prefix="symgrad-scaling-") as d:
            cache = str(Path(d) / "cache")
            cold = _child(kind, n, "cold", cache)
            hit = _child(kind, n, "hit", cache)
        if hit["found"]:
            break
    else:
        raise RuntimeError(f"{kind} {n}: the second process did not find the cached module")
    return {"model": kind, "size": n, "nodes": cold["nodes"], "lines": cold["lines"],
            "cold_s": cold["seconds"], "hit_ms": hit["seconds"] * 1e3,
            "hit_load_ms": hit["load"] * 1e3}


LABELS = {"mlp": "MLP depth", "rnn": "RNN length", "poly": "polynomial K", "sum": "sum of M"}


def table(rows) -> str:
    out = ["| model | size | nodes | lines | cold compile (s) | cache hit (ms) | "
           "of which load (ms) | cold µs/node |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {LABELS[r['model']]} | {r['size']} | {r['nodes']} | {r['lines']} | "
                   f"{r['cold_s']:.2f} | {r['hit_ms']:.1f} | {r['hit_load_ms']:.1f} | "
                   f"{1e6 * r['cold_s'] / r['nodes']:.0f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--only", choices=sorted(FULL), action="append",
                    help="measure only these models (repeatable)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows = []
    t0 = time.perf_counter()
    for kind, ns in sizes.items():
        if args.only and kind not in args.only:
            continue
        for n in ns:
            rows.append(measure(kind, n))
            print(f"  {LABELS[kind]} {n}: cold {rows[-1]['cold_s']:.2f} s, "
                  f"hit {rows[-1]['hit_ms']:.1f} ms", file=sys.stderr, flush=True)
    print(table(rows))
    print(f"\n(total {time.perf_counter() - t0:.0f} s; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
