"""numpy's names for symgrad's operations, and numpy's calls on a Tensor.

Two ways to run existing numpy code on symbolic tensors, both derived from the op records
(:data:`symgrad.ops.RECORDS`: every record with a ``numpy="np.<name>"``):

* unchanged: numpy's own functions and ufuncs dispatch on a :class:`~symgrad.Tensor`
  (``np.tanh(x @ w)``, ``np.sum(t, axis=0)``, ``ndarray + t``) through
  ``Tensor.__array_ufunc__`` and ``Tensor.__array_function__``, which call
  :func:`array_ufunc` and :func:`array_function` here;
* explicitly: this module mirrors numpy's names::

      import symgrad.numpy as snp
      y = snp.tanh(x @ w)
      n = snp.linalg.norm(y, axis=-1)

Both take numpy's signatures (``np.clip(a, a_min, a_max)``, ``np.sum(a, axis, keepdims=)``)
and translate them to the symgrad function's. An argument symgrad does not support
(``out=``, ``where=``, ``dtype=``, ``np.linalg.cholesky``'s ``upper``) given a value other than
numpy's default raises a TypeError naming the function and the argument; so does a numpy
function or ufunc method symgrad does not implement (``np.fft.fft``, ``np.add.reduce``).
The supported ones are the ``numpy`` column of docs/ops.md, plus numpy's other spellings
of the same functions (``np.absolute``, ``np.amax``) and the comparisons (``np.less``, ...,
which build the same boolean tensors as ``<``).

``==`` and ``!=`` keep Python's identity meaning on a Tensor (it is a dict key), also when
numpy is asked (``ndarray == tensor`` is False).
"""

from __future__ import annotations

import builtins as _builtins
import inspect as _inspect
import re as _re
import sys as _sys
import types as _types

import numpy as _np

from .expr import Tensor as _Tensor
from .expr import as_tensor as _as_tensor
from .ops import RECORDS as _RECORDS
from .ops.record import numpy_callables as _numpy_callables

#: where users find the supported numpy functions
SUPPORTED_DOC = "docs/ops.md"

_NO_VALUE = getattr(_np, "_NoValue", object())
_EMPTY = _inspect.Parameter.empty
_VAR = (_inspect.Parameter.VAR_POSITIONAL, _inspect.Parameter.VAR_KEYWORD)

#: numpy's comparison ufuncs and the Tensor operators they mean (``self`` first, reflected):
#: ``ndarray < tensor`` calls ``np.less``, which must build what ``tensor > ndarray`` did
_COMPARISONS = {"less": ("__lt__", "__gt__"), "less_equal": ("__le__", "__ge__"),
                "greater": ("__gt__", "__lt__"), "greater_equal": ("__ge__", "__le__")}

#: ``np.equal``/``np.not_equal`` keep Python's identity meaning (see the module docstring)
_IDENTITY = {"equal": False, "not_equal": True}


class _Entry:
    """One numpy callable symgrad implements: its numpy spelling, the function it calls and
    numpy's signature (translated to the function's on each call)."""

    __slots__ = ("name", "function", "numpy_signature", "target", "pairs", "direct")

    def __init__(self, name: str, function, numpy_obj):
        self.name = name
        self.function = function
        try:
            self.numpy_signature = _inspect.signature(numpy_obj)
        except (TypeError, ValueError):  # a numpy without signatures: take the call as it is
            self.numpy_signature = None
        self.target = _inspect.signature(function)
        self.pairs = self._pair()
        self.direct = self._direct()

    def _pair(self) -> dict:
        """numpy's parameter name -> the function's: the same name, else the same position
        among the parameters neither side names (``a`` -> ``x``, ``a_min`` -> ``lo``)."""
        if self.numpy_signature is None:
            return {}
        source = [p for p in self.numpy_signature.parameters.values() if p.kind not in _VAR]
        target = list(self.target.parameters.values())
        names = {p.name for p in target}
        named = {p.name for p in source}
        pairs = {}
        for i, p in enumerate(source):  # in numpy's order (error messages list them)
            if p.name in names:
                pairs[p.name] = p.name
            elif i < len(target) and p.kind != _inspect.Parameter.KEYWORD_ONLY \
                    and target[i].kind != _inspect.Parameter.VAR_KEYWORD \
                    and target[i].name not in named:
                pairs[p.name] = target[i].name
        return pairs

    def _direct(self) -> int:
        """How many positional arguments pass through as they are (a ufunc's operands):
        numpy's positional-only parameters, each the function's parameter of that place,
        all of the function's required ones; 0 when none do."""
        if self.numpy_signature is None:
            return 0
        source = [p for p in self.numpy_signature.parameters.values()
                  if p.kind == _inspect.Parameter.POSITIONAL_ONLY]
        target = list(self.target.parameters.values())
        required = [p for p in target if p.default is _EMPTY and p.kind not in _VAR]
        if not source or len(required) != len(source) or len(target) < len(source):
            return 0
        for p, q in zip(source, target):
            if self.pairs.get(p.name) != q.name or q.kind not in (
                    _inspect.Parameter.POSITIONAL_ONLY,
                    _inspect.Parameter.POSITIONAL_OR_KEYWORD):
                return 0
        return len(source)

    def __call__(self, args, kwargs):
        if self.direct and not kwargs and len(args) == self.direct:  # np.exp(t), ndarray + t: the hot path
            return self.function(*args)
        if self.numpy_signature is None:
            return self._call(self.target, args, kwargs)
        try:
            bound = self.numpy_signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{self.name}: {e}") from None
        params = self.numpy_signature.parameters
        translated, passed = {}, ()
        for name, value in bound.arguments.items():
            kind = params[name].kind
            if kind == _inspect.Parameter.VAR_KEYWORD:
                for key, item in value.items():  # np.pad(..., constant_values=1.5)
                    if key in self.target.parameters:
                        translated[key] = item
                    else:
                        self._refuse(key, item)
            elif kind == _inspect.Parameter.VAR_POSITIONAL:
                if value and not self._takes_positionally(len(value)):
                    raise TypeError(f"{self.name}: symgrad does not support the extra "
                                    f"positional arguments {value!r}{self._supported()}")
                passed = tuple(value)  # np.einsum(subscripts, *operands): as they come
            elif name in self.pairs:
                translated[self.pairs[name]] = value
            elif not _is_default(value, params[name].default):
                self._refuse(name, value)
        if passed:  # np.gradient(f, *varargs): the named ones before the star go first
            lead = []
            for p in self.target.parameters.values():
                if p.kind not in (_inspect.Parameter.POSITIONAL_ONLY,
                                  _inspect.Parameter.POSITIONAL_OR_KEYWORD) \
                        or p.name not in translated:
                    break
                lead.append(translated.pop(p.name))
            passed = tuple(lead) + passed
        numpy_names = {v: k for k, v in self.pairs.items()}
        filled = {p.name for p in list(self.target.parameters.values())[:len(passed)]}
        for p in self.target.parameters.values():
            if p.default is _EMPTY and p.kind not in _VAR and p.name not in translated \
                    and p.name not in filled:
                raise TypeError(f"{self.name}: symgrad needs the argument "
                                f"{numpy_names.get(p.name, p.name)!r} (numpy's form without it "
                                f"is not supported){self._supported()}")
        args, kwargs = self._arguments(translated)
        return self._call(self.target, passed + args, kwargs)

    def _takes_positionally(self, n: int) -> bool:
        """Whether the function takes ``n`` positional arguments (numpy's ``*operands``)."""
        params = list(self.target.parameters.values())
        if any(p.kind == _inspect.Parameter.VAR_POSITIONAL for p in params):
            return True
        positional = [p for p in params if p.kind in (_inspect.Parameter.POSITIONAL_ONLY,
                                                      _inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        return n <= len(positional)

    def _arguments(self, translated: dict):
        """``(args, kwargs)`` for the function: by name, except a sequence numpy takes as
        one argument (``np.concatenate(arrays)``) that the function takes as ``*tensors``."""
        params = list(self.target.parameters.values())
        star = [i for i, p in enumerate(params) if p.kind == _inspect.Parameter.VAR_POSITIONAL]
        if not star or params[star[0]].name not in translated:
            return (), translated
        translated = dict(translated)
        args = []
        for p in params[:star[0]]:
            if p.name not in translated:
                break
            args.append(translated.pop(p.name))
        args.extend(translated.pop(params[star[0]].name))
        return tuple(args), translated

    def _call(self, target, args, kwargs):
        try:
            bound = target.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{self.name}: {e} (symgrad's {self.function.__name__}"
                            f"{_format(target)}){self._supported()}") from None
        return self.function(*bound.args, **bound.kwargs)

    def _supported(self) -> str:
        if not self.pairs:
            return ""
        return f"; the arguments symgrad supports: {', '.join(self.pairs)}"

    def _refuse(self, name, value):
        if name == "out":
            raise TypeError(f"{self.name}(..., out=...): a symgrad Tensor is symbolic and has "
                            f"no buffer to write into; drop out= and use the Tensor returned")
        hint = ""
        if name == "where":
            hint = " (for a masked result, use np.where(mask, result, fallback))"
        raise TypeError(f"{self.name}: symgrad does not support the argument {name}="
                        f"{_short(value)}{hint}{self._supported()}; see {SUPPORTED_DOC}")


def _format(signature) -> str:
    empty = _inspect.Parameter.empty
    return str(signature.replace(
        parameters=[p.replace(annotation=empty) for p in signature.parameters.values()],
        return_annotation=_inspect.Signature.empty))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_default(value, default) -> bool:
    """Whether a given argument is numpy's default, so leaving it out changes nothing."""
    if value is _NO_VALUE or value is default:
        return True
    simple = (bool, int, float, str)
    return (default is not _EMPTY and type(value) in simple and type(default) is type(value)
            and value == default)


def _comparison(name: str, op: str, rop: str):
    def compare(x1, x2):
        if isinstance(x1, _Tensor):
            return getattr(_Tensor, op)(x1, x2)
        if isinstance(x2, _Tensor):  # what Python calls for ``x1 < tensor``
            return getattr(_Tensor, rop)(x2, x1)
        return getattr(_Tensor, op)(_as_tensor(x1), x2)
    compare.__name__ = compare.__qualname__ = name
    compare.__doc__ = f"numpy's ``{name}`` on Tensors: a boolean Tensor, as ``x1 {op}`` gives."
    return compare


def _numpy_name(obj) -> str:
    """``np.fft.fft`` for numpy's ``numpy.fft.fft``."""
    name = getattr(obj, "__name__", None) or repr(obj)
    module = getattr(obj, "__module__", None) or "numpy"
    if isinstance(obj, _np.ufunc) or not module.startswith("numpy") or "._" in module:
        module = "numpy"
    return "np" + module[len("numpy"):] + "." + name


def _alias_of(name: str, obj):
    """The numpy function ``obj`` (``np.<name>``) says it is an alias of, or None."""
    doc = getattr(obj, "__doc__", None) or ""
    if f"`{name}` is an alias of" not in doc:  # the common case, without a regex
        return None
    match = _re.search(rf"`{_re.escape(name)}` is an alias of `~numpy\.(\w+)`", doc)
    return getattr(_np, match.group(1), None) if match else None


def _aliases(known) -> dict:
    """numpy's other names for the callables in ``known``: the same object under another
    name (``np.absolute`` is ``np.abs``), or a function whose docstring says it is an alias
    (``amax``: "`amax` is an alias of `~numpy.max`")."""
    found = {}
    # numpy's namespace as loaded (getattr would import its lazy submodules)
    for name, obj in list(vars(_np).items()):
        if name.startswith("_") or not callable(obj) or isinstance(obj, type):
            continue
        try:
            if obj in known:
                found[name] = obj
                continue
        except TypeError:  # unhashable
            continue
        if _alias_of(name, obj) in known:
            found[name] = obj
    return found


_TABLE: dict = {}
_TABLE_SIZE = -1


def _table() -> dict:
    """numpy callable -> :class:`_Entry`, built from the records (again when one is added)."""
    global _TABLE, _TABLE_SIZE
    if _TABLE_SIZE == len(_RECORDS):
        return _TABLE
    table = {}
    for obj, record in _numpy_callables().items():
        table[obj] = _Entry(record.numpy, record.function, obj)
    for name, (op, rop) in _COMPARISONS.items():
        obj = getattr(_np, name)
        if obj not in table:
            table[obj] = _Entry(f"np.{name}", _comparison(name, op, rop), obj)
    for name, obj in _aliases(table).items():
        if obj not in table:  # an alias of its own (np.amax): numpy's signature is its own
            base = table.get(_alias_of(name, obj))
            if base is not None:
                table[obj] = _Entry(f"np.{name}", base.function, obj)
    _TABLE, _TABLE_SIZE = table, len(_RECORDS)
    return table


def _unsupported(what: str) -> TypeError:
    return TypeError(f"{what} is not supported on symgrad Tensors; the numpy functions "
                     f"symgrad implements are the numpy column of {SUPPORTED_DOC} (and "
                     f"symgrad.numpy.__all__); other operations are sg.<name> functions")


def _foreign(values) -> bool:
    """Whether an operand is of a type that may handle the call itself (another library's
    array): symgrad then steps aside (NotImplemented)."""
    for v in values:
        if isinstance(v, (_Tensor, _np.ndarray, _np.generic, int, float, bool, list, tuple)) \
                or v is None:
            continue
        if hasattr(type(v), "__array_ufunc__") or hasattr(type(v), "__array_function__"):
            return True
    return False


def array_ufunc(ufunc, method, inputs, kwargs):
    """``Tensor.__array_ufunc__``: numpy's ufunc ``ufunc`` called on Tensors.

    Parameters
    ----------
    ufunc : numpy.ufunc
        The ufunc (``np.exp``; ``np.add`` for ``ndarray + tensor``).
    method : str
        How it was called: ``"__call__"``, or a method (``"reduce"``, unsupported).
    inputs : tuple
        Its operands, one at least a Tensor.
    kwargs : dict
        Its keyword arguments (``out``, ``where``, ``dtype``, ...).

    Returns
    -------
    Tensor
        What the op's symgrad function builds.

    Raises
    ------
    TypeError
        For a ufunc or method symgrad does not implement, or an argument it does not
        support (``out=``), naming it.
    """
    if _foreign(inputs) or _foreign(kwargs.get("out", ()) or ()):
        return NotImplemented
    name = _numpy_name(ufunc)
    entry = _table().get(ufunc)
    if method != "__call__":
        raise _unsupported(f"{name}.{method}") if entry is None else TypeError(
            f"{name}.{method} is not supported on symgrad Tensors (only calling {name}(...) "
            f"is); see {SUPPORTED_DOC} for the functions symgrad implements, e.g. np.sum, "
            f"np.max and np.cumsum for reductions")
    if ufunc.__name__ in _IDENTITY and len(inputs) == 2 and not kwargs \
            and any(isinstance(v, _np.ndarray) for v in inputs):
        # ``ndarray == tensor`` arrives here as np.equal(ndarray, tensor): it keeps Python's
        # identity meaning (``tensor in [array, tensor]`` must not build a mask); with a
        # number or another Tensor, np.equal builds the mask, as sg.equal does
        return (inputs[0] is inputs[1]) != _IDENTITY[ufunc.__name__]
    if entry is None:
        raise _unsupported(name)
    return entry(inputs, kwargs)


def array_function(func, types, args, kwargs):
    """``Tensor.__array_function__``: numpy's function ``func`` called on Tensors.

    Parameters
    ----------
    func : callable
        The numpy function (``np.sum``, ``np.linalg.norm``).
    types : collection of type
        The types of the arguments that implement ``__array_function__``.
    args, kwargs : tuple, dict
        The call's arguments, as given.

    Returns
    -------
    Tensor
        What the op's symgrad function builds (NotImplemented when another library's array
        takes part, so that it may handle the call).

    Raises
    ------
    TypeError
        For a function symgrad does not implement, or an argument it does not support
        (``out=``), naming it.
    """
    if not all(issubclass(t, (_Tensor, _np.ndarray)) for t in types):
        return NotImplemented
    entry = _table().get(func)
    if entry is None:
        raise _unsupported(_numpy_name(func))
    return entry(args, kwargs)


# ---------------------------------------------------------------------------------------
# The namespace: symgrad.numpy.<name> for numpy's np.<name>
# ---------------------------------------------------------------------------------------


def _namespace_function(entry: _Entry, name: str):
    def function(*args, **kwargs):
        return entry(args, kwargs)
    short = name.rsplit(".", 1)[-1]
    function.__name__ = function.__qualname__ = short
    function.__module__ = __name__
    if entry.numpy_signature is not None:
        function.__signature__ = entry.numpy_signature
    target = getattr(entry.function, "__name__", short)
    function.__doc__ = (f"numpy's ``{name}`` on symgrad Tensors: builds "
                        f":func:`symgrad.{target}`, numpy's signature translated to its.\n\n"
                        + (_inspect.getdoc(entry.function) or ""))
    return function


def _missing(module: str, numpy_module: str):
    """A submodule's ``__getattr__``: what symgrad lacks is named, as at the top level."""
    def __getattr__(name):
        raise AttributeError(f"{module} has no {name!r}: symgrad does not implement "
                             f"{numpy_module}.{name}; the numpy functions it implements are "
                             f"the numpy column of {SUPPORTED_DOC} (and the module's __all__)")
    return __getattr__


def _build_namespace() -> dict:
    """``{name: function}`` for the top level (a submodule, ``linalg``, for dotted names)."""
    table = _table()
    names = {}
    for obj, entry in table.items():
        names.setdefault(entry.name[len("np."):], entry)
    for alias, obj in _aliases(table).items():
        names.setdefault(alias, table[obj])
    top = {}
    for name, entry in names.items():
        *path, short = name.split(".")
        scope = top
        for depth, part in enumerate(path):  # np.linalg.norm: the submodule linalg
            if part not in scope:
                qualified = ".".join([__name__, *path[:depth + 1]])
                module = _types.ModuleType(
                    qualified, f"numpy's ``np.{'.'.join(path[:depth + 1])}`` names for "
                               "symgrad's operations.")
                module.__all__ = []
                module.__getattr__ = _missing(qualified, "np." + ".".join(path[:depth + 1]))
                _sys.modules[qualified] = module
                scope[part] = module
            scope = vars(scope[part])
        scope[short] = _namespace_function(entry, f"np.{name}")
        if "__all__" in scope:
            scope["__all__"].append(short)
    return top


_NAMESPACE = _build_namespace()
globals().update(_NAMESPACE)

#: numpy's names this module has (a submodule, ``linalg``, for ``np.linalg.<name>``)
__all__ = _builtins.sorted(_NAMESPACE)


def __getattr__(name):
    raise AttributeError(f"symgrad.numpy has no {name!r}: symgrad does not implement "
                         f"np.{name}; the numpy functions it implements are the numpy column "
                         f"of {SUPPORTED_DOC} (and symgrad.numpy.__all__)")
