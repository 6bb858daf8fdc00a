"""The public pipeline: ``grad`` (differentiate) and ``compile`` (optimize, generate, cache).

``compile`` runs the stages in one direction::

    outputs ──key──► cache hit? ──yes──► load module (no SymPy work at all)
                         │ no
                         ▼
        differentiate (lazy gradients) ► optimize.plan ► codegen.render ► cache.store

A :class:`CompiledFunction` calls straight-line numpy; it interprets no graph.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Optional

from .runtime import cache
from .compiler.codegen import ModuleSpec, render, template_text
from .compiler.verify import verify_source
from .compiler.diff import GradientError, gradients
from .expr import Tensor, as_tensor
from .graph import post_order
from .nodes import TensorOp, TensorSymbol, shape_of
from .ops import BroadcastTo
from .compiler.optimize import plan
from .compiler.printer import formula
from .compiler import scalar
from .shapes import format_shape

__all__ = ["grad", "compile", "CompiledFunction", "leaves_of", "ExpressionTooLarge"]

#: default caps on expression size (nodes per output) and generated lines per module
DEFAULT_OPTIONS = {"max_nodes": 200_000, "max_lines": 20_000, "check_finite": False,
                   "inplace": True, "backend": "numpy", "target": "auto",
                   "check_inputs": True}

#: the code-generation targets: numpy (with its in-place fast path), and the Python array
#: API standard (symgrad/compiler/array_api.py: one module for numpy, CuPy, PyTorch, JAX
#: and Dask arrays)
BACKENDS = ("numpy", "array_api")


def check_backend(backend, what: str = "compile") -> str:
    """``backend`` if it is a known target whose dependencies are installed.

    Raises
    ------
    ValueError
        For an unknown backend.
    ImportError
        For ``"array_api"`` without the optional dependency ``array-api-compat``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"{what}: unknown backend {backend!r}; use one of {BACKENDS}")
    if backend == "array_api":
        try:
            import array_api_compat  # noqa: F401
        except ImportError:
            raise ImportError(f"{what}: backend='array_api' needs the optional dependency "
                              f"array-api-compat: pip install 'symgrad[array_api]' (or "
                              f"pip install array-api-compat)") from None
    return backend


class ExpressionTooLarge(ValueError):
    """An output's expression (or the generated module) grew beyond the configured cap."""


# ---------------------------------------------------------------------------------------
# grad
# ---------------------------------------------------------------------------------------


def _structure(x):
    """(kind, list of items, keys) for a single item, a list/tuple or a dict."""
    if isinstance(x, dict):
        return "dict", list(x.values()), list(x.keys())
    if isinstance(x, (list, tuple)):
        return "list", list(x), None
    return "single", [x], None


def _restructure(kind, items, keys):
    if kind == "dict":
        return dict(zip(keys, items))
    if kind == "list":
        return list(items)
    return items[0]


def grad(target, wrt, grad_ys=None):
    """Gradients of ``target`` with respect to each of ``wrt``.

    Parameters
    ----------
    target : Tensor or list of Tensor
        What to differentiate. A non-scalar target without ``grad_ys`` is differentiated
        as the sum of its elements (TensorFlow's rule); several targets are summed.
    wrt : Tensor, list of Tensor or dict of Tensor
        Leaves (``sg.input``/``sg.param``) or structural nodes to differentiate against.
    grad_ys : Tensor or list of Tensor, optional
        Cotangents of the targets (same shapes), as TensorFlow's ``grad_ys``.

    Returns
    -------
    The gradients in the structure of ``wrt``, each a :class:`Tensor` of its source's shape
    and dtype. A source the target does not depend on gets zeros. The symbolic work is
    done the first time a gradient's expression is needed (a cached compile skips it).
    """
    _, targets, _ = _structure(target)
    targets = [as_tensor(t) for t in targets]
    w_kind, sources, keys = _structure(wrt)
    for i, w in enumerate(sources):
        if not isinstance(w, Tensor):
            raise TypeError(f"grad: source {i} is a {type(w).__name__}, not a symgrad Tensor")
        if not isinstance(w.expr, (TensorSymbol, TensorOp)):
            raise GradientError(
                f"grad: source {i} ({w}) is an elementwise expression; differentiate with "
                f"respect to leaves (sg.input, sg.param) or non-elementwise results")
        if w.dtype is not None and w.dtype.kind not in "fc":
            # as JAX and PyTorch: an integer or bool value has no infinitesimal change, and
            # a gradient in its dtype would be truncated (2.5 -> 2)
            what = (f"{w.expr.role} {w.expr.name!r}" if isinstance(w.expr, TensorSymbol)
                    else f"{w.expr.op_name} result")
            raise TypeError(
                f"grad: source {i} ({what}) has dtype {w.dtype}; gradients are defined only "
                f"for floating-point sources (declare it with a float dtype, or cast it "
                f"before the model reads it)")
    if grad_ys is None:
        gys = [None] * len(targets)
    else:
        gys = [as_tensor(g) for g in _structure(grad_ys)[1]]
        if len(gys) != len(targets):
            raise GradientError(f"grad: {len(gys)} grad_ys for {len(targets)} targets")
        for i, (t, g) in enumerate(zip(targets, gys)):
            if g.shape != t.shape:
                raise GradientError(f"grad: grad_ys[{i}] has shape {format_shape(g.shape)} but "
                                    f"its target has shape {format_shape(t.shape)}")
    memo: dict = {}

    def compute():
        if "all" not in memo:
            memo["all"] = gradients([t.expr for t in targets], [w.expr for w in sources],
                                    [None if g is None else g.expr for g in gys])
        return memo["all"]

    def thunk(i, w):
        def build():
            e = compute()[i]
            if shape_of(e) != w.shape or e.is_number:
                e = BroadcastTo(e, w.shape, w.dtype)
            return e
        return build

    recipe_base = ("grad", tuple(targets), tuple(sources), tuple(gys))
    out = [Tensor(None, w.shape, w.dtype, thunk=thunk(i, w), recipe=recipe_base + (i,))
           for i, w in enumerate(sources)]
    return _restructure(w_kind, out, keys)


# ---------------------------------------------------------------------------------------
# Fingerprints and leaves, without forcing lazy gradients
# ---------------------------------------------------------------------------------------


def _fingerprint_tensor(t: Tensor, memo: dict, out: list) -> str:
    """A canonical description of a Tensor; a lazy gradient is described by its recipe.

    The gradients of one ``grad`` call share their recipe's groups (targets, sources,
    cotangents): each group is described once, as a line of ``out``, and every gradient
    refers to it by index. So the key of M gradients over M sources costs O(M), not O(M**2).
    """
    if t is None:
        return "None"
    if t.recipe is None:  # a gradient keys by its recipe, forced or not
        return f"e{cache.serialize(t.expr, memo, out)}"
    kind, targets, sources, gys, i = t.recipe
    parts = [kind, str(i)]
    for group in (targets, sources, gys):
        hit = memo.get(("group", id(group)))
        if hit is None or hit[0] is not group:
            text = "[" + ",".join(_fingerprint_tensor(x, memo, out) for x in group) + "]"
            hit = (group, f"g{len(out)}")  # the group object is kept: its id stays unique
            memo[("group", id(group))] = hit
            out.append(text)
        parts.append(hit[1])
    return "(" + ";".join(parts) + ")"


def leaves_of(tensors) -> list:
    """Every input/param leaf the tensors read, without forcing lazy gradients.

    Parameters
    ----------
    tensors : iterable of Tensor or sympy.Basic
        ``None`` entries are skipped; a lazy gradient reads its recipe's leaves.

    Returns
    -------
    list of TensorSymbol
        Each leaf once, in the order the walk finds them.
    """
    found: dict = {}
    stack = list(tensors)
    seen = set()
    groups = set()  # the gradients of one grad call share their recipe: walk it once
    while stack:
        t = stack.pop()
        if t is None:
            continue
        if isinstance(t, Tensor):
            if t.recipe is not None:
                _, targets, sources, gys, _ = t.recipe
                if id(sources) in groups:
                    continue
                groups.add(id(sources))
                stack.extend(targets)
                stack.extend(sources)
                stack.extend(g for g in gys if g is not None)
                continue
            t = t.expr
        if t in seen:
            continue
        seen.add(t)
        if isinstance(t, TensorSymbol):
            if t.role in ("input", "param"):
                found[t] = True
            continue
        stack.extend(t.args)
    return list(found)


def default_input_order(leaves) -> list:
    """The documented order when ``inputs=None``: inputs, then params, each sorted by name.

    Parameters
    ----------
    leaves : iterable of TensorSymbol
        Input and param leaves.

    Returns
    -------
    list of TensorSymbol
    """
    rank = {"input": 0, "param": 1}
    return sorted(leaves, key=lambda s: (rank[s.role], s.name, str(s.shape), s.dtype_name))


def _resolve_inputs(inputs, leaves) -> list:
    if inputs is None:
        chosen = default_input_order(leaves)
    else:
        by_name = {}
        for leaf in leaves:
            by_name.setdefault(leaf.name, []).append(leaf)
        chosen = []
        for item in inputs:
            if isinstance(item, Tensor):
                if not isinstance(item.expr, TensorSymbol):
                    raise TypeError(f"compile: inputs must be leaves (sg.input/sg.param), got "
                                    f"{item}")
                chosen.append(item.expr)
            elif isinstance(item, str):
                if item not in by_name:
                    raise ValueError(f"compile: no input named {item!r} in the outputs "
                                     f"(have {sorted(by_name)})")
                chosen.extend(by_name[item])
            else:
                raise TypeError(f"compile: an input must be a Tensor or a name, got "
                                f"{type(item).__name__}")
        missing = [leaf for leaf in leaves if leaf not in chosen]
        if missing:
            raise ValueError("compile: the outputs read " + ", ".join(
                f"{m.role} {m.name!r}" for m in missing) + " which is not among the inputs")
    names: dict = {}
    for leaf in chosen:
        other = names.setdefault(leaf.name, leaf)
        if other != leaf:
            raise ValueError(
                f"compile: two different leaves are named {leaf.name!r} (shapes "
                f"{format_shape(other.shape)} {other.dtype_name} and "
                f"{format_shape(leaf.shape)} {leaf.dtype_name}); give them distinct names")
    return chosen


# ---------------------------------------------------------------------------------------
# compile
# ---------------------------------------------------------------------------------------


def _output_name(t: Tensor, i: int) -> str:
    if t.recipe is not None and t.recipe[0] == "grad":
        src = t.recipe[2][t.recipe[4]]
        if isinstance(src.expr, TensorSymbol):
            return f"grad_{src.expr.name}"
    if not t.is_lazy and isinstance(t.expr, TensorSymbol):
        return t.expr.name
    return f"out{i}" if i else "out"


def count_nodes(expr) -> int:
    """Distinct nodes of an expression's DAG (iterative).

    Parameters
    ----------
    expr : sympy.Basic

    Returns
    -------
    int
    """
    return count_nodes_together([expr])[-1]


def count_nodes_together(exprs, seen: Optional[set] = None) -> list:
    """Distinct nodes of the DAG of ``exprs[:k+1]``, for each k: one walk for all of them.

    Nodes shared between expressions are counted once, so the walk is linear in the
    size of the whole DAG (a walk per output is quadratic when outputs share a graph).

    Parameters
    ----------
    exprs : iterable of sympy.Basic
    seen : set, optional
        Nodes already counted (by an earlier call); updated in place.

    Returns
    -------
    list of int
        For each k, the number of distinct nodes of ``exprs[:k+1]`` together with ``seen``.
    """
    seen = set() if seen is None else seen
    counts = []
    for expr in exprs:
        for _ in post_order((expr,), seen=seen):  # adds every node it enters to seen
            pass
        counts.append(len(seen))
    return counts


#: compiles refused for their size, by key: a retry in this process fails at once
_REFUSED: dict = {}
_REFUSED_LIMIT = 256


def _refuse(key: str, message: str):
    if len(_REFUSED) >= _REFUSED_LIMIT:
        _REFUSED.clear()
    _REFUSED[key] = message
    raise ExpressionTooLarge(message)


def compile(outputs, inputs=None, *, max_nodes: Optional[int] = None,
            max_lines: Optional[int] = None, check_finite: bool = False,
            name: str = "compute", inplace: bool = True,
            backend: str = "numpy", target: str = "auto",
            check_inputs: bool = True) -> "CompiledFunction":
    """Compile expressions into a cached numpy function.

    Parameters
    ----------
    outputs : Tensor, list of Tensor or dict of str to Tensor
        What the function returns, in the same structure.
    inputs : list of Tensor or str, optional
        The function's parameters, in order. ``None``: every ``sg.input`` leaf the outputs
        read, then every ``sg.param`` leaf, each group sorted by name (see ``f.inputs``).
    max_nodes, max_lines : int, optional
        Caps on the expression size (distinct nodes of the outputs together) and on the
        generated module's length; beyond them :class:`ExpressionTooLarge` names the output
        and the size. They are checked before each expensive stage (differentiating,
        planning), and a refusal is remembered: the same compile again fails at once.
    check_finite : bool
        Also check that float inputs hold no nan/inf (costs one pass over each input).
    name : str
        The generated function's name.
    inplace : bool
        Evaluate in the buffers of temporaries that die there (the default: fewer
        allocations). ``False`` gives every value its own array: the plain reference that
        the in-place plan is tested against. Either way the module is verified before it
        runs (:mod:`symgrad.compiler.verify`).
    backend : {"numpy", "array_api"}
        The code-generation target. ``"numpy"`` (the default) writes numpy with its
        in-place fast path. ``"array_api"`` writes a module that takes the array namespace
        from its inputs (``array_api_compat.array_namespace``, an optional dependency:
        ``pip install 'symgrad[array_api]'``) and calls only the Python array API
        standard's functions, so it runs on numpy, CuPy, PyTorch, JAX and Dask arrays
        (no buffer reuse; ``inplace`` is ignored there). An op with no standard form
        raises :class:`NotImplementedError` naming the op and the backend.
    target : {"auto", "numpy", "scalar"}
        ``"numpy"``: array code. ``"scalar"``: straight-line Python float arithmetic
        unrolled over the elements (every shape fixed, float64 only; it raises
        :class:`~symgrad.compiler.scalar.ScalarUnsupported` naming why when it cannot).
        ``"auto"`` (the default): the scalar target when every shape is fixed and the inputs
        hold at most ``symgrad.compiler.scalar.SCALAR_MAX_ELEMENTS`` elements together and
        the function has a scalar form, else numpy. ``f.target`` says which was used and
        ``f.target_reason`` why not the scalar one.
    check_inputs : bool
        ``True`` (the default): every call tests each input's type, dtype and shape and
        raises a TypeError or ValueError naming the input. ``False``: the caller vouches
        for them and the generated function skips the tests (PyTensor's ``trust_input``);
        it saves a few hundred nanoseconds a call, which only shows on tiny models. A wrong
        input is then not caught: numpy's own error from the generated code, or a result
        of numpy's broadcasting rules, not symgrad's. numpy backend only.

    Returns
    -------
    CompiledFunction
        ``f(x=..., w=...)`` or ``f(x_value, w_value)``; ``f.source``, ``f.path``.
    """
    kind, items, keys = _structure(outputs)
    tensors = [as_tensor(t) for t in items]
    backend = check_backend(backend)
    target = check_target(target, "compile")
    if backend == "array_api":  # the scalar target is a numpy-process form
        if target == "scalar":
            raise ValueError("compile: target='scalar' writes Python floats for numpy arrays; "
                             "it does not combine with backend='array_api'")
        target = "numpy"
    check_inputs = check_unchecked(check_inputs, backend, "compile")
    opts = dict(DEFAULT_OPTIONS, check_finite=bool(check_finite), inplace=bool(inplace),
                backend=backend, target=target, check_inputs=check_inputs)
    if max_nodes is not None:
        opts["max_nodes"] = int(max_nodes)
    if max_lines is not None:
        opts["max_lines"] = int(max_lines)
    leaves = leaves_of(tensors)
    chosen = _resolve_inputs(inputs, leaves)
    # the module returns a dict only when every key is exactly a str (its repr is a safe
    # literal); any other hashable key comes back through a list that CompiledFunction maps
    # to the keys as given ({1: a, "1": b} is two outputs)
    module_kind = kind
    if kind == "dict":
        if all(type(k) is str for k in keys):
            out_names = list(keys)
        else:
            module_kind = "list"
            out_names = [_key_name(k, i) for i, k in enumerate(keys)]
    else:
        out_names = [_output_name(t, i) for i, t in enumerate(tensors)]

    memo, ser = {}, []
    described = [_fingerprint_tensor(t, memo, ser) for t in tensors]
    if target == "auto":  # the threshold decides: part of the key
        opts["scalar_max"] = scalar.SCALAR_MAX_ELEMENTS
    spec_text = repr([(s.name, s.role, tuple(map(str, s.shape)), s.dtype_name) for s in chosen])
    shapes_text = repr([(format_shape(t.shape), str(t.dtype)) for t in tensors])
    key = cache.make_key("function", name, cache.version_fingerprint(), template_text(),
                     repr(sorted(opts.items())), f"{kind}/{module_kind}", repr(out_names),
                     spec_text, shapes_text,
                     "\n".join(ser), ";".join(described))
    if key in _REFUSED:  # refused before for its size: the same answer, at once
        raise ExpressionTooLarge(_REFUSED[key])
    mod = cache.MODULES.lookup(key)
    if mod is None:
        generated = _generate(tensors, out_names, chosen, module_kind, key, opts, name)
        mod = cache.MODULES.store(key, *generated)
    fn = CompiledFunction(mod, name, chosen, kind, keys, out_names, tensors, opts,
                          map_keys=kind == "dict" and module_kind != "dict")
    # how to build this function again with other options (its no-reuse twin, in tests)
    fn.rebuild = functools.partial(compile, outputs, inputs, max_nodes=max_nodes,
                                   max_lines=max_lines, check_finite=check_finite, name=name,
                                   inplace=inplace, backend=backend, target=target,
                                   check_inputs=check_inputs)
    return fn


def check_unchecked(check_inputs, backend: str, where: str) -> bool:
    """``check_inputs`` as a bool; ``False`` is the numpy backend's option only (the array
    API target reads the namespace and device from its checked inputs)."""
    if not isinstance(check_inputs, bool):
        raise TypeError(f"{where}: check_inputs must be True or False, got {check_inputs!r}")
    if not check_inputs and backend != "numpy":
        raise ValueError(f"{where}: check_inputs=False applies to backend='numpy' only, "
                         f"not {backend!r}")
    return bool(check_inputs)


def check_target(target, where: str) -> str:
    """``target`` if it is one of :data:`symgrad.compiler.scalar.TARGETS`, else ValueError."""
    if target not in scalar.TARGETS:
        raise ValueError(f"{where}: target must be one of {', '.join(map(repr, scalar.TARGETS))}, "
                         f"got {target!r}")
    return target


def scalar_attempt(target: str, leaves) -> str:
    """Why the scalar target is not tried ('' when it is): the option, or (auto) the size."""
    if target == "numpy":
        return "target='numpy'"
    if target == "scalar":
        return ""
    return scalar.eligible(leaves)


def _key_name(key, i: int) -> str:
    """A readable name for a non-str dict key (variable names and the header only; the
    namer sanitizes it and makes it unique): ``str(key)`` for numbers and tuples of them."""
    if type(key) in (int, float, bool) or (type(key) is tuple and all(
            type(k) in (int, float, bool, str) for k in key)):
        return str(key)[:40]
    return f"out{i}" if i else "out"


#: a lower bound on the generated lines per structural node (each is a statement of its
#: own, except the let-bindings and transposes of leaves, which print inline): measured
#: between 1.0 and 1.6 on MLPs, RNNs and sums of terms, so 0.9 never refuses a module that
#: would have fit
LINES_PER_OP = 0.9


def _estimated_lines(exprs) -> int:
    """A lower bound on the lines of the module computing ``exprs`` (iterative walk)."""
    from .ops import Let, PermuteDims
    ops = sum(1 for e in post_order(exprs)
              if isinstance(e, TensorOp) and not isinstance(e, Let) and not (
                  isinstance(e, PermuteDims) and isinstance(e.args[0], TensorSymbol)))
    return int(ops * LINES_PER_OP)


def _check_size(key, opts, named, counted: set, stage: str) -> None:
    """Refuse (and remember) a compile whose expressions ``named`` (``(name, expr)`` pairs)
    are over ``max_nodes``, or certainly over ``max_lines``, before the next stage."""
    exprs = [e for _, e in named]
    counts = count_nodes_together(exprs, counted)
    for (nm, _), n in zip(named, counts):
        if n > opts["max_nodes"]:
            _refuse(key, f"compile: output {nm!r} has {n} expression nodes, more than "
                         f"max_nodes={opts['max_nodes']} (distinct nodes of the outputs up to "
                         f"this one, counted {stage}); let-bind shared parts or raise the cap")
    lines = _estimated_lines(exprs)
    if lines > opts["max_lines"]:
        biggest = _biggest(named, counts)
        _refuse(key, f"compile: the generated module has {lines} lines at least (estimated "
                     f"{stage}), more than max_lines={opts['max_lines']} (largest output: "
                     f"{biggest!r})")


#: programs of fewer statements are rendered before their lines are checked (see _generate)
_RENDER_CHEAP = 1000


def _biggest(named, counts) -> str:
    """The name of the output that adds the most nodes (``counts`` are cumulative)."""
    added = [b - a for a, b in zip([0] + counts[:-1], counts)]
    return named[max(range(len(named)), key=added.__getitem__)][0]


def _generate(tensors, out_names, chosen, kind, key, opts, fn_name) -> tuple:
    from ._version import __version__
    # sizes are checked before each expensive stage: on what is known before
    # differentiating (the outputs already built, and the targets of lazy gradients), then
    # on every output before planning; the exact line count is checked after rendering
    known = [(nm, t.expr) for nm, t in zip(out_names, tensors) if not t.is_lazy]
    for nm, t in zip(out_names, tensors):
        if t.is_lazy and t.recipe is not None:
            known += [(nm, x.expr) for x in t.recipe[1] if x is not None]
    _check_size(key, opts, known, set(), "before differentiating, on the outputs built "
                "and the targets of the gradients")
    outputs = [(nm, t.expr, t.shape, t.dtype) for nm, t in zip(out_names, tensors)]
    _check_size(key, opts, [(nm, e) for nm, e, _, _ in outputs], set(),
                "before planning")
    program = plan(outputs, lower_shared=opts["backend"] == "numpy")
    # every planned statement but a transpose prints as one line at least, and every input
    # as a row of the input table and a line of the header: a program already over the cap
    # is refused before rendering (below _RENDER_CHEAP lines rendering is quick, and the
    # exact line count is the clearer answer)
    from .ops import PermuteDims
    planned = 2 * len(chosen) + sum(1 for st in program.statements
                                    if not isinstance(st.value, PermuteDims))
    if planned > opts["max_lines"] and planned >= _RENDER_CHEAP:
        named = [(nm, e) for nm, e, _, _ in outputs]
        biggest = _biggest(named, count_nodes_together([e for _, e in named]))
        _refuse(key, f"compile: the generated module has {planned} lines at least (planned "
                     f"statements and inputs, counted before rendering), more than max_lines="
                     f"{opts['max_lines']} (largest output: {biggest!r})")
    by_id: dict = {}  # built once: a lookup per output over all outputs is O(n**2)
    for n, o in zip(out_names, tensors):
        by_id.setdefault(id(o), n)
    formulas = [_header_formula(nm, t, out_names, tensors, by_id)
                for nm, t in zip(out_names, tensors)]
    reason = scalar_attempt(opts["target"], chosen)
    scalar_lines = ()
    if not reason:
        try:
            scalar_lines = tuple(scalar.PRELUDE) + tuple(scalar.render_compute(
                program, chosen, fn_name, f"_numpy_{fn_name}", kind, opts["check_inputs"]))
        except scalar.ScalarUnsupported as err:
            if opts["target"] == "scalar":
                raise scalar.ScalarUnsupported(
                    f"compile(target='scalar'): {err}; use target='numpy' or 'auto'") from None
            reason = str(err)
    spec = ModuleSpec(title=f"{fn_name}: " + ", ".join(out_names),
                      fn_name=f"_numpy_{fn_name}" if scalar_lines else fn_name,
                      inputs=chosen, result_kind=kind, key=key, version=__version__,
                      formulas=tuple(formulas), reuse_buffers=opts["inplace"],
                      backend=opts["backend"], check_inputs=opts["check_inputs"],
                      scalar_lines=scalar_target_lines(scalar_lines, reason),
                      internal_name=bool(scalar_lines))
    source = render(program, spec)
    if scalar_lines:
        verify_source(source, fn_name)
    lines = source.count("\n")
    if lines > opts["max_lines"]:
        named = [(nm, e) for nm, e, _, _ in outputs]
        biggest = _biggest(named, count_nodes_together([e for _, e in named]))
        _refuse(key, f"compile: the generated module has {lines} lines, more than max_lines="
                     f"{opts['max_lines']} (largest output: {biggest!r})")
    return source, spec.data


#: header formulas stop writing let-bound definitions beyond this length (the header line is
#: cut shorter anyway); printing a deep model's whole formula would cost more than compiling
HEADER_FORMULA_CHARS = 400


def _header_formula(name: str, t: Tensor, out_names, tensors, by_id=None) -> str:
    """``name = formula`` for the module header; a gradient reads ``d(loss)/d(w)``."""
    limit = HEADER_FORMULA_CHARS
    if t.recipe is not None and t.recipe[0] == "grad":
        _, targets, sources, _, i = t.recipe
        src = sources[i].expr
        wrt = src.name if isinstance(src, TensorSymbol) else formula(src, limit)
        if by_id is None:
            by_id = {}
            for n, o in zip(out_names, tensors):
                by_id.setdefault(id(o), n)
        names = [by_id[id(target)] if id(target) in by_id else formula(target.expr, limit)
                 for target in targets]
        return f"{name} = d({' + '.join(names)})/d({wrt})"
    return f"{name} = {formula(t.expr, limit)}"


def scalar_target_lines(lines, reason: str) -> tuple:
    """The module's record of its target (``_TARGET``, ``_TARGET_REASON``), then ``lines``."""
    return (f"_TARGET = {'scalar' if lines else 'numpy'!r}",
            f"_TARGET_REASON = {reason!r}") + tuple(lines)


class CompiledFunction:
    """A compiled, cached numpy function. Call it with arrays; read ``source`` and ``path``.

    Made by :func:`compile`, not constructed directly. Call it with the inputs by position
    (in ``inputs`` order) or by name; it returns the outputs in the structure given to
    ``compile`` (a single array, a list, or a dict).

    Attributes
    ----------
    inputs : list of str
        The input names, in positional order.
    output_names : list of str
        The outputs' names in the generated code.
    output_keys : list or None
        The dict keys exactly as given, for a dict of outputs.

    Raises
    ------
    TypeError
        On a call with a missing, unknown or repeated input, naming it.
    """

    def __init__(self, module, fn_name, inputs, kind, keys, out_names, tensors, opts,
                 map_keys=False):
        self._module = module
        self._fn = module.namespace[fn_name]
        self._fn_name = fn_name
        self._check = module.namespace["_check_inputs"]
        self._leaves = inputs
        self.inputs = [leaf.name for leaf in inputs]
        self.output_names = out_names
        self._tensors = tensors
        self._check_finite = opts["check_finite"]
        #: False: the generated function does not test its inputs (``check_inputs=False``)
        self.check_inputs = opts.get("check_inputs", True)
        params = list(inspect.signature(self._fn).parameters)[-len(inputs):] if inputs else []
        self._rename = {leaf.name: p for leaf, p in zip(inputs, params) if leaf.name != p}
        if self._rename:  # W4's "input" is the module's "input_": the user's names, no wrapper
            renamed = _with_user_names(self._fn, self._rename)
            if renamed is not None:
                self._fn, self._rename = renamed, {}
        #: dict keys exactly as given; ``_map_keys``: the module returns a list in their order
        self.output_keys = list(keys) if kind == "dict" else None
        self._map_keys = bool(map_keys)
        self._slow = bool(self._rename or self._check_finite or self._map_keys)
        #: "scalar" (Python floats unrolled) or "numpy"; ``target_reason``: why not scalar
        self.target = module.namespace.get("_TARGET", "numpy")
        self.target_reason = module.namespace.get("_TARGET_REASON", "")
        self.__doc__ = f"Compiled symgrad function of ({', '.join(self.inputs)})."

    @property
    def source(self) -> str:
        """The generated module's source."""
        return self._module.source

    @property
    def path(self):
        """Where the module is cached on disk (None when the cache is in memory only)."""
        return self._module.path

    @property
    def key(self) -> str:
        """The cache key of the module (a 64-digit hex digest)."""
        return self._module.key

    @property
    def formulas(self) -> dict:
        """Each output's formula, as text (keyed by the dict keys for a dict of outputs)."""
        return {n: formula(t.expr) for n, t in zip(self.output_keys or self.output_names,
                                                    self._tensors)}

    def __repr__(self):
        return f"<symgrad compiled {self.inputs} -> {self.output_names} at {self.path}>"

    def _bind(self, args, kwargs) -> list:
        n = len(self._leaves)
        if len(args) > n:
            raise TypeError(f"compiled function takes {n} inputs ({', '.join(self.inputs)}), "
                            f"got {len(args)} positional arguments")
        values: list[Any] = list(args) + [_MISSING] * (n - len(args))
        index = {name: i for i, name in enumerate(self.inputs)}
        for k, v in kwargs.items():
            i = index.get(k)
            if i is None:
                raise TypeError(f"compiled function got an unknown input {k!r}; its inputs are "
                                f"{self.inputs}")
            if values[i] is not _MISSING:
                raise TypeError(f"compiled function got input {k!r} twice")
            values[i] = v
        missing = [self.inputs[i] for i, v in enumerate(values) if v is _MISSING]
        if missing:
            raise TypeError(f"compiled function is missing input(s) {missing}; its inputs are "
                            f"{self.inputs}")
        return values

    def __call__(self, /, *args, **kwargs):
        if self._slow:
            if self._rename or self._check_finite:
                values = self._bind(args, kwargs)
                if self._check_finite:
                    values = self._check(self._fn_name, values, True)
                out = self._fn(*values)
            else:
                try:
                    out = self._fn(*args, **kwargs)
                except TypeError as err:
                    self._bind(args, kwargs)
                    raise err
            return dict(zip(self.output_keys, out)) if self._map_keys else out
        try:
            return self._fn(*args, **kwargs)
        except TypeError as err:
            # a signature error: say which input is missing or unknown, by the user's names
            self._bind(args, kwargs)
            raise err


_MISSING = object()


def _with_user_names(fn, rename: dict):
    """``fn`` as a new function whose parameters carry the user's input names (the module
    says ``input_`` where the user said ``input``: a builtin or a non-identifier cannot be
    bound in generated code), so that keywords bind them with no wrapper (~300 ns a call on
    W4's step); None when that cannot be done simply (a name would repeat, or a parameter is
    a closure cell). The code runs unchanged: it reads its locals by position."""
    import types
    code = fn.__code__
    if code.co_cellvars or code.co_freevars:
        return None
    back = {p: name for name, p in rename.items()}
    names = list(code.co_varnames)
    names[:code.co_argcount] = [back.get(n, n) for n in names[:code.co_argcount]]
    if len(set(names)) != len(names):
        return None
    return types.FunctionType(code.replace(co_varnames=tuple(names)), fn.__globals__,
                              fn.__name__, fn.__defaults__, fn.__closure__)
