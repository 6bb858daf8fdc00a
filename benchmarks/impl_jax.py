"""JAX: ``jax.value_and_grad`` and the optimizer update in one ``jax.jit`` function."""

from __future__ import annotations

import os

import numpy as np

from .impl_base import Implementation, make_ops

__all__ = ["JaxImpl"]


def _limit_threads() -> None:
    """XLA's CPU thread pool to one thread when the runner asked for one BLAS thread.

    XLA reads no BLAS/OpenMP variable; its own flags must be set before jax is first
    imported, or its convolutions run on every core while numpy and torch use one.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("OMP_NUM_THREADS") == "1" and "multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()


def _nn(jax) -> dict:
    """W5's layers in ``jax.lax``: NCHW, OIHW weights, valid convolutions of stride 1."""
    jnp, lax = jax.numpy, jax.lax

    def conv2d(x, k):
        return lax.conv_general_dilated(x, k, window_strides=(1, 1), padding="VALID",
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def max_pool2d(x, size):
        # -inf as the initial value: reduce_window's max (its gradient sends each window's
        # adjoint to one maximum, as PyTorch's)
        window = (1, 1, size, size)
        return lax.reduce_window(x, -jnp.inf, lax.max, window, window, "VALID")

    def softmax_cross_entropy(logits, onehot):
        return -jnp.sum(onehot * jax.nn.log_softmax(logits, axis=-1), axis=-1)

    return {"conv2d": conv2d, "max_pool2d": max_pool2d, "reshape": jnp.reshape,
            "softmax_cross_entropy": softmax_cross_entropy}


class JaxImpl(Implementation):
    name = "jax"
    description = "JAX jit(value_and_grad + update), CPU"
    memory_visible = False  # XLA's buffers are invisible to tracemalloc

    @classmethod
    def version(cls) -> str:
        import jax
        return jax.__version__

    def setup(self, workload, init, optimizer):
        _limit_threads()
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)  # float64 workloads stay float64
        ops = make_ops(jnp.mean, jnp.sum, jax.nn.relu, **_nn(jax))
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
