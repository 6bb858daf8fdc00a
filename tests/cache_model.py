"""The small model the cache tests compile, and its numpy reference.

Its constant ``cval`` is part of the cache key, so each value is a distinct entry on disk;
``scale`` changes the function without changing its inputs. ``correct`` says whether a
call's outputs are this model's, to 1e-13: what a hit, a rebuilt entry or a refused one must
all return.
"""

from __future__ import annotations

import numpy as np

import symgrad as sg

X = np.array([0.5, -1.0, 2.0])
W = np.array([1.5, 0.25, -0.75])


def model(cval: float, scale: float = 3.5) -> list:
    """``[loss, dloss/dw]`` of ``scale * sum((x * w - cval) ** 2)``, for ``sg.compile``."""
    x = sg.input("x", shape=(3,))
    w = sg.param("w", shape=(3,))
    c = sg.constant(np.full(3, float(cval)))
    loss = sg.sum((x * w - c) ** 2) * scale
    return [loss, *sg.grad(loss, [w])]


def reference(cval: float, scale: float = 3.5) -> list:
    """What ``model(cval, scale)`` computes at ``x=X, w=W``, in numpy."""
    r = X * W - cval
    return [scale * np.sum(r**2), scale * 2 * r * X]


def correct(out, cval: float, scale: float = 3.5) -> bool:
    """``out`` (a call at ``X, W``) equals the reference to 1e-13 relative."""
    want = reference(cval, scale)
    return all(np.allclose(a, b, rtol=1e-13, atol=0) for a, b in zip(out, want))


def unused_subdir(root, *taken: str) -> str:
    """A two-hex subdirectory name under ``root`` that no entry (and none of ``taken``) uses.

    Entry keys hash the package's source, so they change with every edit: a test that plants
    a foreign directory must not pick a fixed name that a genuine entry may already hold.
    """
    for i in range(256):
        name = f"{(0xab + i) % 256:02x}"
        if name not in taken and not (root / name).exists():
            return name
    raise AssertionError(f"no free two-hex subdirectory under {root}")
