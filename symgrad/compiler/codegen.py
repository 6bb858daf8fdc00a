"""Generate stage: print a :class:`~symgrad.compiler.optimize.Program` as a numpy Python module.

The module is laid out by the jinja2 templates in ``templates/`` (header with the
formulas, the input spec, the symgrad version and the cache key; the input checks; the
straight-line body; the return). The math comes from :mod:`symgrad.compiler.printer`, never from
template logic. The module imports numpy and nothing else.

Names: every identifier in the source is chosen by :class:`Namer`. User names are reduced
to ASCII letters, digits and ``_`` (so NFKC normalisation cannot merge two of them), never
start with ``_`` (that prefix belongs to symgrad's temporaries and helpers), never equal a
keyword, a builtin, ``np`` or ``numpy``, and are made unique. User text that reaches the
source otherwise (input names in error messages, output keys) is a ``repr`` string literal;
in comments it is escaped to printable ASCII on one line.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np
import sympy

from ..nodes import TensorSymbol, info
from ..ops.record import identity_nodes, inplace_step_of
from ..shapes import Dim, format_shape
from .optimize import Program
from .printer import NumpySourcePrinter, float_literal, formula
from .verify import verify_source

__all__ = ["Namer", "ModuleSpec", "render", "comment_safe", "template_text"]

RESERVED = set(keyword.kwlist) | set(getattr(keyword, "softkwlist", [])) | set(dir(builtins)) \
    | {"np", "numpy", "compute", "train_step", "self", "cls",
       # the module names generated code reads on any target: the allowlist checks
       # ``xp.<name>`` as the array API namespace and ``math.<name>`` as the math module
       "xp", "array_api_compat", "math"}
MAX_NAME = 40
MAX_COMMENT = 240


def comment_safe(text: str, limit: int = MAX_COMMENT) -> str:
    """One line of printable ASCII: safe inside a ``#`` comment, whatever the user wrote."""
    text = text[: limit + 1]  # escaping only lengthens: the rest would be cut anyway
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(ch if " " <= ch <= "~" else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: names the array API target's function binds or reads besides the module's own
ARRAY_API_RESERVED = {"xp", "array_api_compat"}


class Namer:
    """Chooses unique, safe identifiers for the generated source."""

    def __init__(self, reserved: frozenset = frozenset()):
        self.taken: set = set(reserved)
        self.names: dict = {}

    def user(self, key, name: str) -> str:
        """A safe identifier for a user-chosen ``name``, unique in this module."""
        s = re.sub(r"[^A-Za-z0-9_]", "_", name)[:MAX_NAME]
        s = s.lstrip("_")
        if not s or s[0].isdigit():
            s = "v_" + s
        if s in RESERVED:
            s += "_"
        return self._claim(key, s)

    def temp(self, key, hint: str) -> str:
        """A symgrad temporary: always starts with ``_``, so never collides with a user name."""
        hint = re.sub(r"[^A-Za-z0-9]", "", hint)[:16] or "t"
        return self._claim(key, f"_{hint}")

    def _claim(self, key, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}_{k}" if not base.startswith("_") else f"{base}{k}"
        self.taken.add(name)
        self.names[key] = name
        return name


@dataclass
class ModuleSpec:
    """What the template needs besides the program."""

    title: str
    fn_name: str
    inputs: list  # TensorSymbols, in parameter order
    result_kind: str  # "single", "list" or "dict"
    key: str = ""
    version: str = ""
    formulas: tuple = ()
    #: lists the function receives and unpacks, unchecked: ((param name, [leaves]), ...)
    unpacked: tuple = ()
    #: called with (printer, names) after the body; returns more body lines (in-place updates)
    epilogue: object = None
    return_override: str = ""
    #: compute with Python floats for 0-d float64 values (train steps: all call overhead)
    unbox_scalars: bool = False
    #: test every input's type, dtype and shape at each call (False: the caller vouches for
    #: them, ``check_inputs=False``; only the symbolic dims are read from the shapes)
    check_inputs: bool = True
    #: parameters before the inputs (their lists are unpacked by ``unpacked``)
    leading_params: tuple = ()
    #: wraps the returned value, e.g. "float"
    result_wrapper: str = ""
    #: evaluate in the buffers of dying temporaries (False: every value gets its own array,
    #: the reference the in-place plan is tested against)
    reuse_buffers: bool = True
    #: verify the rendered module here (False: the caller post-processes the source and
    #: verifies the final text itself, with :func:`symgrad.compiler.verify.verify_source`)
    verify: bool = True
    #: module-level lines after the function: the scalar target's function
    #: (:mod:`symgrad.compiler.scalar`), which calls this one on an arithmetic error
    scalar_lines: tuple = ()
    #: ``fn_name`` is symgrad's own (``_numpy_compute``): it may start with an underscore
    internal_name: bool = False
    #: filled by :func:`render`: arrays the module reads as ``_DATA[name]`` (large constants),
    #: to be stored with it
    data: dict = field(default_factory=dict)
    #: the code-generation target: "numpy", or "array_api" (the Python array API standard,
    #: :mod:`symgrad.compiler.array_api`; no buffer reuse)
    backend: str = "numpy"


def _environment() -> jinja2.Environment:
    """The jinja2 environment over the templates in force (see :func:`template_dir`)."""
    return _environment_for(str(template_dir()))


@lru_cache(maxsize=None)
def _environment_for(directory: str) -> jinja2.Environment:
    # templates are read once per process and directory and kept in memory: the text that
    # renders a module is the text its cache key hashed, and rendering needs no file access
    # later (a process that dropped its privileges may no longer read the checkout)
    return jinja2.Environment(loader=jinja2.DictLoader(_templates_in(directory)),
                              keep_trailing_newline=True, autoescape=False,
                              undefined=jinja2.StrictUndefined)


def template_dir() -> Path:
    """The templates folder: shipped in the wheel as ``symgrad.templates``."""
    return _packaged_template_dir()


@lru_cache(maxsize=None)
def _packaged_template_dir() -> Path:
    try:
        from importlib.resources import files
        d = Path(str(files("symgrad.templates")))
        if (d / "module.py.j2").exists():
            return d
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "templates"


@lru_cache(maxsize=None)
def _templates_in(directory: str) -> dict:
    """``{file name: text}`` of the ``*.j2`` templates in ``directory``."""
    return {p.name: p.read_text() for p in sorted(Path(directory).glob("*.j2"))}


def template_text() -> str:
    """All template text (part of the cache key: editing a template invalidates)."""
    return "".join(_templates_in(str(template_dir())).values())


def _dim_bindings(inputs, names) -> tuple:
    """Where each symbolic dim is read from: {Dim: 'x.shape[0]'}, in input order."""
    sources = {}
    for leaf in inputs:
        for axis, d in enumerate(leaf.shape):
            if isinstance(d, Dim) and d not in sources:
                sources[d] = f"{names[leaf]}.shape[{axis}]"
    return sources


def _is_unboxed(leaf, spec) -> bool:
    return spec.unbox_scalars and leaf.shape == () and leaf.dtype == np.float64


def _type_conds(leaf, n, spec) -> list:
    """The type and dtype tests of one input in a fast check (its shape is tested apart)."""
    if spec is not None and _is_unboxed(leaf, spec):
        # Python and numpy float64 scalars, and 0-d float64 arrays (float() unboxes them)
        return [f"(isinstance({n}, float) or type({n}) is _NDARRAY and not {n}.shape "
                f"and {n}.dtype is _DT_float64)"]
    # exactly an ndarray (or, 0-d, a numpy scalar): a subclass such as np.matrix or a
    # masked array changes what the arithmetic means; _check_inputs converts or refuses it
    return [f"type({n}) is _NDARRAY" if leaf.shape else
            f"(type({n}) is _NDARRAY or isinstance({n}, _GENERIC))",
            f"{n}.dtype is _DT_{leaf.dtype.name}"]


def _check_call(inputs, names, fn_name) -> str:
    """``x, y = _check_inputs('f', (x, y))``: the slow path that explains a failed check."""
    params = ", ".join(names[leaf] for leaf in inputs)
    comma = "," if len(inputs) == 1 else ""
    return f"{params}{comma} = _check_inputs({fn_name!r}, ({params}{comma}))"


def _input_checks(inputs, names, dims_src, fn_name, spec=None, namer=None) -> list:
    """A fast combined check; on failure the module's _check_inputs explains what is wrong."""
    if spec is not None and not getattr(spec, "check_inputs", True):
        return _unchecked_prologue(inputs, names, dims_src, spec)
    if namer is not None and dims_src:
        return _input_checks_with_dims(inputs, names, dims_src, fn_name, spec, namer)
    conds = []
    for leaf in inputs:
        n = names[leaf]
        conds += _type_conds(leaf, n, spec)
        if spec is not None and _is_unboxed(leaf, spec):
            continue
        shape = leaf.shape
        if all(isinstance(d, int) for d in shape):
            conds.append(f"{n}.shape == {tuple(shape)!r}")
            continue
        binds = _binding_axes(shape, n, dims_src)
        if binds:  # this input defines some dims: check its rank and its fixed axes
            conds.append(f"{n}.ndim == {len(shape)}")
            conds += [f"{n}.shape[{axis}] == {d if isinstance(d, int) else dims_src[d]}"
                      for axis, d in enumerate(shape) if axis not in binds]
            continue
        conds.append(_shape_equals(n, shape, dims_src))
    if not inputs:
        return []
    call = "    " + _check_call(inputs, names, fn_name)
    if all(c.startswith("isinstance(") for c in conds):  # nothing can raise: no try needed
        lines = ["if not (" + " and\n        ".join(conds) + "):", call]
        lines += [f"{names[leaf]} = float({names[leaf]})" for leaf in inputs
                  if spec is not None and _is_unboxed(leaf, spec)]
        return lines
    lines = ["try:"]
    lines.append("    _ok = (" + " and\n           ".join(conds) + ")")
    lines += ["except AttributeError:", "    _ok = False", "if not _ok:", call]
    for d, src in dims_src.items():
        # a dim of size 0 becomes a numpy integer: sum(x)/N is then numpy's nan with its
        # RuntimeWarning, as np.mean of an empty array, not a ZeroDivisionError
        lines.append(f"{names[d]} = {src} or _EMPTY_DIM")
    if spec is not None:
        lines += [f"{names[leaf]} = float({names[leaf]})" for leaf in inputs
                  if _is_unboxed(leaf, spec)]
        if getattr(spec, "exact_floats", False) and all(_is_unboxed(leaf, spec)
                                                        for leaf in inputs):
            # every input a Python float (W0): two type tests, nothing to convert
            lines = _unless_python_floats([names[leaf] for leaf in inputs], lines)
    return lines


def _unless_python_floats(params, lines) -> list:
    """``lines`` under ``if not (type(x) is float and ...):``: a function whose inputs are
    all computed as Python floats skips its prologue when they are Python floats already."""
    exact = " and ".join(f"type({n}) is float" for n in params)
    return [f"if not ({exact}):"] + ["    " + line.replace("\n", "\n    ") for line in lines]


def _binding_axes(shape, n, dims_src) -> list:
    """The axes of input ``n`` whose size defines a symbolic dim (read there, ``dims_src``)."""
    return [axis for axis, d in enumerate(shape)
            if isinstance(d, Dim) and dims_src[d] == f"{n}.shape[{axis}]"]


def _shape_equals(n, shape, dim_names) -> str:
    """``x.shape == (4, N)``: the whole shape of input ``n``, a symbolic dim by its name."""
    parts = [str(d) if isinstance(d, int) else dim_names[d] for d in shape]
    return f"{n}.shape == ({', '.join(parts)}{',' if len(parts) == 1 else ''})"


def _unchecked_prologue(inputs, names, dims_src, spec) -> list:
    """``check_inputs=False``: no type, dtype or shape test, only the symbolic dims read
    from the shapes, and the 0-d float64 inputs computed as Python floats converted to
    them (``float(x)``; a function whose inputs are all such floats skips even that when
    they are Python floats already, as the checked one does)."""
    unboxed = [names[leaf] for leaf in inputs if spec.unbox_scalars and _is_unboxed(leaf, spec)]
    lines = [f"{n} = float({n})" for n in unboxed]
    if lines and getattr(spec, "exact_floats", False) and len(unboxed) == len(inputs):
        lines = _unless_python_floats(unboxed, lines)
    for d, src in dims_src.items():
        # numpy's division rules for a dim of size 0, as in the checked prologue
        lines.append(f"{names[d]} = {src} or _EMPTY_DIM")
    return lines


def _input_checks_with_dims(inputs, names, dims_src, fn_name, spec, namer) -> list:
    """The fast check of a function with symbolic dims: the types and dtypes first, then
    each shape read once (``N, _x1 = x.shape``: a wrong rank raises ValueError) and its
    axes compared as ints; every ``x.shape`` makes a new tuple (~45 ns), and the form with
    ``x.ndim == 2 and x.shape[1] == 2 and y.shape == (x.shape[0], 1)`` read four."""
    local = {d: names[d] for d in dims_src}
    types, unpacks, shapes = [], [], []
    for leaf in inputs:
        n = names[leaf]
        types += _type_conds(leaf, n, spec)
        if spec is not None and _is_unboxed(leaf, spec):
            continue
        shape = leaf.shape
        binds = _binding_axes(shape, n, dims_src)
        if not binds:
            shapes.append(_shape_equals(n, shape, local))
            continue
        targets = []
        for axis, d in enumerate(shape):
            if axis in binds:
                targets.append(local[d])
                continue
            axis_name = namer.temp(("shape", leaf, axis), f"{n}{axis}")
            targets.append(axis_name)
            shapes.append(f"{axis_name} == {d if isinstance(d, int) else local[d]}")
        unpacks.append(f"{', '.join(targets)}{',' if len(targets) == 1 else ''} = {n}.shape")
    lines = ["try:", "    _ok = (" + " and\n           ".join(types) + ")", "    if _ok:"]
    lines += [f"        {u}" for u in unpacks]
    if shapes:
        lines.append("        _ok = (" + " and\n               ".join(shapes) + ")")
    lines += ["except (AttributeError, ValueError):  # (a shape of another rank)",
              "    _ok = False", "if not _ok:", "    " + _check_call(inputs, names, fn_name)]
    lines += [f"    {local[d]} = {src}" for d, src in dims_src.items()]
    for d in dims_src:
        # a dim of size 0 becomes a numpy integer: sum(x)/N is then numpy's nan with its
        # RuntimeWarning, as np.mean of an empty array, not a ZeroDivisionError
        lines.append(f"{local[d]} = {local[d]} or _EMPTY_DIM")
    if spec is not None:
        lines += [f"{names[leaf]} = float({names[leaf]})" for leaf in inputs
                  if _is_unboxed(leaf, spec)]
    return lines


def _array_api_checks(inputs, names, dims_src, fn_name, constants_moved) -> list:
    """The array API target's prologue: the namespace and device of the inputs, the input
    checks (through the standard's ``dtype`` and ``shape``), the symbolic dims, and the
    constants moved into the namespace."""
    params = ", ".join(names[leaf] for leaf in inputs)
    comma = "," if len(inputs) == 1 else ""
    lines = [f"xp, _dev = _namespace({fn_name!r}, ({params}{comma}))",
             f"{params}{comma} = _check_inputs({fn_name!r}, ({params}{comma}), False, xp, _dev)"]
    lines += [f"{names[d]} = {src}" for d, src in dims_src.items()]
    lines += [f"{inside} = xp.asarray({outside}, device=_dev)"
              for _, inside, outside in constants_moved]
    return lines


def _input_table(inputs) -> str:
    """The input spec as a literal: (name, shape with dim names, dtype), one per line."""
    rows = []
    for leaf in inputs:
        shape = tuple(d if isinstance(d, int) else str(d) for d in leaf.shape)
        rows.append(f"    {(leaf.name, shape, leaf.dtype.name)!r},")
    return "(\n" + "\n".join(rows) + "\n)" if rows else "()"


#: constants with more elements than this are stored beside the module (in its cache
#: entry, under the same HMAC) and read as ``_DATA["<name>"]``, not printed as literals: a
#: 10^6-element literal made a 20 MB module that took 20 s to compile on every cache hit
INLINE_CONSTANT_LIMIT = 64


def _constant_lines(program, names, data: dict) -> list:
    """Module-level lines binding each constant: a literal when small, else a read of the
    array stored with the module (added to ``data``)."""
    from ..nodes import CONSTANT_VALUES
    lines = []
    for leaf in program.leaves:
        if leaf.role != "constant":
            continue
        value = CONSTANT_VALUES[leaf.tag]
        name = names[leaf]
        if value.size > INLINE_CONSTANT_LIMIT:
            data[name] = value
            lines.append(f"{name} = _DATA[{name!r}]  # {format_shape(value.shape)} "
                         f"{value.dtype.name}, stored with the module")
            continue
        flat = [float_literal(v) if isinstance(v, float) else repr(v)
                for v in value.ravel().tolist()]
        lines.append(f"{name} = np.array([{', '.join(flat)}], "
                     f"dtype=np.{value.dtype.name}).reshape({tuple(value.shape)!r})")
    return lines


def render(program: Program, spec: ModuleSpec, namer: Namer | None = None) -> str:
    """The module source for ``program``."""
    # the scalar target renames the numpy function _numpy_<name>: the user's name is checked
    user_name = spec.fn_name.removeprefix("_numpy_") if spec.internal_name else spec.fn_name
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", user_name) \
            or user_name in RESERVED - {"compute", "train_step"}:
        raise ValueError(f"compile: name={spec.fn_name!r} must be an ASCII identifier that "
                         f"starts with a letter and is not a keyword, a builtin or np")
    array_api = spec.backend == "array_api"
    if spec.backend not in ("numpy", "array_api"):
        raise ValueError(f"compile: unknown backend {spec.backend!r} (use 'numpy' or "
                         f"'array_api')")
    if array_api and (spec.unpacked or spec.epilogue is not None or spec.unbox_scalars):
        raise NotImplementedError("the array API backend generates functions, not train steps")
    if array_api and not spec.inputs:
        raise ValueError("compile: backend='array_api' takes the array namespace from the "
                         "inputs; a function of no inputs has none (use backend='numpy')")
    namer = namer or Namer(frozenset(ARRAY_API_RESERVED) if array_api else frozenset())
    names = namer.names
    for leaf in spec.inputs:
        namer.user(leaf, leaf.name)
    for _, leaves in spec.unpacked:
        for leaf in leaves:
            namer.user(leaf, leaf.name)
            if _is_unboxed(leaf, spec):
                namer.temp(("box", leaf), f"box{leaf.name}")
    dims = set()
    for leaf in spec.inputs:
        dims |= {d for d in leaf.shape if isinstance(d, Dim)}
    for d in sorted(dims, key=str):
        namer.user(d, d.name)
    for leaf in program.leaves:
        if leaf not in names:
            if leaf.role == "constant":
                namer.temp(leaf, f"const_{leaf.name}")
            elif leaf.role in ("input", "param"):
                raise ValueError(f"compile: the outputs read {leaf.role} {leaf.name!r}, which "
                                 f"is not among the inputs")
            else:
                namer.user(leaf, leaf.name)
    out_symbols = {o.symbol: o for o in program.outputs}
    for s in program.statements:
        o = out_symbols.get(s.target)
        if o is not None and s.target.role == "temp":
            namer.user(s.target, o.name)
        else:
            namer.temp(s.target, s.target.name)

    # the array API target reads each constant as a numpy array at module level and moves
    # it into the inputs' namespace in the function, under the name the body reads
    constants_moved = []
    if array_api:
        for leaf in program.leaves:
            if leaf.role == "constant":
                inside = names[leaf]
                outside = namer.temp(("numpy", leaf), f"np{inside}")
                constants_moved.append((leaf, inside, outside))
    helpers: set = set()
    if array_api:
        from .array_api import ArrayApiPrinter
        p = ArrayApiPrinter(names, helpers)
    else:
        p = NumpySourcePrinter(names, helpers)
    default_dtype = _default_float(spec.inputs)
    p.default_float = default_dtype  # what the array API target casts a summed mask to
    if spec.reuse_buffers and not array_api:
        program.statements = _readers_first(program.statements,
                                            {o.symbol for o in program.outputs})
    reuse = _BufferReuse(program, namer, enabled=spec.reuse_buffers and not array_api)
    body = []
    for list_name, leaves in spec.unpacked:
        if leaves:
            targets = ", ".join(names.get(("box", leaf), names[leaf]) for leaf in leaves)
            body.append(f"{targets}{',' if len(leaves) == 1 else ''} = {list_name}")
            body += [f"{names[leaf]} = float({names[('box', leaf)]})" for leaf in leaves
                     if ("box", leaf) in names]
    for s in program.statements:
        p.float_dtype = s.target.dtype or default_dtype
        if s.is_op and _inline_view(s, program, p, out_symbols):
            names[s.target] = p.print_op(s.value, [p.doprint(a) for a in s.args])
            reuse.done(s)
            continue
        if s.is_op:
            printed, seen = [], []
            for a in s.args:  # an operand computed in a dying buffer: no temporary array
                lines, buf = ([], None) if s.value.consumes_raw(a) else \
                    reuse.operand_in_place(a, s, p, names)
                body.extend(lines)
                printed.append(buf if buf is not None else p.doprint(a))
                seen.append(a)
            p.operand_exprs = seen  # what the op's printer sees is what was computed
            source = p.print_op(s.value, printed)
            p.operand_exprs = None
        else:
            lines = reuse.in_place(s, p, names)
            if lines:  # computed in a dying temporary's buffer: complete lines
                body.extend(lines)
                reuse.done(s)
                continue
            source = p.doprint(s.value)
        *calls, last = source.split("\n")
        body.extend(calls)
        body.append(f"{names[s.target]} = {last}")
        reuse.done(s)
    for o in program.outputs:
        want_dtype = o.dtype or default_dtype
        have_shape, have_dtype = o.symbol.shape, o.symbol.dtype
        if have_shape != o.shape or have_dtype != want_dtype:
            helpers.add("finalize")
            extra = ("xp, ", ", _dev") if array_api else ("", "")
            body.append(f"{names[o.symbol]} = _finalize({extra[0]}{names[o.symbol]}, "
                        f"{p.shape_source(o.shape)}, {p.dtype_source(want_dtype)}{extra[1]})")
    if spec.epilogue is not None:
        p.float_dtype = default_dtype
        # outputs whose memory is the program's own (no leaf's, no other output's): a train
        # step may evaluate its update in a gradient's buffer once nothing reads it again
        p.scratch_outputs = {o.symbol for o, shared in zip(program.outputs,
                                                           _shared_outputs(program, spec))
                             if not shared} if spec.reuse_buffers else set()
        body.extend(spec.epilogue(p, names))

    dims_src = _dim_bindings(spec.inputs, names)
    if array_api:
        checks = _array_api_checks(spec.inputs, names, dims_src, spec.fn_name, constants_moved)
        for leaf, inside, outside in constants_moved:
            names[leaf] = outside  # the module-level (numpy) name
    else:
        checks = _input_checks(spec.inputs, names, dims_src, spec.fn_name, spec, namer)
    params = list(spec.leading_params) + [names[leaf] for leaf in spec.inputs]
    result = spec.return_override or _result_source(program, spec, names, p)
    all_floats = spec.unbox_scalars and all(
        _is_unboxed(leaf, spec) for leaf in list(spec.inputs) + program.leaves
        if leaf.role in ("input", "param", "state", "constant"))
    if spec.result_wrapper and not all_floats:  # a result of Python floats needs no wrapper
        result = f"{spec.result_wrapper}({result})"
    dtype_aliases = sorted({leaf.dtype.name for leaf in spec.inputs})
    input_lines = [comment_safe(f"{leaf.name}: {leaf.role} {format_shape(leaf.shape)} "
                                f"{leaf.dtype.name}", limit=MAX_COMMENT) for leaf in spec.inputs]
    template = "module_array_api.py.j2" if array_api else "module.py.j2"
    what = "array API code (xp: the inputs' namespace)" if array_api else "numpy"
    source = _environment().get_template(template).render(
        version=spec.version, title=comment_safe(spec.title), fn_name=spec.fn_name,
        formulas=[comment_safe(f) for f in spec.formulas], input_lines=input_lines,
        key=spec.key, docstring=f"symgrad-generated: {spec.fn_name}() is straight-line {what}.",
        input_table=_input_table(spec.inputs), constants=_constant_lines(program, names, spec.data),
        dtype_aliases=dtype_aliases, helpers=helpers, params=", ".join(params),
        checks=checks, body=body, result=result, scalar_lines=list(spec.scalar_lines),
        scalar_def=any(line.startswith("def ") for line in spec.scalar_lines))
    # the buffer plan is checked on every module, before it is written or run; a train
    # step may write into its state (the parameters, slots and step counter), nothing else
    if spec.verify:
        verify_source(source, spec.fn_name, writable=writable_origins(spec))
    return source


def _readers_first(statements: list, outputs: set) -> list:
    """The statements, with the last reader of an elementwise statement's operand moved
    before it when nothing in between feeds that reader: ``t = a*c`` then ``s = vdot(a, a)``
    becomes ``s = vdot(a, a)`` then ``t = a*c``, which may then run in ``a``'s buffer (W1's
    backward pass: one allocation less). Any order that keeps every read after its value's
    statement computes the same values; this one only moves a statement earlier, past
    statements it does not read. Linear but for the distances moved."""
    stmts = list(statements)
    reads = [s.reads() for s in stmts]
    pos = {id(s): k for k, s in enumerate(stmts)}
    reads_of = {id(s): r for s, r in zip(stmts, reads)}
    readers: dict = {}
    for s, r in zip(stmts, reads):
        for sym in r:
            readers.setdefault(sym, []).append(s)
    targets = {s.target for s in stmts}
    i = 0
    while i < len(stmts):
        s = stmts[i]
        if not s.is_op and s.target.shape != ():
            for a in sorted(reads_of[id(s)], key=lambda t: t.name):
                if a not in targets or a in outputs or a.shape != s.target.shape \
                        or a.dtype != s.target.dtype:
                    continue
                later = [r for r in readers.get(a, ()) if pos[id(r)] > i]
                if len(later) != 1:
                    continue
                j = pos[id(later[0])]
                if reads_of[id(later[0])] & {stmts[k].target for k in range(i, j)}:
                    continue
                stmts.insert(i, stmts.pop(j))
                for k in range(i, j + 1):
                    pos[id(stmts[k])] = k
                i += 1  # s is now one further down
                break
        i += 1
    return stmts


def writable_origins(spec: ModuleSpec) -> tuple:
    """What a generated function may write into: its own temporaries, and the memory of its
    leading parameters (a train step's state: parameters, slots, step counter)."""
    return ("temp",) + tuple(f"param:{n}" for n in spec.leading_params)


class _BufferReuse:
    """Write an elementwise result into the buffer of a temporary that dies there.

    ``t = a + b`` where ``a`` is a temporary of t's shape and dtype, owned by the program
    (a matmul or elementwise result: never a view of an input, never an output) and read for
    the last time by this statement, prints as ``t = np.add(a, b, out=a)``: no allocation,
    and the result stays hot in cache. Likewise ``np.subtract``, ``np.multiply``, the unary
    ufuncs and relu's ``np.maximum``. The first step of such a chain names its result, so
    every name in the generated code means one value (:mod:`symgrad.compiler.verify` checks it).
    """

    def __init__(self, program: Program, namer: Namer, enabled: bool = True):
        self.enabled = enabled
        self.namer = namer
        self.last_read: dict = {}
        for i, s in enumerate(program.statements):
            for sym in s.reads():
                self.last_read[sym] = i
        # a view (broadcast_to, reshape, transpose, basic index, identity) shares its
        # operand's buffer: the operand lives as long as the view is read
        # -- past the view's last read (+ 0.5): the statement that reads the view last must
        # not overwrite the buffer either, and a view that is returned keeps it for good
        self.outputs = {o.symbol for o in program.outputs}
        for i in range(len(program.statements) - 1, -1, -1):
            s = program.statements[i]
            end = math.inf if s.target in self.outputs else self.last_read.get(s.target)
            if _may_alias(s) and end is not None:
                for sym in s.reads():
                    self.last_read[sym] = max(self.last_read.get(sym, -1), end + 0.5)
        self.index = {s.target: i for i, s in enumerate(program.statements)}
        self.owned: set = set()

    def _dies_here(self, sym, s, shape, dtype) -> bool:
        """``sym`` is a temporary of ours, of this shape and dtype, last read by ``s``."""
        return (isinstance(sym, TensorSymbol) and sym in self.owned
                and self.last_read.get(sym) == self.index[s.target]
                and sym.shape == shape and sym.dtype == dtype)

    def in_place(self, s, p, names) -> list | None:
        """Lines computing elementwise statement ``s`` inside a dying temporary's buffer."""
        if not self.enabled or s.target.shape == () or s.target.dtype is None or s.is_op:
            return None
        candidates = [a for a in s.value.free_symbols
                      if self._dies_here(a, s, s.target.shape, s.target.dtype)]
        for a in sorted(candidates, key=lambda t: t.name):
            lines = _spine(s.value, a, names[a], names[s.target], p)
            if lines:
                if s.target not in self.outputs:  # an output's buffer is the caller's
                    self.owned.add(s.target)
                return lines
        return None

    def operand_in_place(self, a, s, p, names):
        """``(lines, name)`` computing operand ``a`` of op statement ``s`` inside a dying
        temporary (bound to a new name), or ``([], None)``."""
        if not self.enabled or a.is_Atom or not isinstance(a, sympy.Expr):
            return [], None
        shape, dtype = info(a)
        if shape == () or dtype is None:
            return [], None
        others = set()
        for b in s.args:  # a buffer another operand still reads is not free
            if b is not a:
                others |= b.free_symbols
        for t in sorted(a.free_symbols, key=lambda x: x.name):
            if t in others or not self._dies_here(t, s, shape, dtype):
                continue
            name = self.namer.temp(("operand", s.target, t), f"{t.name.lstrip('_')}")
            lines = _spine(a, t, names[t], name, p)
            if lines:
                return lines, name
        return [], None

    def done(self, s) -> None:
        from ..ops import MatMul
        if s.target in self.outputs or s.target.shape == ():
            return
        # a matmul, or an op whose result is declared its own (``owned_result``: a new
        # array of its shape and dtype that nothing else references)
        if (s.is_op and (isinstance(s.value, MatMul) or getattr(s.value, "owned_result", False))) \
                or (not s.is_op and not _alias_of(s.value).is_Atom):
            self.owned.add(s.target)


def _may_alias(s) -> bool:
    """Whether statement ``s``'s result may be a view of (share memory with) an operand."""
    if s.is_op:  # an op whose rule returns a new array never returns a view
        return not getattr(s.value, "fresh_result", False)
    return _alias_of(s.value).is_Atom


def _alias_of(e):
    """``e`` without the identity functions that print as their argument: ``t =
    stop_gradient(x)`` prints as ``t = x``, an alias of x's buffer (maybe a read-only
    broadcast view), never a buffer of t's own to write into."""
    identities = identity_nodes()
    while isinstance(e, identities):
        e = e.args[0]
    return e


#: stands for the buffer in a step's source until the chain is assembled
_BUF = "\x00"


def _others(e, inner):
    """``e``'s arguments but ``inner``, combined by ``e``'s operation (an Add or a Mul)."""
    return e.func(*[x for x in e.args if x is not inner])


def _spine_step(e, inner, p) -> str | None:
    """One in-place ufunc step computing node ``e`` from its argument ``inner`` (in the
    buffer), or None when ``e`` is not an elementwise float ufunc of it."""
    if e.is_Add:
        rest = _others(e, inner)
        neg = -rest
        if not rest.is_Add and neg.as_coeff_Mul()[0] > 0:
            return f"np.subtract({_BUF}, {p.doprint(neg)}, out={_BUF})"
        return f"np.add({_BUF}, {p.doprint(rest)}, out={_BUF})"
    if e.is_Mul:
        return f"np.multiply({_BUF}, {p.doprint(_others(e, inner))}, out={_BUF})"
    declared = inplace_step_of(type(e)) if len(e.args) == 1 else None  # from its record
    if declared is not None:
        step, helpers = declared
        for helper in helpers:
            p.need_helper(helper)
        return step.format(buf=_BUF)
    if e.is_Pow and e.exp == 2:
        return f"np.square({_BUF}, out={_BUF})"
    if e.is_Pow and e.exp == sympy.S.Half:
        return f"np.sqrt({_BUF}, out={_BUF})"
    if e.is_Pow and e.exp == -1:
        return f"np.reciprocal({_BUF}, out={_BUF})"
    return None


#: below this many elements a temporary costs less than one more ufunc call (~0.4 us)
SPLIT_SCALE_MIN = 4096


def _scaled_array(e):
    """``(c, m)`` when ``e`` is ``c*m``: ``m`` one array-valued name of at least
    SPLIT_SCALE_MIN elements and ``c`` a product of 0-d values (Adam's
    ``m*(-lr/(1 - beta1**t))``); else None."""
    if not e.is_Mul:
        return None
    arrays = [f for f in e.args if not (f.is_number or info(f)[0] == ())]
    if len(arrays) != 1 or not isinstance(arrays[0], TensorSymbol):
        return None
    shape = arrays[0].shape
    if not all(isinstance(d, int) for d in shape) or math.prod(shape) < SPLIT_SCALE_MIN:
        return None
    return e.func(*[f for f in e.args if f is not arrays[0]]), arrays[0]


def _spine(e, a, buf: str, target: str, p, dest: str | None = None) -> list | None:
    """Evaluate ``e`` in the buffer ``buf`` (holding ``a``): ufunc calls with ``out=``
    applied along the path from ``a`` up to the root, the first one naming its result
    ``target`` (``target = np.add(buf, b, out=buf)``), the others updating ``target``.
    With ``dest``, the first call reads ``buf`` and writes into ``dest`` (a dead buffer of
    the same shape), so ``a`` itself is left as it is.

    None when ``a`` is read more than once on the way (every other operand of a step must
    not read the buffer being overwritten), or when a step is not an elementwise float ufunc.
    Walks down from the root, iteratively."""
    steps = []  # root first
    node = e
    while node != a:
        holders = [x for x in node.args if a in x.free_symbols]
        if len(holders) != 1:
            return None
        (inner,) = holders
        if node.is_Add and inner.is_Mul and inner.as_coeff_Mul()[0] == -1:
            # rest - (...a...): compute -inner in the buffer, then one subtract into it
            steps.append(f"np.subtract({p.doprint(_others(node, inner))}, {_BUF}, out={_BUF})")
            node = -inner
            continue
        if node.is_Mul and inner.is_Pow and inner.exp == -1:
            # rest / (...a...): compute the denominator in the buffer, then one divide
            numerator = _others(node, inner)
            split = _scaled_array(numerator)
            if split is not None:  # c*m / buf: m / buf, then *c (no temporary for c*m)
                steps.append(f"np.multiply({_BUF}, {p.doprint(split[0])}, out={_BUF})")
                steps.append(f"np.divide({p.doprint(split[1])}, {_BUF}, out={_BUF})")
            else:
                steps.append(f"np.divide({p.doprint(numerator)}, {_BUF}, out={_BUF})")
            node = inner.base
            continue
        step = _spine_step(node, inner, p)
        if step is None:
            return None
        steps.append(step)
        node = inner
    if not steps:
        return None
    steps.reverse()
    first = steps[0].replace(f"out={_BUF}", f"out={dest or buf}").replace(_BUF, buf)
    return [f"{target} = {first}"] + [step.replace(_BUF, target) for step in steps[1:]]


def _inline_view(s, program, p, out_symbols=None) -> bool:
    """A transpose of a plain name prints at its use (``w3.T``), not as a line of its own."""
    from ..ops import PermuteDims
    if not isinstance(s.value, PermuteDims):
        return False
    if out_symbols is None:  # a set from the caller: a scan of the outputs here is O(n**2)
        out_symbols = {o.symbol for o in program.outputs}
    if s.target in out_symbols:
        return False
    (arg,) = s.args
    return isinstance(arg, TensorSymbol)


def _default_float(inputs) -> np.dtype:
    floats = [leaf.dtype for leaf in inputs if leaf.dtype is not None and leaf.dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.dtype(np.float64)


def _shared_outputs(program, spec) -> list:
    """For each output, whether it may share memory with what the caller or the module
    holds (an input, a parameter, a constant) or with an earlier output: a leaf, a view of
    one (transpose, reshape, index, broadcast, identity), or the same value twice.

    Decided from the program, so that only those outputs are copied. A statement that may
    alias (``_may_alias``) shares the buffers of everything it reads; any other statement
    owns a fresh buffer (the buffer plan never lends an output's buffer, nor the buffer of a
    value an output views). ``_finalize`` (run by ``render`` on an output whose shape or
    dtype is not yet the declared one) makes a fresh array, but under the symbol's name,
    which a repeated output reads again.
    """
    targets = {s.target: s for s in program.statements}
    roots: dict = {}
    for s in program.statements:
        r = {s.target}
        if _may_alias(s):
            for sym in s.reads():
                r |= roots.get(sym, {sym})
        roots[s.target] = r
    default_dtype = _default_float(spec.inputs)
    claimed: set = set()
    shared = []
    for o in program.outputs:
        sym = o.symbol
        finalized = sym.shape != o.shape or sym.dtype != (o.dtype or default_dtype)
        s = targets.get(sym)
        if s is not None and not s.is_op and s.value.is_number and not finalized:
            shared.append(False)  # a number is immutable
            continue
        r = {sym} if finalized else roots.get(sym, {sym})
        leaf = any(x not in targets for x in r)
        shared.append(leaf or bool(r & claimed))
        if not shared[-1]:
            claimed |= r
    return shared


def _result_source(program, spec, names, p=None) -> str:
    """The return expression: never the caller's arrays, never two outputs sharing memory
    (a ``.copy()`` where ``_shared_outputs`` finds that possible, and only there). A dict
    is returned with its keys as ``repr`` literals: the API passes ``result_kind="dict"``
    only when every key is exactly a ``str`` (other keys come back through a list)."""
    outs = program.outputs
    copies = _shared_outputs(program, spec)
    copy = p.copy_source if p is not None else (lambda name: f"{name}.copy()")
    values = [copy(names[o.symbol]) if c else names[o.symbol] for o, c in zip(outs, copies)]
    if spec.result_kind == "single":
        return values[0]
    if spec.result_kind == "list":
        return "[" + ", ".join(values) + "]"
    for o in outs:
        if type(o.name) is not str:
            raise TypeError(f"compile: dict output key {o.name!r} is not a str")
    return "{" + ", ".join(f"{o.name!r}: {v}" for o, v in zip(outs, values)) + "}"


__all__ += ["TensorSymbol"]
