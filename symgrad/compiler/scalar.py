"""Scalar target: a :class:`~symgrad.compiler.optimize.Program` as straight-line Python floats.

On a tiny model (W0: one weight; W4: a 5x2 regression) a numpy call costs more than the
arithmetic it does. Every shape is known when the module is generated, so the program can
be unrolled over the elements instead: each tensor value becomes Python float locals named
after the value and the index (``w_0_1``), broadcasting is resolved here, sums, matmuls,
transposes, reshapes, indexing and broadcasts become sums of products and renamings of
those locals, and the elementwise functions are ``math`` calls in the stable forms the
numpy target uses (sigmoid, ``softplus = logaddexp(0, x)``).

The scalar function is appended to the numpy module of the same program (renamed
``_numpy_<name>``) and is the module's entry point:

* inputs are checked as the numpy target checks them (the same fast check, the same
  ``_check_inputs`` naming the input), then read once (``x.tolist()``, ``float(x)``);
* outputs are returned as float64 numpy arrays of their declared shapes (``np.array``), a
  0-d output as a ``np.float64``;
* where Python's float arithmetic differs from numpy's (``1/0.0`` raises
  ZeroDivisionError, ``math.exp(1000.0)`` OverflowError, ``math.log(-1.0)`` ValueError,
  where numpy gives inf or nan with a RuntimeWarning), the exception is caught and the
  call is made again by the numpy function: the same numbers, warnings and all. A train
  step computes everything before it writes anything, so nothing is half updated.

Anything else (a symbolic dimension, a dtype other than float64, an op without an unrolled
form) raises :class:`ScalarUnsupported` with the reason; ``target="auto"`` then uses the
numpy target and keeps the reason (``f.target_reason``).
"""

from __future__ import annotations

import math

import numpy as np
import sympy
from sympy import S

from ..nodes import CONSTANT_VALUES, TensorOp, TensorSymbol, info, is_tensor_free
from ..ops import (BroadcastTo, CustomGradient, Index, IndexGrad, Let, MatMul, Maximum, Minimum,
                   PermuteDims, ReduceMax, ReduceSum, Relu, Reshape, Sigmoid, Softplus, Step,
                   StopGradient, Where)
from ..ops.elementwise import Clip, Mask
from ..ops.record import numpy_form_of
from ..ops.shape import NEWAXIS, SliceSpec

__all__ = ["ScalarUnsupported", "SCALAR_MAX_ELEMENTS", "MATH_FUNCTIONS", "TARGETS",
           "eligible", "ScalarFunction"]

#: ``target="auto"`` picks the scalar target when every shape is fixed and the inputs and
#: parameters hold at most this many elements together. Measured on SGD train steps (median
#: of 150 paired ratios of 16 steps each, a loaded 2-core Xeon, load ~4), scalar/numpy:
#: a linear regression (N x 2 inputs, N x 1 targets, 2 x 1 weights; 3N + 2 elements) 0.49 at
#: 17 elements, 0.62 at 32, 0.75 at 44, 0.93 at 56, 1.12 at 68; the W1 network (N x 2, N x 1,
#: 2 x 3, 3 x 1; 3N + 9 elements, more arithmetic per element) 0.86 at 33, 1.01 at 39, 1.18
#: at 45. The crossover of the costlier model, rounded down: 36.
SCALAR_MAX_ELEMENTS = 36

TARGETS = ("auto", "numpy", "scalar")

#: numpy functions of the op records -> their ``math`` form (a function of one float)
MATH_FUNCTIONS = {
    "np.exp": "math.exp", "np.log": "math.log", "np.log1p": "math.log1p",
    "np.expm1": "math.expm1", "np.sqrt": "math.sqrt", "np.sin": "math.sin",
    "np.cos": "math.cos", "np.tan": "math.tan", "np.tanh": "math.tanh", "np.sinh": "math.sinh",
    "np.cosh": "math.cosh", "np.arcsin": "math.asin", "np.arccos": "math.acos",
    "np.arctan": "math.atan", "np.arcsinh": "math.asinh", "np.arccosh": "math.acosh",
    "np.arctanh": "math.atanh", "np.log2": "math.log2", "np.log10": "math.log10",
}

#: SymPy's own functions -> numpy's name (then MATH_FUNCTIONS)
_SYMPY_NUMPY = {
    sympy.exp: "np.exp", sympy.log: "np.log", sympy.sin: "np.sin", sympy.cos: "np.cos",
    sympy.tan: "np.tan", sympy.tanh: "np.tanh", sympy.sinh: "np.sinh", sympy.cosh: "np.cosh",
    sympy.asin: "np.arcsin", sympy.acos: "np.arccos", sympy.atan: "np.arctan",
    sympy.asinh: "np.arcsinh", sympy.acosh: "np.arccosh", sympy.atanh: "np.arctanh",
}

#: Python exceptions where numpy gives inf/nan: the call is redone by the numpy function
CAUGHT = "(ArithmeticError, ValueError)"


class ScalarUnsupported(ValueError):
    """The function cannot use the scalar target; the message says why."""


def eligible(leaves, limit: int = SCALAR_MAX_ELEMENTS) -> str:
    """Why ``target="auto"`` keeps numpy for these input/param leaves ('' when it may try
    the scalar target): a symbolic dimension, or more than ``limit`` elements."""
    total = 0
    for leaf in leaves:
        if any(not isinstance(d, int) for d in leaf.shape):
            return (f"{leaf.role} {leaf.name!r} has a symbolic shape "
                    f"{tuple(str(d) for d in leaf.shape)}")
        total += math.prod(leaf.shape)
    if total > limit:
        return (f"the inputs and parameters hold {total} elements, more than "
                f"SCALAR_MAX_ELEMENTS={limit}")
    return ""


def _float_source(value: float) -> str:
    if math.isfinite(value):
        return repr(float(value))
    if math.isnan(value):
        return "math.nan"
    return "math.inf" if value > 0 else "-math.inf"


# precedence levels of the printed source
_ATOM, _POW, _UNARY, _MUL, _ADD, _CMP, _NOT, _AND, _OR, _COND = 100, 60, 50, 40, 30, 20, 15, \
    12, 11, 5


class _Printer:
    """Python-float source for one scalar SymPy expression over named element symbols.

    ``hoist(source)`` binds a compound argument to a local first (the conditional forms
    read their argument more than once)."""

    def __init__(self, names: dict, hoist):
        self.names = names
        self.hoist = hoist

    def doprint(self, e) -> str:
        return self._p(e)[0]

    def _paren(self, e, level, strict=False) -> str:
        src, prec = self._p(e)
        if prec < level or (strict and prec == level):
            return f"({src})"
        return src

    def _atom(self, e) -> str:
        """A name or a literal for ``e``: compound sources are hoisted into a local."""
        src, prec = self._p(e)
        if prec >= _ATOM and not src.startswith("-"):
            return src
        return self.hoist(src)

    def _p(self, e):  # noqa: C901  (one branch per node kind)
        if isinstance(e, sympy.Symbol):
            name = self.names.get(e)
            if name is None:
                raise ScalarUnsupported(f"internal: no scalar for {e}")
            return name, _ATOM
        if e is S.true or e is S.false:
            return ("True" if e is S.true else "False"), _ATOM
        if e.is_Number or e in (S.Infinity, S.NegativeInfinity, S.NaN):
            src = _float_source(float(e))
            return src, (_UNARY if src.startswith("-") else _ATOM)
        if e.is_number and not e.free_symbols:  # pi, exp(2), sqrt(2): a float
            try:
                value = float(e.evalf(17))
            except TypeError:  # one of symgrad's functions of a number: printed below
                value = None
            if value is not None:
                src = _float_source(value)
                return src, (_UNARY if src.startswith("-") else _ATOM)
        if e.is_Add:
            return self._add(e), _ADD
        if e.is_Mul:
            return self._mul(e)
        if e.is_Pow:
            return self._pow(e)
        if isinstance(e, sympy.core.relational.Relational):
            op = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "==", "!=": "!="}[e.rel_op]
            return (f"{self._paren(e.lhs, _ADD)} {op} {self._paren(e.rhs, _ADD)}", _CMP)
        if isinstance(e, sympy.And):
            return " and ".join(self._paren(a, _AND, True) for a in e.args), _AND
        if isinstance(e, sympy.Or):
            return " or ".join(self._paren(a, _OR, True) for a in e.args), _OR
        if isinstance(e, sympy.Not):
            return f"not {self._paren(e.args[0], _NOT)}", _NOT
        return self._function(e)

    def _add(self, e) -> str:
        terms = sorted(e.args, key=lambda t: t.is_number)  # numbers last (a stable sort)
        if len(terms) > 1 and _negated(terms[0]) and not _negated(terms[1]):
            # -a + b prints b - a: one operation less, the same value ((b - a) + c is
            # (-a + b) + c exactly: IEEE addition commutes, and b - a is b + (-a))
            terms[0], terms[1] = terms[1], terms[0]
        out = self._paren(terms[0], _ADD)
        for t in terms[1:]:
            if _negated(t):
                out += " - " + self._paren(-t, _ADD, True)
            else:
                out += " + " + self._paren(t, _ADD, True)
        return out

    def _mul(self, e):
        args = list(e.args)
        coeff = S.One
        if args and args[0].is_Number:
            coeff, args = args[0], args[1:]
        num, den = [], []
        for f in args:
            if f.is_Pow and f.exp.is_Number and f.exp.is_negative and f.exp != -S.Half:
                den.append(sympy.Pow(f.base, -f.exp))
            else:
                num.append(f)
        sign = ""
        if coeff.is_negative:
            sign, coeff = "-", -coeff
        parts = [self._paren(f, _MUL) for f in num]
        if coeff != 1 or not parts:
            parts.insert(0, _float_source(float(coeff)))
        text = "*".join(parts)
        if den:
            d = [self._paren(f, _MUL, True) for f in den]
            text += "/" + (d[0] if len(d) == 1 else "(" + "*".join(d) + ")")
        if sign:
            return sign + (text if len(parts) == 1 and not den else f"({text})"), _UNARY
        return text, _MUL

    def _pow(self, e):
        base, ex = e.args
        if ex == S.Half:
            return f"math.sqrt({self.doprint(base)})", _ATOM
        if ex == -S.Half:
            return f"1.0/math.sqrt({self.doprint(base)})", _MUL
        if ex == 2 and base.is_Symbol:
            b = self.doprint(base)
            return f"{b}*{b}", _MUL
        if ex == -1:
            return f"1.0/{self._paren(base, _MUL, True)}", _MUL
        # math.pow: OverflowError where ** can give a complex number or raise elsewhere
        return f"math.pow({self.doprint(base)}, {self.doprint(ex)})", _ATOM

    def _function(self, e):
        if type(e) is StopGradient:
            return self._p(e.args[0])
        if isinstance(e, sympy.Abs):
            return f"abs({self.doprint(e.args[0])})", _ATOM
        if type(e) is Relu:  # numpy's maximum(x, 0): nan stays nan
            x = self._atom(e.args[0])
            return f"0.0 if {x} <= 0.0 else {x}", _COND
        if type(e) is Mask:  # a comparison used as a number (x > 0)*x
            c = self._paren(e.args[0], _OR)
            return f"1.0 if {c} else 0.0", _COND
        if type(e) is Step:
            x = self._atom(e.args[0])
            return f"1.0 if {x} > 0.0 else 0.0", _COND
        if isinstance(e, sympy.Heaviside):  # 1/2 at 0, nan at nan (numpy's heaviside)
            x = self._atom(e.args[0])
            return f"1.0 if {x} > 0.0 else 0.0 if {x} < 0.0 else 0.5 + 0.0*{x}", _COND
        if isinstance(e, sympy.sign):
            x = self._atom(e.args[0])
            return f"1.0 if {x} > 0.0 else -1.0 if {x} < 0.0 else 0.0*{x}", _COND
        if type(e) is Maximum:
            a, b = self._atom(e.args[0]), self._atom(e.args[1])
            return f"{a} if {a} >= {b} or {a} != {a} else {b}", _COND
        if type(e) is Minimum:
            a, b = self._atom(e.args[0]), self._atom(e.args[1])
            return f"{a} if {a} <= {b} or {a} != {a} else {b}", _COND
        if type(e) is Clip:
            x = self._atom(e.args[0])
            lo, hi = self._atom(e.args[1]), self._atom(e.args[2])
            return f"{lo} if {x} < {lo} else {hi} if {x} > {hi} else {x}", _COND
        if type(e) is Where:
            c = self._paren(e.args[0], _OR)
            return (f"{self._paren(e.args[1], _COND, True)} if {c} else "
                    f"{self._paren(e.args[2], _COND)}", _COND)
        if type(e) is Sigmoid:  # the numpy target's exp(-logaddexp(0, -x)), stably
            x = self._atom(e.args[0])
            return (f"1.0/(1.0 + math.exp(-{x})) if {x} >= 0.0 else "
                    f"math.exp({x})/(1.0 + math.exp({x}))", _COND)
        if type(e) is Softplus:  # logaddexp(0, x) = max(x, 0) + log1p(exp(-|x|))
            x = self._atom(e.args[0])
            return (f"{x} + math.log1p(math.exp(-{x})) if {x} > 0.0 else "
                    f"math.log1p(math.exp({x}))", _COND)
        name = _SYMPY_NUMPY.get(type(e)) or numpy_form_of(type(e))
        fn = MATH_FUNCTIONS.get(name or "")
        if fn is None or len(e.args) != 1:
            raise ScalarUnsupported(f"no scalar form for {type(e).__name__}"
                                    f"{' (' + name + ')' if name else ''}")
        return f"{fn}({self.doprint(e.args[0])})", _ATOM


def _negated(t) -> bool:
    """A term printed as ``- <its negation>`` in a sum: a negative number or coefficient."""
    return bool((t.is_Number and t < 0) or (t.is_Mul and t.args[0].is_Number and t.args[0] < 0))


def _index_text(idx) -> str:
    return "_".join(str(i) for i in idx)


def _nested(arr, leaf_source) -> str:
    """A nested list literal of ``arr``'s elements."""
    if arr.ndim == 0:
        return leaf_source(arr[()])
    if arr.ndim == 1:
        return "[" + ", ".join(leaf_source(v) for v in arr.tolist()) + "]"
    return "[" + ", ".join(_nested(sub, leaf_source) for sub in arr) + "]"


class ScalarFunction:
    """Lowers a program to Python-float lines (see the module docstring).

    Parameters
    ----------
    program : Program
    namer : symgrad.compiler.codegen.Namer
        A fresh namer; the caller claims the parameter names first (as the numpy render
        does, so that both functions have the same signature) and the module-level names.
    """

    def __init__(self, program, namer):
        self.program = program
        self.namer = namer
        self.elems: dict = {}  # TensorSymbol -> object array of SymPy scalars
        self.names: dict = {}  # scalar Symbol -> source name
        self.lines: list = []  # the body, inside the try
        self.reads: list = []  # reading the inputs
        self._hoisted = 0
        self.printer = _Printer(self.names, self._hoist)

    # -- names ------------------------------------------------------------------------
    def _claim(self, base: str) -> sympy.Symbol:
        name = self.namer._claim(object(), base)
        sym = sympy.Symbol(name, real=True)
        self.names[sym] = name
        return sym

    def _hoist(self, source: str) -> str:
        self._hoisted += 1
        sym = self._claim(f"_h{self._hoisted}")
        self.lines.append(f"{self.names[sym]} = {source}")
        return self.names[sym]

    def scalar(self, leaf, name: str) -> None:
        """A 0-d value already bound to ``name`` (a hyperparameter, the step count)."""
        sym = sympy.Symbol(name, real=True)
        self.names[sym] = name
        self.elems[leaf] = np.array(sym, dtype=object)

    # -- reading the leaves -----------------------------------------------------------
    def read_array(self, leaf, source: str, base: str, view: bool = False) -> None:
        """Read ``source`` (an ndarray of leaf's shape, or a 0-d value; with ``view``, a flat
        memoryview of its elements in C order) into float locals, in one call: the flat
        ``tolist()`` of all the elements (half the cost of the nested one of a 2-d array),
        or for one element ``item()`` / ``view[0]``."""
        shape = leaf.shape
        if any(not isinstance(d, int) for d in shape):
            raise ScalarUnsupported(f"{leaf.role} {leaf.name!r} has a symbolic shape")
        if 0 in shape:
            raise ScalarUnsupported(f"{leaf.role} {leaf.name!r} is empty")
        if leaf.dtype is None or leaf.dtype != np.float64:
            raise ScalarUnsupported(f"{leaf.role} {leaf.name!r} is {leaf.dtype}, not float64")
        arr = np.empty(shape, dtype=object)
        names = np.empty(shape, dtype=object)
        for idx in np.ndindex(*shape):
            sym = self._claim(f"{base}_{_index_text(idx)}" if idx else f"{base}_")
            arr[idx] = sym
            names[idx] = self.names[sym]
        self.elems[leaf] = arr
        flat = names.ravel().tolist()
        if view:  # +view[0]: the float itself, and to the buffer verifier a new value (not
            # a view of the state's memory, which the step overwrites before it returns)
            read = f"+{source}[0]" if len(flat) == 1 else f"{source}.tolist()"
        elif shape == ():
            read = f"float({source})"
        elif len(flat) == 1:
            read = f"{source}.item()"
        else:
            read = f"{source}.tolist()" if len(shape) == 1 else f"{source}.ravel().tolist()"
        if len(flat) == 1:
            self.reads.append(f"{flat[0]} = {read}")
        else:
            self.reads.append(f"{', '.join(flat)} = {read}")

    def constant(self, leaf) -> None:
        value = CONSTANT_VALUES[leaf.tag]
        if value.dtype.kind not in "fiub":
            raise ScalarUnsupported(f"constant of dtype {value.dtype}")
        arr = np.empty(value.shape, dtype=object)
        for idx in np.ndindex(*value.shape):
            v = value[idx]
            arr[idx] = sympy.Float(float(v)) if value.dtype.kind == "f" else sympy.Integer(int(v))
        self.elems[leaf] = arr

    # -- evaluating -------------------------------------------------------------------
    def _elementwise(self, expr, shape, base: str, bind_atoms=False) -> np.ndarray:
        """Each element of the elementwise ``expr`` (broadcast to ``shape``), bound to a local
        unless it is a name or a number."""
        if any(not isinstance(d, int) for d in shape):
            raise ScalarUnsupported("a symbolic dimension")
        tensors = [s for s in expr.free_symbols if isinstance(s, TensorSymbol)]
        for t in tensors:
            if t not in self.elems:
                raise ScalarUnsupported(f"internal: {t} read before it is computed")
        out = np.empty(shape, dtype=object)
        n = len(shape)
        for idx in np.ndindex(*shape):
            rule = {}
            for t in tensors:
                arr = self.elems[t]
                k = n - arr.ndim
                rule[t] = arr[tuple(0 if arr.shape[j] == 1 else idx[k + j]
                                    for j in range(arr.ndim))]
            value = expr.xreplace(rule) if rule else expr
            out[idx] = self._bind(value, f"{base}_{_index_text(idx)}" if idx else base)
        return out

    def _bind(self, value, base: str):
        if isinstance(value, np.ndarray):
            raise ScalarUnsupported(f"internal: an array where an element belongs ({base})")
        if isinstance(value, TensorOp):
            raise ScalarUnsupported(f"internal: op {value.op_name} inside an expression")
        if value.is_Atom and (value.is_Symbol or value.is_Number):
            return value
        if value is S.true or value is S.false:
            return value
        for sub in sympy.preorder_traversal(value):
            if isinstance(sub, TensorOp):
                raise ScalarUnsupported(f"op {sub.op_name} inside an elementwise expression")
        source = self.printer.doprint(value)
        sym = self._claim(base)
        self.lines.append(f"{self.names[sym]} = {source}")
        return sym

    def _operand(self, a, base) -> np.ndarray:
        if isinstance(a, TensorSymbol) and a in self.elems:
            return self.elems[a]
        shape = info(a)[0]
        if is_tensor_free(a):
            return np.full(shape, a, dtype=object)
        return self._elementwise(a, shape, base)

    def statement(self, s, base: str) -> None:
        target = s.target
        if target.dtype is not None and target.dtype.kind not in "fb":
            raise ScalarUnsupported(f"a value of dtype {target.dtype}")
        if target.dtype is not None and target.dtype.kind == "f" and target.dtype != np.float64:
            raise ScalarUnsupported(f"a value of dtype {target.dtype}, not float64")
        if not s.is_op:
            self.elems[target] = self._elementwise(s.value, target.shape, base)
            return
        node = s.value
        args = [self._operand(a, f"{base}a{k}") for k, a in enumerate(s.args)]
        result = self._op(node, args)
        out = np.empty(result.shape, dtype=object)
        for idx in np.ndindex(*result.shape):
            out[idx] = self._bind(result[idx], f"{base}_{_index_text(idx)}" if idx else base)
        self.elems[target] = out

    def _op(self, node, args) -> np.ndarray:  # noqa: C901
        shape = node.shape
        if any(not isinstance(d, int) for d in shape):
            raise ScalarUnsupported("a symbolic dimension")
        if type(node) in (Let, CustomGradient):
            return args[0]
        if type(node) is PermuteDims:
            return args[0].transpose(node.perm)
        if type(node) is Reshape:
            return np.broadcast_to(args[0], info(node.args[0])[0]).reshape(shape)
        if type(node) is BroadcastTo:
            return np.broadcast_to(args[0], shape)
        if type(node) is Index:
            out = args[0][_index_tuple(node.args[1])]
            return out if isinstance(out, np.ndarray) else np.array(out, dtype=object)
        if type(node) is IndexGrad:
            out = np.full(shape, S.Zero, dtype=object)
            g = args[0]
            # a 0-d object array assigned to one element would be stored as the array
            out[_index_tuple(node.args[2])] = g[()] if g.ndim == 0 else g
            return out
        if type(node) in (ReduceSum, ReduceMax):
            x = args[0]
            axes = node.axes
            kept = [a for a in range(x.ndim) if a not in axes]
            moved = x.transpose(kept + list(axes)).reshape(
                tuple(x.shape[a] for a in kept) + (-1,))
            out = np.empty(moved.shape[:-1], dtype=object)
            for idx in np.ndindex(*out.shape):
                row = list(moved[idx])
                if isinstance(node, ReduceSum):
                    out[idx] = _sum(row)
                else:
                    acc = row[0]
                    for v in row[1:]:
                        acc = Maximum(self._bind(acc, "_mx"), v)
                    out[idx] = acc
            return out.reshape(shape)
        if type(node) is MatMul:
            a, b = args
            if a.ndim > 2 or b.ndim > 2:
                raise ScalarUnsupported("a batched matmul")
            a2 = a if a.ndim == 2 else a.reshape(1, -1)
            b2 = b if b.ndim == 2 else b.reshape(-1, 1)
            out = np.empty((a2.shape[0], b2.shape[1]), dtype=object)
            for i in range(a2.shape[0]):
                for j in range(b2.shape[1]):
                    out[i, j] = _sum([sympy.Mul(a2[i, k], b2[k, j], evaluate=False)
                                      for k in range(a2.shape[1])])
            return out.reshape(shape)
        raise ScalarUnsupported(f"no scalar form for the op {node.op_name!r}")

    def run(self, prefix_names: dict) -> None:
        """Lower every statement; ``prefix_names`` gives each target's base name."""
        for s in self.program.statements:
            self.statement(s, prefix_names[s.target])

    def element_source(self, e) -> str:
        if isinstance(e, sympy.Symbol):
            return self.names[e]
        if e is S.true or e is S.false:
            return "1.0" if e is S.true else "0.0"
        if e.is_number:
            return _float_source(float(e))
        raise ScalarUnsupported(f"internal: an unbound element {e}")

    def output_source(self, symbol, shape) -> str:
        """The return value of an output: ``_float64(x)`` (0-d) or ``np.array([...], _float64)``."""
        arr = np.broadcast_to(self.elems[symbol], shape)
        if arr.ndim == 0:
            return f"_float64({self.element_source(arr[()])})"
        if arr.size == 0:  # a nested literal of no elements loses the shape: [] is (0,)
            return f"np.zeros({tuple(arr.shape)}, _float64)"
        return f"np.array({_nested(arr, self.element_source)}, _float64)"


def _sum(terms):
    """An unevaluated sum, in order (Python then adds left to right, as numpy's small loops)."""
    if len(terms) == 1:
        return terms[0]
    return sympy.Add(*terms, evaluate=False)


def _index_tuple(index) -> tuple:
    out = []
    for item in index:
        if item == NEWAXIS:
            out.append(None)
        elif isinstance(item, SliceSpec):
            out.append(item.as_slice())
        else:
            out.append(int(item))
    return tuple(out)



# ---------------------------------------------------------------------------------------
# The functions: compile() and train_step()
# ---------------------------------------------------------------------------------------

#: module-level names the scalar function reads: never the name of one of its locals
_MODULE_LOCALS = frozenset({"_check_inputs", "_ok", "_NDARRAY", "_GENERIC", "_INPUTS",
                            "_float64", "_DATA", "_EMPTY_DIM", "_show", "math", "_F64",
                            "_state", "_turn", "_held", "_opt", "_hyper", "_attrs",
                            "_counter", "_t"})

#: module-level lines the scalar function needs (after the numpy module's own)
PRELUDE = ["_float64 = np.float64  # outputs of the scalar target"]


class _Unbox:
    """What codegen._input_checks reads of a ModuleSpec: 0-d float64 inputs as Python
    floats, and whether the inputs are checked (``check_inputs``)."""

    unbox_scalars = True
    exact_floats = True  # Python floats skip the checks (Python arithmetic throughout)

    def __init__(self, check_inputs: bool = True):
        self.check_inputs = check_inputs


def _base(name: str) -> str:
    """A name's identifier-safe form, as a prefix of element locals."""
    import re
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)[:40].lstrip("_") or "v"
    return "v_" + s if s[0].isdigit() else s


def _start(program, inputs, namer):
    """A ScalarFunction with the inputs claimed (in order: the numpy function's parameter
    names) and read; returns (lowering, parameter names, check lines)."""
    from .codegen import _input_checks
    namer.taken.update(_MODULE_LOCALS)
    for leaf in inputs:
        namer.user(leaf, leaf.name)
    params = [namer.names[leaf] for leaf in inputs]
    low = ScalarFunction(program, namer)
    for leaf in inputs:
        _read(low, leaf, namer.names[leaf], namer.names[leaf])
    return low, params


def _read(low, leaf, source, base) -> None:
    """0-d float64: already a float named ``source`` (the input checks unbox it)."""
    if leaf.shape == () and leaf.dtype == np.float64:
        low.scalar(leaf, source)
        return
    low.read_array(leaf, source, base)


def _leaves(low, program, namer) -> None:
    for leaf in program.leaves:
        if leaf in low.elems:
            continue
        if leaf.role == "constant":
            low.constant(leaf)
        elif leaf.role == "hyper":
            name = namer.names.get(leaf) or namer.user(leaf, leaf.name)
            low.scalar(leaf, name)
        else:
            raise ScalarUnsupported(f"{leaf.role} {leaf.name!r} is not an input")


def _statement_bases(program) -> dict:
    outs = {o.symbol: o.name for o in program.outputs}
    return {s.target: (_base(str(outs[s.target])) if s.target in outs else s.target.name)
            for s in program.statements}


def render_compute(program, inputs, fn_name: str, numpy_name: str, result_kind: str,
                   check_inputs: bool = True) -> list:
    """The lines of the scalar ``fn_name`` (calls ``numpy_name`` on an arithmetic error);
    ``check_inputs=False`` leaves out the input checks."""
    from .codegen import Namer, _input_checks
    namer = Namer()
    low, params = _start(program, inputs, namer)
    _leaves(low, program, namer)
    low.run(_statement_bases(program))
    values = []
    for o in program.outputs:
        if (o.dtype or np.dtype(np.float64)) != np.float64:
            raise ScalarUnsupported(f"output {o.name!r} is {o.dtype}, not float64")
        if o.symbol not in low.elems:
            raise ScalarUnsupported(f"internal: output {o.name!r} is not computed")
        values.append(low.output_source(o.symbol, o.shape))
    if result_kind == "single":
        result = values[0]
    elif result_kind == "list":
        result = "[" + ", ".join(values) + "]"
    else:
        result = "{" + ", ".join(f"{o.name!r}: {v}" for o, v in zip(program.outputs, values)) \
            + "}"
    checks = _input_checks(inputs, namer.names, {}, fn_name, _Unbox(check_inputs))
    call = ", ".join(params)
    body = [f"    {line}" for line in checks]
    body += ["    try:"] + [f"        {line}" for line in low.reads + low.lines or ["pass"]]
    body += [f"    except {CAUGHT}:  # where numpy gives inf/nan: numpy's numbers",
             f"        return {numpy_name}({call})",
             f"    return {result}"]
    return ["", "", f"def {fn_name}({call}):"] + body


def render_train_step(program, updates, inputs, plist, slot_syms, hyper_leaves, grad_of,
                      step_t, numpy_name: str, check_inputs: bool = True) -> list:
    """The lines of the scalar ``train_step``: the program, then the optimizer's ``updates``
    (``(var, value)``, in order, each reading the variables updated before it), every new
    value computed before any is written into the state's arrays.

    ``grad_of`` maps the update rules' gradient symbols to the program's output symbols."""
    from .codegen import Namer, _input_checks
    namer = Namer()
    low, params = _start(program, inputs, namer)
    reads = []
    views = {}
    for leaf in list(plist) + list(slot_syms):  # the state's arrays, through its memoryviews
        if leaf.dtype != np.float64:
            raise ScalarUnsupported(f"{leaf.role} {leaf.name!r} is {leaf.dtype}, not float64")
        name = namer.user(leaf, leaf.name)
        views[leaf] = namer._claim(("view", leaf), f"_mv{_base(leaf.name)}")
        low.read_array(leaf, views[leaf], name, view=True)
    names = list(views.values())
    reads.append(f"{', '.join(names)}{',' if len(names) == 1 else ''} = _state._views")
    hyper_names = [namer.user(h, h.name) for h in hyper_leaves]
    for h, name in zip(hyper_leaves, hyper_names):
        low.scalar(h, name)
    if hyper_names:
        reads.append(f"{', '.join(hyper_names)}{',' if len(hyper_names) == 1 else ''} = _hyper")
    counter = []
    if step_t is not None:
        low.scalar(step_t, "_t")
        counter = ["_counter = _state._counter", "_t = _counter[0] + 1"]
    _leaves(low, program, namer)
    low.run(_statement_bases(program))
    loss = next(o for o in program.outputs if o.name == "loss")
    if loss.shape != () or (loss.dtype or np.dtype(np.float64)) != np.float64:
        raise ScalarUnsupported("the loss is not a float64 scalar")
    for g, out_symbol in grad_of.items():
        low.elems[g] = np.broadcast_to(low.elems[out_symbol], g.shape)
    for k, (var, value) in enumerate(updates):
        low.elems[var] = low._elementwise(value, var.shape, f"{_base(var.name)}_n{k}")
    writes = []
    for var in list(plist) + list(slot_syms):  # element by element: ~30 ns each
        writes += [f"{views[var]}[{k}] = {low.element_source(v)}"
                   for k, v in enumerate(low.elems[var].ravel().tolist())]
    if step_t is not None:
        writes.append("_counter[0] = _t")
    loss_value = low.elems[loss.symbol][()]
    result = low.element_source(loss_value)
    if not isinstance(loss_value, sympy.Symbol):
        result = f"float({result})"
    checks = _input_checks(inputs, namer.names, {}, "train_step", _Unbox(check_inputs))
    call = ", ".join(params)
    lines = ["", "", f"def train_step({', '.join(['_state'] + params)}):"]
    lines += [f"    {line}" for line in checks]
    lines += [
        "    _turn = _state._token  # one entry: whoever pops it holds the state",
        "    try:",
        "        _held = _turn.pop()",
        "    except IndexError:  # another thread's step holds it",
        "        _held = _state._wait_turn()",
        "    try:",
        "        _opt, _hyper, _attrs = _held  # optimizer, its hyperparameters, step.__dict__",
        "        if _attrs[\"optimizer\"] is not _opt:  # step.optimizer was replaced",
        "            _opt, _hyper, _attrs = _held = _state._hyper_of(_held)",
    ]
    lines += [f"        {line}" for line in reads]
    lines += ["        try:"]
    lines += [f"            {line}" for line in counter + low.reads + low.lines or ["pass"]]
    lines += [f"        except {CAUGHT}:  # where numpy gives inf/nan: the numpy step, below",
              "            pass",
              "        else:  # every new value is computed: write them all"]
    lines += [f"            {line}" for line in writes]
    lines += [f"            return {result}",
              "    finally:",
              "        _turn.append(_held)",
              f"    return {numpy_name}({', '.join(['_state'] + params)})"]
    return lines
