"""Printing: numpy source for one statement, and formulas a person can read.

:class:`NumpySourcePrinter` subclasses SymPy's ``NumPyPrinter`` and overrides only what
differs for symgrad:

* leaves print as the sanitized local names the code generator chose;
* numbers print as Python literals (``0.5``, never ``numpy.exp(2)`` or ``numpy.float64``):
  numpy treats Python scalars as *weak*, so float32 arrays stay float32;
* boolean masks (``x > 0``) are multiplied after a float factor, or cast, so a mask never
  turns a float32 product into int64 or float64;
* structural nodes print through their own ``print_numpy`` rule, symgrad's elementwise
  functions through their ``numpy_form``, SymPy's through the numpy name their op record
  gives (see :mod:`symgrad.ops`).
"""

from __future__ import annotations

import math
import re

import numpy as np
import sympy
from sympy import S
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence, precedence_traditional
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from ..ops import Step, Where
from ..ops.record import RealFunction, numpy_form_of
from ..graph import post_order
from ..nodes import TensorOp, TensorSymbol, dtype_of, is_tensor_free
from ..shapes import Dim

__all__ = ["NumpySourcePrinter", "formula", "latex"]

_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(\[[^\[\]]*\])?")


_BOOLEAN_TYPES = (Step, sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction,
                  sympy.logic.boolalg.BooleanAtom)


def _is_mask(e) -> bool:
    """True for expressions numpy evaluates to a bool array (a comparison, a step, a
    function of bool value such as isfinite, or a temporary holding one: ``-mask`` and
    ``mask + mask`` are not arithmetic in numpy)."""
    return isinstance(e, _BOOLEAN_TYPES) or getattr(type(e), "returns_bool", False) \
        or (isinstance(e, TensorSymbol) and e.dtype_name == "bool")


def float_literal(value: float) -> str:
    """A float as source: ``repr`` for finite values (a Python float, weak for numpy's type
    promotion), numpy's names for the others (``inf`` alone is not a name in the module)."""
    if math.isfinite(value):
        return repr(value)
    if math.isnan(value):
        return "np.nan"
    return "np.inf" if value > 0 else "-np.inf"


class NumpySourcePrinter(NumPyPrinter):
    """Prints symgrad expressions as numpy source over the generator's local names."""

    printmethod = "_numpycode_symgrad"  # not SymPy's: our nodes print through print_numpy
    #: the code-generation target (:mod:`symgrad.compiler.array_api` prints the other one)
    backend = "numpy"
    #: cast every boolean mask in a product, not only a leading one (numpy multiplies a
    #: float array by a bool array; the array API standard does not)
    cast_all_masks = False

    def __init__(self, names: dict, helpers: set | None = None):
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False})
        self.names = names
        self.helpers = helpers if helpers is not None else set()
        self.float_dtype = np.dtype(np.float64)

    # -- hooks for op printers ---------------------------------------------------------
    def need_helper(self, name: str) -> None:
        self.helpers.add(name)

    def atom(self, source: str) -> str:
        """Parenthesize printed source unless it is a plain name, attribute or call."""
        if _SIMPLE.fullmatch(source) or (source.endswith(")") and _balanced_call(source)):
            return source
        if source.startswith("(") and _balanced_call("f" + source):
            return source
        return f"({source})"

    def paren(self, expr, source: str) -> str:
        return source if expr.is_Atom or expr.is_Function else f"({source})"

    def shape_source(self, shape) -> str:
        parts = [self.doprint(sympy.sympify(d)) for d in shape]
        return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"

    def dtype_source(self, dtype) -> str:
        return f"np.{np.dtype(dtype).name}"

    def cast_source(self, source: str, dtype_source: str) -> str:
        """``source`` cast to a dtype."""
        return f"{self.atom(source)}.astype({dtype_source})"

    def copy_source(self, name: str) -> str:
        """A copy of the array ``name`` (an output that would share memory)."""
        return f"{name}.copy()"

    def full_source(self, shape_source: str, value: str, dtype_source: str) -> str:
        """An array of ``shape_source`` filled with ``value``."""
        return f"np.full({shape_source}, {value}, dtype={dtype_source})"

    def print_op(self, node, ops) -> str:
        """A structural node's source, given its printed operands."""
        return node.print_numpy(self, ops)

    # -- names and numbers -------------------------------------------------------------
    def _module_format(self, fqn, register=True):
        if fqn.startswith("numpy."):
            return "np." + fqn[len("numpy."):]
        return super()._module_format(fqn, register)

    def _print_TensorSymbol(self, e):
        return self.names[e]

    def _print_Dim(self, e):
        return self.names[e]

    def _print_Symbol(self, e):
        if e in self.names:
            return self.names[e]
        raise KeyError(f"internal error: unbound symbol {e} in generated code")

    def _print(self, expr, **kwargs):
        if isinstance(expr, sympy.Expr) and expr.is_number and not expr.is_Integer:
            value = expr.evalf(17)
            if value.is_Number or value in (S.Infinity, S.NegativeInfinity, S.NaN):
                # not for relu(0), clip(0, lo, hi), ...: no evalf there
                return float_literal(float(value))
        if isinstance(expr, TensorOp):
            raise TypeError(f"internal error: structural node {expr.op_name} printed inline")
        if isinstance(expr, RealFunction):
            if isinstance(expr, (Where, Step)):  # they take truth values as they are
                return expr.numpy_form(self, *[self._print(a) for a in expr.args])
            return expr.numpy_form(self, *self._numeric_args(expr))
        numpy_function = numpy_form_of(type(expr))  # SymPy's exp, Abs, ... by their record
        if numpy_function is not None:
            return f"{numpy_function}({', '.join(self._numeric_args(expr))})"
        return super()._print(expr, **kwargs)

    def _numeric_args(self, expr) -> list:
        """The printed arguments of a math function, a mask cast to the float dtype: numpy
        computes np.arccos of a bool array in float16."""
        out = []
        for a in expr.args:
            s = self._print(a)
            if _is_mask(a):
                s = f"{self.atom(s)}.astype({self.dtype_source(self.float_dtype)})"
            out.append(s)
        return out

    def _print_Integer(self, e):
        return str(int(e))

    def _print_Float(self, e):
        return float_literal(float(e))

    def _print_Rational(self, e):
        return repr(float(e))

    def _print_Infinity(self, e):
        return "np.inf"

    def _print_NegativeInfinity(self, e):
        return "-np.inf"

    def _print_NaN(self, e):
        return "np.nan"

    # -- operators ---------------------------------------------------------------------
    def _print_Relational(self, e):
        ops = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "==", "!=": "!="}
        return f"({self._print(e.lhs)} {ops[e.rel_op]} {self._print(e.rhs)})"

    def _print_Heaviside(self, e):
        # H(0) = 1/2: the tie rule of maximum/minimum
        return f"np.heaviside({self._print(e.args[0])}, 0.5)"

    def _print_Pow(self, e, rational=False):
        base, ex = e.args
        b = self.parenthesize(base, PRECEDENCE["Pow"])
        if ex == sympy.S.Half:
            return f"np.sqrt({self._print(base)})"
        if ex == -sympy.S.Half:
            return f"1/np.sqrt({self._print(base)})"
        if ex == -1:
            return f"1/{b}"
        if ex == 2 and base.is_Symbol:
            return f"{b}*{b}"  # a multiply: cheaper than pow for Python floats, same for arrays
        if ex.is_Integer:
            return f"{b}**{int(ex)}"
        if ex.is_number:
            return f"{b}**{float(ex)!r}"
        return f"{b}**{self.parenthesize(ex, PRECEDENCE['Pow'])}"

    def _factor_rank(self, f) -> int:
        """Print order inside a product: float tensors, then masks, then scalars."""
        if _is_mask(f):
            return 1
        if is_tensor_free(f) or dtype_of(f) is None:
            return 2
        return 0

    def _print_Mul(self, e):
        coeff, factors = e.as_coeff_mul()
        arrays, masks, scalars, den_arrays, den_scalars = [], [], [], [], []
        for f in factors:
            inverse = f.is_Pow and f.exp.is_Rational and f.exp.is_negative \
                and f.exp != -sympy.S.Half
            rank = self._factor_rank(f.base if inverse else f)
            if inverse:
                (den_scalars if rank == 2 else den_arrays).append(sympy.Pow(f.base, -f.exp))
            else:
                (arrays, masks, scalars)[rank].append(f)
        has_float = bool(arrays or den_arrays)
        parts = [self.parenthesize(f, PRECEDENCE["Mul"]) for f in arrays]
        for f in masks:
            s = self.parenthesize(f, PRECEDENCE["Mul"])
            if not has_float or self.cast_all_masks:
                s = self.cast_source(s, self.dtype_source(self.float_dtype))
                has_float = True
            parts.append(s)
        sign = "-" if coeff < 0 else ""
        coeff = abs(coeff)
        if sign and scalars and parts:  # the sign joins the scalar group: no negated array
            scalars, sign = [sympy.S.NegativeOne] + scalars, ""
        if not parts and not den_arrays:  # a product of scalars only: print it plainly
            den_arrays, den_scalars = den_scalars, []
            parts = [self.parenthesize(f, PRECEDENCE["Mul"]) for f in scalars]
            if coeff != 1 or not parts:
                parts.append(self._print(coeff))
            scalars, coeff = [], sympy.S.One
        # all scalar factors are folded into one group: one pass over the array, not several
        scalar = sympy.Mul(coeff, *scalars) / sympy.Mul(*den_scalars)
        if scalar != 1:
            group = self._print(scalar)
            if not (scalar.is_Number or scalar.is_Symbol):
                group = f"({group})"
            parts.append(group)
        text = "*".join(parts) if parts else "1"
        for f in den_arrays:
            # one division per factor, a/b/c and a/d/d: the product b*c (or d*d) can under-
            # or overflow where the quotient is finite (d/dx 1/(x*x + c) at x = 1e-100)
            if f.is_Pow and f.exp == 2:  # (an expression used once is not a temporary)
                base = self.parenthesize(f.base, PRECEDENCE["Mul"], strict=True)
                text += f"/{base}/{base}"
            else:
                text += "/" + self.parenthesize(f, PRECEDENCE["Mul"], strict=True)
        return sign + text

    def _print_Add(self, e, order=None):
        common = _common_coefficient(e)
        if common is not None:  # 2*a - 2*b prints as (a - b)*2: one pass fewer
            # strip the coefficients exactly (t / common can leave a Float 1.0 or
            # 0.9999999999999999 behind, and printing recursed without end)
            inner = sympy.Add(*[-rest if coeff < 0 else rest
                                for coeff, rest in (t.as_coeff_Mul() for t in e.args)])
            return f"({self._print(inner)})*{self._print(common)}"
        terms = list(e.args)
        # tensors first, numbers last: reads naturally and keeps masks out of the lead
        terms.sort(key=lambda t: (is_tensor_free(t), _is_mask(t), t.could_extract_minus_sign()))
        out = ""
        for i, t in enumerate(terms):
            s = self._print(t)
            if _is_mask(t):
                s = self.cast_source(s, self.dtype_source(self.float_dtype))
            if i == 0:
                out = s
            elif s.startswith("-"):
                out += " - " + (s[1:] if precedence(-t) > PRECEDENCE["Add"] or t.is_Number
                                else f"({s[1:]})")
            else:
                out += " + " + s
        return out

    def parenthesize(self, item, level, strict=False):
        s = self._print(item)
        prec = precedence(item)
        if item.is_Pow and item.exp == 2 and item.base.is_Symbol:
            prec = PRECEDENCE["Mul"]  # printed as a product, x*x (see _print_Pow)
        if prec < level or (strict and prec == level):
            return f"({s})"
        if s.startswith("-") and level >= PRECEDENCE["Mul"]:
            return f"({s})"
        return s


def _common_coefficient(e):
    """The numeric coefficient magnitude shared by every term of a sum, if not 1."""
    coeffs = {abs(t.as_coeff_Mul()[0]) for t in e.args}
    if len(coeffs) != 1:
        return None
    (c,) = coeffs
    # float(c): a Float 1.0 is not == 1 in SymPy >= 1.13
    return c if c.is_Number and c != 0 and float(c) != 1.0 else None


def _balanced_call(source: str) -> bool:
    """True for ``name(...)`` whose final parenthesis closes the first one."""
    m = re.match(r"[A-Za-z_][A-Za-z0-9_.]*\(", source)
    if not m:
        return False
    depth = 0
    for i, ch in enumerate(source[m.end() - 1:], start=m.end() - 1):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i == len(source) - 1
    return False


# ---------------------------------------------------------------------------------------
# Formulas for people
# ---------------------------------------------------------------------------------------


class _LetBound:
    """Printer mixin: an expression bound to a name (see :func:`_let_form`) prints as that
    name, except the one whose definition is being printed."""

    bound: dict = {}
    defining = None
    where = " where "
    let_name = "t{}"

    def _print(self, expr, **kwargs):
        if expr is not self.defining:
            name = self.bound.get(expr)
            if name is not None:
                return name
        if type(expr).__name__ == "CustomGradient":
            # its formula is its forward expression, printed by this printer (let-bound
            # names and all), not by a fresh str()
            return self._print(expr.args[0])
        return super()._print(expr, **kwargs)

    def parenthesize(self, item, level, *args, **kwargs):
        if item is not self.defining:
            name = self.bound.get(item)
            if name is not None:
                return name
        return super().parenthesize(item, level, *args, **kwargs)


class FormulaPrinter(_LetBound, StrPrinter):
    """``str()`` of symgrad expressions: leaves by name, structural nodes as numpy calls."""

    def _print_TensorSymbol(self, e):
        return e.name

    def _print_Heaviside(self, e):
        return f"heaviside({self._print(e.args[0])})"

    def _print_Float(self, e):
        return repr(float(e))


class LatexFormulaPrinter(_LetBound, LatexPrinter):
    """``sg.latex``: SymPy's LaTeX, with let-bound names for long or deep expressions.

    SymPy decides brackets with ``expr.has(Integral, ...)``, a walk of the whole tree below
    (through every let-bound piece, once per path: exponential on a shared DAG). symgrad's
    expressions hold none of those classes, so the decision here reads precedence only.
    """

    def _needs_mul_brackets(self, expr, first=False, last=False):
        if expr is not self.defining and expr in self.bound:
            return False
        if expr.is_Mul:
            return not first and expr.could_extract_minus_sign()
        return (precedence_traditional(expr) < PRECEDENCE["Mul"] or expr.is_Relational
                or expr.is_Piecewise)

    def _needs_add_brackets(self, expr):
        if expr is not self.defining and expr in self.bound:
            return False
        return precedence_traditional(expr) < PRECEDENCE["Add"] or expr.is_Relational


# A formula is printed by SymPy's printers, which recurse once per level of the tree and
# walk a shared subtree once per use. So a formula is cut into pieces first (an iterative
# pass over the DAG): a node is bound to a name when the piece above it would nest deeper
# than _PIECE_DEPTH levels, or when it is shared and not tiny, or when its piece is large.
# Each piece is then printed on its own, with the names of the pieces it reads.

#: levels of nesting one printer call may see (a few Python frames each)
_PIECE_DEPTH = 24
#: a shared subexpression written out bigger than this many nodes is printed once, by name
_SHARED_SIZE = 6
#: a piece bigger than this many nodes is cut under its root
_PIECE_SIZE = 80
#: below this written-out size and depth a formula is printed plainly, as SymPy would
_PLAIN_SIZE = 400


def _print_children(e) -> tuple:
    """The subexpressions a formula printer prints inside ``e`` (static attributes of a
    structural node, such as axes and shapes, print as themselves)."""
    if isinstance(e, TensorOp):
        if type(e).__name__ == "CustomGradient":
            return (e.args[0],)
        return tuple(e.operand_exprs())
    if isinstance(e, TensorSymbol) or not isinstance(e, sympy.Basic):
        return ()
    return e.args


def _post_order(expr) -> list:
    """Distinct printable subexpressions of ``expr``, each after its children (iterative)."""
    return list(post_order((expr,), _print_children))


def _let_form(expr) -> tuple:
    """``(order, bound)``: the DAG in post-order, and the subexpressions to print by name
    (empty when the formula is small and shallow enough to print plainly)."""
    order = _post_order(expr)
    height, size, uses = {}, {}, {}
    for e in order:
        ch = _print_children(e)
        for c in ch:
            uses[c] = uses.get(c, 0) + 1
        height[e] = 1 + max((height[c] for c in ch), default=0)
        size[e] = min(1 + sum(size[c] for c in ch), 1 << 60)
    if height[expr] <= _PIECE_DEPTH and size[expr] <= _PLAIN_SIZE:
        return order, {}
    cut: dict = {}
    for e in order:
        ch = _print_children(e)
        if not ch:
            height[e], size[e] = 0, 1
            continue
        height[e] = 1 + max((0 if c in cut else height[c] for c in ch), default=0)
        size[e] = 1 + sum(1 if c in cut else size[c] for c in ch)
        if e is expr or type(e).__name__ == "Let" and ch[0] in cut:
            continue  # a let of a bound value prints as that value's name
        if (height[e] >= _PIECE_DEPTH or size[e] > _PIECE_SIZE
                or (uses.get(e, 0) > 1 and size[e] > _SHARED_SIZE)):
            cut[e] = True
    return order, cut


def _let_bound(expr, printer, limit) -> str:
    order, cut = _let_form(expr)
    if not cut:
        return printer.doprint(expr)
    taken = {e.name for e in order if isinstance(e, TensorSymbol)}
    names: dict = {}
    counter = 0

    def name_of(e):
        nonlocal counter
        while True:
            counter += 1
            candidate = printer.let_name.format(counter)
            if candidate not in taken:
                names[e] = candidate
                return candidate

    def reads(e) -> list:
        """The bound subexpressions the piece rooted at ``e`` prints by name, in order."""
        below = post_order(_print_children(e), lambda c: () if c in cut else _print_children(c))
        return [c for c in below if c in cut]

    printer.bound = names
    # names are given from the root down, in the order the pieces are read
    queue = [expr]
    for e in reads(expr):
        if e not in names:
            name_of(e)
            queue.append(e)
    printer.defining = expr
    head = printer.doprint(expr)
    parts, length, i = [], len(head), 1
    while i < len(queue):
        e = queue[i]
        i += 1
        for c in reads(e):
            if c not in names:
                name_of(c)
                queue.append(c)
        if limit is not None and length > limit:
            parts.append("...")
            break
        printer.defining = e
        text = f"{names[e]} = {printer.doprint(e)}"
        parts.append(text)
        length += len(text) + 2
    return head + printer.where + "; ".join(parts)


def formula(expr, limit: int | None = None) -> str:
    """A formula a person can read (numpy-like notation).

    Parameters
    ----------
    expr : SymPy expression
        The expression (the ``.expr`` of a Tensor).
    limit : int, optional
        Stop writing let-bound definitions once the text is longer than this (an ``...``
        marks the cut); ``None`` writes them all.

    Returns
    -------
    str
        The formula. A deep or long one is written with let-bound names, ``mean(t1*t1)
        where t1 = tanh(t2 @ w9); t2 = ...``: shared parts once, no recursion on depth.
    """
    printer = FormulaPrinter({"order": "none"})
    printer.where, printer.let_name = " where ", "t{}"
    return _let_bound(expr, printer, limit)


def latex(expr, limit: int | None = None) -> str:
    """LaTeX for an expression (or a :class:`~symgrad.expr.Tensor`).

    A deep or long expression is written with let-bound names (``t_1 = ...``), as
    :func:`formula` does; ``limit`` has the same meaning there.
    """
    expr = getattr(expr, "expr", expr)
    printer = LatexFormulaPrinter({"order": "none"})
    printer.where, printer.let_name = r" \quad\text{where}\quad ", "t_{{{}}}"
    return _let_bound(expr, printer, limit)


def _op_latex(self, printer):
    ops = [printer.parenthesize(a, PRECEDENCE["Pow"]) for a in self.operand_exprs()]
    form = getattr(self, "latex_form", None)  # an op's own notation (matmul's @, x^T)
    if form is not None:
        return form(ops)
    return rf"\operatorname{{{self.op_name}}}\left({', '.join(ops)}\right)"


TensorOp._latex = _op_latex
TensorSymbol._latex = lambda self, printer: printer._deal_with_super_sub(self.name) \
    if self.name.isidentifier() else rf"\text{{{self.name}}}"

__all__ += ["Dim"]
