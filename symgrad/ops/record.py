"""One record per public operation, and everything derived from the records.

An op is declared once, in the module of its family (:mod:`~symgrad.ops.elementwise`,
:mod:`~symgrad.ops.reductions`, :mod:`~symgrad.ops.shape`, :mod:`~symgrad.ops.linalg`,
:mod:`~symgrad.ops.nn`, :mod:`~symgrad.ops.special`):

* an **elementwise** op is one call to :func:`elementwise`: its name, its SymPy
  definition (a SymPy function, or a scalar derivative that :func:`lift` turns into one;
  the engine lifts it to tensors and sums it back over broadcast axes), its numpy form,
  its docstring, the numpy reference the tests compare against and what code generation
  may do with it (apply it in place);
* a **structural** op is a :class:`~symgrad.nodes.TensorOp` subclass (shape rule,
  vector-Jacobian rule and numpy printer side by side) and, next to it, its public function
  registered with :func:`public`;
* a **composite** op (softmax, the losses) is a public function written with other ops,
  registered with :func:`public`.

Derived from :data:`RECORDS`, and written nowhere else: the functions ``sg.<name>`` and
``symgrad.__all__``, ``PUBLIC_OPS`` (one spec row each in the tests), the Tensor methods
and operators, the printer's numpy forms (:func:`numpy_form_of`), the code generator's
in-place steps (:func:`inplace_step_of`), the allowlist's numpy names
(:func:`numpy_names`), its chains through ``np`` and ``xp`` (:func:`numpy_chains`,
:func:`array_api_chains`) and the table of ops in ``docs/ops.md``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import sympy
from sympy import Function

__all__ = ["OpRecord", "RECORDS", "elementwise", "public", "lift", "RealFunction",
           "numpy_form_of", "record_of", "inplace_step_of", "numpy_names", "numpy_chains",
           "array_api_chains",
           "identity_nodes",
           "install_tensor_methods"]

#: where the tests draw an op's inputs: anywhere (away from 0), positive, or inside (-1, 1)
DOMAINS = ("any", "positive", "unit")

#: the Python spelling of each operator a record may claim, for the docs
OPERATOR_SPELLING = {
    "__add__": "a + b", "__sub__": "a - b", "__mul__": "a * b", "__truediv__": "a / b",
    "__pow__": "a ** b", "__neg__": "-x", "__matmul__": "a @ b", "__getitem__": "x[index]",
    "__abs__": "abs(x)", "__mod__": "a % b",
}


@dataclass(frozen=True)
class OpRecord:
    """Everything symgrad knows about one public operation.

    Parameters
    ----------
    name : str
        The op's name: ``sg.<name>``, its ``PUBLIC_OPS`` entry and its spec row's key.
    kind : {"elementwise", "structural", "composite"}
        Elementwise ops are SymPy functions of scalars (differentiated by SymPy, lifted to
        tensors by the engine); structural ops are :class:`~symgrad.nodes.TensorOp` nodes
        with their own vector-Jacobian rule; composite ops are written with other ops.
    function : callable
        The public function; its signature and NumPy-style docstring are the op's.
    node : type, optional
        The SymPy class the op builds (``sympy.exp``, a :class:`RealFunction`, a
        :class:`~symgrad.nodes.TensorOp`); None for ops SymPy spells with ``Add``, ``Mul``
        or ``Pow`` and for composites.
    numpy : str
        numpy's name for the op (``"np.log1p"``), printed as ``numpy(args)`` by the code
        generator when the node has no ``numpy_form`` of its own; ``""`` when numpy has
        no single function for it.
    exported : bool
        Whether ``sg.<name>`` exists (``index`` is reached through ``x[...]`` only).
    methods : tuple of str
        Tensor methods that call the function (``x.sum(...)``).
    operators : tuple of str
        Tensor operators that call it: ``"__add__"`` (``self`` first) and ``"__radd__"``
        (the other operand first).
    reference : callable, optional
        A numpy implementation the tests compare against.
    domain : str
        Where the tests draw inputs: one of :data:`DOMAINS`.
    inplace : str, optional
        The step that computes the op in the buffer of its operand, ``{buf}`` standing for
        the buffer (``"np.exp({buf}, out={buf})"``); None when it has none.
    helpers : tuple of str
        Helpers of ``templates/helpers.py.j2`` that ``inplace`` calls.
    identity : bool
        The node prints as its argument (``stop_gradient``): its result is an alias of the
        operand's buffer, never a buffer of its own.
    arity : int
        The number of tensor operands of an elementwise op.
    smooth : bool
        Differentiable everywhere in its test domain (the property test draws such ops
        into random graphs and checks them by finite differences; ``floor`` is not).
    """

    name: str
    kind: str
    function: Callable
    node: Optional[type] = None
    numpy: str = ""
    exported: bool = True
    methods: tuple = ()
    operators: tuple = ()
    reference: Optional[Callable] = None
    domain: str = "any"
    inplace: Optional[str] = None
    helpers: tuple = ()
    identity: bool = False
    arity: int = field(default=0, compare=False)
    smooth: bool = True

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.function) or ""


#: every public op by name, in declaration order (the order of the docs)
RECORDS: dict[str, OpRecord] = {}


def _register(record: OpRecord) -> OpRecord:
    if record.name in RECORDS:
        raise ValueError(f"op {record.name!r} is declared twice")
    if record.domain not in DOMAINS:
        raise ValueError(f"op {record.name!r}: unknown test domain {record.domain!r}")
    for op in record.operators:
        if op.replace("__r", "__", 1) not in OPERATOR_SPELLING:
            raise ValueError(f"op {record.name!r}: unknown operator {op!r}")
    RECORDS[record.name] = record
    if record.node is not None:
        _NODE_TABLE[record.node] = record
    return record


# ---------------------------------------------------------------------------------------
# Elementwise ops
# ---------------------------------------------------------------------------------------


class RealFunction(Function):
    """A real-valued SymPy function of real arguments, symgrad's own.

    Subclasses set ``op_name`` (how formulas and LaTeX write it) and either ``numpy`` (the
    numpy function that computes it) or a ``numpy_form`` method of their own.
    """

    is_real = True
    op_name = ""
    numpy = ""

    def _eval_is_real(self):
        return True

    def numpy_form(self, p, *args) -> str:
        """numpy source for this node, given the printer and the printed arguments."""
        return f"{self.numpy}({', '.join(args)})"

    def _as_named_function(self):
        # printed as SymPy prints an undefined function of this name: the class name is
        # not what users see (and SymPy's printers dispatch on class names)
        return Function(self.op_name)(*self.args)

    def _latex(self, printer):
        return printer._print_Function(self._as_named_function())

    def _sympystr(self, printer):
        return printer._print_Function(self._as_named_function())


def lift(name: str, derivative: Callable, numpy: str, nargs: int = 1) -> type:
    """A SymPy function class for an elementwise op SymPy does not have.

    Parameters
    ----------
    name : str
        The op's name (its formula prints as ``name(x)``).
    derivative : callable
        ``derivative(*args)`` gives the partial derivative in each argument: one SymPy
        expression for a function of one argument, a tuple of them otherwise.
    numpy : str
        The numpy function that computes it (``"np.log1p"``).
    nargs : int
        The number of arguments.

    Returns
    -------
    type
        A :class:`RealFunction` subclass; ``sympy.diff`` differentiates through it.
    """

    def fdiff(self, argindex=1):
        partials = derivative(*self.args)
        return partials if nargs == 1 else partials[argindex - 1]

    return type(name, (RealFunction,),
                {"nargs": nargs, "fdiff": fdiff, "numpy": numpy, "op_name": name,
                 "__module__": "symgrad.ops", "__doc__": f"The SymPy function of {name!r}."})


_PARAMETERS = {
    1: "    x : Tensor or array_like\n        The operand.",
    2: "    a, b : Tensor or array_like\n        The operands; they broadcast as in numpy.",
}


def _elementwise_doc(summary: str, arity: int) -> str:
    return (f"{summary}\n\nParameters\n----------\n{_PARAMETERS[arity]}\n\n"
            f"Returns\n-------\nTensor\n    The elementwise result, of the broadcast shape.")


def elementwise(name: str, node, summary: str, *, derivative: Callable | None = None,
                numpy: str = "", reference=None,
                domain: str = "any", float_result: bool = True, inplace: bool | str = False,
                helpers: tuple = (), operators: tuple = (), identity: bool = False,
                build: Callable | None = None, arity: int = 1,
                smooth: bool = True) -> Callable:
    """Declare an elementwise op; return its public function ``sg.<name>``.

    Parameters
    ----------
    name : str
        The op's name.
    node : callable or None
        Builds the SymPy node from the operands' SymPy expressions: a SymPy function
        (``sympy.exp``), a :class:`RealFunction` class, or any callable (``lambda a: a**2``);
        None to make one from ``derivative`` and ``numpy`` (:func:`lift`).
    summary : str
        The first paragraph of the docstring (the Parameters and Returns are added).
    derivative : callable, optional
        With ``node=None``: the scalar derivative, ``derivative(*args)`` giving one SymPy
        expression (a tuple of partials for several arguments).
    numpy : str
        numpy's function for it; the default form of a :func:`lift` node.
    reference : callable
        numpy implementation for the tests (default: the ``numpy`` function).
    domain : str
        Where the tests draw its inputs (see :data:`DOMAINS`).
    float_result : bool
        Integer operands give a float result (``exp``), or keep their dtype (``abs``).
    inplace : bool or str
        True: the generator may compute it in the operand's buffer with ``numpy(buf,
        out=buf)``; a str gives that step itself (``{buf}`` for the buffer).
    helpers : tuple of str
        Helpers the in-place step calls.
    operators : tuple of str
        Tensor operators that call it (``"__add__"``, ``"__radd__"``).
    identity : bool
        The node prints as its argument (its value aliases the operand).
    build : callable, optional
        ``build(*tensors)``: the Tensor-level function when it is not the plain lifting of
        ``node`` (extra checks, constant arguments); its own docstring is used if it has one.
    arity : int
        The number of operands.
    smooth : bool
        False for ops with jumps or kinks in their domain (``floor``, ``mod``).

    Returns
    -------
    callable
        The public function, with its signature and NumPy-style docstring.
    """
    from .. import expr as tensors  # the Tensor builders (expr imports no op module)

    if node is None:
        if derivative is None or not numpy:
            raise ValueError(f"op {name!r}: give a SymPy node, or a derivative and a numpy name")
        node = lift(name, derivative, numpy, arity)
    if build is None:
        def build(*operands):
            return tensors.elementwise_node(name, node, *operands, float_result=float_result)
        build.__signature__ = inspect.Signature(
            [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
             for p in (("x",) if arity == 1 else ("a", "b", "c")[:arity])])
    if not (build.__doc__ or "").strip():
        build.__doc__ = _elementwise_doc(summary, arity)
    build.__name__ = build.__qualname__ = name
    build.__module__ = "symgrad"
    if inplace is True:
        inplace = f"{numpy}({{buf}}, out={{buf}})"
    # a node type of its own (not SymPy's Add, Mul, Pow, which other rules print)
    cls = node if isinstance(node, type) and issubclass(node, Function) else None
    _register(OpRecord(name, "elementwise", build, node=cls, numpy=numpy,
                       operators=tuple(operators), reference=reference or _numpy_callable(numpy),
                       domain=domain, inplace=inplace or None, helpers=tuple(helpers),
                       identity=identity, arity=arity, smooth=smooth))
    return build


def _numpy_callable(numpy: str):
    import numpy as np
    if numpy.startswith("np.") and re.fullmatch(r"np\.\w+", numpy):
        return getattr(np, numpy[3:], None)
    return None


# ---------------------------------------------------------------------------------------
# Structural and composite ops
# ---------------------------------------------------------------------------------------


def public(kind: str, *, node: type | None = None, numpy: str = "", methods: tuple = (),
           operators: tuple = (), exported: bool = True, reference=None,
           domain: str = "any", name: str | None = None) -> Callable:
    """Decorator: register a structural or composite op's public function.

    Parameters
    ----------
    kind : {"structural", "composite"}
    node : type, optional
        The :class:`~symgrad.nodes.TensorOp` it builds (structural ops).
    numpy : str
        numpy's function for it, for the docs (``"np.sum"``).
    methods, operators : tuple of str
        Tensor methods and operators that call it.
    exported : bool
        Whether ``sg.<name>`` exists.
    reference : callable, optional
        numpy implementation for the tests.
    domain : str
        Where the tests draw its inputs.
    name : str, optional
        The op's name, when it is not the function's.

    Returns
    -------
    callable
        A decorator returning the function unchanged (its ``__module__`` set to
        ``symgrad``, where users meet it).
    """
    if kind not in ("structural", "composite"):
        raise ValueError(f"public: unknown kind {kind!r}")

    def register(fn):
        fn.__module__ = "symgrad"
        _register(OpRecord(name or fn.__name__, kind, fn, node=node, numpy=numpy,
                           exported=exported, methods=tuple(methods),
                           operators=tuple(operators), reference=reference, domain=domain))
        return fn

    return register


# ---------------------------------------------------------------------------------------
# Tables derived from the records
# ---------------------------------------------------------------------------------------


#: node type -> its record (filled as ops are declared)
_NODE_TABLE: dict = {}


def numpy_form_of(node_type) -> str | None:
    """numpy's function for an elementwise node type SymPy's printer does not know, from
    its record (``"np.tan"``); None for the others."""
    record = _NODE_TABLE.get(node_type)
    return record.numpy if record is not None and record.kind == "elementwise" else None


def record_of(node_type) -> OpRecord | None:
    """The record of the op that builds nodes of ``node_type``; None for other types."""
    return _NODE_TABLE.get(node_type)


def inplace_step_of(node_type) -> tuple | None:
    """``(step, helpers)``: the in-place step of an elementwise node type (``{buf}`` for the
    buffer) and the helpers it calls; None when the op has none."""
    record = _NODE_TABLE.get(node_type)
    if record is None or record.inplace is None:
        return None
    return record.inplace, record.helpers


def identity_nodes() -> tuple:
    """The node types that print as their argument (aliases of the operand's buffer)."""
    return tuple(r.node for r in RECORDS.values() if r.identity and r.node is not None)


def numpy_names() -> frozenset:
    """Every ``np.<name>`` the records print (for the allowlist of generated code)."""
    texts = []
    for r in RECORDS.values():
        if r.kind == "elementwise":
            texts += [r.numpy, r.inplace or ""]
        elif r.node is not None:  # a structural node declares what its printer writes
            texts += list(getattr(r.node, "numpy_calls", ()))
    # a name followed by a dot heads a chain (np.linalg.inv): numpy_chains() admits those
    return frozenset(name for text in texts
                     for name in re.findall(r"\bnp\.([A-Za-z_]\w*)\b(?!\.)", text))


def numpy_chains() -> dict:
    """``{"linalg": {"inv", ...}}``: the ``np.<module>.<function>`` calls structural nodes
    declare in ``numpy_calls`` (for the allowlist, which admits each pair, nothing else
    of the submodule)."""
    return _declared_chains("numpy_calls", "np")


def array_api_chains() -> dict:
    """``{"linalg": {"inv", ...}}``: the ``xp.<extension>.<function>`` calls structural
    nodes declare in ``array_api_calls`` (the array API target's :func:`numpy_chains`: the
    allowlist admits each pair, nothing else of the extension)."""
    return _declared_chains("array_api_calls", "xp")


def _declared_chains(attribute: str, root: str) -> dict:
    """The ``<root>.<first>.<second>`` pairs in the structural nodes' ``attribute``."""
    chains: dict = {}
    for r in RECORDS.values():
        if r.kind == "elementwise" or r.node is None:
            continue
        for text in getattr(r.node, attribute, ()):
            for first, second in re.findall(rf"\b{root}\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)",
                                            text):
                chains.setdefault(first, set()).add(second)
    return {k: frozenset(v) for k, v in chains.items()}


def _operator(fn, name: str):
    """The Tensor operator ``name`` calling ``fn``: reflected ones (``__radd__``) take the
    other operand first, unary ones (``__neg__``) take none."""
    if name in ("__neg__", "__abs__"):
        def unary(self):
            return fn(self)
        method = unary
    elif name.startswith("__r"):
        def reflected(self, other):
            return fn(other, self)
        method = reflected
    else:
        def forward(self, other):
            return fn(self, other)
        method = forward
    method.__name__ = name
    spelling = OPERATOR_SPELLING[name.replace("__r", "__", 1)]
    method.__doc__ = f"``{spelling}``: :func:`{fn.__name__}`."
    return method


def _method(fn, name: str):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    method.__name__ = name
    method.__doc__ = f"``sg.{fn.__name__}(self, ...)``: see :func:`symgrad.{fn.__name__}`."
    parameters = list(inspect.signature(fn).parameters.values())[1:]
    method.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *parameters])
    return method


def install_tensor_methods(tensor_class: type) -> None:
    """Give ``tensor_class`` the operators and methods the records declare."""
    for record in RECORDS.values():
        for name in record.operators:
            setattr(tensor_class, name, _operator(record.function, name))
        for entry in record.methods:
            name, member = (entry, _method(record.function, entry)) if isinstance(entry, str) \
                else entry
            setattr(tensor_class, name, member)


def numpy_callables() -> dict:
    """numpy's function for each record that names one, mapped to the record.

    ``np.tanh`` (the ufunc) maps to the record of ``tanh``, ``np.linalg.norm`` to that of
    ``norm``: a record's ``numpy=`` name, looked up in numpy, is its key. What
    ``np.<fn>(tensor)`` and :mod:`symgrad.numpy` dispatch on, so a new op with a numpy name
    is reached from numpy without another edit.

    Returns
    -------
    dict
        numpy callable -> :class:`OpRecord`, in the records' order; names numpy does not
        have (an older numpy) are left out.
    """
    import numpy as np
    table = {}
    for record in RECORDS.values():
        root, *path = record.numpy.split(".")
        if root != "np" or not path or not all(part.isidentifier() for part in path):
            continue
        obj = np
        for part in path:
            obj = getattr(obj, part, None)
        if callable(obj):
            table.setdefault(obj, record)
    return table
