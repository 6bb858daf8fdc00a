"""What every implementation adapter of the benchmark runner shares.

An adapter wraps one way of training a model -- symgrad's generated step, the tape, the
hand-written numpy floor, PyTorch, JAX, HIPS autograd, PyTensor -- behind one small
interface, so the runner can time, check and measure them all the same way::

    impl = SomeImpl()
    impl.setup(workload, init, optimizer)   # build the model at the initial values
    loss = impl.step(batch)                 # one training step; loss before the update
    final = impl.params()                   # {name: ndarray} after the steps so far

A *workload* (see :class:`benchmarks.workloads.Workload`) describes its loss once, as a
function ``loss(ops, params, batch)`` written with Python operators (``@``, ``+``, ``-``,
``*``, ``**``) and the three functions of an *ops* namespace (``mean``, ``sum``, ``relu``);
each adapter passes its framework's ops (:data:`NUMPY_OPS` here is the float64 oracle the
runner uses to evaluate losses). ``batch`` is a tuple of arrays (or Python floats), in the
order of ``workload.input_names``; every adapter gets the very same objects.

Adapters import their framework only in :meth:`Implementation.version` and
:meth:`Implementation.setup`, so importing an adapter module never fails: a framework
that is not installed makes ``version()`` raise ``ImportError`` and the runner lists the
implementation as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

__all__ = ["Implementation", "OptimizerSpec", "NUMPY_OPS", "make_ops"]


def make_ops(mean, sum, relu, **nn) -> SimpleNamespace:  # noqa: A002 - mirrors numpy's names
    """The ops namespace a workload's loss is written against.

    ``nn``: the layers of W5 (``conv2d(x, k)`` valid and stride 1, ``max_pool2d(x, 2)``,
    ``reshape(x, shape)``, ``softmax_cross_entropy(logits, onehot)`` per row), given by the
    adapters that run it."""
    return SimpleNamespace(mean=mean, sum=sum, relu=relu, **nn)


def _numpy_nn() -> dict:
    from . import hand
    return {"conv2d": hand.conv2d_valid, "max_pool2d": hand.max_pool2d, "reshape": np.reshape,
            "softmax_cross_entropy": hand.softmax_cross_entropy}


#: Plain numpy: the oracle used to evaluate a loss at given parameters.
NUMPY_OPS = make_ops(np.mean, np.sum, lambda z: np.maximum(z, 0), **_numpy_nn())


@dataclass(frozen=True)
class OptimizerSpec:
    """A framework-neutral optimizer: ``kind`` is ``"sgd"``, ``"momentum"`` or ``"adam"``.

    The update rules are PyTorch's (``torch.optim.SGD`` without dampening,
    ``torch.optim.Adam`` without amsgrad); ``hyper`` holds the hyper-parameters other than
    the learning rate, defaults filled in by :meth:`make`.
    """

    kind: str
    lr: float
    hyper: dict = field(default_factory=dict)

    DEFAULTS = {"sgd": {}, "momentum": {"momentum": 0.9, "nesterov": False},
                "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}

    @classmethod
    def make(cls, kind: str, lr: float, **hyper) -> "OptimizerSpec":
        if kind not in cls.DEFAULTS:
            raise ValueError(f"unknown optimizer {kind!r}; choose one of {list(cls.DEFAULTS)}")
        return cls(kind, float(lr), {**cls.DEFAULTS[kind], **hyper})

    def describe(self) -> str:
        """``SGD(lr=0.001)``, ``Adam(lr=0.001, beta1=0.9, ...)``."""
        title = {"sgd": "SGD", "momentum": "Momentum", "adam": "Adam"}[self.kind]
        extra = "".join(f", {k}={v}" for k, v in self.hyper.items())
        return f"{title}(lr={self.lr:g}{extra})"

    def symgrad(self):
        """The same optimizer as a :mod:`symgrad.optim` object (also used for its
        ``apply_arrays`` maths by the array-based adapters)."""
        from symgrad import optim
        h = self.hyper
        if self.kind == "sgd":
            return optim.SGD(self.lr)
        if self.kind == "momentum":
            return optim.Momentum(self.lr, momentum=h["momentum"], nesterov=h["nesterov"])
        return optim.Adam(self.lr, beta1=h["beta1"], beta2=h["beta2"], eps=h["eps"])


class Implementation:
    """Base class of the adapters: one subclass per framework.

    Class attributes: ``name`` (the ``--impl`` name), ``description`` (one line for the
    report), ``memory_visible`` (whether tracemalloc sees the framework's buffers: numpy's
    allocations are traced, PyTorch's and XLA's allocators are not).
    """

    name = "base"
    description = ""
    memory_visible = True

    @classmethod
    def version(cls) -> str:
        """The framework's version; raises ImportError when it is not installed."""
        raise NotImplementedError

    @classmethod
    def supports(cls, workload: Any) -> bool:
        """Whether this implementation runs ``workload`` (a specialised one, such as the
        Python-float floor of the tiny models, says no to the others: left out, not an
        error)."""
        return True

    def setup(self, workload: Any, init: dict, optimizer: OptimizerSpec) -> None:
        """Build the model from copies of the ``init`` arrays; keep the training state."""
        raise NotImplementedError

    def step(self, batch: tuple) -> float:
        """One training step on ``batch``; returns the loss before the update."""
        raise NotImplementedError

    def params(self) -> dict:
        """The current parameters as numpy arrays, by name."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``setup`` made (optional)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def copy_params(init: dict, names: Optional[list] = None) -> dict:
    """Fresh, writable, C-contiguous copies of the named initial arrays."""
    names = list(init) if names is None else names
    return {n: np.array(init[n], order="C", copy=True) for n in names}
