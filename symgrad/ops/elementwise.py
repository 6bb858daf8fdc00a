"""Elementwise functions that SymPy does not have, each defined once as a SymPy Function.

Each class states its derivative (``fdiff``, so ``sympy.diff`` differentiates through it),
and its numpy form (``numpy_form``, used by :mod:`symgrad.compiler.printer`). Conventions at kinks
follow PyTorch: d relu(0) = 0, the step function is 0 at 0, d sign = 0.

The numpy forms are the stable ones: ``sigmoid`` never overflows, ``softplus`` is
``logaddexp(0, x)``.
"""

from __future__ import annotations

import sympy
from sympy import Function, Heaviside, S

__all__ = ["sigmoid", "softplus", "relu", "step", "where", "stop_gradient",
           "maximum", "minimum", "clip", "ELEMENTWISE_FUNCTIONS"]


class _RealFunction(Function):
    """A real-valued function of real arguments."""

    is_real = True

    def _eval_is_real(self):
        return True


class sigmoid(_RealFunction):
    """Logistic sigmoid 1/(1+exp(-x)); d/dx = sigmoid(x)*(1 - sigmoid(x))."""

    nargs = 1

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    @classmethod
    def eval(cls, x):
        if x is S.Zero:
            return S.Half

    def numpy_form(self, p, x):
        # exp(-log(1 + exp(-x))): finite for every x, no overflow warning
        return f"np.exp(-np.logaddexp(0.0, -{p.paren(self.args[0], x)}))"


class softplus(_RealFunction):
    """log(1 + exp(x)), computed stably; d/dx = sigmoid(x)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def numpy_form(self, p, x):
        return f"np.logaddexp(0.0, {x})"


class step(_RealFunction):
    """Heaviside step with value 0 at 0 (the derivative of relu, as PyTorch has it)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return S.Zero

    def numpy_form(self, p, x):
        return f"({p.paren(self.args[0], x)} > 0)"

    returns_bool = True


class relu(_RealFunction):
    """max(x, 0); d/dx = step(x) (0 at 0)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return step(self.args[0])

    def numpy_form(self, p, x):
        if p.atom(x) == x:  # a name: compare against cached zeros (4x faster than a scalar 0)
            p.need_helper("zeros_like")
            return f"np.maximum({x}, _zeros_like({x}))"
        return f"np.maximum({x}, 0.0)"


class stop_gradient(_RealFunction):
    """Identity forward, no gradient backward."""

    nargs = 1

    def fdiff(self, argindex=1):
        return S.Zero

    def numpy_form(self, p, x):
        # printed where a call would be: parenthesize a compound argument (a - b)
        return p.atom(x)


class maximum(_RealFunction):
    """Elementwise max; at ties the gradient is split 1/2 to each operand (PyTorch)."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return Heaviside(a - b) if argindex == 1 else Heaviside(b - a)

    def numpy_form(self, p, a, b):
        return f"np.maximum({a}, {b})"


class minimum(_RealFunction):
    """Elementwise min; at ties the gradient is split 1/2 to each operand (PyTorch)."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return Heaviside(b - a) if argindex == 1 else Heaviside(a - b)

    def numpy_form(self, p, a, b):
        return f"np.minimum({a}, {b})"


class clip(_RealFunction):
    """clip(x, lo, hi) with constant bounds; d/dx = 1 inside [lo, hi], 0 outside."""

    nargs = 3

    def fdiff(self, argindex=1):
        x, lo, hi = self.args
        if argindex != 1:
            return S.Zero
        return where(sympy.And(x >= lo, x <= hi), S.One, S.Zero)

    def numpy_form(self, p, x, lo, hi):
        return f"np.clip({x}, {lo}, {hi})"


class where(_RealFunction):
    """where(cond, a, b): a where cond holds, else b. The condition gets no gradient."""

    nargs = 3
    #: the dtype comes from the branches, not from the condition
    dtype_from = (1, 2)

    @classmethod
    def eval(cls, cond, a, b):
        if cond is S.true or a == b:
            return a
        if cond is S.false:
            return b

    def _eval_derivative(self, s):
        cond, a, b = self.args
        return where(cond, a.diff(s), b.diff(s))

    def numpy_form(self, p, cond, a, b):
        if self.args[1].is_Number and self.args[2].is_Number:
            # np.where(c, 1, 0) is an int64 array: give it the statement's dtype, which
            # the generated code relies on (in-place reuse of the buffer, outputs)
            return f"np.where({cond}, {a}, {b}).astype({p.dtype_source(p.float_dtype)})"
        return f"np.where({cond}, {a}, {b})"


ELEMENTWISE_FUNCTIONS = (sigmoid, softplus, step, relu, stop_gradient, maximum, minimum,
                         clip, where)
