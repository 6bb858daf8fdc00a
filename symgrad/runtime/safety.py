"""The allowlist a generated module must pass before it is ever executed.

It is the second wall: a cached entry runs only after its HMAC verified (see
:mod:`symgrad.runtime.cache`), and then only if its AST is made of what symgrad's code generator
emits, and nothing else. The lists below are positive, taken from what the generator writes
(``templates/*.j2``, :mod:`symgrad.compiler.printer`, :mod:`symgrad.ops`,
:mod:`symgrad.compiler.codegen`, :mod:`symgrad.train`, :mod:`symgrad.optim`, and the SymPy
``NumPyPrinter`` forms the printer inherits), cross-checked against every module the test
suite and the examples generate. A module passes when:

* its only imports are ``import numpy as np``, (the array API target)
  ``import array_api_compat`` and (the scalar target) ``import math``, at the top level;
* every statement and expression is of a kind in :data:`_ALLOWED_NODES` (no classes,
  lambdas, decorators, annotations, ``global``, ``with``, ``while``, ``async``, ...);
* ``math`` is only read as ``math.<name>`` with ``<name>`` in :data:`MATH_NAMES` (the
  elementwise functions of the scalar target, :mod:`symgrad.compiler.scalar`);
* ``np`` is only read as ``np.<name>`` with ``<name>`` in :data:`NP_NAMES`, or through one of
  the few chains in :data:`NP_CHAINS` (``np.ma.getmaskarray``, ``np.logical_and.reduce``,
  ...): no other attribute chain through numpy's submodules, no bare ``np``;
* ``array_api_compat`` is only read as ``array_api_compat.<name>`` with ``<name>`` in
  :data:`ARRAY_API_COMPAT_NAMES`; ``xp`` (the array API target's namespace, a local of the
  generated function and a parameter of its helpers) is only read as ``xp.<name>`` with
  ``<name>`` among the standard's names (:data:`XP_NAMES`), through one of the extension
  calls the op records declare (:data:`XP_CHAINS`: ``xp.linalg.inv``, never ``xp.linalg``
  alone), or passed to a helper whole;
* any other attribute read is in :data:`METHODS` (array methods and attributes, a few dict,
  list and str methods, the train-step state's fields) and is read from a value (a local
  name, a call's result, a subscript, a literal), never from a builtin; no dunder anywhere;
  no attribute is ever assigned or deleted;
* names read are module-local, :data:`SAFE_BUILTINS`, or ``_DATA["<literal>"]`` (the arrays
  stored beside the module: only subscripted by a string literal, never bound);
* calls are of ``np`` functions from the table, methods from the set, module-local
  functions, or safe builtins (``type`` with one argument only);
* no builtin, dunder, ``np`` or ``_DATA`` is ever bound (an argument named ``exec``, ``def
  eval``, ``open = ...``): at module level a load before such a binding would reach the
  real builtin.
"""

from __future__ import annotations

import ast
import builtins

__all__ = ["UnsafeModuleError", "check_module_source", "SAFE_BUILTINS", "NP_NAMES",
           "MATH_NAMES", "NP_CHAINS", "METHODS", "DENIED_ATTRIBUTES", "XP_NAMES", "XP_CHAINS",
           "ARRAY_API_COMPAT_NAMES"]

SAFE_BUILTINS = frozenset({
    "float", "int", "bool", "len", "tuple", "list", "dict", "range", "zip", "enumerate",
    "isinstance", "hasattr", "type", "str", "repr", "abs", "min", "max", "sum", "sorted",
    "any", "all", "TypeError", "ValueError", "AttributeError", "KeyError", "IndexError",
    "slice",
    "ArithmeticError",
})

#: ``math.<name>`` the scalar target emits (:mod:`symgrad.compiler.scalar`): functions of
#: floats and two constants, nothing that touches anything but its arguments
MATH_NAMES = frozenset({
    "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh",
    "asin", "acos", "atan", "asinh", "acosh", "atanh", "log2", "log10", "pow", "inf", "nan",
})

#: ``np.<name>`` the generator emits: math ufuncs (symgrad's and the SymPy NumPyPrinter
#: forms of the functions symgrad offers and their derivatives), array construction, dtypes
#: and the type checks of the input helpers
NP_NAMES = frozenset({
    # elementwise math
    "abs", "add", "subtract", "multiply", "divide", "true_divide", "negative", "power",
    "reciprocal",
    "square", "sqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "logaddexp",
    "logaddexp2", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin", "arccos", "arctan",
    "arctan2", "arcsinh", "arccosh", "arctanh", "hypot", "floor", "ceil", "mod", "sign",
    "heaviside", "maximum", "minimum", "clip", "where", "select", "isfinite", "isinf",
    "isnan", "logical_and", "logical_or", "logical_not", "amax", "amin",
    # reductions and linear algebra
    "sum", "mean", "vdot", "dot", "matmul", "argsort", "put_along_axis",
    # construction and shapes
    "array", "asarray", "zeros", "zeros_like", "ones", "full", "arange", "broadcast_to",
    "shape", "s_", "copyto", "transpose", "reshape",
    # dtypes, type checks, constants
    "dtype", "result_type", "can_cast", "finfo", "ndarray", "generic", "integer", "intp",
    "bool_", "bool", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "complex64", "complex128",
    "inf", "nan", "pi", "e", "euler_gamma", "newaxis",
})

# ... and every numpy function an op record prints (symgrad/ops/): an op declares its
# numpy form once, and the allowlist follows
from ..ops.record import numpy_names  # noqa: E402

NP_NAMES = NP_NAMES | numpy_names()

#: ``xp.<name>`` the array API target may read: the standard's names, nothing else (an
#: extension such as ``xp.linalg`` only through :data:`XP_CHAINS`)
from ..compiler.array_api import STANDARD_NAMES as XP_NAMES  # noqa: E402

#: ``array_api_compat.<name>`` the array API target calls
ARRAY_API_COMPAT_NAMES = frozenset({"array_namespace", "device"})

#: the only attribute chains through ``np``: ``np.<first>.<second>``
NP_CHAINS = {
    "ma": frozenset({"MaskedArray", "getmaskarray"}),
    "logical_and": frozenset({"reduce"}),
    "logical_or": frozenset({"reduce"}),
}
# ... and the np.<module>.<function> calls of the op records (np.linalg.inv)
from ..ops.record import numpy_chains  # noqa: E402

for _first, _seconds in numpy_chains().items():
    NP_CHAINS[_first] = NP_CHAINS.get(_first, frozenset()) | _seconds

#: the only attribute chains through ``xp``, ``xp.<extension>.<function>``: the calls the
#: op records declare in ``array_api_calls`` (``xp.linalg.inv``), nothing else
from ..ops.record import array_api_chains  # noqa: E402

XP_CHAINS = array_api_chains()

#: attributes read from values (arrays, dtypes, finfo, dicts, lists, str, the train state)
METHODS = frozenset({
    # arrays
    "T", "all", "any", "argmax", "argsort", "astype", "copy", "dot", "dtype", "max", "mean",
    "min", "ndim", "reshape", "shape", "size", "sum", "transpose", "setflags", "item",
    "filled", "compressed", "ravel", "tolist",
    # dtype / finfo
    "kind", "name", "itemsize", "eps", "tiny",
    # dict, list, str
    "get", "setdefault", "clear", "append", "items", "keys", "values", "join",
    # the train step's state object (``_views``: the scalar target's memoryviews of its arrays)
    "_param_list", "_slot_list", "_hyper", "_counter", "_views",
    # ... its lock, and the optimizer it reads the hyperparameters of (symgrad.train)
    "_token", "pop", "_wait_turn", "_bound", "_hyper_for", "_hyper_of",
    # a ufunc method reached through an np chain's result
    "reduce",
})

#: kept for callers of the old API: these never pass (none is in the positive lists)
DENIED_ATTRIBUTES = frozenset({
    "save", "savez", "savez_compressed", "savetxt", "load", "loadtxt", "genfromtxt",
    "fromfile", "fromregex", "tofile", "dump", "dumps", "memmap", "DataSource", "open",
    "ctypes", "ctypeslib", "lib", "f2py", "distutils", "testing", "rec", "show_config",
    "show_runtime", "get_include", "format", "format_map", "mro", "system", "popen", "core",
    "os", "sys", "builtins", "modules", "exec", "eval", "compile", "random", "polynomial",
})
assert not (DENIED_ATTRIBUTES & (NP_NAMES | METHODS | set(NP_CHAINS) | XP_NAMES
                                 | set(XP_CHAINS) | ARRAY_API_COMPAT_NAMES))

_BUILTIN_NAMES = frozenset(dir(builtins))
_DATA = "_DATA"
_XP = "xp"
_COMPAT = "array_api_compat"
#: the imports a module may have, each at the top level
_IMPORTS = ([("numpy", "np")], [(_COMPAT, None)])


class UnsafeModuleError(RuntimeError):
    """A generated module failed the allowlist; it was not executed."""


def _fail(node, why: str):
    line = getattr(node, "lineno", "?")
    raise UnsafeModuleError(f"generated module rejected at line {line}: {why}")


_ALLOWED_NODES = frozenset({
    ast.Module, ast.Import, ast.alias, ast.FunctionDef, ast.arguments, ast.arg, ast.Assign,
    ast.AugAssign, ast.Return, ast.If, ast.For, ast.Try, ast.ExceptHandler, ast.Raise,
    ast.Expr, ast.Pass, ast.Break, ast.Continue, ast.Tuple, ast.List, ast.Dict, ast.Subscript,
    ast.Slice, ast.Starred, ast.Name, ast.Attribute, ast.Call, ast.keyword, ast.BinOp,
    ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Constant, ast.JoinedStr,
    ast.FormattedValue, ast.GeneratorExp, ast.ListComp, ast.DictComp, ast.comprehension,
    # contexts and operators
    ast.Load, ast.Store, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.MatMult, ast.USub, ast.UAdd, ast.Not, ast.Invert, ast.And, ast.Or, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn, ast.BitAnd,
    ast.BitOr, ast.BitXor,
})


def _all_nodes(tree) -> list:
    """Every node of ``tree`` with its parent, iteratively: ``[(node, parent)]``."""
    out, stack = [], [(tree, None)]
    AST = ast.AST
    while stack:
        node, parent = stack.pop()
        out.append((node, parent))
        for field in node._fields:
            v = getattr(node, field, None)
            if isinstance(v, list):
                stack.extend((x, node) for x in v if isinstance(x, AST))
            elif isinstance(v, AST):
                stack.append((v, node))
    return out


def _bindings(node) -> list:
    """The names ``node`` binds."""
    t = type(node)
    if t is ast.Name:
        return [node.id] if not isinstance(node.ctx, ast.Load) else []
    if t is ast.FunctionDef:
        return [node.name]
    if t is ast.arg:
        return [node.arg]
    if t is ast.alias:
        return [node.asname or node.name.partition(".")[0]]
    if t is ast.ExceptHandler:
        return [node.name] if node.name else []
    return []


def _heads_chain(node, parent, chains) -> bool:
    """``node`` is ``<root>.<first>`` read only as the head of ``<root>.<first>.<second>``
    with the pair in ``chains`` (never the submodule itself)."""
    return node.attr in chains and isinstance(parent, ast.Attribute) \
        and parent.value is node and parent.attr in chains[node.attr]


def _check_np_attribute(node, parent) -> None:
    """``node`` is ``np.<attr>``: in the table, or the head of an allowed chain."""
    if node.attr in NP_NAMES or _heads_chain(node, parent, NP_CHAINS):
        return
    _fail(node, f"np.{node.attr} is not something symgrad generates")


def _check_attribute(node, parent, defined) -> None:
    attr, value = node.attr, node.value
    if attr.startswith("__"):
        _fail(node, f"dunder attribute {attr!r}")
    if not isinstance(node.ctx, ast.Load):
        _fail(node, f"assigns or deletes the attribute {attr!r}")
    if isinstance(value, ast.Name) and value.id == "np":
        _check_np_attribute(node, parent)
        return
    if isinstance(value, ast.Name) and value.id == _XP:
        if attr in XP_NAMES or _heads_chain(node, parent, XP_CHAINS):
            return
        _fail(node, f"xp.{attr} is not a name of the array API standard symgrad generates")
    if isinstance(value, ast.Name) and value.id == _COMPAT:
        if attr not in ARRAY_API_COMPAT_NAMES:
            _fail(node, f"array_api_compat.{attr} is not something symgrad generates")
        return
    if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) \
            and value.value.id in (_XP, _COMPAT):
        if value.value.id == _XP and attr in XP_CHAINS.get(value.attr, ()):
            return  # xp.<extension>.<function>, checked as a pair
        _fail(node, f"{value.value.id}.{value.attr}.{attr} is not something symgrad generates")
    if isinstance(value, ast.Name) and value.id == "math":
        if attr not in MATH_NAMES:
            _fail(node, f"math.{attr} is not something symgrad generates")
        return
    if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) \
            and value.value.id == "np":
        if attr in NP_CHAINS.get(value.attr, ()):
            return  # np.<first>.<second>, checked as a pair
        _fail(node, f"np.{value.attr}.{attr} is not something symgrad generates")
    if attr not in METHODS:
        _fail(node, f"attribute {attr!r} is not one symgrad generates")
    if isinstance(value, ast.Name) and value.id not in defined:
        _fail(node, f"attribute {attr!r} of {value.id!r}, which is not defined in the module")


def check_module_source(source: str) -> ast.Module:
    """Parse ``source`` and check it against the allowlist; return the AST.

    Raises :class:`UnsafeModuleError` naming the line and the construct refused."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise UnsafeModuleError(f"generated module does not parse: {err}") from None
    except (ValueError, MemoryError, RecursionError) as err:
        raise UnsafeModuleError(f"generated module does not parse: {err}") from None
    pairs = _all_nodes(tree)
    defined = set()
    for node, parent in pairs:
        t = type(node)
        if t not in _ALLOWED_NODES:
            _fail(node, f"{t.__name__} is not something symgrad generates")
        if t is ast.Import:
            if parent is not tree or [(a.name, a.asname) for a in node.names] \
                    not in (*_IMPORTS, [("math", None)]):
                _fail(node, "imports other than a top-level 'import numpy as np', "
                            "'import array_api_compat' or 'import math'")
            continue
        if t is ast.alias:
            continue
        for name in _bindings(node):
            if name in _BUILTIN_NAMES:
                _fail(node, f"binds the builtin name {name!r}")
            if name.startswith("__"):
                _fail(node, f"binds the dunder name {name!r}")
            if name in ("np", "math", _DATA) or (name == _COMPAT and t is not ast.alias):
                _fail(node, f"binds the reserved name {name!r}")
            defined.add(name)
        if t is ast.FunctionDef and (node.decorator_list or node.returns
                                     or getattr(node, "type_params", None)):
            _fail(node, "decorators, return annotations and type parameters are not allowed")
        if t is ast.arg and node.annotation is not None:
            _fail(node, "annotations are not allowed")
    for node, parent in pairs:
        t = type(node)
        if t is ast.Name:
            name = node.id
            if name.startswith("__"):
                _fail(node, f"dunder name {name!r}")
            if not isinstance(node.ctx, ast.Load):
                continue
            if name in ("np", "math"):
                if not (isinstance(parent, ast.Attribute) and parent.value is node):
                    _fail(node, f"{name} used other than as {name}.<name>")
            elif name == _DATA:
                if not (isinstance(parent, ast.Subscript) and parent.value is node
                        and isinstance(parent.ctx, ast.Load)
                        and isinstance(parent.slice, ast.Constant)
                        and isinstance(parent.slice.value, str)):
                    _fail(node, '_DATA used other than as _DATA["<name>"]')
            elif name == _COMPAT:
                if not (isinstance(parent, ast.Attribute) and parent.value is node):
                    _fail(node, "array_api_compat used other than as array_api_compat.<name>")
            elif name not in defined and name not in SAFE_BUILTINS:
                _fail(node, f"name {name!r} is neither defined here nor an allowed builtin")
        elif t is ast.Attribute:
            _check_attribute(node, parent, defined)
        elif t is ast.Call:
            f = node.func
            if isinstance(f, ast.Name):
                if f.id not in defined and f.id not in SAFE_BUILTINS:
                    _fail(node, f"call of {f.id!r}")
                if f.id == "type" and (len(node.args) != 1 or node.keywords):
                    _fail(node, "type() with other than one argument")
    return tree
