"""Optimize stage: turn output expressions into a straight-line program.

``plan(outputs, ...)`` produces a :class:`Program`:

1. stable rewrites (:mod:`symgrad.compiler.stable`) on every elementwise region; nodes
   that compute a part another node computes too (a convolution's windows, read again by
   its weight gradient) lowered to forms that share it (``_lower_shared``);
2. every structural node becomes one statement (shared nodes are computed once);
3. ``sympy.cse`` runs over all the elementwise expressions of all outputs together, so the
   backward pass reuses forward intermediates (the relu mask, ``out - y``, ...);
4. dead code never enters: only what the outputs reach is planned;
5. statements are ordered by their dependencies (a stable topological sort).

The program holds SymPy expressions over temporaries; :mod:`symgrad.compiler.codegen` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import sympy

from ..nodes import TensorOp, TensorSymbol, info, subexpressions, xreplace_dag
from ..ops import Relu, Step
from ..graph import post_order, rebuild
from .stable import rewrite, rewrite_program

__all__ = ["Statement", "Program", "plan", "value_args"]


@dataclass
class Statement:
    """One line of the program: ``target = value``.

    Attributes
    ----------
    target : TensorSymbol
        The temporary the statement assigns.
    value : sympy.Expr or TensorOp
        An elementwise expression, or a structural node.
    args : list
        For a structural node, its value arguments as (already reduced) expressions over
        earlier targets; empty for an elementwise statement.
    """

    target: TensorSymbol
    value: object  # an elementwise SymPy expression, or a TensorOp
    args: list = field(default_factory=list)

    @property
    def is_op(self) -> bool:
        """Whether the statement computes a structural node (else an elementwise one)."""
        return isinstance(self.value, TensorOp)

    def reads(self) -> set:
        """The tensor symbols (earlier targets and leaves) the statement reads."""
        exprs = self.args if self.is_op else [self.value]
        out = set()
        for e in exprs:
            out |= {s for s in e.free_symbols if isinstance(s, TensorSymbol)}
        return out


@dataclass
class Output:
    """One output of the program.

    Attributes
    ----------
    name : str
        The output's name (its key in a dict of outputs).
    symbol : TensorSymbol
        The statement target (or leaf) holding its value.
    shape : tuple
    dtype : numpy.dtype or None
    """

    name: str
    symbol: TensorSymbol  # the statement target holding it
    shape: tuple
    dtype: Optional[np.dtype]


@dataclass
class Program:
    """A straight-line program, what :func:`plan` produces and the code generator prints.

    Attributes
    ----------
    statements : list of Statement
        In dependency order.
    outputs : list of Output
    leaves : list of TensorSymbol
        Every input, param, constant and hyper symbol the program reads.
    """

    statements: list
    outputs: list  # of Output
    leaves: list  # every input/param/constant/hyper symbol read


def value_args(node: TensorOp) -> tuple:
    """Positions of ``node.args`` whose values the generated code must compute.

    Parameters
    ----------
    node : TensorOp

    Returns
    -------
    tuple of int
        The node's ``value_args`` where it defines them, else its ``operands``.
    """
    return getattr(node, "value_args", None) or node.operands


def _collect_ops(roots) -> list:
    """Structural nodes reachable from ``roots``, each after the ops it reads (iterative)."""
    return [e for e in post_order(roots, _value_children) if isinstance(e, TensorOp)]


def _value_children(e) -> tuple:
    """What the generated code computes before ``e``: a structural node's value arguments,
    an elementwise node's args; leaves and atoms read nothing."""
    if isinstance(e, TensorOp):
        return tuple(e.args[i] for i in value_args(e))
    if isinstance(e, TensorSymbol) or e.is_Atom:
        return ()
    return e.args


def _lower_shared(roots) -> list:
    """Lower the structural nodes that compute a part another node computes too.

    A node may name such a part (``shared_part()``: a convolution's windows, which its
    weight gradient reads as well) and say how to compute itself from it (``lower()``).
    Where two or more nodes of the program name the same part, each of them is replaced by
    its lowered form, so the part becomes one statement that both read; a part named once
    changes nothing. Bottom-up over the program's DAG, each node once.
    """
    counts: dict = {}
    for node in _collect_ops(roots):
        part = _shared_part(node)
        if part is not None:
            counts[part] = counts.get(part, 0) + 1
    shared = {part for part, n in counts.items() if n > 1}
    if not shared:
        return roots

    def lowered(e, args):
        new = e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e
        return new.lower() if _shared_part(e) in shared else new

    return list(rebuild(sympy.Tuple(*roots), lowered).args)


def _shared_part(node):
    part = getattr(node, "shared_part", None) if isinstance(node, TensorOp) else None
    return part() if part is not None else None


class _MaskFromRelu:
    """Read relu's derivative off its output: step(u) -> step(relu(u)) where relu(u) exists.

    Exact (relu(u) > 0 exactly where u > 0), and it lets the pre-activation ``u`` die as soon
    as relu is computed, so relu can run in place in u's buffer.
    """

    def __init__(self, exprs):
        self.relu_args = {sub.args[0] for sub in subexpressions(exprs) if isinstance(sub, Relu)}

    def __call__(self, expr):
        if not self.relu_args:
            return expr
        rule = {e: Step(Relu(e.args[0])) for e in subexpressions([expr])
                if isinstance(e, Step) and e.args[0] in self.relu_args}
        return xreplace_dag(expr, rule)


def _shared_sums(exprs) -> dict:
    """Undo SymPy's distribution of a number over a sum where that exposes sharing.

    ``diff((m - y)**2, m)`` evaluates to ``2*m - 2*y``; the loss still holds ``m - y``. When a
    sum's terms share a coefficient ``c`` and ``sum/c`` (or ``sum/-c``) occurs elsewhere in the
    program, the sum is rewritten as the unevaluated ``c*(sum/c)`` so that ``cse`` computes
    ``m - y`` once for both.
    """
    sums = {a for a in subexpressions(exprs) if a.is_Add}
    mapping = {}
    for a in sums:
        coeffs = {abs(t.as_coeff_Mul()[0]) for t in a.args}
        if len(coeffs) != 1:
            continue
        (c,) = coeffs
        for s in (c, -c):
            if s == 1:
                continue
            b = sympy.Add(*[t / s for t in a.args])
            if b in sums and b != a:
                mapping[a] = sympy.Mul(s, b, evaluate=False)
                break
    return mapping


class _Temps:
    """Temporary symbols with shapes and dtypes (names are chosen later, at printing)."""

    def __init__(self):
        self.count = 0

    def new(self, like, hint: str) -> TensorSymbol:
        self.count += 1
        shape, dtype = info(like)
        return TensorSymbol(f"_{hint}{self.count}", shape, dtype.name if dtype else "", "temp")


def plan(outputs: list, lower_shared: bool = True) -> Program:
    """Plan output expressions into a straight-line :class:`Program`.

    Parameters
    ----------
    outputs : list of tuple
        ``(name, expr, shape, dtype)`` per output.
    lower_shared : bool
        Lower nodes that share a part (``_lower_shared``). The lowered forms are numpy
        helpers; the array API target plans without them and prints the nodes whole.

    Returns
    -------
    Program
        Stable rewrites applied, one statement per structural node, one ``cse`` over every
        elementwise expression, statements in dependency order.
    """
    temps = _Temps()
    roots = [rewrite_program(e) for _, e, _, _ in outputs]
    if lower_shared:
        roots = _lower_shared(roots)
    ops = _collect_ops(roots)
    op_temp: dict = {}
    op_args: dict = {}
    for node in ops:
        args = [rewrite(node.args[i]) for i in value_args(node)]
        op_args[node] = [xreplace_dag(a, op_temp) for a in args] if op_temp else args
        op_temp[node] = temps.new(node, node.op_name)
    roots = [xreplace_dag(r, op_temp) for r in roots]
    everything = roots + [a for node in ops for a in op_args[node]]
    masks = _MaskFromRelu(everything)
    shared = _shared_sums(everything)
    roots = [xreplace_dag(masks(r), shared) for r in roots]
    for node in ops:
        op_args[node] = [xreplace_dag(masks(a), shared) for a in op_args[node]]

    # one cse over every elementwise expression of the program
    exprs, slots = [], []
    for node in ops:
        for k, a in enumerate(op_args[node]):
            exprs.append(a)
            slots.append((node, k))
    n_op_exprs = len(exprs)
    exprs.extend(roots)
    replacements, reduced = sympy.cse(exprs, symbols=_cse_symbols(), order="none")
    sub: dict = {}
    statements = []
    for sym, e in replacements:
        e = xreplace_dag(e, sub)
        t = temps.new(e, type(e).__name__.lower() if e.is_Function else "t")
        sub[sym] = t
        statements.append(Statement(t, e))
    reduced = [xreplace_dag(r, sub) for r in reduced]
    for (node, k), r in zip(slots, reduced[:n_op_exprs]):
        op_args[node][k] = r
    for node in ops:
        statements.append(Statement(op_temp[node], node, op_args[node]))

    outs, taken = [], set()  # a set: testing each output against all before it is O(n**2)
    for (name, _, shape, dtype), r in zip(outputs, reduced[n_op_exprs:]):
        if isinstance(r, TensorSymbol) and r.role == "temp" and r not in taken:
            target = r
        else:
            target = temps.new(r, "out")
            statements.append(Statement(target, r))
        taken.add(target)
        outs.append(Output(name, target, tuple(shape), dtype))
    statements = _order(statements)
    leaves = _leaves(statements, outs)
    return Program(statements, outs, leaves)


def _cse_symbols():
    i = 0
    while True:
        i += 1
        yield sympy.Symbol(f"_cse{i}", real=True)


def _order(statements) -> list:
    """Stable topological order: each statement after the ones whose targets it reads."""
    by_target = {s.target: s for s in statements}

    def deps(target):  # the targets its statement reads, by name (temp names are unique)
        return sorted((t for t in by_target[target].reads() if t in by_target),
                      key=lambda t: t.name)

    return [by_target[t] for t in post_order([s.target for s in statements], deps)]


def _leaves(statements, outs) -> list:
    found = {}
    for s in statements:
        for sym in s.reads():
            if sym.role != "temp":
                found[sym] = True
    for o in outs:
        if o.symbol.role != "temp":
            found[o.symbol] = True
    return list(found)
