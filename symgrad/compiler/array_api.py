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
``numpy_form`` on an elementwise function. What cannot be translated raises
:class:`UnsupportedOpError` naming the op and the backend, when compiling.

What differs from the numpy target, besides the names:

* no buffer reuse, no in-place steps, no ``out=`` (arrays of some namespaces are
  immutable);
* boolean masks are always cast (``xp.astype(mask, xp.float64)``): the standard defines
  no arithmetic between bool and float arrays;
* constants are numpy arrays at module level, moved into the namespace (and onto the
  inputs' device) at each call;
* indices carry a trailing ``...`` when they name fewer axes than the operand has.
"""

from __future__ import annotations

import re

import numpy as np

from ..ops.record import RealFunction, numpy_form_of, record_of
from .printer import NumpySourcePrinter

__all__ = ["ArrayApiPrinter", "UnsupportedOpError", "STANDARD_NAMES", "RENAMED",
           "standard_name", "BACKEND"]

BACKEND = "array_api"

#: the names of the array API standard's main namespace (2023.12 and later) that a
#: generated module may call or read: functions, data types and constants. Nothing from
#: its extensions (``linalg``, ``fft``) and nothing that moves data in or out of the
#: process (``from_dlpack``).
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
        if not getattr(node, "array_api", True) or _negative_step(node):
            raise UnsupportedOpError(
                f"{node.op_name}: no array API form checked yet (backend={BACKEND!r}); use "
                f"backend='numpy' for it")
        form = getattr(node, "print_array_api", None)
        if form is not None:
            return form(self, ops)
        return translate(node.print_numpy(self, ops), node.op_name)

    def doprint(self, expr, *args, **kwargs):
        # SymPy's own forms (np.sqrt of a Pow, np.inf, ...) are translated once, here
        return translate(super().doprint(expr, *args, **kwargs), _op_name(expr))

    def _print(self, expr, **kwargs):
        if isinstance(expr, RealFunction):
            args = [self._print(a) for a in expr.args]
            form = getattr(expr, "array_api_form", None)
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
        # H(0) = 1/2 (the tie rule of maximum/minimum); the standard has no heaviside
        a = self._print(e.args[0])
        dt = self.dtype_source(self.float_dtype)
        return f"(xp.astype({a} > 0, {dt}) + xp.astype({a} == 0, {dt})*0.5)"


def _negative_step(node) -> bool:
    """A slice with a negative step (x[::-1]): the standard leaves it to the library, and
    PyTorch refuses it."""
    from ..ops.shape import Index, IndexGrad, SliceSpec
    if not isinstance(node, (Index, IndexGrad)):
        return False
    index = node.args[1] if isinstance(node, Index) else node.args[2]
    return any(isinstance(item, SliceSpec) and (item.as_slice().step or 1) < 0
               for item in index)


def _op_name(expr) -> str:
    record = record_of(type(expr))
    if record is not None:
        return record.name
    return getattr(expr, "op_name", None) or type(expr).__name__
