"""Optimizers whose update rules are emitted into the generated training step.

Each optimizer writes its rule once, in :meth:`Optimizer.rule`, over operands that may be
symbolic (:class:`~symgrad.expr.Tensor`, for the fused generated step) or numpy arrays (for
the eager tape-based loop, :meth:`Optimizer.apply_arrays`). The rules follow PyTorch's
definitions (``torch.optim``); each class docstring gives the formula.

Options shared by all optimizers, applied in PyTorch's order:

1. gradient clipping: ``clip_value`` (elementwise to [-c, c]), ``clip_norm`` (each
   parameter's gradient scaled to L2 norm <= c), ``clip_global_norm`` (all gradients scaled
   together, as ``torch.nn.utils.clip_grad_norm_``: coefficient min(1, c/(norm + 1e-6)));
2. ``weight_decay``: ``g += weight_decay * p`` (L2 penalty, as PyTorch's ``weight_decay``).

Hyperparameters (``lr``, betas, ...) are read at every call of the step, so they can change
between steps (learning-rate schedules) without recompiling. The options (weight decay,
clipping, ``nesterov``) are compiled into the step: once ``sg.train_step`` has used an
optimizer, changing them raises AttributeError instead of being silently ignored.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Optimizer", "SGD", "Momentum", "Adam", "RMSProp", "AdaGrad"]


class _ArrayOps:
    """The few functions a rule needs, for numpy arrays."""

    sqrt = staticmethod(np.sqrt)
    minimum = staticmethod(np.minimum)
    clip = staticmethod(np.clip)

    @staticmethod
    def sum(x):
        return np.sum(x)


class _SymbolicOps:
    """The same functions, for symgrad Tensors."""

    @staticmethod
    def sqrt(x):
        from .ops.elementwise import sqrt
        return sqrt(x)

    @staticmethod
    def minimum(a, b):
        from .ops.elementwise import minimum
        return minimum(a, b)

    @staticmethod
    def clip(x, lo, hi):
        from .ops.elementwise import clip
        return clip(x, lo, hi)

    @staticmethod
    def sum(x):
        from .ops.reductions import sum as sg_sum
        return sg_sum(x)


class Optimizer:
    """Base class. Subclasses set ``hyper_names``, ``slot_names``, ``uses_step`` and ``rule``.

    Parameters
    ----------
    weight_decay : float
        ``g += weight_decay * p`` after clipping (0: none).
    clip_value : float, optional
        Clip each gradient elementwise to ``[-clip_value, clip_value]``.
    clip_norm : float, optional
        Scale each parameter's gradient to an L2 norm of at most ``clip_norm``.
    clip_global_norm : float, optional
        Scale all gradients together to a joint L2 norm of at most ``clip_global_norm``.
    **hyper
        One value per name in ``hyper_names`` (``lr``, ...).

    Raises
    ------
    ValueError
        When a hyperparameter is not finite.
    """

    hyper_names: tuple = ("lr",)
    slot_names: tuple = ()
    uses_step = False

    def __init__(self, weight_decay: float = 0.0, clip_value: float | None = None,
                 clip_norm: float | None = None, clip_global_norm: float | None = None,
                 **hyper):
        self._hyper = [float(hyper[name]) for name in self.hyper_names]
        # {update-rule signature: the hyperparameter list}: a generated step reads
        # ``optimizer._hyper_for[<the signature it was compiled for>]`` at every call (one
        # plain-dict lookup); on a miss it calls ``hyper_list_for``, which explains
        self._hyper_for = {}
        for name, value in zip(self.hyper_names, self._hyper):
            if not np.isfinite(value):
                raise ValueError(f"{type(self).__name__}: {name} must be finite, got {value}")
            self._check_hyper(name, value)
        self.weight_decay = float(weight_decay)
        self.clip_value = clip_value
        self.clip_norm = clip_norm
        self.clip_global_norm = clip_global_norm

    def _check_hyper(self, name: str, value: float) -> None:
        """Raise ValueError for a hyperparameter value the rule is not defined for (at
        construction and at every assignment; a subclass says which)."""

    def _freeze(self) -> None:
        """Fix the options (compiled into a training step's code) and publish the
        hyperparameter list under the signature a generated step looks it up by."""
        if "_signature" not in self.__dict__:
            object.__setattr__(self, "_signature", self.config())
        self._hyper_for[self._signature] = self._hyper

    def hyper_list_for(self, signature: str) -> list:
        """The live hyperparameter list, for a step compiled for the update rule ``signature``.

        Parameters
        ----------
        signature : str
            The :meth:`config` the step was compiled for.

        Returns
        -------
        list of float
            The list the step reads at every call (it changes with ``opt.lr = ...``).

        Raises
        ------
        TypeError
            When this optimizer's rule is another one (the step must be rebuilt).
        """
        if self.config() == signature:
            self._freeze()
            return self._hyper
        raise TypeError(f"train_step: this step was compiled for the update rule {signature}, "
                        f"but step.optimizer is now {self!r} with the rule {self.config()}; "
                        f"build a new step with sg.train_step(loss, optimizer), or change "
                        f"hyperparameters in place (step.optimizer.lr = ...)")

    # hyperparameters live in a list the generated step reads at every call
    # read through properties (made in __init_subclass__), not __getattr__: a class with
    # __getattr__ has slow attribute reads, and a step reads ``_hyper_for`` at every call
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _hyper_properties(cls)

    def __setattr__(self, name, value):
        if name in type(self).hyper_names:
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"{type(self).__name__}: {name} must be finite, got {value}")
            self._check_hyper(name, value)
            self._hyper[type(self).hyper_names.index(name)] = value
        elif "_signature" in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}.{name} is compiled into the training step's code and "
                f"cannot change after sg.train_step; build a new optimizer and a new step "
                f"(hyperparameters {list(self.hyper_names)} can change between steps)")
        else:
            object.__setattr__(self, name, value)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_hyper_for", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_hyper_for"] = {}
        if "_signature" in state:
            self._freeze()

    def options(self) -> dict:
        """The keyword arguments that rebuild this optimizer (hyperparameters included)."""
        opts = dict(self.hyper, weight_decay=self.weight_decay, clip_value=self.clip_value,
                    clip_norm=self.clip_norm, clip_global_norm=self.clip_global_norm)
        opts.update(self._static_options())
        return opts

    def _static_options(self) -> dict:
        return {}

    @property
    def hyper(self) -> dict:
        """The hyperparameters by name, as they are now."""
        return dict(zip(self.hyper_names, self._hyper))

    def config(self) -> str:
        """What the generated code depends on (the hyperparameter *values* are not in it)."""
        return (f"{type(self).__name__}(wd={self.weight_decay!r}, clip_value={self.clip_value!r},"
                f" clip_norm={self.clip_norm!r}, clip_global_norm={self.clip_global_norm!r},"
                f" {self._static_config()})")

    def _static_config(self) -> str:
        return ""

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({hyper})"

    # -- the maths, written once ------------------------------------------------------
    def transform_grads(self, params: list, grads: list, ops) -> list:
        """Clipping, then weight decay (PyTorch's order).

        Parameters
        ----------
        params, grads : list
            The parameters and their gradients, in the same order (Tensors or arrays).
        ops
            The functions the maths needs (``sqrt``, ``minimum``, ``clip``, ``sum``) for
            that kind of operand.

        Returns
        -------
        list
            The transformed gradients.
        """
        if self.clip_value is not None:
            c = float(self.clip_value)
            grads = [ops.clip(g, -c, c) for g in grads]
        if self.clip_norm is not None:
            c = float(self.clip_norm)
            grads = [g * ops.minimum(1.0, c / (ops.sqrt(ops.sum(g * g)) + 1e-6)) for g in grads]
        if self.clip_global_norm is not None:
            c = float(self.clip_global_norm)
            total = ops.sqrt(_add_all([ops.sum(g * g) for g in grads]))
            coef = ops.minimum(1.0, c / (total + 1e-6))
            grads = [g * coef for g in grads]
        if self.weight_decay:
            grads = [g + self.weight_decay * p for p, g in zip(params, grads)]
        return grads

    def backward_seed(self, h: dict):
        """A scalar to seed the backward pass with instead of 1, or None.

        SGD returns ``lr``: the gradient is linear in the seed, so every gradient comes out
        already multiplied by the learning rate and the update is ``p -= g`` (the expert's
        trick, exact for any lr, which may still change between steps).

        Parameters
        ----------
        h : dict
            The hyperparameters by name.

        Returns
        -------
        scalar or None
        """
        return None

    def rule(self, p, g, slots: dict, h: dict, t, ops):
        """The update rule, for one parameter.

        Parameters
        ----------
        p, g
            The parameter and its (transformed) gradient.
        slots : dict
            The parameter's optimizer state, by slot name.
        h : dict
            The hyperparameters by name.
        t
            The step number, counting from 1 (read by rules with ``uses_step``).
        ops
            The functions the maths needs, for the operands' kind (see
            :meth:`transform_grads`).

        Returns
        -------
        tuple
            ``(new_p, {slot: new_value})``.
        """
        raise NotImplementedError

    # -- eager use, for the tape-based loop ---------------------------------------------
    def init_slots(self, params: dict) -> dict:
        """Zero optimizer state for numpy parameters.

        Parameters
        ----------
        params : dict
            Parameter name to array.

        Returns
        -------
        dict
            Parameter name to ``{slot name: zeros like the parameter}``.
        """
        return {name: {s: np.zeros_like(v) for s in self.slot_names}
                for name, v in params.items()}

    def apply_arrays(self, params: dict, grads: dict, slots: dict, t: int) -> None:
        """Update numpy ``params`` and ``slots`` in place from ``grads``.

        Parameters
        ----------
        params : dict
            Parameter name to array; updated in place.
        grads : dict
            Parameter name to gradient.
        slots : dict
            As :meth:`init_slots` makes them; updated in place.
        t : int
            The step number, counting from 1.
        """
        names = list(params)
        gs = self.transform_grads([params[n] for n in names], [grads[n] for n in names],
                                  _ArrayOps)
        for n, g in zip(names, gs):
            new_p, new_slots = self.rule(params[n], g, slots[n], self.hyper, t, _ArrayOps)
            for s, v in new_slots.items():
                slots[n][s][...] = v
            params[n][...] = new_p


def _hyper_properties(cls) -> None:
    """``opt.lr`` (and each other hyperparameter) reads its entry of the live list."""
    for i, name in enumerate(cls.hyper_names):
        if name not in cls.__dict__:
            setattr(cls, name, property(lambda self, i=i: self._hyper[i],
                                        doc=f"hyperparameter {name} (read at every step)"))


_hyper_properties(Optimizer)


def _add_all(terms):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


class SGD(Optimizer):
    """Plain gradient descent: ``p <- p - lr * g`` (``torch.optim.SGD``, no momentum).

    Parameters
    ----------
    lr : float
        The learning rate.
    **options
        ``weight_decay``, ``clip_value``, ``clip_norm``, ``clip_global_norm`` (see
        :class:`Optimizer`).
    """

    def __init__(self, lr: float, **options):
        super().__init__(lr=lr, **options)

    def backward_seed(self, h: dict):
        """``lr`` when there is no clipping and no weight decay, else None.

        The gradient is linear in the seed, but clipping and weight decay are not.
        """
        plain = (self.clip_value is None and self.clip_norm is None
                 and self.clip_global_norm is None and not self.weight_decay)
        return h["lr"] if plain else None

    def rule(self, p, g, slots, h, t, ops):
        return p - h["lr"] * g, {}


class Momentum(Optimizer):
    """SGD with momentum, as ``torch.optim.SGD(momentum=mu, dampening=0)``:
    ``buf <- mu * buf + g``; ``p <- p - lr * buf``, or with ``nesterov=True``
    ``p <- p - lr * (g + mu * buf)``.

    Parameters
    ----------
    lr : float
        The learning rate.
    momentum : float
        ``mu``.
    nesterov : bool
        Nesterov momentum (compiled into the step).
    **options
        ``weight_decay``, ``clip_value``, ``clip_norm``, ``clip_global_norm`` (see
        :class:`Optimizer`).
    """

    hyper_names = ("lr", "momentum")
    slot_names = ("momentum_buffer",)

    def __init__(self, lr: float, momentum: float = 0.9, nesterov: bool = False, **options):
        super().__init__(lr=lr, momentum=momentum, **options)
        self.nesterov = bool(nesterov)

    def _static_config(self):
        return f"nesterov={self.nesterov}"

    def _static_options(self):
        return {"nesterov": self.nesterov}

    def rule(self, p, g, slots, h, t, ops):
        buf = h["momentum"] * slots["momentum_buffer"] + g
        step = g + h["momentum"] * buf if self.nesterov else buf
        return p - h["lr"] * step, {"momentum_buffer": buf}


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``: ``m <- b1*m + (1-b1)*g``; ``v <- b2*v + (1-b2)*g*g``;
    ``p <- p - lr * (m/(1-b1**t)) / (sqrt(v)/sqrt(1-b2**t) + eps)``, t counting from 1
    (computed as ``p - (lr*c2/(1-b1**t)) * m / (sqrt(v) + eps*c2)``, ``c2 = sqrt(1-b2**t)``).

    Parameters
    ----------
    lr : float
        The learning rate.
    beta1, beta2 : float
        The decay rates of the first and second moment estimates.
    eps : float
        Added to the denominator.
    **options
        ``weight_decay``, ``clip_value``, ``clip_norm``, ``clip_global_norm`` (see
        :class:`Optimizer`).
    """

    hyper_names = ("lr", "beta1", "beta2", "eps")
    slot_names = ("m", "v")
    uses_step = True

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, **options):
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, eps=eps, **options)

    def _check_hyper(self, name: str, value: float) -> None:
        # the bias corrections 1 - beta**t must stay positive (as torch.optim.Adam checks)
        if name in ("beta1", "beta2") and not 0.0 <= value < 1.0:
            raise ValueError(f"Adam: {name} must be in [0, 1), got {value}")

    def rule(self, p, g, slots, h, t, ops):
        m = h["beta1"] * slots["m"] + (1 - h["beta1"]) * g
        v = h["beta2"] * slots["v"] + (1 - h["beta2"]) * (g * g)
        # torch's denominator sqrt(v)/c2 + eps with c2 = sqrt(1 - b2**t), times c2 above and
        # below: the bias correction of v joins the scalar step size, so the arrays get
        # sqrt(v) + eps*c2 (two passes over v's size, not three as sqrt(v/(1 - b2**t)) + eps)
        c2 = (1 - h["beta2"] ** t) ** 0.5  # a Python float in the step (np.sqrt: a float64)
        step_size = h["lr"] * c2 / (1 - h["beta1"] ** t)
        denom = ops.sqrt(v) + h["eps"] * c2
        return p - step_size * m / denom, {"m": m, "v": v}


class RMSProp(Optimizer):
    """RMSProp, as ``torch.optim.RMSprop`` (alpha = ``rho``, no momentum, not centered):
    ``v <- rho*v + (1-rho)*g*g``; ``p <- p - lr * g / (sqrt(v) + eps)``.

    Parameters
    ----------
    lr : float
        The learning rate.
    rho : float
        The decay rate of the squared-gradient average.
    eps : float
        Added to the denominator.
    **options
        ``weight_decay``, ``clip_value``, ``clip_norm``, ``clip_global_norm`` (see
        :class:`Optimizer`).
    """

    hyper_names = ("lr", "rho", "eps")
    slot_names = ("square_avg",)

    def __init__(self, lr: float, rho: float = 0.9, eps: float = 1e-7, **options):
        super().__init__(lr=lr, rho=rho, eps=eps, **options)

    def rule(self, p, g, slots, h, t, ops):
        v = h["rho"] * slots["square_avg"] + (1 - h["rho"]) * (g * g)
        return p - h["lr"] * g / (ops.sqrt(v) + h["eps"]), {"square_avg": v}


class AdaGrad(Optimizer):
    """AdaGrad, as ``torch.optim.Adagrad`` (no lr decay, zero initial accumulator):
    ``s <- s + g*g``; ``p <- p - lr * g / (sqrt(s) + eps)``.

    Parameters
    ----------
    lr : float
        The learning rate.
    eps : float
        Added to the denominator.
    **options
        ``weight_decay``, ``clip_value``, ``clip_norm``, ``clip_global_norm`` (see
        :class:`Optimizer`).
    """

    hyper_names = ("lr", "eps")
    slot_names = ("sum",)

    def __init__(self, lr: float, eps: float = 1e-10, **options):
        super().__init__(lr=lr, eps=eps, **options)

    def rule(self, p, g, slots, h, t, ops):
        s = slots["sum"] + g * g
        return p - h["lr"] * g / (ops.sqrt(s) + h["eps"]), {"sum": s}
