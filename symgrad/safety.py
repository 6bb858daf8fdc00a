"""The allowlist a generated module must pass before it is ever executed.

Sanitized names already keep user text out of the code; this is the second wall. A module
passes when its AST:

* imports nothing but ``import numpy as np``;
* uses no dunder name or attribute (``__import__``, ``__class__``, ``__globals__``, ...);
* reads attributes only of ``np`` or of names defined in the module (arrays, helpers),
  never a private ``np._*`` one nor one of :data:`DENIED_ATTRIBUTES` (file I/O such as
  ``np.save``/``np.load``/``x.tofile``, ``ctypes``, ``np.lib``, ``str.format``, ...);
* calls only ``np.*`` functions, methods of local names, functions defined in the module,
  and a short list of harmless builtins;
* never binds a builtin's name (``open = ...``, ``def eval``, an argument named ``exec``):
  at module level a load before such a binding would reach the real builtin.
"""

from __future__ import annotations

import ast
import builtins

__all__ = ["UnsafeModuleError", "check_module_source", "SAFE_BUILTINS", "DENIED_ATTRIBUTES"]

SAFE_BUILTINS = frozenset({
    "float", "int", "bool", "len", "tuple", "list", "dict", "range", "zip", "enumerate",
    "isinstance", "hasattr", "type", "str", "repr", "abs", "min", "max", "sum", "sorted",
    "any", "all", "TypeError", "ValueError", "AttributeError", "KeyError",
})


#: attributes never allowed, whatever they are read from: numpy's file I/O and pickling,
#: raw memory, subpackages that run compilers or read files, format-string traversal
DENIED_ATTRIBUTES = frozenset({
    "save", "savez", "savez_compressed", "savetxt", "load", "loadtxt", "genfromtxt",
    "fromfile", "fromregex", "tofile", "dump", "dumps", "memmap", "DataSource", "open",
    "ctypes", "ctypeslib", "lib", "f2py", "distutils", "testing", "rec", "show_config",
    "show_runtime", "get_include", "format", "format_map", "mro", "system", "popen", "core",
})

_BUILTIN_NAMES = frozenset(dir(builtins))


class UnsafeModuleError(RuntimeError):
    """A generated module failed the allowlist; it was not executed."""


def _fail(node, why: str):
    line = getattr(node, "lineno", "?")
    raise UnsafeModuleError(f"generated module rejected at line {line}: {why}")


_LEAFY = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def _all_nodes(tree) -> list:
    """Every node of ``tree`` but the context/operator singletons (faster than ast.walk)."""
    out, stack = [], [tree]
    AST = ast.AST
    while stack:
        node = stack.pop()
        out.append(node)
        for field in node._fields:
            v = getattr(node, field, None)
            if isinstance(v, list):
                stack.extend(x for x in v if isinstance(x, AST))
            elif isinstance(v, AST) and not isinstance(v, _LEAFY):
                stack.append(v)
    return out


_FORBIDDEN_NODES = (ast.ImportFrom, ast.Global, ast.Nonlocal, ast.AsyncFunctionDef,
                    ast.ClassDef, ast.Await, ast.Yield, ast.YieldFrom, ast.AsyncWith,
                    ast.AsyncFor)


def _bindings(node) -> list:
    """The names ``node`` binds."""
    t = type(node)
    if t is ast.Name:
        return [node.id] if not isinstance(node.ctx, ast.Load) else []
    if t in (ast.FunctionDef, ast.Lambda):
        a = node.args
        names = [arg.arg for arg in a.args + a.posonlyargs + a.kwonlyargs + [a.vararg, a.kwarg]
                 if arg is not None]
        return names + ([node.name] if t is ast.FunctionDef else [])
    if t is ast.arg:
        return [node.arg]
    if t is ast.alias:
        return [node.asname or node.name.partition(".")[0]]
    if t in (ast.ExceptHandler, ast.MatchAs, ast.MatchStar):
        return [node.name] if node.name else []
    if t is ast.MatchMapping:
        return [node.rest] if node.rest else []
    return []


def check_module_source(source: str) -> ast.Module:
    """Parse ``source`` and check it against the allowlist; return the AST."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise UnsafeModuleError(f"generated module does not parse: {err}") from None
    nodes = _all_nodes(tree)
    defined = {"np"}
    for node in nodes:
        for name in _bindings(node):
            if name in _BUILTIN_NAMES:
                _fail(node, f"binds the builtin name {name!r}")
            if name.startswith("__"):
                _fail(node, f"binds the dunder name {name!r}")
            defined.add(name)
    for node in nodes:
        t = type(node)
        if t is ast.Name:
            if node.id.startswith("__") and node.id != "__name__":
                _fail(node, f"dunder name {node.id!r}")
            if isinstance(node.ctx, ast.Load) and node.id not in defined \
                    and node.id not in SAFE_BUILTINS:
                _fail(node, f"name {node.id!r} is neither defined here nor an allowed builtin")
        elif t is ast.Attribute:
            if node.attr.startswith("__"):
                _fail(node, f"dunder attribute {node.attr!r}")
            if node.attr in DENIED_ATTRIBUTES:
                _fail(node, f"attribute {node.attr!r} is not allowed")
            if isinstance(node.value, ast.Name) and node.value.id == "np" \
                    and node.attr.startswith("_"):
                _fail(node, f"private numpy attribute {node.attr!r}")
            root = node.value
            while isinstance(root, (ast.Attribute, ast.Subscript, ast.Call)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name) and root.id not in defined:
                _fail(node, f"attribute of {root.id!r}, which is not local")
        elif t is ast.Call:
            f = node.func
            if isinstance(f, ast.Name) and f.id not in defined and f.id not in SAFE_BUILTINS:
                _fail(node, f"call of {f.id!r}")
        elif t is ast.Import:
            if [(a.name, a.asname) for a in node.names] != [("numpy", "np")]:
                _fail(node, "imports other than 'import numpy as np'")
        elif isinstance(node, _FORBIDDEN_NODES):
            _fail(node, f"{t.__name__} is not allowed")
    return tree
