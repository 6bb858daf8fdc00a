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

import inspect
import math

import numpy as np
import sympy
from sympy import Heaviside, S

from .. import expr as tensors
from ..shapes import broadcast_shapes
from .record import RECORDS, RealFunction, elementwise, lift, public

__all__ = ["Sigmoid", "Softplus", "Step", "Relu", "StopGradient", "Maximum", "Minimum",
           "Clip", "Where", "Mask", "Logical", "LogicalAnd", "LogicalOr",
           "LogicalXor", "LogicalNot", "IsFinite", "Sinc", "SincDerivative"]


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
                                    dtype=tensors.result_dtype([ta, tb]), truth_args=(0,))


def _clip(x, lo=None, hi=None):
    """Elementwise clip to ``[lo, hi]`` (numpy's ``clip``); gradient 1 inside, 0 outside.

    Parameters
    ----------
    x : Tensor or array_like
        The operand.
    lo, hi : float or None
        Constant bounds; None leaves that side open (``clip(x, 0.5, None)``), as in numpy
        (both None: ``x`` unchanged, as numpy 2 gives).

    Returns
    -------
    Tensor
        Of ``x``'s shape and dtype.

    Raises
    ------
    TypeError
        If a bound is not a number (a Tensor or an array: symgrad's bounds are constants).
    """
    lo, hi = _clip_bound(lo, -math.inf, "lo"), _clip_bound(hi, math.inf, "hi")
    return tensors.elementwise_node("clip", lambda a: Clip(a, lo, hi), x, float_result=False)


def _clip_bound(value, open_side: float, which: str) -> float:
    """A bound of clip as a float: None is the open side (an infinite bound)."""
    if value is None:
        return open_side
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"clip: the bound {which} must be a number or None, got "
                        f"{type(value).__name__} {value!r:.60}") from None


where = elementwise("where", Where, "", numpy="np.where", build=_where, arity=3)
clip = elementwise("clip", Clip, "", numpy="np.clip", build=_clip)


# ---------------------------------------------------------------------------------------
# More of numpy's elementwise functions (issue 12)
# ---------------------------------------------------------------------------------------


class Mask(Step):
    """A truth value (a comparison, a logical op) used as a number: 1 where it holds, 0
    elsewhere. It has no gradient; numpy computes it as the bool array itself (``(x > 0) *
    y``), and the printer gives it a float dtype where nothing else in the expression does.
    """

    nargs = 1
    op_name = "mask"

    @classmethod
    def eval(cls, cond):
        if cond is S.true:
            return S.One
        if cond is S.false:
            return S.Zero

    def _eval_derivative(self, s):
        return S.Zero  # piecewise constant; SymPy cannot differentiate the Boolean inside

    def _eval_power(self, exponent):
        # 0/1 values: m**n is m (a product of one mask with itself stays a mask, never a
        # bool array squared, which numpy would keep bool and then refuse to negate)
        if exponent.is_Integer and exponent.is_positive:
            return self

    def numpy_form(self, p, cond):
        return cond  # a comparison prints parenthesized: ``(x > 0)``

    def _sympystr(self, printer):
        return f"({printer._print(self.args[0])})"  # as numpy reads it: (x > 0)*y


class Logical(Step):
    """A logical op of truth values (comparisons, bool arrays): a bool array, no gradient.

    Its own node rather than SymPy's ``And``: numpy's ``logical_and`` broadcasts its
    operands (SymPy's printer writes ``np.logical_and.reduce((a, b))``, which does not) and
    ``Xor`` stays one call rather than SymPy's normal form.
    """

    symbol = ""

    def _eval_derivative(self, s):
        return S.Zero

    _eval_power = Mask._eval_power

    def numpy_form(self, p, *args):
        return f"{self.numpy}({', '.join(args)})"

    def _sympystr(self, printer):
        parts = [f"({printer._print(a)})" for a in self.args]
        return f"{self.symbol}{parts[0]}" if len(parts) == 1 else f" {self.symbol} ".join(parts)


class LogicalAnd(Logical):
    nargs, op_name, numpy, symbol = 2, "logical_and", "np.logical_and", "&"


class LogicalOr(Logical):
    nargs, op_name, numpy, symbol = 2, "logical_or", "np.logical_or", "|"


class LogicalXor(Logical):
    nargs, op_name, numpy, symbol = 2, "logical_xor", "np.logical_xor", "^"


class LogicalNot(Logical):
    nargs, op_name, numpy, symbol = 1, "logical_not", "np.logical_not", "~"


class IsFinite(RealFunction):
    """1 where the operand is finite (not inf, not nan), 0 elsewhere; a bool array."""

    nargs = 1
    op_name = "isfinite"
    numpy = "np.isfinite"
    returns_bool = True

    def fdiff(self, argindex=1):
        return S.Zero


class SincDerivative(RealFunction):
    """d/dx sinc(x) = (cos(pi x) - sinc(x)) / x, and 0 at x = 0 (its limit)."""

    nargs = 1
    op_name = "sinc_derivative"

    def fdiff(self, argindex=1):
        # x sinc'' + 2 sinc' + pi^2 x sinc = 0 (the ODE of sin(pi x)/(pi x)); at 0 it is
        # -pi^2/3, which this quotient reaches only as a limit
        x = self.args[0]
        return -sympy.pi**2 * Sinc(x) - 2 * SincDerivative(x) / x

    def numpy_form(self, p, x):
        # at x = 0 the numerator is exactly 1 - 1 = 0: divide by 1 there, not by 0
        a = p.atom(x)
        return f"(np.cos(np.pi*{a}) - np.sinc({x}))/np.where({a} == 0, 1.0, {a})"

    def array_api_form(self, p, x):
        p.need_helper("elementwise")
        return f"_sinc_derivative(xp, {x})"


class Sinc(RealFunction):
    """numpy's normalized sinc, sin(pi x)/(pi x), with value 1 at 0."""

    nargs = 1
    op_name = "sinc"
    numpy = "np.sinc"

    def fdiff(self, argindex=1):
        return SincDerivative(self.args[0])


def _zero(*args):
    return S.Zero if len(args) == 1 else (S.Zero,) * len(args)


def _rounding(name: str, numpy: str, summary: str, float_result: bool = False):
    """A piecewise constant rounding op: gradient 0 everywhere (PyTorch's convention)."""
    return elementwise(name, None, summary + " Its gradient is 0.", derivative=_zero,
                       numpy=numpy, float_result=float_result, inplace=True)


def _truth(t):
    """The SymPy truth value of a Tensor: comparisons and logical ops as they are, numbers
    as ``t != 0`` (numpy's truthiness)."""
    e = t.expr
    if isinstance(e, Mask):
        return e.args[0]
    if t.dtype == np.dtype(bool):
        return e  # a comparison, a logical op or a bool array
    return sympy.Ne(e, 0)


def _comparison(name: str, relation, symbol: str):
    def build(a, b):
        return tensors.elementwise_node(name, relation, a, b, dtype=np.dtype(bool))
    build.__doc__ = (
        f"Elementwise ``a {symbol} b`` (numpy's ``{name}``), a boolean tensor.\n\n"
        f"Usable as an ``sg.where`` condition and as a 0/1 mask in arithmetic\n"
        f"(``(x > 0) * x``); no gradient flows through it.\n\nParameters\n----------\n"
        f"a, b : Tensor or array_like\n    The operands; they broadcast as in numpy.\n\n"
        f"Returns\n-------\nTensor\n    Of dtype bool and the broadcast shape.")
    return elementwise(name, lambda a, b: relation(a, b), "", numpy=f"np.{name}", arity=2,
                       build=build)


def _logical(name: str, combine, arity: int, summary: str):
    def build(*operands):
        ts = [tensors.as_tensor(o) for o in operands]
        broadcast_shapes(*(t.shape for t in ts), op=name)
        truths = [tensors.Tensor(_truth(t), t.shape, bool) for t in ts]
        return tensors.elementwise_node(name, combine, *truths, dtype=np.dtype(bool),
                                        truth_args=tuple(range(arity)))
    build.__signature__ = inspect.Signature(
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
         for p in (("x",) if arity == 1 else ("a", "b"))])
    operands = ("x : Tensor or array_like\n    The operand" if arity == 1 else
                "a, b : Tensor or array_like\n    The operands; they broadcast as in numpy")
    build.__doc__ = (
        f"{summary} (numpy's ``{name}``), a boolean tensor.\n\n"
        f"Numbers count as true where nonzero. Usable as an ``sg.where`` condition and as a\n"
        f"0/1 mask in arithmetic; no gradient flows through it.\n\nParameters\n----------\n"
        f"{operands}.\n\nReturns\n-------\nTensor\n    Of dtype bool.")
    return elementwise(name, combine, "", numpy=f"np.{name}", arity=arity, build=build)


def _float_power(a, b):
    """Elementwise ``a ** b`` computed in float64 (numpy's ``float_power``).

    Parameters
    ----------
    a, b : Tensor or array_like
        Base and exponent; they broadcast as in numpy.

    Returns
    -------
    Tensor
        Of dtype float64 whatever the operands' dtypes, as in numpy.
    """
    return tensors.elementwise_node("float_power", FloatPower, a, b, dtype=np.dtype(np.float64))


# -- functions of one variable ------------------------------------------------------------

tan = elementwise("tan", sympy.tan, "Elementwise tangent.", numpy="np.tan", domain="unit",
                  inplace=True)
arcsin = elementwise("arcsin", sympy.asin, "Elementwise inverse sine.", numpy="np.arcsin",
                     domain="unit", inplace=True)
arccos = elementwise("arccos", sympy.acos, "Elementwise inverse cosine.", numpy="np.arccos",
                     domain="unit", inplace=True)
arctan = elementwise("arctan", sympy.atan, "Elementwise inverse tangent.", numpy="np.arctan",
                     inplace=True)
sinh = elementwise("sinh", sympy.sinh, "Elementwise hyperbolic sine.", numpy="np.sinh",
                   inplace=True)
cosh = elementwise("cosh", sympy.cosh, "Elementwise hyperbolic cosine.", numpy="np.cosh",
                   inplace=True)
arcsinh = elementwise("arcsinh", sympy.asinh, "Elementwise inverse hyperbolic sine.",
                      numpy="np.arcsinh", inplace=True)
# defined for x >= 1 only: the tests draw 1.5 + x**2 (tests/strategies.py, the spec row)
arccosh = elementwise("arccosh", sympy.acosh, "Elementwise inverse hyperbolic cosine "
                      "(defined for ``x >= 1``).", numpy="np.arccosh", domain="positive",
                      inplace=True)
arctanh = elementwise("arctanh", sympy.atanh, "Elementwise inverse hyperbolic tangent.",
                      numpy="np.arctanh", domain="unit", inplace=True)
expm1 = elementwise("expm1", None, "Elementwise ``exp(x) - 1``, accurate for small ``x``.",
                    derivative=lambda x: sympy.exp(x), numpy="np.expm1", inplace=True)
log2 = elementwise("log2", None, "Elementwise base-2 logarithm.",
                   derivative=lambda x: 1 / (x * sympy.log(2)), numpy="np.log2",
                   domain="positive", inplace=True)
log10 = elementwise("log10", None, "Elementwise base-10 logarithm.",
                    derivative=lambda x: 1 / (x * sympy.log(10)), numpy="np.log10",
                    domain="positive", inplace=True)
exp2 = elementwise("exp2", None, "Elementwise ``2**x``.",
                   derivative=lambda x: sympy.log(2) * 2**x, numpy="np.exp2", inplace=True)
reciprocal = elementwise("reciprocal", lambda a: 1 / a, "Elementwise ``1/x`` (computed as a "
                         "true division: integers give floats).", numpy="np.reciprocal",
                         domain="positive")
cbrt = elementwise("cbrt", None, "Elementwise real cube root (negative for negative ``x``).",
                   derivative=lambda x: 1 / (3 * Cbrt(x)**2), numpy="np.cbrt", inplace=True)
deg2rad = elementwise("deg2rad", lambda a: a * sympy.Float(math.pi / 180, 17),
                      "Elementwise degrees to radians.", numpy="np.deg2rad")
rad2deg = elementwise("rad2deg", lambda a: a * sympy.Float(180 / math.pi, 17),
                      "Elementwise radians to degrees.", numpy="np.rad2deg")
# --- more block ---
# numpy's other names of rad2deg and deg2rad: other ufuncs (np.degrees is not np.rad2deg),
# so numpy's dispatch needs records of their own
degrees = elementwise("degrees", lambda a: a * sympy.Float(180 / math.pi, 17),
                      "Elementwise radians to degrees (numpy's ``degrees``, the same as "
                      "``rad2deg``).", numpy="np.degrees")
radians = elementwise("radians", lambda a: a * sympy.Float(math.pi / 180, 17),
                      "Elementwise degrees to radians (numpy's ``radians``, the same as "
                      "``deg2rad``).", numpy="np.radians")
# --- end of more block ---
floor = _rounding("floor", "np.floor", "Elementwise floor.")
ceil = _rounding("ceil", "np.ceil", "Elementwise ceiling.")
trunc = _rounding("trunc", "np.trunc", "Elementwise rounding toward zero.")
fix = _rounding("fix", "np.fix", "Elementwise rounding toward zero (numpy's ``fix``).")
round = _rounding("round", "np.round", "Elementwise rounding to the nearest integer, halves "
                  "to even (numpy's ``round`` with ``decimals=0``).")
rint = _rounding("rint", "np.rint", "Elementwise rounding to the nearest integer, halves to "
                 "even; integers give floats.", float_result=True)
sinc = elementwise("sinc", Sinc, "Elementwise normalized sinc ``sin(pi x)/(pi x)`` (numpy's "
                   "``sinc``): 1 at 0, where its gradient is 0.", numpy="np.sinc")
nan_to_num = elementwise("nan_to_num", None, "Elementwise: nan as 0, infinities as the "
                         "largest finite numbers (numpy's ``nan_to_num``); its gradient is "
                         "1 where ``x`` is finite, 0 elsewhere.",
                         derivative=lambda x: IsFinite(x), numpy="np.nan_to_num",
                         float_result=False)
positive = elementwise("positive", lambda a: a, "Elementwise ``+x`` (numpy's ``positive``).",
                       numpy="np.positive", float_result=False)
fabs = elementwise("fabs", lambda a: sympy.Abs(a), "Elementwise absolute value of floats "
                   "(numpy's ``fabs``); its derivative at 0 is 0.", numpy="np.fabs",
                   domain="positive")

# the lifted nodes that derivatives refer to (called only when differentiating)
Cbrt, Floor, Trunc = (RECORDS[name].node for name in ("cbrt", "floor", "trunc"))

# -- functions of two variables -----------------------------------------------------------

hypot = elementwise("hypot", None, "Elementwise ``sqrt(a**2 + b**2)``, without overflow.",
                    derivative=lambda a, b: (a / sympy.sqrt(a**2 + b**2),
                                             b / sympy.sqrt(a**2 + b**2)),
                    numpy="np.hypot", arity=2)
arctan2 = elementwise("arctan2", sympy.atan2, "Elementwise angle of the point ``(b, a)``: "
                      "``arctan(a/b)`` in the right quadrant (numpy's ``arctan2``).",
                      numpy="np.arctan2", arity=2)
logaddexp = elementwise("logaddexp", None, "Elementwise ``log(exp(a) + exp(b))``, without "
                        "overflow.", derivative=lambda a, b: (Sigmoid(a - b), Sigmoid(b - a)),
                        numpy="np.logaddexp", arity=2)
logaddexp2 = elementwise("logaddexp2", None, "Elementwise ``log2(2**a + 2**b)``, without "
                         "overflow.", derivative=lambda a, b: (Sigmoid((a - b) * sympy.log(2)),
                                                               Sigmoid((b - a) * sympy.log(2))),
                         numpy="np.logaddexp2", arity=2)
fmax = elementwise("fmax", None, "Elementwise maximum ignoring nan (numpy's ``fmax``); ties "
                   "split the gradient in half.",
                   derivative=lambda a, b: (Heaviside(a - b), Heaviside(b - a)),
                   numpy="np.fmax", arity=2, float_result=False)
fmin = elementwise("fmin", None, "Elementwise minimum ignoring nan (numpy's ``fmin``); ties "
                   "split the gradient in half.",
                   derivative=lambda a, b: (Heaviside(b - a), Heaviside(a - b)),
                   numpy="np.fmin", arity=2, float_result=False)
mod = elementwise("mod", None, "Elementwise remainder with the sign of the divisor ``b`` "
                  "(numpy's ``mod``, Python's ``%``); its gradients are 1 and "
                  "``-floor(a/b)``.", derivative=lambda a, b: (S.One, -Floor(a / b)),
                  numpy="np.mod", arity=2, float_result=False, domain="positive",
                  operators=("__mod__", "__rmod__"))
# numpy's remainder is its mod (one function): the same node
remainder = elementwise("remainder", RECORDS["mod"].node, "Elementwise remainder with the sign "
                        "of the divisor ``b`` (numpy's ``remainder``, the same as ``mod``); "
                        "its gradients are 1 and ``-floor(a/b)``.", numpy="np.remainder",
                        arity=2, float_result=False, domain="positive")
fmod = elementwise("fmod", None, "Elementwise remainder with the sign of the dividend ``a`` "
                   "(numpy's ``fmod``, C's ``fmod``); its gradients are 1 and "
                   "``-trunc(a/b)``.", derivative=lambda a, b: (S.One, -Trunc(a / b)),
                   numpy="np.fmod", arity=2, float_result=False, domain="positive")
copysign = elementwise("copysign", None, "Elementwise ``|a|`` with the sign of ``b`` "
                       "(numpy's ``copysign``); no gradient flows to ``b``.",
                       # copysign(1, b), not sign(b): at b = +0.0 the result is |a|
                       derivative=lambda a, b: (sympy.sign(a) * Copysign(S.One, b), S.Zero),
                       numpy="np.copysign", arity=2)
Copysign = RECORDS["copysign"].node
FloatPower = lift("float_power", lambda a, b: (b * a**(b - 1), a**b * sympy.log(a)),
                  "np.float_power", 2)
float_power = elementwise("float_power", FloatPower, "", numpy="np.float_power", arity=2,
                          domain="positive", build=_float_power)
true_divide = elementwise("true_divide", lambda a, b: a / b, "Elementwise true division "
                          "``a / b`` (numpy's ``true_divide``, the same as ``divide``).",
                          numpy="np.true_divide", arity=2, domain="positive")
heaviside = elementwise("heaviside", None, "Elementwise step: 0 where ``a < 0``, ``b`` where "
                        "``a == 0``, 1 where ``a > 0`` (numpy's ``heaviside``); its gradient "
                        "in ``a`` is 0, in ``b`` 1 where ``a == 0`` (the value is ``b`` "
                        "there) and 0 elsewhere.",
                        # the value at a == 0 is b itself: d/db is the indicator of a == 0
                        derivative=lambda a, b: (S.Zero, Where(sympy.Eq(a, 0), S.One, S.Zero)),
                        numpy="np.heaviside", arity=2)

# -- comparisons and logical ops: boolean tensors, masks in arithmetic ------------------------

greater = _comparison("greater", sympy.StrictGreaterThan, ">")
greater_equal = _comparison("greater_equal", sympy.GreaterThan, ">=")
less = _comparison("less", sympy.StrictLessThan, "<")
less_equal = _comparison("less_equal", sympy.LessThan, "<=")
equal = _comparison("equal", sympy.Eq, "==")
not_equal = _comparison("not_equal", sympy.Ne, "!=")
logical_and = _logical("logical_and", LogicalAnd, 2, "Elementwise ``a and b``")
logical_or = _logical("logical_or", LogicalOr, 2, "Elementwise ``a or b``")
logical_xor = _logical("logical_xor", LogicalXor, 2, "Elementwise ``a xor b``")
logical_not = _logical("logical_not", LogicalNot, 1, "Elementwise ``not x``")
