"""The expert floor: the hand-written numpy steps of :mod:`benchmarks.hand`."""

from __future__ import annotations

import numpy as np

from .impl_base import Implementation

__all__ = ["HandImpl"]


class HandImpl(Implementation):
    name = "hand"
    description = "hand-written numpy (benchmarks/hand.py)"

    @classmethod
    def version(cls) -> str:
        from . import hand  # noqa: F401
        return f"numpy {np.__version__}"

    def setup(self, workload, init, optimizer):
        from . import hand
        cls = getattr(hand, workload.hand)
        self._hand = cls(init, optimizer.lr, optimizer.kind, **optimizer.hyper)
        self._call = self._hand.step

    def step(self, batch):
        return self._call(*batch)

    def params(self):
        return {n: np.array(v, copy=True) for n, v in self._hand.params.items()}
