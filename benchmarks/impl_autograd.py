"""HIPS autograd: ``autograd.value_and_grad`` of the numpy loss, eager updates."""

from __future__ import annotations

from .impl_base import Implementation, copy_params, make_ops

__all__ = ["AutogradImpl"]


class AutogradImpl(Implementation):
    name = "autograd"
    description = "HIPS autograd value_and_grad + optimizer.apply_arrays"

    @classmethod
    def supports(cls, workload) -> bool:
        # no adapter of W5's layers (conv2d, max_pool2d) for this framework yet
        return workload.hand != "W5Step"

    @classmethod
    def version(cls) -> str:
        import autograd
        return getattr(autograd, "__version__", "installed")

    def setup(self, workload, init, optimizer):
        import autograd
        import autograd.numpy as anp
        ops = make_ops(anp.mean, anp.sum, lambda z: anp.maximum(z, 0.0))
        names, loss_fn = workload.input_names, workload.loss
        self._vg = autograd.value_and_grad(lambda p, b: loss_fn(ops, p, dict(zip(names, b))))
        self._params = copy_params(init, list(workload.param_shapes))
        self._opt = optimizer.symgrad()
        self._slots = self._opt.init_slots(self._params)
        self._t = 0

    def step(self, batch):
        loss, grads = self._vg(self._params, batch)
        self._t += 1
        self._opt.apply_arrays(self._params, grads, self._slots, self._t)
        return float(loss)

    def params(self):
        return {n: a.copy() for n, a in self._params.items()}
