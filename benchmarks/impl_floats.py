"""The Python-float floor of the tiny workloads: :class:`benchmarks.hand.W0FloatStep` and
:class:`benchmarks.hand.W4FloatStep` (W0 and W4 only; the other workloads leave it out)."""

from __future__ import annotations

from .impl_hand import HandImpl

__all__ = ["FloatsImpl"]


class FloatsImpl(HandImpl):
    name = "floats"
    description = "hand-written Python float arithmetic, no numpy in the step (W0, W4 only)"

    #: ``workload.hand`` -> its Python-float class in :mod:`benchmarks.hand`.
    STEPS = {"W0Step": "W0FloatStep", "W4Step": "W4FloatStep"}

    @classmethod
    def version(cls) -> str:
        import platform
        from . import hand  # noqa: F401
        return f"Python {platform.python_version()}"

    @classmethod
    def supports(cls, workload) -> bool:
        return workload.hand in cls.STEPS

    def setup(self, workload, init, optimizer):
        from . import hand
        cls = getattr(hand, self.STEPS[workload.hand])
        self._hand = cls(init, optimizer.lr, optimizer.kind, **optimizer.hyper)
        self._call = self._hand.step
