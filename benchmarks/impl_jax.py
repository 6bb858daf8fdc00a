"""JAX: ``jax.value_and_grad`` and the optimizer update in one ``jax.jit`` function."""

from __future__ import annotations

import numpy as np

from .impl_base import Implementation, make_ops

__all__ = ["JaxImpl"]


class JaxImpl(Implementation):
    name = "jax"
    description = "JAX jit(value_and_grad + update), CPU"
    memory_visible = False  # XLA's buffers are invisible to tracemalloc

    @classmethod
    def supports(cls, workload) -> bool:
        # no adapter of W5's layers (conv2d, max_pool2d) for this framework yet
        return workload.hand != "W5Step"

    @classmethod
    def version(cls) -> str:
        import jax
        return jax.__version__

    def setup(self, workload, init, optimizer):
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)  # float64 workloads stay float64
        ops = make_ops(jnp.mean, jnp.sum, jax.nn.relu)
        names, loss_fn = workload.input_names, workload.loss
        kind, lr, h = optimizer.kind, optimizer.lr, optimizer.hyper
        self._dtype = np.dtype(workload.dtype)

        def update(p, g, s, t):
            if kind == "sgd":
                return p - lr * g, s
            if kind == "momentum":
                buf = h["momentum"] * s["buf"] + g
                d = g + h["momentum"] * buf if h["nesterov"] else buf
                return p - lr * d, {"buf": buf}
            m = h["beta1"] * s["m"] + (1 - h["beta1"]) * g
            v = h["beta2"] * s["v"] + (1 - h["beta2"]) * g * g
            mhat = m / (1 - h["beta1"] ** t)
            vhat = v / (1 - h["beta2"] ** t)
            return p - lr * mhat / (jnp.sqrt(vhat) + h["eps"]), {"m": m, "v": v}

        def train(params, slots, t, batch):
            loss, grads = jax.value_and_grad(
                lambda p: loss_fn(ops, p, dict(zip(names, batch))))(params)
            new_p, new_s = {}, {}
            for n in params:
                new_p[n], new_s[n] = update(params[n], grads[n], slots[n], t)
            return loss, new_p, new_s

        slot_names = {"sgd": (), "momentum": ("buf",), "adam": ("m", "v")}[kind]
        self._params = {n: jnp.asarray(init[n]) for n in workload.param_shapes}
        self._slots = {n: {s: jnp.zeros_like(p) for s in slot_names}
                       for n, p in self._params.items()}
        self._train = jax.jit(train)
        self._t = 0

    def step(self, batch):
        self._t += 1
        t = np.asarray(self._t, dtype=self._dtype)  # keeps bias corrections in the dtype
        loss, self._params, self._slots = self._train(self._params, self._slots, t, batch)
        return float(loss)

    def params(self):
        return {n: np.array(p) for n, p in self._params.items()}
