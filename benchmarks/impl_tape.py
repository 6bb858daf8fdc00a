"""symgrad's tape baseline: a ``GradientTape`` loop plus the optimizer's array maths."""

from __future__ import annotations

from .impl_base import Implementation, make_ops

__all__ = ["TapeImpl"]


class TapeImpl(Implementation):
    name = "tape"
    description = "symgrad.tape GradientTape loop + optimizer.apply_arrays"

    @classmethod
    def version(cls) -> str:
        import symgrad
        from symgrad import tape  # noqa: F401
        return symgrad.__version__

    def setup(self, workload, init, optimizer):
        from symgrad import tape as tp
        self._tp = tp
        self._ops = make_ops(tp.mean, tp.sum, tp.relu, conv2d=tp.conv2d,
                             max_pool2d=tp.max_pool2d, reshape=tp.reshape,
                             softmax_cross_entropy=tp.softmax_cross_entropy)
        self._loss = workload.loss
        self._names = workload.input_names
        self._vars = {n: tp.Variable(init[n], name=n, dtype=init[n].dtype)
                      for n in workload.param_shapes}
        self._arrays = {n: v.value for n, v in self._vars.items()}  # live, updated in place
        self._opt = optimizer.symgrad()
        self._slots = self._opt.init_slots(self._arrays)
        self._t = 0

    def step(self, batch):
        with self._tp.GradientTape() as tape:
            loss = self._loss(self._ops, self._vars, dict(zip(self._names, batch)))
        grads = tape.gradient(loss, self._vars)
        self._t += 1
        self._opt.apply_arrays(self._arrays, grads, self._slots, self._t)
        return float(loss)

    def params(self):
        return {n: a.copy() for n, a in self._arrays.items()}
