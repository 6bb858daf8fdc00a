"""The expert floor: hand-written numpy training steps with hand-derived gradients.

One class per reference workload (``docs/workloads.md``): :class:`W0Step`, :class:`W1Step`,
:class:`W3Step`, :class:`W4Step`. Each is written the way an expert writes numpy for speed,
so that symgrad's generated step and the tape baseline are measured against the fastest
straightforward numpy, not against a strawman:

* buffers are preallocated (per batch size, so a smaller last batch costs one allocation,
  once), every product writes into them with ``out=``, parameters are updated in place;
* exactly the needed products: a W3 step of depth ``L`` does ``L`` forward GEMMs, ``L``
  weight-gradient GEMMs and ``L - 1`` input-gradient GEMMs (no gradient for the inputs);
  bias gradients are one GEMV each (``ones @ delta``, faster than ``sum(axis=0)``);
* relu is ``np.maximum(z, zeros)`` against a zeros buffer (several times faster than
  ``np.maximum(z, 0)``), its derivative a boolean mask;
* for SGD and momentum the learning rate is folded into the seed of the backward pass, so
  the update is a single subtraction (see :class:`_ArrayOptimizer`);
* W0 has one scalar parameter: its step is pure Python float arithmetic.

:class:`W0FloatStep` and :class:`W4FloatStep` go one step further for the two tiny models:
the parameters live in Python floats (no numpy call in the step; the batch arrays are read
into floats once), the floor for a model too small for numpy's per-call overhead.

Promises: ``__init__(params, lr, optimizer="sgd" | "momentum" | "adam", **hyper)`` copies
the parameters it needs out of ``params`` (extra keys, such as the data in a
:mod:`symgrad.workloads` dict, are ignored); ``step(*batch)`` returns the loss of the batch
at the parameters *before* the update, as a Python float, then updates ``.params`` in place
(the Python-float steps build ``.params`` afresh when asked).
The optimizers are PyTorch's (``torch.optim.SGD`` with ``dampening=0`` and
``weight_decay=0``, ``torch.optim.Adam`` without ``amsgrad``), mathematically exact:

* SGD:      ``p -= lr * g``
* momentum: ``v = mu * v + g``; ``p -= lr * v``  (nesterov: ``p -= lr * (g + mu * v)``)
* Adam:     ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
  ``p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``, ``t = 1, 2, ...``

Defaults: ``momentum=0.9``, ``nesterov=False``, ``beta1=0.9``, ``beta2=0.999``,
``eps=1e-8``. :func:`mlp_loss_and_grads` is the plain, allocation-happy version of the W3
maths, meant as an oracle in tests.
"""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["W0Step", "W1Step", "W3Step", "W4Step", "W5Step", "W0FloatStep", "W4FloatStep",
           "mlp_loss_and_grads", "OPTIMIZERS", "conv2d_valid", "max_pool2d",
           "softmax_cross_entropy"]

#: Optimizer names and their hyper-parameters with defaults.
OPTIMIZERS = {
    "sgd": {},
    "momentum": {"momentum": 0.9, "nesterov": False},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}


def _hyper(optimizer: str, hyper: dict) -> dict:
    """Defaults of ``optimizer`` overridden by ``hyper``; unknown names are an error."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZERS)}")
    unknown = sorted(set(hyper) - set(OPTIMIZERS[optimizer]))
    if unknown:
        raise TypeError(f"optimizer {optimizer!r} takes hyper-parameters "
                        f"{list(OPTIMIZERS[optimizer])}, got unknown {unknown}")
    return {**OPTIMIZERS[optimizer], **hyper}


# ---------------------------------------------------------------------------------------------
# Optimizer over a dict of arrays
# ---------------------------------------------------------------------------------------------

class _ArrayOptimizer:
    """In-place PyTorch-exact updates of a dict of arrays from a dict of gradient buffers.

    The gradient buffers are scratch: :meth:`update` may overwrite them. The step must
    fill them with ``seed_scale * dL/dp``:

    * SGD: ``seed_scale = lr``, so the update is ``p -= g'`` with ``g' = lr g``;
    * momentum: ``seed_scale = lr`` and the velocity is kept premultiplied, ``v' = lr v``:
      ``v' = mu v' + g'`` is ``lr (mu v + g)``, and ``p -= v'`` is ``p -= lr v``; nesterov
      ``p -= g' + mu v'`` is ``p -= lr (g + mu v)`` (exact while ``lr`` is constant);
    * Adam: ``seed_scale = 1`` (the raw gradient). With ``c2 = sqrt(1 - b2^t)``, the
      update ``lr (m / (1 - b1^t)) / (sqrt(v) / c2 + eps)`` is computed as
      ``(lr c2 / (1 - b1^t)) * m / (sqrt(v) + eps c2)``.
    """

    def __init__(self, params: dict, lr: float, optimizer: str, hyper: dict) -> None:
        self.params = params
        self.lr = float(lr)
        self.kind = optimizer
        self.hyper = _hyper(optimizer, hyper)
        self.t = 0
        self.seed_scale = 1.0 if optimizer == "adam" else self.lr
        if optimizer == "momentum":
            self.mu = float(self.hyper["momentum"])
            self.nesterov = bool(self.hyper["nesterov"])
            self.velocity = {k: np.zeros_like(p) for k, p in params.items()}
        elif optimizer == "adam":
            self.b1 = float(self.hyper["beta1"])
            self.b2 = float(self.hyper["beta2"])
            self.eps = float(self.hyper["eps"])
            self.m = {k: np.zeros_like(p) for k, p in params.items()}
            self.v = {k: np.zeros_like(p) for k, p in params.items()}
            self.scratch = {k: np.empty_like(p) for k, p in params.items()}

    def update(self, grads: dict) -> None:
        """Apply one step; ``grads[k]`` holds ``seed_scale * dL/dparams[k]`` (overwritten)."""
        self.t += 1
        params = self.params
        if self.kind == "sgd":
            for k, g in grads.items():
                params[k] -= g
        elif self.kind == "momentum":
            mu = self.mu
            for k, g in grads.items():
                v = self.velocity[k]
                v *= mu                         # v' = mu v' + g'
                v += g
                if self.nesterov:
                    params[k] -= g              # p -= lr g + mu (lr v)
                    np.multiply(v, mu, out=g)
                    params[k] -= g
                else:
                    params[k] -= v              # p -= lr v
        else:
            b1, b2, t = self.b1, self.b2, self.t
            c2 = math.sqrt(1.0 - b2**t)
            step_size = self.lr * c2 / (1.0 - b1**t)
            eps_hat = self.eps * c2
            for k, g in grads.items():
                m, v, s = self.m[k], self.v[k], self.scratch[k]
                m *= b1                         # m = b1 m + (1 - b1) g
                np.multiply(g, 1.0 - b1, out=s)
                m += s
                np.multiply(g, g, out=g)        # v = b2 v + (1 - b2) g^2
                g *= 1.0 - b2
                v *= b2
                v += g
                np.sqrt(v, out=s)               # p -= step_size m / (sqrt(v) + eps c2)
                s += eps_hat
                np.divide(m, s, out=s)
                s *= step_size
                params[k] -= s


class _HandStep:
    """Shared set-up: copy the named parameters, allocate gradient buffers, the optimizer."""

    def __init__(self, params: dict, names: list[str], lr: float, optimizer: str,
                 hyper: dict) -> None:
        missing = [k for k in names if k not in params]
        if missing:
            raise KeyError(f"{type(self).__name__}: missing parameters {missing}; "
                           f"got keys {sorted(params)}")
        self.params = {k: np.array(params[k], order="C", copy=True) for k in names}
        dtypes = {p.dtype for p in self.params.values()}
        if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
            raise TypeError(f"{type(self).__name__}: parameters must share one floating "
                            f"dtype, got { {k: str(p.dtype) for k, p in self.params.items()} }")
        self.dtype = dtypes.pop()
        self.lr = float(lr)
        self.optimizer = optimizer
        self._opt = _ArrayOptimizer(self.params, lr, optimizer, hyper)
        self._scale = self._opt.seed_scale
        self._grads = {k: np.empty_like(p) for k, p in self.params.items()}

    @property
    def t(self) -> int:
        """Number of steps taken."""
        return self._opt.t


# ---------------------------------------------------------------------------------------------
# W0 -- one scalar weight, pure Python floats
# ---------------------------------------------------------------------------------------------

class W0Step:
    """W0: loss ``(x A - target)^2`` on one sample, gradient ``2 (x A - target) x``.

    Parameters
    ----------
    params : dict
        Needs ``"A"`` (a 0-d array or a number); copied into a 0-d array ``.params["A"]``.
    lr : float
        Learning rate.
    optimizer : {"sgd", "momentum", "adam"}
        Update rule (module docstring).
    **hyper
        Optimizer hyper-parameters (``momentum``, ``nesterov``; ``beta1``, ``beta2``,
        ``eps``).

    Notes
    -----
    Arithmetic is done on Python floats (float64) and the result is stored into the 0-d
    array, the source of truth, after every step.
    """

    def __init__(self, params: dict, lr: float, optimizer: str = "sgd", **hyper) -> None:
        if "A" not in params:
            raise KeyError(f"W0Step: missing parameter 'A'; got keys {sorted(params)}")
        a = np.array(params["A"], copy=True)
        if a.dtype.kind != "f":
            a = a.astype(np.float64)
        self.params = {"A": a}
        self.lr = float(lr)
        self.optimizer = optimizer
        self.hyper = _hyper(optimizer, hyper)
        self.t = 0
        self._v = 0.0  # momentum velocity, or Adam's second moment
        self._m = 0.0  # Adam's first moment

    def step(self, x: float, target: float) -> float:
        """One update on the sample ``x``; returns the loss before the update."""
        a_arr = self.params["A"]
        x = float(x)
        a = float(a_arr)
        e = x * a - float(target)
        g = 2.0 * e * x  # d/dA (x A - t)^2
        self.t += 1
        if self.optimizer == "sgd":
            a -= self.lr * g
        elif self.optimizer == "momentum":
            mu = self.hyper["momentum"]
            self._v = mu * self._v + g
            a -= self.lr * (g + mu * self._v if self.hyper["nesterov"] else self._v)
        else:
            b1, b2, t = self.hyper["beta1"], self.hyper["beta2"], self.t
            self._m = b1 * self._m + (1.0 - b1) * g
            self._v = b2 * self._v + (1.0 - b2) * g * g
            mhat = self._m / (1.0 - b1**t)
            vhat = self._v / (1.0 - b2**t)
            a -= self.lr * mhat / (math.sqrt(vhat) + self.hyper["eps"])
        a_arr[()] = a
        return e * e


# ---------------------------------------------------------------------------------------------
# W1 -- two-layer linear network
# ---------------------------------------------------------------------------------------------

class W1Step(_HandStep):
    """W1: ``y = (x @ w1) @ w2``, loss ``mean((y - y_)^2)``.

    Gradients, with ``e = y - y_`` and ``n = e.size``: ``dy = 2 e / n``,
    ``dw2 = h.T @ dy``, ``dh = dy @ w2.T``, ``dw1 = x.T @ dh`` where ``h = x @ w1``.

    Parameters
    ----------
    params : dict
        Needs ``"w1"`` (k x m) and ``"w2"`` (m x o); copied.
    lr, optimizer, **hyper
        As for :class:`W0Step`.
    """

    def __init__(self, params: dict, lr: float, optimizer: str = "sgd", **hyper) -> None:
        super().__init__(params, ["w1", "w2"], lr, optimizer, hyper)
        self._buffers: dict[int, tuple[np.ndarray, ...]] = {}

    def _buffers_for(self, n: int) -> tuple[np.ndarray, ...]:
        bufs = self._buffers.get(n)
        if bufs is None:
            w1, w2 = self.params["w1"], self.params["w2"]
            h = np.empty((n, w1.shape[1]), self.dtype)
            y = np.empty((n, w2.shape[1]), self.dtype)
            dh = np.empty_like(h)
            bufs = self._buffers[n] = (h, y, dh)
        return bufs

    def step(self, x: np.ndarray, y_: np.ndarray) -> float:
        """One update on the batch ``(x, y_)``; returns the batch loss before the update."""
        x = np.asarray(x, dtype=self.dtype)
        w1, w2 = self.params["w1"], self.params["w2"]
        gw1, gw2 = self._grads["w1"], self._grads["w2"]
        h, y, dh = self._buffers_for(x.shape[0])
        x.dot(w1, out=h)
        h.dot(w2, out=y)
        np.subtract(y, y_, out=y)  # e = y - y_
        loss = float(np.vdot(y, y)) / y.size
        y *= 2.0 * self._scale / y.size  # dL/dy = 2 e / n (times lr for SGD / momentum)
        h.T.dot(y, out=gw2)
        y.dot(w2.T, out=dh)
        x.T.dot(dh, out=gw1)
        self._opt.update(self._grads)
        return loss


# ---------------------------------------------------------------------------------------------
# W3 -- MLP of any depth
# ---------------------------------------------------------------------------------------------

def _mlp_layers(params: dict) -> int:
    """Number of layers ``L`` of an MLP named ``w1, b1, ..., wL, bL``, checked for shape."""
    indices = sorted(int(m.group(1)) for k in params if (m := re.fullmatch(r"w(\d+)", k)))
    depth = len(indices)
    if depth == 0 or indices != list(range(1, depth + 1)):
        raise KeyError(f"MLP parameters must be named w1, b1, ..., wL, bL; got weights "
                       f"{[f'w{i}' for i in indices]}")
    for i in range(1, depth + 1):
        w, b = params[f"w{i}"], params.get(f"b{i}")
        if b is None:
            raise KeyError(f"MLP parameters: w{i} has no bias b{i}")
        if np.ndim(w) != 2 or np.shape(b) != (np.shape(w)[1],):
            raise ValueError(f"MLP layer {i}: w{i} {np.shape(w)} and b{i} {np.shape(b)} do not "
                             "fit (need (n_in, n_out) and (n_out,))")
        if i > 1 and np.shape(params[f"w{i - 1}"])[1] != np.shape(w)[0]:
            raise ValueError(f"MLP layers {i - 1} and {i} do not chain: w{i - 1} "
                             f"{np.shape(params[f'w{i - 1}'])} then w{i} {np.shape(w)}")
    return depth


class W3Step(_HandStep):
    """W3: MLP of any depth, relu on all layers but the last, loss ``mean((onehot - out)^2)``.

    Forward: ``a_0 = x``; ``a_i = relu(a_{i-1} @ w_i + b_i)`` for ``i < L``;
    ``out = a_{L-1} @ w_L + b_L``. Backward, with the delta ``d_i = dL/dz_i`` of the
    pre-activation ``z_i``: ``d_L = 2 (out - onehot) / out.size``;
    ``dw_i = a_{i-1}.T @ d_i``; ``db_i = ones @ d_i``;
    ``d_{i-1} = (d_i @ w_i.T) * (a_{i-1} > 0)`` (relu' = 1 where the output is positive).

    Parameters
    ----------
    params : dict
        ``w1, b1, ..., wL, bL`` (e.g. from :func:`symgrad.workloads.w3` or
        :func:`symgrad.workloads.mlp_params`); copied.
    lr, optimizer, **hyper
        As for :class:`W0Step`.

    Notes
    -----
    The batch size may change between calls (e.g. a smaller last batch): buffers are
    allocated once per distinct batch size.
    """

    def __init__(self, params: dict, lr: float, optimizer: str = "sgd", **hyper) -> None:
        depth = _mlp_layers(params)
        names = [f"{c}{i}" for i in range(1, depth + 1) for c in ("w", "b")]
        super().__init__(params, names, lr, optimizer, hyper)
        self.depth = depth
        self.widths = [self.params["w1"].shape[0]] + [
            self.params[f"w{i}"].shape[1] for i in range(1, depth + 1)]
        self._w = [None] + [self.params[f"w{i}"] for i in range(1, depth + 1)]
        self._b = [None] + [self.params[f"b{i}"] for i in range(1, depth + 1)]
        self._gw = [None] + [self._grads[f"w{i}"] for i in range(1, depth + 1)]
        self._gb = [None] + [self._grads[f"b{i}"] for i in range(1, depth + 1)]
        self._buffers: dict[int, tuple] = {}

    def _buffers_for(self, n: int) -> tuple:
        """Per batch size: activations, deltas, relu masks, zeros, ones (index = layer)."""
        bufs = self._buffers.get(n)
        if bufs is None:
            shapes = [(n, width) for width in self.widths]
            acts = [None] + [np.empty(s, self.dtype) for s in shapes[1:]]  # a_i; a_L = out
            deltas = [None] + [np.empty(s, self.dtype) for s in shapes[1:-1]]
            masks = [None] + [np.empty(s, np.bool_) for s in shapes[1:-1]]
            zeros = [None] + [np.zeros(s, self.dtype) for s in shapes[1:-1]]
            ones = np.ones(n, self.dtype)
            bufs = self._buffers[n] = (acts, deltas, masks, zeros, ones)
        return bufs

    def step(self, x: np.ndarray, onehot: np.ndarray) -> float:
        """One update on the batch ``(x, onehot)``; returns the batch loss before the update."""
        x = np.asarray(x, dtype=self.dtype)
        onehot = np.asarray(onehot, dtype=self.dtype)
        depth, w, b, gw, gb = self.depth, self._w, self._b, self._gw, self._gb
        acts, deltas, masks, zeros, ones = self._buffers_for(x.shape[0])
        acts = acts.copy()
        acts[0] = x  # a_0 is the caller's batch (not copied)
        for i in range(1, depth):
            z = acts[i]
            acts[i - 1].dot(w[i], out=z)
            z += b[i]
            np.maximum(z, zeros[i], out=z)  # relu, in place
        out = acts[depth]
        acts[depth - 1].dot(w[depth], out=out)
        out += b[depth]
        np.subtract(out, onehot, out=out)  # e = out - onehot
        loss = float(np.vdot(out, out)) / out.size
        out *= 2.0 * self._scale / out.size  # d_L = 2 e / size (times lr for SGD / momentum)
        d = out
        for i in range(depth, 0, -1):
            acts[i - 1].T.dot(d, out=gw[i])
            ones.dot(d, out=gb[i])
            if i > 1:
                prev = deltas[i - 1]
                d.dot(w[i].T, out=prev)
                np.greater(acts[i - 1], zeros[i - 1], out=masks[i - 1])
                np.multiply(prev, masks[i - 1], out=prev)
                d = prev
        self._opt.update(self._grads)
        return loss


def mlp_loss_and_grads(params: dict, x: np.ndarray,
                       onehot: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and gradients of the W3 MLP, written plainly (an oracle for tests).

    Same maths as :class:`W3Step` with fresh arrays everywhere and no learning-rate
    folding; computes in the dtype of its inputs (pass float64 for gradient checks).

    Parameters
    ----------
    params : dict
        ``w1, b1, ..., wL, bL``; not modified.
    x : numpy.ndarray
        ``(n, n_in)`` inputs.
    onehot : numpy.ndarray
        ``(n, n_out)`` targets.

    Returns
    -------
    loss : float
        ``mean((onehot - out)^2)``.
    grads : dict
        ``dloss/dp`` for every parameter ``p``, same keys and shapes as ``params``.
    """
    depth = _mlp_layers(params)
    acts = [np.asarray(x)]
    for i in range(1, depth):
        acts.append(np.maximum(acts[-1] @ params[f"w{i}"] + params[f"b{i}"], 0))
    out = acts[-1] @ params[f"w{depth}"] + params[f"b{depth}"]
    err = out - onehot
    loss = float(np.mean(err**2))
    grads = {}
    d = 2.0 * err / err.size  # d mean(e^2) / d out
    for i in range(depth, 0, -1):
        grads[f"w{i}"] = acts[i - 1].T @ d
        grads[f"b{i}"] = d.sum(axis=0)
        if i > 1:
            d = (d @ params[f"w{i}"].T) * (acts[i - 1] > 0)
    return loss, {k: grads[k] for k in params if k in grads}


# ---------------------------------------------------------------------------------------------
# W4 -- linear regression with a bias column
# ---------------------------------------------------------------------------------------------

class W4Step(_HandStep):
    """W4: ``yhat = input @ weights``, loss ``sum((yhat - target)^2) / 2``.

    Gradient: ``dweights = input.T @ (yhat - target)``.

    Parameters
    ----------
    params : dict
        Needs ``"weights"`` (k x 1, or k x o); copied.
    lr, optimizer, **hyper
        As for :class:`W0Step`.
    """

    def __init__(self, params: dict, lr: float, optimizer: str = "sgd", **hyper) -> None:
        super().__init__(params, ["weights"], lr, optimizer, hyper)
        self._buffers: dict[int, np.ndarray] = {}

    def step(self, inp: np.ndarray, target: np.ndarray) -> float:
        """One update on ``(input, target)``; returns the loss before the update."""
        inp = np.asarray(inp, dtype=self.dtype)
        weights = self.params["weights"]
        e = self._buffers.get(inp.shape[0])
        if e is None:
            e = self._buffers[inp.shape[0]] = np.empty((inp.shape[0], weights.shape[1]),
                                                       self.dtype)
        inp.dot(weights, out=e)
        np.subtract(e, target, out=e)  # e = yhat - target
        loss = 0.5 * float(np.vdot(e, e))
        if self._scale != 1.0:
            e *= self._scale  # lr folded in for SGD / momentum
        inp.T.dot(e, out=self._grads["weights"])
        self._opt.update(self._grads)
        return loss


# ---------------------------------------------------------------------------------------------
# Python floats -- W0 and W4 with no numpy in the step
# ---------------------------------------------------------------------------------------------

class _FloatOptimizer:
    """PyTorch-exact updates of a list of Python-float parameters (the formulas of
    :class:`W0Step`). The steps write plain SGD inline and call this for the others."""

    def __init__(self, n: int, lr: float, optimizer: str, hyper: dict) -> None:
        self.kind = optimizer
        self.lr = float(lr)
        self.hyper = _hyper(optimizer, hyper)
        self.t = 0
        self.v = [0.0] * n  # momentum velocity, or Adam's second moment
        self.m = [0.0] * n  # Adam's first moment

    def update(self, params: list, grads: list) -> list:
        """The parameters after one step from ``grads`` (``dL/dp``, same order)."""
        self.t += 1
        lr, h, out = self.lr, self.hyper, []
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.kind == "sgd":
                p -= lr * g
            elif self.kind == "momentum":
                mu = h["momentum"]
                v = self.v[i] = mu * self.v[i] + g
                p -= lr * (g + mu * v if h["nesterov"] else v)
            else:
                b1, b2, t = h["beta1"], h["beta2"], self.t
                m = self.m[i] = b1 * self.m[i] + (1.0 - b1) * g
                v = self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g
                p -= lr * (m / (1.0 - b1**t)) / (math.sqrt(v / (1.0 - b2**t)) + h["eps"])
            out.append(p)
        return out


class _FloatStep:
    """Shared by the Python-float steps: the optimizer, and ``step`` bound to the inline SGD
    step when the optimizer is SGD (one branch less on a step of a few hundred ns)."""

    def __init__(self, n: int, lr: float, optimizer: str, hyper: dict) -> None:
        self.lr = float(lr)
        self.optimizer = optimizer
        self._opt = _FloatOptimizer(n, lr, optimizer, hyper)
        self.step = self._step_sgd if optimizer == "sgd" else self._step_other

    @property
    def t(self) -> int:
        """Number of steps taken."""
        return self._opt.t


class W0FloatStep(_FloatStep):
    """W0 in Python floats: the parameter is a float attribute, never a numpy array.

    The same maths as :class:`W0Step`, which keeps its 0-d array as the source of truth
    (one ``float()`` and one store per step); here nothing in the step touches numpy, the
    floor an expert writes for a one-weight model. ``.params`` builds the arrays on demand.

    Parameters
    ----------
    params, lr, optimizer, **hyper
        As for :class:`W0Step`.
    """

    def __init__(self, params: dict, lr: float, optimizer: str = "sgd", **hyper) -> None:
        if "A" not in params:
            raise KeyError(f"W0FloatStep: missing parameter 'A'; got keys {sorted(params)}")
        if np.shape(params["A"]) != ():
            raise ValueError(f"W0FloatStep: 'A' must be a scalar, got shape "
                             f"{np.shape(params['A'])}")
        super().__init__(1, lr, optimizer, hyper)
        self.a = float(params["A"])
        self._two_lr = 2.0 * self.lr  # SGD: A -= lr * 2 e x, the factor 2 folded once

    @property
    def params(self) -> dict:
        """``{"A": 0-d float64 array}``, a fresh copy."""
        return {"A": np.array(self.a)}

    def _step_sgd(self, x: float, target: float) -> float:
        a = self.a
        e = x * a - target
        self._opt.t += 1
        self.a = a - self._two_lr * e * x
        return e * e

    def _step_other(self, x: float, target: float) -> float:
        e = x * self.a - target
        (self.a,) = self._opt.update([self.a], [2.0 * e * x])
        return e * e


class W4FloatStep(_FloatStep):
    """W4 in Python floats: ``yhat_i = b c0_i + m c1_i``, loss ``sum((yhat - y)^2) / 2``.

    Gradients ``db = sum(e_i c0_i)``, ``dm = sum(e_i c1_i)`` with ``e = yhat - y``: two
    floats of parameters, one loop over the rows. The batch arrays are read into a tuple of
    float rows once and reused while the same array objects come back (keyed on their
    identity, so the arrays must not be changed in place between steps; the benchmark
    runner's batches are read-only); the step itself makes no numpy call.

    Parameters
    ----------
    params : dict
        Needs ``"weights"`` of shape (2, 1): ``(b, m)``.
    lr, optimizer, **hyper
        As for :class:`W0Step`.
    """

    def __init__(self, params: dict, lr: float, optimizer: str = "sgd", **hyper) -> None:
        if "weights" not in params:
            raise KeyError(f"W4FloatStep: missing parameter 'weights'; got keys "
                           f"{sorted(params)}")
        if np.shape(params["weights"]) != (2, 1):
            raise ValueError(f"W4FloatStep: 'weights' must be 2x1 (bias, slope), got shape "
                             f"{np.shape(params['weights'])}")
        super().__init__(2, lr, optimizer, hyper)
        self.b, self.m = (float(v) for v in np.ravel(params["weights"]))
        self._inp = self._target = self._rows = None

    @property
    def params(self) -> dict:
        """``{"weights": 2x1 float64 array}``, a fresh copy."""
        return {"weights": np.array([[self.b], [self.m]])}

    def _load(self, inp, target) -> tuple:
        """Read a batch into float rows ``(c0, c1, y)`` once; keep the arrays, so that their
        identity cannot be reused by new objects while cached."""
        if np.ndim(inp) != 2 or np.shape(inp)[1] != 2 or np.shape(target) != (
                np.shape(inp)[0], 1):
            raise ValueError(f"W4FloatStep: need input N x 2 and target N x 1, got "
                             f"{np.shape(inp)} and {np.shape(target)}")
        self._rows = tuple((float(c0), float(c1), float(y))
                           for (c0, c1), (y,) in zip(np.asarray(inp).tolist(),
                                                     np.asarray(target).tolist()))
        self._inp, self._target = inp, target
        return self._rows

    def _step_sgd(self, inp, target) -> float:
        rows = self._rows if inp is self._inp and target is self._target else \
            self._load(inp, target)
        b, m = self.b, self.m
        loss = gb = gm = 0.0
        for c0, c1, y in rows:  # loss_and_grads inline: a call costs ~10 % of this step
            e = b * c0 + m * c1 - y
            loss += e * e
            gb += e * c0
            gm += e * c1
        lr = self.lr
        self._opt.t += 1
        self.b = b - lr * gb
        self.m = m - lr * gm
        return 0.5 * loss

    def loss_and_grads(self, inp, target) -> tuple:
        """``(loss, db, dm)`` at the current parameters, nothing updated."""
        rows = self._rows if inp is self._inp and target is self._target else \
            self._load(inp, target)
        b, m = self.b, self.m
        loss = gb = gm = 0.0
        for c0, c1, y in rows:
            e = b * c0 + m * c1 - y
            loss += e * e
            gb += e * c0
            gm += e * c1
        return 0.5 * loss, gb, gm

    def _step_other(self, inp, target) -> float:
        loss, gb, gm = self.loss_and_grads(inp, target)
        self.b, self.m = self._opt.update([self.b, self.m], [gb, gm])
        return loss


# ---------------------------------------------------------------------------------------------
# W5 -- the small CNN: valid 3x3 convolutions as im2col + matmul, 2x2 max pooling by reshape
# ---------------------------------------------------------------------------------------------

def _im2col(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """(N, C * kh * kw, Ho * Wo) windows of a valid, stride-1 convolution (one copy per tap)."""
    n, c, h, w = x.shape
    ho, wo = h - kh + 1, w - kw + 1
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + ho, j:j + wo]
    return cols.reshape(n, c * kh * kw, ho * wo)


def _col2im(cols: np.ndarray, shape: tuple, kh: int, kw: int) -> np.ndarray:
    """The adjoint of :func:`_im2col`: each tap's slice added back into ``shape``."""
    n, c, h, w = shape
    ho, wo = h - kh + 1, w - kw + 1
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    out = np.zeros(shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + ho, j:j + wo] += cols[:, :, i, j]
    return out


def conv2d_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Valid, stride-1 cross-correlation of NCHW ``x`` with OIHW ``k`` (W5's oracle)."""
    o, c, kh, kw = k.shape
    n, _, h, w = x.shape
    y = np.matmul(k.reshape(o, c * kh * kw), _im2col(x, kh, kw))
    return y.reshape(n, o, h - kh + 1, w - kw + 1)


def max_pool2d(x: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping ``size`` x ``size`` max pooling; trailing rows/columns dropped."""
    n, c, h, w = x.shape
    ho, wo = h // size, w // size
    return x[:, :, :ho * size, :wo * size].reshape(n, c, ho, size, wo, size).max(axis=(3, 5))


def softmax_cross_entropy(logits: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """Per-row ``-sum(onehot * log_softmax(logits))``, shifted by the max."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return -np.sum(onehot * (z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))), axis=-1)


class W5Step(_HandStep):
    """W5: ``conv3x3(8) relu pool2 conv3x3(16) relu pool2 flatten linear(10)``, mean softmax
    cross-entropy, NCHW, by hand.

    Activations are kept channel-major, ``(C, N, H, W)`` in memory, so that each
    convolution is one GEMM for the whole batch: ``k.reshape(O, C*9) @ cols`` with the
    im2col ``cols`` of shape ``(C*9, N*Ho*Wo)`` (one strided copy per kernel tap). Each
    pool is a running maximum over its four taps. Backward: ``d_logits = (softmax - onehot)
    / N``; the linear layer as in W3; a pool sends each window's delta to its first maximum,
    tap by tap (as PyTorch; ties are frequent here: an all-zero patch of the input gives a
    window of equal biases); the relu masks by ``a > 0``; a kernel's gradient is
    ``delta @ cols.T``, its bias the sum of the delta, and the delta of its input
    ``k.T @ delta`` added back over the taps (col2im).

    Parameters
    ----------
    params : dict
        ``k1, b1, k2, b2, w3, b3`` (from :func:`symgrad.workloads.cnn_params`); copied.
    lr, optimizer, **hyper
        As for :class:`W0Step`.
    """

    NAMES = ("k1", "b1", "k2", "b2", "w3", "b3")

    def __init__(self, params: dict, lr: float, optimizer: str = "sgd", **hyper) -> None:
        super().__init__(params, list(self.NAMES), lr, optimizer, hyper)

    @staticmethod
    def _cols(a: np.ndarray) -> np.ndarray:
        """(C*9, N*Ho*Wo) windows of a channel-major (C, N, H, W) array, 3x3, valid."""
        c, n, h, w = a.shape
        ho, wo = h - 2, w - 2
        cols = np.empty((c, 3, 3, n, ho, wo), dtype=a.dtype)
        for i in range(3):
            for j in range(3):
                cols[:, i, j] = a[:, :, i:i + ho, j:j + wo]
        return cols.reshape(c * 9, n * ho * wo)

    @staticmethod
    def _uncols(cols: np.ndarray, shape: tuple) -> np.ndarray:
        """The adjoint of :meth:`_cols`: (C*9, N*Ho*Wo) added back into (C, N, H, W)."""
        c, n, h, w = shape
        ho, wo = h - 2, w - 2
        cols = cols.reshape(c, 3, 3, n, ho, wo)
        out = np.zeros(shape, dtype=cols.dtype)
        for i in range(3):
            for j in range(3):
                out[:, :, i:i + ho, j:j + wo] += cols[:, i, j]
        return out

    @staticmethod
    def _pool(a: np.ndarray) -> np.ndarray:
        ho, wo = a.shape[2] // 2, a.shape[3] // 2
        out = a[:, :, 0:2 * ho:2, 0:2 * wo:2].copy()
        for i, j in ((0, 1), (1, 0), (1, 1)):
            np.maximum(out, a[:, :, i:2 * ho:2, j:2 * wo:2], out=out)
        return out

    @staticmethod
    def _pool_back(a: np.ndarray, pooled: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Each 2x2 window's delta to its first maximum (row-major), as PyTorch's."""
        ho, wo = pooled.shape[2:]
        out = np.zeros_like(a)
        found = np.zeros(pooled.shape, dtype=bool)
        for i in range(2):
            for j in range(2):
                hit = a[:, :, i:2 * ho:2, j:2 * wo:2] == pooled
                hit &= ~found
                found |= hit
                np.multiply(hit, delta, out=out[:, :, i:2 * ho:2, j:2 * wo:2])
        return out

    def step(self, x: np.ndarray, onehot: np.ndarray) -> float:
        """One update on the batch ``(x, onehot)``; returns the batch loss before the update."""
        p, g = self.params, self._grads
        x = np.asarray(x, dtype=self.dtype)
        onehot = np.asarray(onehot, dtype=self.dtype)
        n = x.shape[0]
        # forward, channel-major
        cols1 = self._cols(x.transpose(1, 0, 2, 3))                  # (9, N*676)
        a1 = p["k1"].reshape(8, 9).dot(cols1).reshape(8, n, 26, 26)
        a1 += p["b1"].reshape(8, 1, 1, 1)
        np.maximum(a1, 0, out=a1)
        p1 = self._pool(a1)                                          # (8, N, 13, 13)
        cols2 = self._cols(p1)                                       # (72, N*121)
        a2 = p["k2"].reshape(16, 72).dot(cols2).reshape(16, n, 11, 11)
        a2 += p["b2"].reshape(16, 1, 1, 1)
        np.maximum(a2, 0, out=a2)
        p2 = self._pool(a2)                                          # (16, N, 5, 5)
        f = p2.transpose(1, 0, 2, 3).reshape(n, 400)
        z = f.dot(p["w3"])
        z += p["b3"]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.sum(onehot * (np.log(s) - z))) / n
        # backward: d = dL/dz, times lr for SGD / momentum (the optimizer's seed scale)
        d = e / s * onehot.sum(axis=1, keepdims=True) - onehot
        d *= self._scale / n
        f.T.dot(d, out=g["w3"])
        d.sum(axis=0, out=g["b3"])
        dp2 = d.dot(p["w3"].T).reshape(n, 16, 5, 5).transpose(1, 0, 2, 3)
        d2 = self._pool_back(a2, p2, dp2)
        d2 *= a2 > 0
        d2 = d2.reshape(16, -1)
        d2.dot(cols2.T, out=g["k2"].reshape(16, 72))
        g["b2"][...] = d2.sum(axis=1).reshape(16, 1, 1)
        dp1 = self._uncols(p["k2"].reshape(16, 72).T.dot(d2), p1.shape)
        d1 = self._pool_back(a1, p1, dp1)
        d1 *= a1 > 0
        d1 = d1.reshape(8, -1)
        d1.dot(cols1.T, out=g["k1"].reshape(8, 9))
        g["b1"][...] = d1.sum(axis=1).reshape(8, 1, 1)
        self._opt.update(g)
        return loss
