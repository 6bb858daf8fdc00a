"""Verify stage: prove that a generated function never reads a value whose memory is gone.

The code generator evaluates expressions in place, in the buffers of temporaries that die
there (``np.add(t, b, out=t)``), and a train step writes its updates into the parameters.
Both are where a compiler goes silently wrong: a later line reads ``t`` meaning the old
value, and gets the new one. This pass checks the generated function's source, after it
is printed and before it is written or run, with value numbering over buffers (the SSA
idea applied to memory):

* every array lives in a *buffer*; every write into a buffer (``out=``, ``+=``,
  ``x[...] = ...``, ``np.add.at``) gives it a new *version*;
* a name is bound, when it is assigned, to the buffers it may share memory with and their
  versions at that moment. A result that may be a view (a name, ``.T``, an index, a
  reshape, any call not known to allocate) shares the buffers of every name it reads;
* reading a name whose buffer has moved on to a later version reads a value that no longer
  exists: :class:`VerificationError`, naming the name and both lines;
* writing into a buffer the function does not own (an input of ``compile``, a module-level
  constant) is refused unless the caller allows it (a train step's state).

It is conservative (a possible alias counts as an alias) and linear in the size of the
function. Branches (the input-check block) are walked as if both ran.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

__all__ = ["VerificationError", "verify_function", "verify_source"]


class VerificationError(AssertionError):
    """Internal error: the generated code would read a buffer after overwriting it (or write
    into memory it does not own). Nothing was written or run; please report it."""


#: numpy functions whose result is a new array (never a view of an argument), when called
#: without ``out=``
FRESH_NP = frozenset({
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "power", "square",
    "sqrt", "exp", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "tanh",
    "sinh", "cosh", "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh",
    "maximum", "minimum", "fmax", "fmin", "abs", "absolute", "sign", "where", "clip", "array",
    "zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like", "empty_like",
    "dot", "vdot", "matmul", "inner", "outer", "sum", "prod", "mean", "max", "min", "amax",
    "amin", "argmax", "argmin", "logaddexp", "logaddexp2", "reciprocal", "heaviside",
    "isfinite", "isnan", "isinf", "greater", "less", "equal", "not_equal", "greater_equal",
    "less_equal", "logical_and", "logical_or", "logical_not", "copy", "hypot", "floor",
    "ceil", "rint", "round", "float32", "float64", "eye", "arange", "tensordot", "cumsum",
    "cumprod", "concatenate", "stack", "sort", "take", "take_along_axis", "exp2", "cbrt",
    "linalg",
    # issue 12's elementwise ops (ufuncs, and nan_to_num/fix/sinc, which copy)
    "trunc", "fix", "sinc", "nan_to_num", "fmod", "mod", "remainder", "copysign",
    "float_power", "positive", "fabs", "deg2rad", "rad2deg", "logical_xor",
})

#: methods whose result is a new array (without ``out=``)
FRESH_METHODS = frozenset({
    "dot", "sum", "prod", "mean", "max", "min", "copy", "astype", "argmax", "argmin", "all",
    "any", "cumsum", "cumprod", "std", "var", "round", "clip", "tolist", "item",
})

#: builtins that return new objects
FRESH_CALLS = frozenset({"float", "int", "bool", "len", "abs"})

#: The module's own helpers (templates/helpers.py.j2) return new arrays, never a view of an
#: argument: that is their contract, and the verifier relies on it. The exceptions return
#: a module-level array shared between calls (read-only zeros) and are listed here.
SHARED_CALLS = frozenset({"_zeros_like", "_ones_for"})


#: attributes that are views of the array they are read from; any other attribute of an
#: object (``_state._counter``, ``_state._token``) is an object of its own
VIEW_ATTRIBUTES = frozenset({"T", "mT", "real", "imag", "flat", "base", "data"})


@dataclass
class _Buffer:
    origin: str  # "temp", or the label of memory the function does not own
    version: int = 0
    written_at: int = 0  # line of the last write


@dataclass
class _State:
    writable: frozenset
    buffers: list = field(default_factory=list)
    #: name -> {buffer index: version it held when the name was bound}
    names: dict = field(default_factory=dict)
    fn: str = ""
    lines: list = field(default_factory=list)  # the source, to quote in errors
    helpers: frozenset = frozenset()  # the module's functions that return new arrays
    #: (buffers of an object, attribute name) -> the attribute's own binding
    attributes: dict = field(default_factory=dict)

    def quote(self, lineno: int) -> str:
        text = self.lines[lineno - 1].strip() if 0 < lineno <= len(self.lines) else "?"
        return f"line {lineno}: {text[:160]}"

    def new_buffer(self, origin: str) -> dict:
        self.buffers.append(_Buffer(origin))
        return {len(self.buffers) - 1: 0}


def verify_source(source: str, fn_name: str, writable=("temp",)) -> None:
    """Parse ``source`` and verify its function ``fn_name`` (see :func:`verify_function`).

    Parameters
    ----------
    source : str
        A generated module's source.
    fn_name : str
        The function to verify; the module's other functions count as helpers.
    writable : iterable of str
        Origins the function may write into (see :func:`verify_function`).

    Raises
    ------
    VerificationError
        When the function reads a buffer after overwriting it, writes into memory it does
        not own, or is missing.
    """
    tree = ast.parse(source)
    helpers = frozenset(node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                        and node.name != fn_name)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == fn_name:
            verify_function(node, writable, source.splitlines(), helpers)
            return
    raise VerificationError(f"internal error: the generated module defines no {fn_name}()")


def verify_function(fn: ast.FunctionDef, writable=("temp",), lines=(),
                    helpers=frozenset()) -> None:
    """Check that one generated function never reads a value whose memory is gone.

    Parameters
    ----------
    fn : ast.FunctionDef
    writable : iterable of str
        Origins the function may write into, among ``"temp"`` (its own arrays),
        ``"param:<name>"`` (a parameter's memory) and ``"global"``.
    lines : sequence of str
        The module's source lines, quoted in error messages.
    helpers : iterable of str
        The module's own functions: they return new arrays (except :data:`SHARED_CALLS`).

    Raises
    ------
    VerificationError
        Naming the name and both lines, when a read sees a buffer overwritten since the
        name was bound, or a write goes into memory the function may not write.
    """
    st = _State(writable=frozenset(writable), fn=fn.name, lines=list(lines),
                helpers=frozenset(helpers) - SHARED_CALLS)
    for arg in fn.args.args:
        st.names[arg.arg] = st.new_buffer(f"param:{arg.arg}")
    _walk(fn.body, st)


# ---------------------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------------------


def _walk(body, st: _State) -> None:
    stack = [iter(body)]
    while stack:
        stmt = next(stack[-1], None)
        if stmt is None:
            stack.pop()
            continue
        if isinstance(stmt, ast.If):
            _reads(stmt.test, st)
            stack.append(iter(stmt.body + stmt.orelse))
        elif isinstance(stmt, ast.Try):
            handlers = [s for h in stmt.handlers for s in h.body]
            stack.append(iter(stmt.body + handlers + stmt.orelse + stmt.finalbody))
        elif isinstance(stmt, ast.Assign):
            _assign(stmt, st)
        elif isinstance(stmt, ast.AugAssign):
            _reads(stmt.value, st)
            target = _target_name(stmt.target, stmt)
            _reads(stmt.target, st, load_only=False)
            st.names[target] = _write(st, st.names.get(target) or _global(st, target), stmt)
        elif isinstance(stmt, ast.Expr):
            _expression_statement(stmt, st)
        elif isinstance(stmt, ast.Return):
            if stmt.value is not None:
                _reads(stmt.value, st)
        elif isinstance(stmt, ast.Pass):
            continue
        else:
            raise VerificationError(f"{st.fn}() line {stmt.lineno}: the verifier does not know "
                                    f"the statement {type(stmt).__name__}")


def _assign(stmt: ast.Assign, st: _State) -> None:
    out = _out_target(stmt.value)
    _reads(stmt.value, st, skip=out)
    if out is not None:
        value = _write(st, _binding(st, out), stmt)
        st.names[out.id] = value
    else:
        value = _result(stmt.value, st)
    for target in stmt.targets:
        if isinstance(target, ast.Name):
            st.names[target.id] = dict(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            origin = _origin_of(stmt.value, st)
            elts = list(target.elts)
            while elts:  # nested unpacking ((a, b), (c, d) = x.tolist()): each name
                elt = elts.pop(0)
                if isinstance(elt, (ast.Tuple, ast.List)):
                    elts[:0] = elt.elts
                    continue
                st.names[_target_name(elt, stmt)] = st.new_buffer(origin)
        elif isinstance(target, ast.Subscript):  # x[...] = value: a write into x's buffers
            _reads(target.slice, st)
            name = _target_name(target.value, stmt)
            _reads(target.value, st)
            st.names[name] = _write(st, _binding(st, target.value), stmt)
        else:
            raise VerificationError(f"{st.fn}() line {stmt.lineno}: unexpected assignment "
                                    f"target {type(target).__name__}")


def _expression_statement(stmt: ast.Expr, st: _State) -> None:
    call = stmt.value
    out = _out_target(call)
    _reads(call, st, skip=out)
    if out is not None:  # np.f(..., out=x): x now holds the result
        st.names[out.id] = _write(st, _binding(st, out), stmt)
    elif _is_scatter(call):  # np.add.at(x, index, values)
        first = call.args[0]
        st.names[_target_name(first, stmt)] = _write(st, _binding(st, first), stmt)


def _is_scatter(call) -> bool:
    f = call.func if isinstance(call, ast.Call) else None
    return (isinstance(f, ast.Attribute) and f.attr == "at" and call.args
            and isinstance(call.args[0], ast.Name))


# ---------------------------------------------------------------------------------------
# Reads, writes and results
# ---------------------------------------------------------------------------------------


def _global(st: _State, name: str) -> dict:
    """A name the function did not bind (a module constant, helper, builtin): memory it
    does not own, made known on first use."""
    binding = st.new_buffer("global")
    st.names[name] = binding
    return binding


def _binding(st: _State, node) -> dict:
    if not isinstance(node, ast.Name):
        raise VerificationError(f"{st.fn}() line {node.lineno}: a write target must be a name")
    return st.names.get(node.id) or _global(st, node.id)


def _reads(expr, st: _State, skip=None, load_only=True) -> None:
    """Check every name ``expr`` reads still holds the value it was bound to."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if node is skip:
            continue
        if isinstance(node, ast.Name) and (isinstance(node.ctx, ast.Load) or not load_only):
            binding = st.names.get(node.id)
            if binding is None:
                continue  # a global: np, a helper, a constant, a builtin
            for buf, version in binding.items():
                b = st.buffers[buf]
                if b.version != version:
                    raise VerificationError(
                        f"internal error in the generated {st.fn}(): it reads {node.id!r} after "
                        f"the memory holding it was overwritten\n  written at "
                        f"{st.quote(b.written_at)}\n  read at {st.quote(node.lineno)}\n"
                        f"The module was not written or run; please report this with the "
                        f"expression that produced it.")
            continue
        if isinstance(node, (ast.Lambda, ast.FunctionDef)):
            continue
        stack.extend(ast.iter_child_nodes(node))


def _write(st: _State, binding: dict, stmt) -> dict:
    """Overwrite the buffers of ``binding``; the binding of the written value."""
    new = {}
    for buf in binding:
        b = st.buffers[buf]
        if b.origin not in st.writable:
            what = b.origin.split(":", 1)[-1] if b.origin.startswith("param:") else \
                "memory the function does not own"
            raise VerificationError(
                f"internal error in the generated {st.fn}(): it writes into {what!r} "
                f"(memory of origin {b.origin}), which it must only read\n  at "
                f"{st.quote(stmt.lineno)}")
        b.version += 1
        b.written_at = stmt.lineno
        new[buf] = b.version
    return new


def _out_target(expr):
    """The ``out=`` name of a call, else None."""
    if isinstance(expr, ast.Call):
        for kw in expr.keywords:
            if kw.arg == "out":
                if not isinstance(kw.value, ast.Name):
                    raise VerificationError(f"line {expr.lineno}: out= must name a buffer")
                return kw.value
    return None


def _target_name(node, stmt) -> str:
    if isinstance(node, ast.Name):
        return node.id
    raise VerificationError(f"line {stmt.lineno}: unexpected target {ast.dump(node)[:60]}")


def _names_in(expr) -> list:
    return [n for n in ast.walk(expr) if isinstance(n, ast.Name)]


def _result(expr, st: _State) -> dict:
    """The buffers the value of ``expr`` may share memory with (a fresh one if none)."""
    if _is_fresh(expr, st.helpers):
        return st.new_buffer("temp")
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) \
            and expr.func.id in SHARED_CALLS:
        return st.new_buffer("global")
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) \
            and expr.attr not in VIEW_ATTRIBUTES and expr.value.id in st.names:
        owner = st.names[expr.value.id]
        key = (frozenset(owner), expr.attr)
        if key not in st.attributes:
            origins = {st.buffers[b].origin for b in owner}
            st.attributes[key] = st.new_buffer(origins.pop() if len(origins) == 1 else "global")
        return dict(st.attributes[key])
    shared: dict = {}
    for n in _view_names(expr, st.helpers):
        binding = st.names.get(n.id)
        if binding is not None:
            shared.update(binding)
    return shared or st.new_buffer("temp")


def _view_names(expr, helpers) -> list:
    """The names a possible view may share memory with: those ``expr`` reads, except inside
    a sub-expression that makes a new array (``np.flip(np.cumsum(np.flip(x)))`` is a view
    of the array cumsum made, never of ``x``). A call with ``out=`` writes into its
    argument, so it is never taken as new."""
    found = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if node is not expr and _is_fresh(node, helpers) and not (
                isinstance(node, ast.Call) and any(k.arg == "out" for k in node.keywords)):
            continue
        if isinstance(node, ast.Name):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _origin_of(expr, st: _State) -> str:
    """The origin label for arrays unpacked from ``expr`` (``a, b = _state._params``)."""
    origins = {st.buffers[buf].origin for n in _names_in(expr)
               for buf in st.names.get(n.id, {})}
    origins.discard("temp")
    if len(origins) == 1:
        return origins.pop()
    return "global" if not origins else "param:" + "+".join(sorted(origins))


def _is_fresh(expr, helpers=frozenset()) -> bool:
    if isinstance(expr, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Constant)):
        return True
    if not isinstance(expr, ast.Call):
        return False
    f = expr.func
    if isinstance(f, ast.Name):
        return f.id in FRESH_CALLS or f.id in helpers
    if isinstance(f, ast.Attribute):
        if isinstance(f.value, ast.Name) and f.value.id == "np":
            return f.attr in FRESH_NP
        return f.attr in FRESH_METHODS
    return False
