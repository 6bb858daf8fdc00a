"""Elementwise ops: one record each (:func:`~symgrad.ops.record.elementwise`).

An elementwise op is a SymPy function of scalars. SymPy differentiates it (its
``fdiff``), the engine lifts the derivative to tensors and sums it back over broadcast axes
(:func:`~symgrad.ops.shape.sum_to_shape`). Most ops are one record: SymPy's own function
(``sympy.exp``), or a derivative given to :func:`~symgrad.ops.record.lift`.

The few that need more than a derivative and a numpy name have a class here first: a
SymPy function with its own evaluation or printing. Conventions at kinks follow PyTorch:
d relu(0) = 0, the step function is 0 at 0, d sign = 0, ``maximum``/``minimum`` split
ties. Their numpy forms are the stable ones: ``sigmoid`` never overflows, ``softplus`` is
``logaddexp(0, x)``.
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy import Heaviside, S

from .. import expr as tensors
from ..shapes import broadcast_shapes
from .record import RealFunction, elementwise, lift, public

__all__ = ["Sigmoid", "Softplus", "Step", "Relu", "StopGradient", "Maximum", "Minimum",
           "Clip", "Where"]


# ---------------------------------------------------------------------------------------
# SymPy functions with more to them than a derivative
# ---------------------------------------------------------------------------------------


class Sigmoid(RealFunction):
    """Logistic sigmoid 1/(1+exp(-x)); d/dx = sigmoid(x)*(1 - sigmoid(x))."""

    nargs = 1
    op_name = "sigmoid"

    def fdiff(self, argindex=1):
        s = Sigmoid(self.args[0])
        return s * (1 - s)

    @classmethod
    def eval(cls, x):
        if x is S.Zero:
            return S.Half

    def numpy_form(self, p, x):
        # exp(-log(1 + exp(-x))): finite for every x, no overflow warning
        return f"np.exp(-np.logaddexp(0.0, -{p.paren(self.args[0], x)}))"


class Softplus(RealFunction):
    """log(1 + exp(x)), computed stably; d/dx = sigmoid(x)."""

    nargs = 1
    op_name = "softplus"

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])

    def numpy_form(self, p, x):
        return f"np.logaddexp(0.0, {x})"


class Step(RealFunction):
    """Heaviside step with value 0 at 0 (the derivative of relu, as PyTorch has it)."""

    nargs = 1
    op_name = "step"
    returns_bool = True

    def fdiff(self, argindex=1):
        return S.Zero

    def numpy_form(self, p, x):
        return f"({p.paren(self.args[0], x)} > 0)"


class Relu(RealFunction):
    """max(x, 0); d/dx = step(x) (0 at 0)."""

    nargs = 1
    op_name = "relu"

    def fdiff(self, argindex=1):
        return Step(self.args[0])

    def numpy_form(self, p, x):
        if p.atom(x) == x:  # a name: compare against cached zeros (4x faster than a scalar 0)
            p.need_helper("zeros_like")
            return f"np.maximum({x}, _zeros_like({x}))"
        return f"np.maximum({x}, 0.0)"

    def array_api_form(self, p, x):
        return f"xp.maximum({x}, 0.0)"


class StopGradient(RealFunction):
    """Identity forward, no gradient backward."""

    nargs = 1
    op_name = "stop_gradient"

    def fdiff(self, argindex=1):
        return S.Zero

    def numpy_form(self, p, x):
        # printed where a call would be: parenthesize a compound argument (a - b)
        return p.atom(x)


class Maximum(RealFunction):
    """Elementwise max; at ties the gradient is split 1/2 to each operand (PyTorch)."""

    nargs = 2
    op_name = "maximum"
    numpy = "np.maximum"

    def fdiff(self, argindex=1):
        a, b = self.args
        return Heaviside(a - b) if argindex == 1 else Heaviside(b - a)


class Minimum(RealFunction):
    """Elementwise min; at ties the gradient is split 1/2 to each operand (PyTorch)."""

    nargs = 2
    op_name = "minimum"
    numpy = "np.minimum"

    def fdiff(self, argindex=1):
        a, b = self.args
        return Heaviside(b - a) if argindex == 1 else Heaviside(a - b)


class Clip(RealFunction):
    """clip(x, lo, hi) with constant bounds; d/dx = 1 inside [lo, hi], 0 outside."""

    nargs = 3
    op_name = "clip"
    numpy = "np.clip"

    def fdiff(self, argindex=1):
        x, lo, hi = self.args
        if argindex != 1:
            return S.Zero
        return Where(sympy.And(x >= lo, x <= hi), S.One, S.Zero)


class Where(RealFunction):
    """where(cond, a, b): a where cond holds, else b. The condition gets no gradient."""

    nargs = 3
    op_name = "where"
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
        return Where(cond, a.diff(s), b.diff(s))

    def numpy_form(self, p, cond, a, b):
        if self.args[1].is_Number and self.args[2].is_Number:
            # np.where(c, 1, 0) is an int64 array: give it the statement's dtype, which
            # the generated code relies on (in-place reuse of the buffer, outputs)
            return f"np.where({cond}, {a}, {b}).astype({p.dtype_source(p.float_dtype)})"
        return f"np.where({cond}, {a}, {b})"

    def array_api_form(self, p, cond, a, b):
        if self.args[1].is_Number and self.args[2].is_Number:
            # two numbers: the result's dtype and device are the statement's, given here
            dt = p.dtype_source(p.float_dtype)
            a, b = (f"xp.asarray({v}, dtype={dt}, device=_dev)" for v in (a, b))
        return f"xp.where({cond}, {a}, {b})"


# ---------------------------------------------------------------------------------------
# Arithmetic: numpy's names for Python's operators
# ---------------------------------------------------------------------------------------


def _power(a, b):
    """Elementwise ``a ** b`` (numpy's ``power``); ``x ** 2`` is generated as ``x*x``.

    Parameters
    ----------
    a, b : Tensor or array_like
        Base and exponent; they broadcast as in numpy.

    Returns
    -------
    Tensor
        A float result unless the exponent is a Python integer (``x ** 3`` keeps ``x``'s
        dtype, as numpy does).
    """
    tb = tensors.as_tensor(b)
    float_result = tb.dtype is None and not isinstance(tb.expr, sympy.Integer)
    return tensors.elementwise_node("power", sympy.Pow, a, tb, float_result=float_result)


add = elementwise("add", lambda a, b: a + b, "Elementwise ``a + b`` (numpy's ``add``).",
                  numpy="np.add", arity=2, float_result=False,
                  operators=("__add__", "__radd__"))
subtract = elementwise("subtract", lambda a, b: a - b,
                       "Elementwise ``a - b`` (numpy's ``subtract``).", numpy="np.subtract",
                       arity=2, float_result=False, operators=("__sub__", "__rsub__"))
multiply = elementwise("multiply", lambda a, b: a * b,
                       "Elementwise ``a * b`` (numpy's ``multiply``; a matrix product is "
                       "``@``).", numpy="np.multiply", arity=2, float_result=False,
                       operators=("__mul__", "__rmul__"))
divide = elementwise("divide", lambda a, b: a / b,
                     "Elementwise true division ``a / b``; the result is floating point.",
                     numpy="np.divide", arity=2, domain="positive",
                     operators=("__truediv__", "__rtruediv__"))
power = elementwise("power", sympy.Pow, "", numpy="np.power", arity=2, domain="positive",
                    build=_power, operators=("__pow__", "__rpow__"))
negative = elementwise("negative", lambda a: -a, "Elementwise ``-x``.", numpy="np.negative",
                       operators=("__neg__",))

# ---------------------------------------------------------------------------------------
# Functions of one variable
# ---------------------------------------------------------------------------------------

exp = elementwise("exp", sympy.exp, "Elementwise ``e**x``.", numpy="np.exp", inplace=True)
log = elementwise("log", sympy.log, "Elementwise natural logarithm.", numpy="np.log",
                  domain="positive", inplace=True)
sqrt = elementwise("sqrt", sympy.sqrt, "Elementwise square root.", numpy="np.sqrt",
                   domain="positive")
log1p = elementwise("log1p", None, "Elementwise ``log(1 + x)``, accurate for small ``x``.",
                    derivative=lambda x: 1 / (1 + x), numpy="np.log1p",
                    domain="positive", inplace=True)
sin = elementwise("sin", sympy.sin, "Elementwise sine.", numpy="np.sin", inplace=True)
cos = elementwise("cos", sympy.cos, "Elementwise cosine.", numpy="np.cos", inplace=True)
tanh = elementwise("tanh", sympy.tanh, "Elementwise hyperbolic tangent.", numpy="np.tanh",
                   inplace=True)
sigmoid = elementwise("sigmoid", Sigmoid,
                      "Elementwise logistic sigmoid ``1/(1+exp(-x))``, computed without "
                      "overflow.", reference=lambda x: 1 / (1 + np.exp(-x)))
relu = elementwise("relu", Relu,
                   "Elementwise ``max(x, 0)``; its derivative at 0 is 0 (PyTorch's "
                   "convention).", reference=lambda x: np.maximum(x, 0.0),
                   inplace="np.maximum({buf}, _zeros_like({buf}), out={buf})",
                   helpers=("zeros_like",))
abs = elementwise("abs", sympy.Abs, "Elementwise absolute value; its derivative at 0 is 0.",
                  numpy="np.abs", float_result=False, operators=("__abs__",))
square = elementwise("square", lambda a: a**2, "Elementwise ``x**2``.", numpy="np.square",
                     float_result=False)
sign = elementwise("sign", sympy.sign, "Elementwise sign (-1, 0 or 1); its derivative is 0.",
                   numpy="np.sign", float_result=False)
softplus = elementwise("softplus", Softplus,
                       "Elementwise ``log(1 + exp(x))``, computed stably as "
                       "``logaddexp(0, x)``.", reference=lambda x: np.logaddexp(0.0, x))
stop_gradient = elementwise("stop_gradient", StopGradient,
                            "Identity forward; no gradient flows through it.",
                            reference=lambda x: x, float_result=False, identity=True)


@public("composite", reference=lambda x: -np.logaddexp(0.0, -x))
def log_sigmoid(x):
    """Elementwise ``log(sigmoid(x)) = -softplus(-x)``, stable for large ``|x|``.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.

    Returns
    -------
    Tensor
        The elementwise result, of ``x``'s shape.
    """
    return -softplus(-tensors.as_tensor(x))


# ---------------------------------------------------------------------------------------
# Functions of two or three variables
# ---------------------------------------------------------------------------------------

maximum = elementwise("maximum", Maximum,
                      "Elementwise maximum (numpy's ``maximum``); ties split the gradient in "
                      "half.", numpy="np.maximum", arity=2, float_result=False)
minimum = elementwise("minimum", Minimum,
                      "Elementwise minimum (numpy's ``minimum``); ties split the gradient in "
                      "half.", numpy="np.minimum", arity=2, float_result=False)


def _where(cond, a, b):
    """Elementwise choice: ``a`` where ``cond`` holds, else ``b`` (numpy's ``where``).

    Parameters
    ----------
    cond : Tensor of bool
        A comparison such as ``x > 0``; it gets no gradient.
    a, b : Tensor or array_like
        The choices; all three broadcast as in numpy.

    Returns
    -------
    Tensor

    Raises
    ------
    TypeError
        If ``cond`` is not boolean.
    """
    tc = tensors.as_tensor(cond)
    if tc.dtype != np.dtype(bool):
        raise TypeError(f"where: the condition must be boolean (a comparison such as x > 0), "
                        f"got dtype {tc.dtype}")
    ta, tb = tensors.as_tensor(a), tensors.as_tensor(b)
    broadcast_shapes(tc.shape, ta.shape, tb.shape, op="where")
    return tensors.elementwise_node("where", Where, tc, ta, tb,
                                    dtype=tensors.result_dtype([ta, tb]))


def _clip(x, lo, hi):
    """Elementwise clip to ``[lo, hi]`` (numpy's ``clip``); gradient 1 inside, 0 outside.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    lo, hi : float
        Constant bounds.

    Returns
    -------
    Tensor
        Of ``x``'s shape and dtype.
    """
    lo, hi = float(lo), float(hi)
    return tensors.elementwise_node("clip", lambda a: Clip(a, lo, hi), x, float_result=False)


where = elementwise("where", Where, "", numpy="np.where", build=_where, arity=3)
clip = elementwise("clip", Clip, "", numpy="np.clip", build=_clip)
