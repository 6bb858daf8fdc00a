"""PyTensor: a compiled ``pytensor.function`` with the updates of shared variables."""

from __future__ import annotations

import numpy as np

from .impl_base import Implementation, make_ops

__all__ = ["PytensorImpl", "PytensorTrustImpl"]


class PytensorImpl(Implementation):
    name = "pytensor"
    description = "PyTensor function(loss, updates) in its default mode"

    @classmethod
    def supports(cls, workload) -> bool:
        # no adapter of W5's layers (conv2d, max_pool2d) for this framework yet
        return workload.hand != "W5Step"

    @classmethod
    def version(cls) -> str:
        import pytensor
        return pytensor.__version__

    def setup(self, workload, init, optimizer):
        import pytensor
        import pytensor.tensor as pt
        ops = make_ops(pt.mean, pt.sum, lambda z: pt.maximum(z, 0))
        dt = workload.dtype
        sym = {}
        for name, shape, dtype in workload.inputs:
            if shape == ():
                sym[name] = pt.scalar(name, dtype=dtype)
            else:
                sym[name] = pt.tensor(name=name, dtype=dtype,
                                      shape=tuple(None if isinstance(d, str) else d
                                                  for d in shape))
        self._shared = {n: pytensor.shared(np.array(init[n], copy=True), name=n)
                        for n in workload.param_shapes}
        loss = workload.loss(ops, self._shared, sym)
        grads = pytensor.grad(loss, list(self._shared.values()))

        def c(v):  # a constant of the parameters' dtype (no float64 upcast of float32)
            return np.asarray(v, dtype=dt)

        kind, h = optimizer.kind, optimizer.hyper
        lr = c(optimizer.lr)
        updates = []
        t = pytensor.shared(c(0), name="t")
        t_new = t + c(1)
        if kind == "adam":
            updates.append((t, t_new))
        for p, g in zip(self._shared.values(), grads):
            zeros = np.zeros_like(p.get_value())
            if kind == "sgd":
                new_p = p - lr * g
            elif kind == "momentum":
                buf = pytensor.shared(zeros.copy())
                new_buf = c(h["momentum"]) * buf + g
                step = g + c(h["momentum"]) * new_buf if h["nesterov"] else new_buf
                updates.append((buf, new_buf))
                new_p = p - lr * step
            else:
                m, v = pytensor.shared(zeros.copy()), pytensor.shared(zeros.copy())
                b1, b2 = c(h["beta1"]), c(h["beta2"])
                new_m = b1 * m + (c(1) - b1) * g
                new_v = b2 * v + (c(1) - b2) * g * g
                mhat = new_m / (c(1) - b1 ** t_new)
                vhat = new_v / (c(1) - b2 ** t_new)
                updates += [(m, new_m), (v, new_v)]
                new_p = p - lr * mhat / (pt.sqrt(vhat) + c(h["eps"]))
            updates.append((p, new_p.astype(p.dtype)))
        self._fn = pytensor.function([sym[n] for n in workload.input_names], loss,
                                     updates=updates)

    def step(self, batch):
        return float(self._fn(*batch))

    def params(self):
        return {n: np.array(s.get_value(), copy=True) for n, s in self._shared.items()}


class PytensorTrustImpl(PytensorImpl):
    """The same compiled function with ``trust_input=True``: PyTensor skips its input
    checks and conversions, its fastest call (a wrong input is then undefined behaviour).
    The batch must already be arrays of the input dtype, so a Python float (W0's batch) is
    wrapped here, as a user of this mode has to."""

    name = "pytensor-trust"
    description = "PyTensor function(loss, updates), default mode, trust_input=True"

    def setup(self, workload, init, optimizer):
        super().setup(workload, init, optimizer)
        self._fn.trust_input = True
        self._dtypes = [np.dtype(dtype) for _, _, dtype in workload.inputs]
        self._wrap = any(shape == () for _, shape, _ in workload.inputs)

    def step(self, batch):
        if self._wrap:
            batch = [np.asarray(v, dtype=d) for v, d in zip(batch, self._dtypes)]
        return float(self._fn(*batch))
