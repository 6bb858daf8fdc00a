"""Expression swell: generated lines and cold compile time for MLPs of depth 1 to 8.

    python benchmarks/swell.py [--max-depth 8] [--width 32]

Each depth runs in a fresh interpreter with a fresh, empty cache directory, so "cold" means
cold: no module cached, nothing differentiated before in that process (the import of
symgrad is not counted). The loss is a softmax cross-entropy over a tanh MLP; the compiled
function returns the loss and the gradient of every weight and bias. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
import numpy as np
import symgrad as sg
from symgrad.api import count_nodes

depth, width = int(sys.argv[1]), int(sys.argv[2])
x = sg.input("x", shape=("N", width))
y = sg.input("y", shape=("N", 10))
h, params = x, []
for i in range(depth):
    n_out = 10 if i == depth - 1 else width
    w = sg.param(f"w{i}", shape=(h.shape[1], n_out))
    b = sg.param(f"b{i}", shape=(n_out,))
    params += [w, b]
    h = h @ w + b
    if i < depth - 1:
        h = sg.tanh(h)
loss = sg.mean(sg.softmax_cross_entropy(h, y))
outputs = [loss, *sg.grad(loss, params)]
t0 = time.perf_counter()
f = sg.compile(outputs)
cold = time.perf_counter() - t0
nodes = max(count_nodes(t.expr) for t in outputs)
sg.runtime.cache.MODULES.memo.clear()
t0 = time.perf_counter()
sg.compile(outputs)
hit = time.perf_counter() - t0
print(json.dumps({"depth": depth, "params": len(params), "lines": f.source.count("\n"),
                  "bytes": len(f.source.encode()), "nodes": nodes, "cold_s": cold,
                  "hit_ms": hit * 1e3}))
"""


def measure(depth: int, width: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="symgrad-swell-") as d:
        env = dict(os.environ, SYMGRAD_CACHE_DIR=str(Path(d) / "cache"),
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("SYMGRAD_CACHE_DEBUG", None)
        r = subprocess.run([sys.executable, "-c", CHILD, str(depth), str(width)],
                           capture_output=True, text=True, env=env, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-depth", type=int, default=8)
    ap.add_argument("--width", type=int, default=32)
    args = ap.parse_args(argv)
    print(f"MLP width {args.width}, softmax cross-entropy; loss + every gradient, one module\n")
    print("| depth | params | generated lines | source KiB | max nodes/output | cold compile (s) "
          "| cached load (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for depth in range(1, args.max_depth + 1):
        m = measure(depth, args.width)
        print(f"| {m['depth']} | {m['params']} | {m['lines']} | {m['bytes'] / 1024:.1f} | "
              f"{m['nodes']} | {m['cold_s']:.2f} | {m['hit_ms']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
