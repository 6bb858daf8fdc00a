"""The second code-generation target: the Python array API standard.

``sg.compile(..., backend="array_api")`` prints the same program with
:class:`ArrayApiPrinter` instead of :class:`~symgrad.compiler.printer.NumpySourcePrinter`.
The module takes its array namespace ``xp`` from its inputs
(``array_api_compat.array_namespace``) and calls only functions of the standard, so one
module runs on numpy, CuPy, PyTorch, JAX and Dask arrays.

One printer over the same op records: an op is declared once (:mod:`symgrad.ops`) and its
numpy form is translated here, name by name, with the one table :data:`RENAMED` (numpy's
names the standard spells otherwise: ``np.power`` is ``xp.pow``). A node whose numpy form
is not standard (array methods, ``out=``, numpy-only functions) has a form of its own:
``print_array_api`` beside ``print_numpy`` on a structural node, ``array_api_form`` beside
``numpy_form`` on an elementwise function, or an entry of :data:`WRITTEN` for numpy's
elementwise functions the standard lacks (``np.fmod``, ``np.nan_to_num``). Where the
standard has no function for an op (einsum, pad, the convolutions, a scatter-add) the form
calls a helper of ``templates/helpers_array_api.py.j2`` written with standard functions.
What cannot be translated raises :class:`UnsupportedOpError` naming the op and the backend,
when compiling.

What differs from the numpy target, besides the names:

* no buffer reuse, no in-place steps, no ``out=`` (arrays of some namespaces are
  immutable);
* boolean masks are always cast (``xp.astype(mask, xp.float64)``): the standard defines
  no arithmetic between bool and float arrays, and sums no booleans (the operands of sums,
  products and contractions are cast too);
* a slice with a negative step is a flip and a slice with a positive one (PyTorch refuses
  negative steps);
* constants are numpy arrays at module level, moved into the namespace (and onto the
  inputs' device) at each call;
* indices carry a trailing ``...`` when they name fewer axes than the operand has.
"""

from __future__ import annotations

import re

import numpy as np

from ..nodes import dtype_of
from ..ops.record import RealFunction, numpy_form_of, record_of
from .printer import NumpySourcePrinter, _is_mask

__all__ = ["ArrayApiPrinter", "UnsupportedOpError", "STANDARD_NAMES", "RENAMED",
           "standard_name", "BACKEND"]

BACKEND = "array_api"

#: the names of the array API standard's main namespace (2023.12 and later) that a
#: generated module may call or read: functions, data types and constants. Nothing that
#: moves data in or out of the process (``from_dlpack``), and no extension: the functions
#: of ``linalg`` a node prints it declares in ``array_api_calls`` (``xp.linalg.inv``), and
#: the allowlist admits those (``safety.XP_CHAINS``).
STANDARD_NAMES = frozenset({
    # creation
    "arange", "asarray", "empty", "empty_like", "eye", "full", "full_like", "linspace",
    "meshgrid", "ones", "ones_like", "tril", "triu", "zeros", "zeros_like",
    # data types and their functions
    "astype", "can_cast", "finfo", "iinfo", "isdtype", "result_type", "bool", "int8",
    "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64",
    "complex64", "complex128",
    # elementwise
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bitwise_and",
    "bitwise_left_shift", "bitwise_invert", "bitwise_or", "bitwise_right_shift",
    "bitwise_xor", "ceil", "clip", "conj", "copysign", "cos", "cosh", "divide", "equal",
    "exp", "expm1", "floor", "floor_divide", "greater", "greater_equal", "hypot", "imag",
    "isfinite", "isinf", "isnan", "less", "less_equal", "log", "log1p", "log2", "log10",
    "logaddexp", "logical_and", "logical_not", "logical_or", "logical_xor", "maximum",
    "minimum", "multiply", "negative", "nextafter", "not_equal", "positive", "pow", "real",
    "reciprocal", "remainder", "round", "sign", "signbit", "sin", "sinh", "square", "sqrt",
    "subtract", "tan", "tanh", "trunc",
    # indexing, linear algebra, manipulation
    "take", "take_along_axis", "matmul", "matrix_transpose", "tensordot", "vecdot",
    "broadcast_arrays", "broadcast_to", "concat", "expand_dims", "flip", "moveaxis",
    "permute_dims", "repeat", "reshape", "roll", "squeeze", "stack", "tile", "unstack",
    # searching, sorting, statistics, utilities
    "argmax", "argmin", "count_nonzero", "searchsorted", "where", "argsort", "sort",
    "cumulative_sum", "cumulative_prod", "max", "mean", "min", "prod", "std", "sum", "var",
    "all", "any", "diff",
    # constants
    "e", "inf", "nan", "newaxis", "pi",
})

#: numpy's name -> the standard's, where they differ (the one table of the translation)
RENAMED = {
    "power": "pow", "arccos": "acos", "arcsin": "asin", "arctan": "atan", "arctan2": "atan2",
    "arccosh": "acosh", "arcsinh": "asinh", "arctanh": "atanh", "absolute": "abs",
    "true_divide": "divide", "mod": "remainder", "amax": "max", "amin": "min",
    "transpose": "permute_dims", "concatenate": "concat", "cumsum": "cumulative_sum",
    "bool_": "bool", "invert": "bitwise_invert", "left_shift": "bitwise_left_shift",
    "right_shift": "bitwise_right_shift", "fabs": "abs", "rint": "round", "fix": "trunc",
}
assert set(RENAMED.values()) <= STANDARD_NAMES

#: numpy's elementwise functions the standard lacks -> their form here: written with the
#: standard's functions, or a call of a helper of ``templates/helpers_array_api.py.j2`` (the
#: helpers take Python numbers as well as arrays, where a printed operand may be one)
WRITTEN = {
    # 2**x: the operator, which every namespace has (xp.pow takes Python numbers only
    # from the 2024.12 standard on)
    "np.exp2": lambda p, x: f"2.0**{p.atom(x)}",
    "np.cbrt": lambda p, x: f"_cbrt(xp, {x})",
    "np.sinc": lambda p, x: f"_sinc(xp, {x})",
    "np.nan_to_num": lambda p, x: f"_nan_to_num(xp, {x})",
    "np.logaddexp2": lambda p, a, b: f"_logaddexp2(xp, {a}, {b})",
    "np.fmax": lambda p, a, b: f"_fmax(xp, {a}, {b})",
    "np.fmin": lambda p, a, b: f"_fmin(xp, {a}, {b})",
    "np.fmod": lambda p, a, b: f"_fmod(xp, {a}, {b})",
    "np.float_power": lambda p, a, b: f"_float_power(xp, {a}, {b})",
    "np.heaviside": lambda p, a, b: f"_heaviside(xp, {a}, {b})",
}
#: the helpers each written form calls (the helpers template's block names)
WRITTEN_HELPERS = {name: ("elementwise",) for name in WRITTEN if name != "np.exp2"}

_NP_NAME = re.compile(r"\bnp\.([A-Za-z_]\w*)")
#: array attributes and methods the standard defines (a method call ``x.sum(...)`` is not)
_STANDARD_ATTRIBUTES = ("shape", "dtype", "ndim", "device", "mT", "T", "size")
_METHOD_CALL = re.compile(r"\.([A-Za-z_]\w*)\s*\(")


class UnsupportedOpError(NotImplementedError):
    """An op has no form in the target backend (raised when compiling, naming both)."""


def standard_name(numpy_name: str) -> str | None:
    """The standard's name for numpy's function ``numpy_name`` (no ``np.``), or None."""
    name = RENAMED.get(numpy_name, numpy_name)
    return name if name in STANDARD_NAMES else None


def translate(source: str, op: str) -> str:
    """numpy source -> array API source: every ``np.<name>`` becomes ``xp.<standard name>``.

    Raises
    ------
    UnsupportedOpError
        Naming ``op`` and the backend, when a numpy name has no standard equivalent or the
        source calls an array method (the standard has functions, not methods).
    """
    def sub(m):
        name = standard_name(m.group(1))
        if name is None:
            raise UnsupportedOpError(
                f"{op}: no array API form for np.{m.group(1)} (backend={BACKEND!r}); give "
                f"the op a print_array_api/array_api_form, or use backend='numpy'")
        return f"xp.{name}"

    out = _NP_NAME.sub(sub, source)
    for m in _METHOD_CALL.finditer(out):
        start = m.start()
        # xp.<fn>( and the module's own calls are fine; a method of a value is not
        if re.search(r"\bxp$", out[:start]):
            continue
        raise UnsupportedOpError(
            f"{op}: its numpy form calls the method .{m.group(1)}(), which the array API "
            f"standard does not define (backend={BACKEND!r}); give the op a print_array_api "
            f"form, or use backend='numpy'")
    return out


class ArrayApiPrinter(NumpySourcePrinter):
    """Prints symgrad expressions as array API source over the namespace ``xp``.

    ``_dev`` (the inputs' device) is a local of the generated function; creation functions
    pass it, so a module that runs on a GPU makes its arrays there too.
    """

    backend = BACKEND
    cast_all_masks = True

    def dtype_source(self, dtype) -> str:
        return f"xp.{np.dtype(dtype).name}"

    def cast_source(self, source: str, dtype_source: str) -> str:
        return f"xp.astype({source}, {dtype_source})"

    def copy_source(self, name: str) -> str:
        return f"xp.asarray({name}, copy=True)"

    def full_source(self, shape_source: str, value: str, dtype_source: str) -> str:
        return f"xp.full({shape_source}, {value}, dtype={dtype_source}, device=_dev)"

    def translate(self, source: str, op: str) -> str:
        return translate(source, op)

    def print_op(self, node, ops) -> str:
        """A structural node's source: its ``print_array_api`` form, or its numpy form
        translated where that is standard."""
        if not getattr(node, "array_api", True):
            raise UnsupportedOpError(
                f"{node.op_name}: no array API form checked yet (backend={BACKEND!r}); use "
                f"backend='numpy' for it")
        ops = self._numeric_operands(node, list(ops))
        form = getattr(node, "print_array_api", None)
        if form is not None:
            return form(self, ops)
        return translate(node.print_numpy(self, ops), node.op_name)

    def _numeric_operands(self, node, ops) -> list:
        """``ops`` with every boolean operand of an arithmetic node cast to the float dtype:
        the standard sums, multiplies and compares numbers only (``xp.sum`` of a mask is a
        TypeError), where numpy counts booleans as 0 and 1."""
        if not isinstance(node, _arithmetic_nodes()):
            return ops
        dt = self.dtype_source(self.mask_dtype)
        for i in node.operands:
            a = node.args[i]
            if _is_bool(a):
                ops[i] = self.cast_source(ops[i], dt)
        return ops

    @property
    def mask_dtype(self):
        """The float dtype a boolean operand of arithmetic is cast to: the statement's, or
        the function's default float dtype where the statement's is not a float dtype."""
        if self.float_dtype is not None and np.dtype(self.float_dtype).kind == "f":
            return self.float_dtype
        return getattr(self, "default_float", np.dtype(np.float64))

    def _numeric_args(self, expr) -> list:
        # the numpy printer's rule with the standard's cast (a function, not .astype())
        out = []
        for a in expr.args:
            s = self._print(a)
            if _is_bool(a):
                s = self.cast_source(s, self.dtype_source(self.mask_dtype))
            out.append(s)
        return out

    def doprint(self, expr, *args, **kwargs):
        # SymPy's own forms (np.sqrt of a Pow, np.inf, ...) are translated once, here
        return translate(super().doprint(expr, *args, **kwargs), _op_name(expr))

    def _print(self, expr, **kwargs):
        if isinstance(expr, RealFunction):
            from ..ops import Step, Where
            # Where, Step and the logical ops take truth values as they are
            args = [self._print(a) for a in expr.args] if isinstance(expr, (Where, Step)) \
                else self._numeric_args(expr)
            form = getattr(expr, "array_api_form", None)
            if form is None and type(expr).numpy in WRITTEN:
                for helper in WRITTEN_HELPERS.get(type(expr).numpy, ()):
                    self.need_helper(helper)
                form = WRITTEN[type(expr).numpy]
            if form is not None:
                return form(self, *args)
            return translate(expr.numpy_form(self, *args), expr.op_name)
        if numpy_form_of(type(expr)) is not None:
            return translate(super()._print(expr, **kwargs), _op_name(expr))
        return super()._print(expr, **kwargs)

    def _print_And(self, e):
        # SymPy's NumPyPrinter writes np.logical_and.reduce((a, b, ...)): a ufunc method
        return self._chain("xp.logical_and", e.args)

    def _print_Or(self, e):
        return self._chain("xp.logical_or", e.args)

    def _print_Not(self, e):
        return f"xp.logical_not({self._print(e.args[0])})"

    def _chain(self, fn, args):
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{fn}({out}, {self._print(a)})"
        return out

    def _print_Heaviside(self, e):
        # H(0) = 1/2 (the tie rule of maximum/minimum), and nan at nan as numpy's
        # heaviside (the numpy printer's form); the standard has no heaviside
        self.need_helper("elementwise")
        return f"_heaviside(xp, {self._print(e.args[0])}, 0.5)"


def _is_bool(e) -> bool:
    """``e`` evaluates to a bool array: a comparison, a logical op, a temporary holding
    one, or a function of bool value (``isfinite``)."""
    return _is_mask(e) or getattr(type(e), "returns_bool", False) \
        or dtype_of(e) == np.dtype(bool)


def _arithmetic_nodes() -> tuple:
    """The structural nodes that compute with their operands' values (sums, products,
    contractions, comparisons): a boolean operand is cast to a float for them. Layout
    nodes (reshape, index, take, ...) keep booleans as they are."""
    from ..ops.conv import _ConvBase, _PoolBase
    from ..ops.linalg import Cross, Einsum, MatMul, TensorDot
    from ..ops.reductions import ArgReduce, ArgmaxMask, CumProd, CumSum, Reduction
    from ..ops.shape import ArgSort
    return (Reduction, ArgReduce, ArgmaxMask, CumSum, CumProd, MatMul, TensorDot, Einsum,
            Cross, ArgSort, _ConvBase, _PoolBase)


def _op_name(expr) -> str:
    record = record_of(type(expr))
    if record is not None:
        return record.name
    return getattr(expr, "op_name", None) or type(expr).__name__
